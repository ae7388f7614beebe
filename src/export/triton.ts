// A Triton Inference Server model repository for the exported graph, for Triton's onnxruntime
// backend: <repo>/<name>/config.pbtxt and <repo>/<name>/1/model.onnx. Tensors whose only
// dimension is the batch are declared with dims [1] and reshape [] (Triton's way of saying "one
// value per request row" when max_batch_size > 0). The model's directory is written whole (and
// holds badexpert-output.json, which Triton ignores), so it can be replaced later, and only when
// badexpert wrote it: the repository's other models are never touched.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  OUTPUT_MANIFEST,
  assertWritableDir,
  outputDirKind,
  outputManifest,
  writeDirAtomically,
  type WritableDirOptions,
} from "../util/atomic-dir.js";
import { DataType, type DataTypeCode, type ModelProto, encodeModel } from "./onnx-proto.js";

const TRITON_TYPES: Record<DataTypeCode, string> = {
  [DataType.FLOAT]: "TYPE_FP32",
  [DataType.UINT8]: "TYPE_UINT8",
  [DataType.INT32]: "TYPE_INT32",
  [DataType.INT64]: "TYPE_INT64",
  [DataType.BOOL]: "TYPE_BOOL",
  [DataType.DOUBLE]: "TYPE_FP64",
};

export interface TritonOptions {
  /** Model name in the repository (and in request URLs). Default "badexpert". */
  name?: string;
  /** Largest batch Triton forms or accepts. Default 256. */
  maxBatchSize?: number;
  /** How long Triton may hold a request to batch it with others, in microseconds. Default 1000. */
  maxQueueDelayMicroseconds?: number;
  /** Replace the model's directory when badexpert wrote it (anything else is refused). */
  replace?: boolean;
  /** How the user allows replacing, for the refusal message (e.g. "--force"). */
  forceHint?: string;
}

/** A model's directory in a Triton repository as writeTritonRepository writes it. */
export const TRITON_MODEL_DIR = outputDirKind("triton-model", "badexpert Triton model directory", {
  files: ["config.pbtxt"],
  dirs: { "1": { files: ["model.onnx"] } },
});

function modelDirOptions(o: TritonOptions): WritableDirOptions {
  return { kinds: [TRITON_MODEL_DIR], replace: o.replace === true, ...(o.forceHint ? { forceHint: o.forceHint } : {}) };
}

/** Throws unless writeTritonRepository could write the model's directory; call it before exporting. */
export async function assertTritonWritable(repo: string, o: TritonOptions = {}): Promise<void> {
  await assertWritableDir(join(repo, o.name ?? "badexpert"), modelDirOptions(o));
}

function tensorEntries(ports: ModelProto["graph"]["input"]): string {
  return ports
    .map((p) => {
      const dims = p.type.tensor_type.shape.dim.slice(1).map((d) => {
        if (d.dim_value === undefined)
          throw new RangeError(`triton: ${p.name} has a dynamic dimension besides the batch`);
        return d.dim_value;
      });
      const shape = dims.length === 0 ? "dims: [ 1 ]\n    reshape: { shape: [ ] }" : `dims: [ ${dims.join(", ")} ]`;
      return `  {\n    name: "${p.name}"\n    data_type: ${TRITON_TYPES[p.type.tensor_type.elem_type]}\n    ${shape}\n  }`;
    })
    .join(",\n");
}

/** config.pbtxt for the graph (inputs and outputs read from the graph itself). */
export function tritonConfig(model: ModelProto, o: TritonOptions = {}): string {
  const name = o.name ?? "badexpert";
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    throw new RangeError(`triton: name must be letters, digits, '_', '.' or '-', got ${JSON.stringify(name)}`);
  const maxBatch = o.maxBatchSize ?? 256;
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    throw new RangeError(`triton: maxBatchSize must be a positive integer, got ${maxBatch}`);
  const delay = o.maxQueueDelayMicroseconds ?? 1000;
  for (const p of model.graph.input) {
    if (p.type.tensor_type.shape.dim[0]?.dim_param === undefined)
      throw new RangeError(`triton: input ${p.name} has no dynamic batch dimension`);
  }
  return [
    `name: "${name}"`,
    `platform: "onnxruntime_onnx"`,
    `max_batch_size: ${maxBatch}`,
    `input [\n${tensorEntries(model.graph.input)}\n]`,
    `output [\n${tensorEntries(model.graph.output)}\n]`,
    `dynamic_batching {\n  max_queue_delay_microseconds: ${delay}\n}`,
    "",
  ].join("\n");
}

/** Writes the repository entry; returns the paths written. */
export async function writeTritonRepository(
  repo: string,
  model: ModelProto,
  o: TritonOptions = {},
): Promise<{ config: string; model: string }> {
  const config = tritonConfig(model, o);
  const dir = join(repo, o.name ?? "badexpert");
  await mkdir(repo, { recursive: true });
  await writeDirAtomically(
    dir,
    async (tmp) => {
      await mkdir(join(tmp, "1"));
      await writeFile(join(tmp, "1", "model.onnx"), encodeModel(model));
      await writeFile(join(tmp, "config.pbtxt"), config);
      await writeFile(join(tmp, OUTPUT_MANIFEST), outputManifest("triton-model"));
    },
    modelDirOptions(o),
  );
  return { config: join(dir, "config.pbtxt"), model: join(dir, "1", "model.onnx") };
}
