// The worker thread of a job run off the caller's thread (job-thread.ts): runs the job named in
// workerData and posts its log lines, then its result or its error.
import { parentPort, workerData } from "node:worker_threads";
import { defendCheckpoint, type DefendOptions } from "../jobs/defend.js";
import { evaluateBundle, type EvaluateBundleOptions } from "../jobs/evaluate-defense.js";
import { OptionError } from "../jobs/errors.js";

export type JobName = "defend" | "evaluate";

export type JobMessage =
  | { type: "log"; line: string }
  | { type: "done"; result: unknown }
  | { type: "failed"; name: string; message: string; option?: string; stack?: string };

function post(m: JobMessage): void {
  parentPort?.postMessage(m);
}

async function main(): Promise<void> {
  const { job, options, forwardLog } = workerData as { job: JobName; options: object; forwardLog: boolean };
  const log = forwardLog ? (line: string) => post({ type: "log", line }) : undefined;
  try {
    const result =
      job === "defend"
        ? await defendCheckpoint({ ...(options as DefendOptions), ...(log ? { log } : {}) })
        : await evaluateBundle(options as EvaluateBundleOptions);
    post({ type: "done", result });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    post({
      type: "failed",
      name: err.name,
      message: err.message,
      ...(err instanceof OptionError ? { option: err.option } : {}),
      ...(err.stack !== undefined ? { stack: err.stack } : {}),
    });
  }
}

void main();
