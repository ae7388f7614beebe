// The dynamic batcher against an executor double that records the batches it gets and answers
// when told: batching up to maxBatch, the max-wait rule, request order, back-pressure, timeouts,
// failures and non-finite scores (never reported clean). No tensors are made here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Batcher, type Executor } from "../../src/serve/batcher.js";
import { ServeError } from "../../src/serve/errors.js";
import type { BatchResult } from "../../src/workers/protocol.js";

/** One "worker" per slot; an image's score is its first byte (so mix-ups show). */
class FakeExecutor implements Executor {
  batches: number[][] = [];
  pending: { pixels: Uint8Array; count: number; resolve: (r: BatchResult) => void; reject: (e: Error) => void }[] = [];
  constructor(public slots: number) {}
  idle(): number {
    return this.slots - this.pending.length;
  }
  run(count: number, pixels: Uint8Array): Promise<BatchResult> {
    const per = pixels.length / count;
    this.batches.push(Array.from({ length: count }, (_, k) => pixels[k * per] as number));
    return new Promise((resolve, reject) => this.pending.push({ pixels, count, resolve, reject }));
  }
  answer(scoreOf: (v: number) => number = (v) => v): void {
    const p = this.pending.shift();
    if (!p) throw new Error("nothing pending");
    const per = p.pixels.length / p.count;
    const vals = Array.from({ length: p.count }, (_, k) => p.pixels[k * per] as number);
    p.resolve({
      pred: Int32Array.from(vals.map((v) => v % 10)),
      expertConfidence: Float32Array.from(vals.map(() => 0.5)),
      auxiliaryConfidence: Float32Array.from(vals.map(() => 0.25)),
      score: Float64Array.from(vals.map(scoreOf)),
      flagged: Uint8Array.from(vals.map((v) => (scoreOf(v) > 100 ? 1 : 0))),
      detector: "test-double",
      threshold: 100,
      forwardMs: 1,
      liveTensors: 0,
    });
  }
}

const img = (v: number): Uint8Array => Uint8Array.from([v, 0, 0, 0]);
const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
const opts = { maxBatch: 4, maxWaitMs: 20, maxQueue: 10, timeoutMs: 5000 };

test("concurrent requests are batched up to maxBatch and each gets its own results in order", async () => {
  const ex = new FakeExecutor(1);
  // maxWait is wall-clock time: a generous one, so that a descheduled test process (a loaded
  // machine) cannot make the first request's inputs look old enough to go alone.
  const b = new Batcher(ex, { ...opts, maxWaitMs: 300 });
  const r1 = b.submit([img(1), img(2)]);
  const r2 = b.submit([img(3), img(4), img(5)]);
  await tick();
  // Full batch of 4 goes at once; the fifth waits for the worker.
  assert.deepEqual(ex.batches, [[1, 2, 3, 4]]);
  ex.answer();
  // The fifth is a partial batch: it goes once it has waited maxWaitMs (300 ms).
  await tick(600);
  assert.equal(b.queueDepth, 0);
  assert.deepEqual(ex.batches[1], [5]);
  ex.answer();
  assert.deepEqual(
    (await r1).map((r) => r.score),
    [1, 2],
  );
  assert.deepEqual(
    (await r2).map((r) => r.score),
    [3, 4, 5],
  );
  assert.deepEqual(
    (await r2).map((r) => r.pred),
    [3, 4, 5],
  );
  assert.deepEqual(
    (await r2).map((r) => r.detector),
    ["test-double", "test-double", "test-double"],
    "each result names the detector that scored its batch",
  );
});

test("a partial batch waits up to maxWaitMs for companions, then goes", async () => {
  const ex = new FakeExecutor(1);
  const b = new Batcher(ex, { ...opts, maxWaitMs: 300 });
  const r1 = b.submit([img(7)]);
  await tick(5);
  assert.equal(ex.batches.length, 0, "not sent before maxWaitMs");
  const r2 = b.submit([img(8)]);
  await tick(600);
  assert.deepEqual(ex.batches, [[7, 8]]);
  ex.answer();
  assert.equal((await r1)[0]?.score, 7);
  assert.equal((await r2)[0]?.score, 8);
});

test("maxBatch 1 scores every input alone", async () => {
  const ex = new FakeExecutor(2);
  const b = new Batcher(ex, { ...opts, maxBatch: 1, maxWaitMs: 0 });
  const r = b.submit([img(1), img(2), img(3)]);
  await tick();
  assert.deepEqual(ex.batches, [[1], [2]]);
  ex.answer();
  ex.answer();
  await tick();
  ex.answer();
  assert.deepEqual(
    (await r).map((x) => x.score),
    [1, 2, 3],
  );
});

