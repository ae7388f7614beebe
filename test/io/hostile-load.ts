// Child process of the hostile-file tests: reads one weights file with readStateDictFile and
// prints one JSON line: accepted (tensor names and shapes) or refused (error class, message),
// with the time taken and how far the peak RSS grew while reading. Run apart from the test
// runner, with a heap cap and a timeout, so that a reader that loops, aborts or runs out of
// memory fails its test instead of taking the runner down.
//   node --max-old-space-size=256 dist/test/io/hostile-load.js JOBS_JSON
import { readFile } from "node:fs/promises";
import { readStateDictFile } from "../../src/io/state-dict-file.js";

export interface HostileResult {
  ok: boolean;
  tensors?: { name: string; shape: number[]; values?: number[] }[];
  errorName?: string;
  message?: string;
  ms: number;
  /** Growth of the process's peak RSS during the read, in MiB. */
  peakGrowthMiB: number;
}

// One result line per job, in order; each job's peak growth is measured from the high-water
// mark the jobs before it left.
const [jobsFile] = process.argv.slice(2);
if (jobsFile === undefined) {
  console.error("usage: hostile-load.js JOBS_JSON (a list of {file, limits?})");
  process.exit(2);
}
const jobs = JSON.parse(await readFile(jobsFile, "utf8")) as { file: string; limits?: object }[];
for (const { file, limits } of jobs) {
  const peakBefore = process.resourceUsage().maxRSS;
  const t0 = performance.now();
  let result: Omit<HostileResult, "ms" | "peakGrowthMiB">;
  try {
    const f = await readStateDictFile(file, limits ?? {});
    result = {
      ok: true,
      tensors: [...f.tensors].map(([name, t]) => ({
        name,
        shape: t.shape,
        values: t.size <= 64 ? t.toArray() : undefined,
      })),
    };
    for (const t of f.tensors.values()) t.dispose();
  } catch (e) {
    result = {
      ok: false,
      errorName: e instanceof Error ? e.constructor.name : typeof e,
      message: e instanceof Error ? e.message : String(e),
    };
  }
  const out: HostileResult = {
    ...result,
    ms: performance.now() - t0,
    peakGrowthMiB: (process.resourceUsage().maxRSS - peakBefore) / 1024,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
