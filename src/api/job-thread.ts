// Runs a whole job (defend, evaluate) on a worker thread of its own, so the library's caller keeps
// its event loop: fitting finetunes for minutes and evaluation scores thousands of images, all in
// forward passes that would otherwise hold the caller's thread. The job's log lines come back as
// messages; its result or error is handed back as the job gave it (an OptionError keeps its option).
import { Worker } from "node:worker_threads";
import { OptionError } from "../jobs/errors.js";
import type { JobName, JobMessage } from "./job-worker.js";

const JOB_WORKER = new URL("./job-worker.js", import.meta.url);

/** The job's error, rebuilt on this thread with its class (OptionError, TypeError, RangeError, Error), message and option. */
function rebuild(m: Extract<JobMessage, { type: "failed" }>): Error {
  const Ctor = m.name === "TypeError" ? TypeError : m.name === "RangeError" ? RangeError : Error;
  const e = m.option !== undefined ? new OptionError(m.option, "") : new Ctor("");
  e.message = m.message;
  if (m.option === undefined && m.name !== e.name) e.name = m.name;
  if (m.stack !== undefined)
    e.stack = `${e.name}: ${m.message}\n    (on the job's worker thread)\n${m.stack.split("\n").slice(1).join("\n")}`;
  return e;
}

/** Runs `job` with `options` (functions left out: `log` is forwarded) on its own worker thread. */
export function runJobThread<R>(job: JobName, options: object, log: ((line: string) => void) | undefined): Promise<R> {
  // Functions cannot cross to the worker: the log is forwarded by message instead.
  const data = Object.fromEntries(Object.entries(options).filter(([k]) => k !== "log"));
  return new Promise<R>((resolve, reject) => {
    let settled = false;
    const w = new Worker(JOB_WORKER, { workerData: { job, options: data, forwardLog: log !== undefined } });
    w.on("message", (m: JobMessage) => {
      if (m.type === "log") log?.(m.line);
      else if (m.type === "done") {
        settled = true;
        resolve(m.result as R);
      } else {
        settled = true;
        reject(rebuild(m));
      }
    });
    w.on("error", (e) => {
      settled = true;
      reject(e);
    });
    w.on("exit", (code) => {
      if (!settled) reject(new Error(`the ${job} job's worker thread exited (code ${code}) without a result`));
    });
  });
}
