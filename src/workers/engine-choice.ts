// Starting the scoring workers on the engine the operator chose. "auto" tries onnxruntime first
// (the faster engine on CPUs, docs/performance.md "Service") and falls back to libtorch when
// onnxruntime-node is not installed or the detector does not export (an imported TorchScript
// model that uses an operator outside the exporter's set, docs/export.md): both engines score with
// the same weights and threshold, so the fallback changes speed, never verdicts beyond float
// rounding. The fallback is never silent: the server logs it at warning level and reports it in
// /v1/detector (serving.engineFallback) and the metrics (badexpert_engine_fallback). A detector
// that fails to load fails on either engine.
// A detector that does not export to ONNX (a baseline: its own procedure of superimpositions,
// corruptions, ...) runs on libtorch only: "auto" says so as its fallback reason, an explicit
// onnxruntime is refused before any worker starts.
import { detectorInfo } from "../detectors/registry.js";
import { WorkerPool } from "./pool.js";
import type { ScoringEngine, WorkerInit } from "./protocol.js";
import { BadExpertError } from "../util/errors.js";

/** The engine asked for: one of the two, or "auto" (onnxruntime where it can run the detector, else libtorch). */
export type EngineChoice = ScoringEngine | "auto";
export const ENGINE_CHOICES: readonly EngineChoice[] = ["auto", "onnxruntime", "libtorch"];

export interface ChosenPool {
  pool: WorkerPool;
  engine: ScoringEngine;
  /** Why "auto" fell back to libtorch; null when it did not. */
  fallback: string | null;
}

export async function startScoringPool(
  init: Omit<WorkerInit, "engine">,
  size: number,
  choice: EngineChoice,
): Promise<ChosenPool> {
  const s = init.source;
  if (s.kind === "bundle" && detectorInfo(s.detector).onnx !== true) {
    if (choice === "onnxruntime") {
      throw new BadExpertError(
        "E_USAGE",
        `serve: engine onnxruntime cannot score the ${s.detector} detector (${s.dir}): it scores with libtorch only (onnxruntime runs BaDExpert's exported graph); use --engine libtorch or auto`,
      );
    }
    const pool = await WorkerPool.start({ ...init, engine: "libtorch" }, size);
    return {
      pool,
      engine: "libtorch",
      fallback:
        choice === "auto"
          ? `the ${s.detector} detector scores with libtorch only (onnxruntime runs BaDExpert's exported graph)`
          : null,
    };
  }
  if (choice !== "auto")
    return { pool: await WorkerPool.start({ ...init, engine: choice }, size), engine: choice, fallback: null };
  let fallback: string;
  try {
    return {
      pool: await WorkerPool.start({ ...init, engine: "onnxruntime" }, size),
      engine: "onnxruntime",
      fallback: null,
    };
  } catch (e) {
    fallback = (e as Error).message;
  }
  return { pool: await WorkerPool.start({ ...init, engine: "libtorch" }, size), engine: "libtorch", fallback };
}