test("a full queue refuses the whole request with 503 and Retry-After", async () => {
  const ex = new FakeExecutor(0);
  const b = new Batcher(ex, { ...opts, timeoutMs: 100_000 });
  const held = b.submit(Array.from({ length: 8 }, (_, i) => img(i)));
  await assert.rejects(b.submit([img(1), img(2), img(3)]), (e: unknown) => {
    assert.ok(e instanceof ServeError);
    assert.equal(e.statusCode, 503);
    assert.equal(e.code, "E_BUSY");
    assert.equal(e.reason, "queue_full");
    assert.equal(e.headers["retry-after"], "1");
    assert.match(e.message, /8 inputs waiting, this request adds 3, the limit is 10/);
    return true;
  });
  assert.equal(b.queueDepth, 8, "nothing of the refused request was queued");
  ex.slots = 4;
  b.pump();
  ex.answer();
  await tick();
  ex.answer();
  assert.equal((await held).length, 8);
});

test("a request not scored in time gets 504 and its queued inputs leave the queue", async () => {
  const ex = new FakeExecutor(0);
  const b = new Batcher(ex, { ...opts, timeoutMs: 30 });
  await assert.rejects(b.submit([img(1), img(2)]), (e: unknown) => {
    assert.ok(e instanceof ServeError);
    assert.equal(e.statusCode, 504);
    assert.match(
      e.message,
      /not scored within 30 ms .*2 of its inputs were still queued.*must not be treated as clean/,
    );
    return true;
  });
  assert.equal(b.queueDepth, 0);
});

test("a failed batch answers its requests with 503; a non-finite score is flagged, never clean", async () => {
  const ex = new FakeExecutor(1);
  const b = new Batcher(ex, { ...opts, maxWaitMs: 0 });
  const r1 = b.submit([img(1)]);
  await tick();
  ex.pending.shift()?.reject(new Error("scoring worker crashed: boom"));
  await assert.rejects(
    r1,
    (e: unknown) =>
      e instanceof ServeError && e.statusCode === 503 && /boom; the input was not checked/.test(e.message),
  );
  const r2 = b.submit([img(2), img(3)]);
  await tick();
  ex.answer((v) => (v === 2 ? Number.NaN : 5));
  const [nan, fine] = await r2;
  assert.equal(nan?.score, null);
  assert.equal(nan?.flagged, true);
  assert.match(nan?.reason ?? "", /not a finite number \(NaN\)/);
  assert.equal(fine?.flagged, false);
  assert.equal(fine?.score, 5);
});

test("drain dispatches what is queued without waiting, and still scores what requests already received submit", async () => {
  const ex = new FakeExecutor(1);
  const b = new Batcher(ex, { ...opts, maxWaitMs: 10_000 });
  const r = b.submit([img(4)]);
  await tick();
  assert.equal(ex.batches.length, 0);
  const drained = b.drain();
  assert.deepEqual(ex.batches, [[4]]);
  // A request the server took before the drain began may reach the batcher after it (decoding): scored, not refused.
  const late = b.submit([img(5)]);
  ex.answer();
  await tick();
  assert.deepEqual(ex.batches[1], [5], "the late input went at once, without waiting for companions");
  ex.answer();
  await drained;
  assert.equal((await r)[0]?.score, 4);
  assert.equal((await late)[0]?.score, 5);
});

test("abort (end of the grace period) answers queued and running requests 503 and refuses later ones", async () => {
  const ex = new FakeExecutor(1);
  const b = new Batcher(ex, { ...opts, maxBatch: 1, maxWaitMs: 0 });
  const running = b.submit([img(1)]);
  const queued = b.submit([img(2)]);
  await tick();
  assert.deepEqual(ex.batches, [[1]]);
  assert.equal(b.queueDepth, 1);
  const drained = b.drain();
  const refused = (e: unknown): boolean =>
    e instanceof ServeError &&
    e.reason === "shutting_down" &&
    e.code === "E_BUSY" &&
    e.statusCode === 503 &&
    /grace/.test(e.message);
  b.abort(() => new ServeError("E_BUSY", "shutting_down", "grace period over"));
  await assert.rejects(running, refused);
  await assert.rejects(queued, refused);
  assert.equal(b.queueDepth, 0);
  await assert.rejects(b.submit([img(3)]), refused);
  // The running batch's result, when it comes, is dropped; then the batcher is idle.
  ex.answer();
  await drained;
  assert.deepEqual(ex.batches, [[1]], "the queued input was never dispatched");
});
