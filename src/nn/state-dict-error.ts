// The one error loadStateDict() throws: every problem with a checkpoint at once, so that a
// user fixing a key-renaming script sees the whole picture instead of one key per run.
import { formatShape } from "../engine/index.js";
import { printable } from "../util/printable.js";
import { BadExpertError } from "../util/errors.js";

// A hostile file can hold a million keys; the message lists this many of each kind.
const SHOWN = 500;

export interface ShapeMismatch {
  key: string;
  /** The shape of the module's own tensor. */
  expected: number[];
  /** The shape found in the state dict. */
  actual: number[];
}

/** E_MODEL_FORMAT: the weights do not fit the model. */
export class StateDictError extends BadExpertError {
  override readonly name = "StateDictError";

  constructor(
    readonly moduleName: string,
    readonly missingKeys: readonly string[],
    readonly unexpectedKeys: readonly string[],
    readonly shapeMismatches: readonly ShapeMismatch[],
  ) {
    super("E_MODEL_FORMAT", StateDictError.describe(moduleName, missingKeys, unexpectedKeys, shapeMismatches));
  }

  private static describe(
    moduleName: string,
    missing: readonly string[],
    unexpected: readonly string[],
    mismatches: readonly ShapeMismatch[],
  ): string {
    // Keys come from files: escaped so a name with a newline or terminal escape cannot forge output.
    const quote = (keys: readonly string[]): string =>
      keys
        .slice(0, SHOWN)
        .map((k) => printable(k))
        .join(", ") + (keys.length > SHOWN ? ` and ${keys.length - SHOWN} more` : "");
    const lines = [`Error(s) in loading state_dict for ${moduleName}:`];
    if (missing.length > 0) lines.push(`  Missing key(s) in state_dict: ${quote(missing)}.`);
    if (unexpected.length > 0) lines.push(`  Unexpected key(s) in state_dict: ${quote(unexpected)}.`);
    for (const m of mismatches.slice(0, SHOWN)) {
      lines.push(
        `  size mismatch for ${/^[\w.]+$/.test(m.key) ? m.key : printable(m.key)}: copying a param with shape ${formatShape(m.actual)} from checkpoint, ` +
          `the shape in current model is ${formatShape(m.expected)}.`,
      );
    }
    if (mismatches.length > SHOWN) lines.push(`  and ${mismatches.length - SHOWN} more size mismatches.`);
    return lines.join("\n");
  }
}
