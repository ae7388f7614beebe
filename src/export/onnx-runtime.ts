// The one door to onnxruntime (onnxruntime-node, an optional peer dependency): loading it, opening a
// session on an ONNX file, running it. Nothing else imports onnxruntime.
import { createRequire } from "node:module";
import { getNumThreads } from "../engine/index.js";
import type * as Ort from "onnxruntime-common";

export type OrtTensor = Ort.Tensor;
export type OrtSession = Ort.InferenceSession;

let runtime: typeof Ort | undefined;

/**
 * onnxruntime-node registers its CPU backend in the CommonJS build of the onnxruntime-common
 * that it depends on, so the API is taken from exactly that copy: through require() (an ESM
 * import would load a second instance, with no backend in it) and resolved from
 * onnxruntime-node's own location (a user's onnxruntime-node may bring another version).
 */
export function onnxRuntime(): typeof Ort {
  if (runtime !== undefined) return runtime;
  const require = createRequire(import.meta.url);
  let nodePackage: string;
  try {
    nodePackage = require.resolve("onnxruntime-node");
    require(nodePackage);
  } catch (e) {
    throw new Error(
      "onnxruntime engine: the optional package onnxruntime-node is not installed or does not load " +
        `(${(e as Error).message.split("\n")[0] ?? ""}); install it with ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@1.30.0, or use --engine libtorch`,
    );
  }
  const loaded: typeof Ort = createRequire(nodePackage)("onnxruntime-common");
  runtime = loaded;
  return loaded;
}

export interface SessionOptions {
  /** Threads for one operator; default: libtorch's thread count (BADEXPERT_THREADS or all cores). */
  threads?: number;
}

/** Opens an ONNX model (a file path or its bytes) with all graph optimisations on. */
export async function openSession(source: string | Uint8Array, o: SessionOptions = {}): Promise<OrtSession> {
  const ort = onnxRuntime();
  const threads = o.threads ?? getNumThreads();
  if (!Number.isInteger(threads) || threads < 1)
    throw new RangeError(`onnxruntime engine: threads must be a positive integer, got ${threads}`);
  const options: Ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  };
  return typeof source === "string"
    ? ort.InferenceSession.create(source, options)
    : ort.InferenceSession.create(source, options);
}

/** A float32 [dims] input tensor over `data` (not copied). */
export function floatTensor(data: Float32Array, dims: number[]): OrtTensor {
  return new (onnxRuntime().Tensor)("float32", data, dims);
}
