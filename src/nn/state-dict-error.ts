// The one error loadStateDict() throws: every problem with a checkpoint at once, so that a
// user fixing a key-renaming script sees the whole picture instead of one key per run.
import { formatShape } from "../engine/index.js";

export interface ShapeMismatch {
  key: string;
  /** The shape of the module's own tensor. */
  expected: number[];
  /** The shape found in the state dict. */
  actual: number[];
}

export class StateDictError extends Error {
  override readonly name = "StateDictError";

  constructor(
    readonly moduleName: string,
    readonly missingKeys: readonly string[],
    readonly unexpectedKeys: readonly string[],
    readonly shapeMismatches: readonly ShapeMismatch[],
  ) {
    super(StateDictError.describe(moduleName, missingKeys, unexpectedKeys, shapeMismatches));
  }

  private static describe(
    moduleName: string,
    missing: readonly string[],
    unexpected: readonly string[],
    mismatches: readonly ShapeMismatch[],
  ): string {
    const quote = (keys: readonly string[]): string => keys.map((k) => `"${k}"`).join(", ");
    const lines = [`Error(s) in loading state_dict for ${moduleName}:`];
    if (missing.length > 0) lines.push(`  Missing key(s) in state_dict: ${quote(missing)}.`);
    if (unexpected.length > 0) lines.push(`  Unexpected key(s) in state_dict: ${quote(unexpected)}.`);
    for (const m of mismatches) {
      lines.push(
        `  size mismatch for ${m.key}: copying a param with shape ${formatShape(m.actual)} from checkpoint, ` +
          `the shape in current model is ${formatShape(m.expected)}.`,
      );
    }
    return lines.join("\n");
  }
}
