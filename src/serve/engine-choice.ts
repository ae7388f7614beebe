// Starting the scoring workers on the engine the operator chose. "auto" tries onnxruntime first
// (the faster engine on CPUs, BENCHMARKS.md "Service") and falls back to libtorch when
// onnxruntime-node is not installed or the detector does not export (a TorchScript-imported
// model): both engines score with the same weights and threshold, so the fallback changes speed,
// never verdicts beyond float rounding. A detector that fails to load fails on either engine.
import type { EngineChoice } from "./options.js";
import { WorkerPool } from "./pool.js";
import type { ScoringEngine, WorkerInit } from "./protocol.js";

export interface ChosenPool {
  pool: WorkerPool;
  engine: ScoringEngine;
  /** Why "auto" fell back to libtorch; null when it did not. */
  fallback: string | null;
}

export async function startScoringPool(init: Omit<WorkerInit, "engine">, size: number, choice: EngineChoice): Promise<ChosenPool> {
  if (choice !== "auto") return { pool: await WorkerPool.start({ ...init, engine: choice }, size), engine: choice, fallback: null };
  let fallback: string;
  try {
    return { pool: await WorkerPool.start({ ...init, engine: "onnxruntime" }, size), engine: "onnxruntime", fallback: null };
  } catch (e) {
    fallback = (e as Error).message;
  }
  return { pool: await WorkerPool.start({ ...init, engine: "libtorch" }, size), engine: "libtorch", fallback };
}
