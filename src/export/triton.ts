// A Triton Inference Server model repository for the exported graph, for Triton's onnxruntime
// backend: <repo>/<name>/config.pbtxt and <repo>/<name>/1/model.onnx. Tensors whose only
// dimension is the batch are declared with dims [1] and reshape [] (Triton's way of saying "one
// value per request row" when max_batch_size > 0).
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
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
}

function tensorEntries(ports: ModelProto["graph"]["input"]): string {
  return ports
    .map((p) => {
      const dims = p.type.tensor_type.shape.dim.slice(1).map((d) => {
        if (d.dim_value === undefined) throw new RangeError(`triton: ${p.name} has a dynamic dimension besides the batch`);
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
  if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new RangeError(`triton: name must be letters, digits, '_', '.' or '-', got ${JSON.stringify(name)}`);
  const maxBatch = o.maxBatchSize ?? 256;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new RangeError(`triton: maxBatchSize must be a positive integer, got ${maxBatch}`);
  const delay = o.maxQueueDelayMicroseconds ?? 1000;
  for (const p of model.graph.input) {
    if (p.type.tensor_type.shape.dim[0]?.dim_param === undefined) throw new RangeError(`triton: input ${p.name} has no dynamic batch dimension`);
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
export async function writeTritonRepository(repo: string, model: ModelProto, o: TritonOptions = {}): Promise<{ config: string; model: string }> {
  const config = tritonConfig(model, o);
  const dir = join(repo, o.name ?? "badexpert");
  await mkdir(join(dir, "1"), { recursive: true });
  const onnxPath = join(dir, "1", "model.onnx");
  const configPath = join(dir, "config.pbtxt");
  await writeFile(`${onnxPath}.tmp-${process.pid}`, encodeModel(model));
  await rename(`${onnxPath}.tmp-${process.pid}`, onnxPath);
  await writeFile(configPath, config);
  return { config: configPath, model: onnxPath };
}
