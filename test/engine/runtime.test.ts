// Runtime settings: threads default to all cores and can be changed; version is reported.
import { test } from "node:test";
import assert from "node:assert/strict";
import { availableParallelism } from "node:os";
import { getNumThreads, setNumThreads, libtorchVersion, memory, returnLargeBuffersToTheOs, zeros } from "../../src/engine/index.js";

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
