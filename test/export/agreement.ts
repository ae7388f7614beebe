// Shared checks of the ONNX export tests: onnxruntime's scores agree with libtorch's, the file
// is structurally a valid opset-17 graph, and (where Debian's python3-onnx is installed)
// onnx.checker accepts it.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { BatchScores } from "../../src/defense/detector.js";
import { decodeModel, DataType, ONNX_OPSET } from "../../src/export/onnx-proto.js";

/** |x - y| <= rel * max(|x|, |y|), with a floor for values near zero. */
export function close(x: number, y: number, rel: number, floor = 1e-6): boolean {
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) && Number.isNaN(y);
  if (x === y) return true;
  return Math.abs(x - y) <= rel * Math.max(Math.abs(x), Math.abs(y), floor);
}

/** Same pred and flagged; confidences, the expert's complement and scores within 1e-4 relative. */
export function assertAgree(torch: BatchScores, onnx: BatchScores, what: string): void {
  assert.deepEqual(Array.from(onnx.pred), Array.from(torch.pred), `${what}: pred`);
  assert.deepEqual(Array.from(onnx.flagged), Array.from(torch.flagged), `${what}: flagged`);
  for (let i = 0; i < torch.pred.length; i++) {
    const [tb, ob] = [torch.expertConfidence[i] as number, onnx.expertConfidence[i] as number];
    const [ta, oa] = [torch.auxiliaryConfidence[i] as number, onnx.auxiliaryConfidence[i] as number];
    const [ts, os] = [torch.score[i] as number, onnx.score[i] as number];
    assert.ok(close(tb, ob, 1e-4), `${what}: expert confidence ${i}: libtorch ${tb}, onnxruntime ${ob}`);
    const [tc, oc] = [torch.expertComplement[i] as number, onnx.expertComplement[i] as number];
    assert.ok(close(tc, oc, 1e-4, 1e-30), `${what}: expert complement ${i}: libtorch ${tc}, onnxruntime ${oc}`);
    assert.ok(close(ta, oa, 1e-4), `${what}: auxiliary confidence ${i}: libtorch ${ta}, onnxruntime ${oa}`);
    assert.ok(close(ts, os, 1e-4), `${what}: score ${i}: libtorch ${ts}, onnxruntime ${os}`);
  }
}

/** A threshold halfway between two neighbouring scores, so that rounding cannot flip a verdict. */
export function splittingThreshold(scores: Float64Array): number {
  const sorted = Array.from(scores)
    .filter(Number.isFinite)
    .sort((p, q) => p - q);
  const mid = Math.floor(sorted.length / 2);
  return ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Opset 17 and IR 8; declared inputs and outputs; every node reads only values defined before
 * it (graph input, initializer or an earlier node's output) and every output name is new.
 */
export function assertWellFormed(
  bytes: Uint8Array,
  expect: { inputDims: (number | string)[]; outputs: [string, number][] },
): void {
  const m = decodeModel(bytes);
  assert.equal(m.ir_version, 8);
  assert.deepEqual(m.opset_import, [{ domain: "", version: ONNX_OPSET }]);
  const g = m.graph;
  assert.equal(g.input.length, 1);
  const input = g.input[0];
  assert.equal(input?.name, "images");
  assert.equal(input?.type.tensor_type.elem_type, DataType.FLOAT);
  assert.deepEqual(
    input?.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value),
    expect.inputDims,
  );
  assert.deepEqual(
    g.output.map((o) => [o.name, o.type.tensor_type.elem_type]),
    expect.outputs,
  );
  for (const o of g.output)
    assert.equal(o.type.tensor_type.shape.dim[0]?.dim_param, "batch", `${o.name}: dynamic batch`);
  const defined = new Set<string>([...g.input.map((i) => i.name), ...g.initializer.map((t) => t.name)]);
  assert.equal(defined.size, g.input.length + g.initializer.length, "initializer names are unique");
  for (const t of g.initializer) {
    const elements = t.dims.reduce((p, q) => p * q, 1);
    const width = t.data_type === DataType.DOUBLE || t.data_type === DataType.INT64 ? 8 : 4;
    assert.equal(t.raw_data.length, elements * width, `${t.name}: raw_data holds ${elements} elements`);
  }
  for (const n of g.node) {
    for (const i of n.input) assert.ok(defined.has(i), `node ${n.name} (${n.op_type}) reads ${i} before it is defined`);
    for (const o of n.output) {
      assert.ok(!defined.has(o), `node ${n.name} redefines ${o}`);
      defined.add(o);
    }
  }
  for (const o of g.output) assert.ok(defined.has(o.name), `output ${o.name} is computed`);
}

let checkerPython: string | null | undefined;

/** Debian's python3 first: python3-onnx installs there, and another python3 may come first on PATH. */
function pythonWithOnnx(): string | null {
  checkerPython ??=
    ["/usr/bin/python3", "python3"].find((py) => {
      try {
        execFileSync(py, ["-c", "import onnx.checker"], { stdio: "ignore" });
        return true;
      } catch {
        return false;
      }
    }) ?? null;
  return checkerPython;
}

/** Why onnx.checker cannot run here, or null when it can. */
export function onnxCheckerMissing(): string | null {
  return pythonWithOnnx() === null
    ? "python3 with the onnx module is not installed (optional: apt-get install python3-onnx)"
    : null;
}

/** Runs onnx.checker (full check, with shape inference) on the bytes; throws its message on failure. */
export async function runOnnxChecker(bytes: Uint8Array, dir: string): Promise<void> {
  const file = join(dir, "checked.onnx");
  await writeFile(file, bytes);
  const py = pythonWithOnnx();
  if (py === null) throw new Error(`onnx.checker: ${onnxCheckerMissing()}`);
  execFileSync(
    py,
    ["-c", "import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)", file],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
}
