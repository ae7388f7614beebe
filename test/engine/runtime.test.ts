// Runtime settings: threads default to all cores and can be changed; version is reported.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { availableParallelism } from "node:os";
import {
  getNumThreads,
  randn,
  setBlasThreads,
  setNumThreads,
  libtorchVersion,
  memory,
  returnLargeBuffersToTheOs,
  tidy,
  zeros,
} from "../../src/engine/index.js";

test("threads default to all cores (or BADEXPERT_THREADS) and can be set", () => {
  const expected = process.env.BADEXPERT_THREADS ? Number(process.env.BADEXPERT_THREADS) : availableParallelism();
  assert.equal(getNumThreads(), expected);
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(expected);
  assert.throws(() => setNumThreads(0), /setNumThreads: expected a positive integer, got 0/);
});

test("libtorch version and memory counters are reported", () => {
  assert.match(libtorchVersion(), /^\d+\.\d+\.\d+/);
  const m = memory();
  // Each count must move with a tensor's life: one more while it lives, back after dispose().
  const t = zeros([2, 2]);
  assert.equal(memory().numTensors, m.numTensors + 1);
  assert.equal(memory().numHandles, m.numHandles + 1);
  t.dispose();
  assert.equal(memory().numTensors, m.numTensors);
  assert.equal(memory().numHandles, m.numHandles);
});

test("returnLargeBuffersToTheOs applies on glibc unless the user set MALLOC_MMAP_THRESHOLD_", () => {
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  const glibc = header?.glibcVersionRuntime !== undefined;
  assert.equal(returnLargeBuffersToTheOs(), glibc && process.env.MALLOC_MMAP_THRESHOLD_ === undefined);
});

test("setBlasThreads(1) keeps a large matrix product on the calling thread (Debian's OpenBLAS)", (t) => {
  assert.throws(() => setBlasThreads(0), /setBlasThreads: expected a positive integer, got 0/);
  if (!setBlasThreads(1)) {
    t.skip("the BLAS is not OpenBLAS here, or OPENBLAS_NUM_THREADS is set");
    return;
  }
  const threads = getNumThreads();
  setNumThreads(1);
  const cpuMs = (): Map<string, number> =>
    new Map(
      readdirSync("/proc/self/task").map((id) => {
        const f = readFileSync(`/proc/self/task/${id}/stat`, "utf8");
        const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
        return [id, (Number(rest[11]) + Number(rest[12])) * 10];
      }),
    );
  const self = readlinkSync("/proc/thread-self").split("/").at(-1) ?? "";
  const a = randn([768, 768]);
  const before = cpuMs();
  for (let i = 0; i < 20; i++) tidy(() => void a.matmul(a).sum().item());
  const after = cpuMs();
  a.dispose();
  setNumThreads(threads);
  let own = 0;
  let others = 0;
  for (const [id, ms] of after) {
    const used = ms - (before.get(id) ?? 0);
    if (id === self) own += used;
    else others += used;
  }
  // 20 products of 768x768 are about 18 GFLOP: far above the 10 ms tick on the calling thread.
  assert.ok(own >= 50, `the calling thread did the products (${own} ms)`);
  assert.ok(others <= own / 5, `other threads took ${others} ms against the caller's ${own} ms`);
});
