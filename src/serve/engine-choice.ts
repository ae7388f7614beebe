// Starting the scoring workers on the engine the operator chose. "auto" tries onnxruntime first
// (the faster engine on CPUs, docs/performance.md "Service") and falls back to libtorch when
// onnxruntime-node is not installed or the detector does not export (an imported TorchScript
// model that uses an operator outside the exporter's set, docs/export.md): both engines score with
// the same weights and threshold, so the fallback changes speed, never verdicts beyond float
// rounding. The fallback is never silent: the server logs it at warning level and reports it in
// /v1/detector (serving.engineFallback) and the metrics (badexpert_engine_fallback). A detector
// that fails to load fails on either engine.
// A baseline detector bundle runs on libtorch only: "auto" says so as its fallback reason, an
// explicit onnxruntime is refused before any worker starts.
import type { EngineChoice } from "./options.js";
import { WorkerPool } from "./pool.js";
import type { ScoringEngine, WorkerInit } from "./protocol.js";
import { BadExpertError } from "../util/errors.js";

export interface ChosenPool {
  pool: WorkerPool;
  engine: ScoringEngine;
  /** Why "auto" fell back to libtorch; null when it did not. */
  fallback: string | null;
}

export async function startScoringPool(init: Omit<WorkerInit, "engine">, size: number, choice: EngineChoice): Promise<ChosenPool> {
  const s = init.source;
  if (s.kind === "baseline") {
    // Only BaDExpert exports to ONNX: a baseline runs its own procedure (superimpositions, corruptions, ...) on libtorch.
    if (choice === "onnxruntime") {
      throw new BadExpertError("E_USAGE", `serve: engine onnxruntime cannot score the baseline detector '${s.detector}' (${s.dir}): baselines score with libtorch only; use --engine libtorch or auto`);
    }
    const pool = await WorkerPool.start({ ...init, engine: "libtorch" }, size);
    return { pool, engine: "libtorch", fallback: choice === "auto" ? `the baseline detector '${s.detector}' scores with libtorch only (onnxruntime runs BaDExpert's exported graph)` : null };
  }
  if (choice !== "auto") return { pool: await WorkerPool.start({ ...init, engine: choice }, size), engine: choice, fallback: null };
  let fallback: string;
  try {
    return { pool: await WorkerPool.start({ ...init, engine: "onnxruntime" }, size), engine: "onnxruntime", fallback: null };
  } catch (e) {
    fallback = (e as Error).message;
  }
  return { pool: await WorkerPool.start({ ...init, engine: "libtorch" }, size), engine: "libtorch", fallback };
}
