// The library never holds the caller's thread for more than one batch of forward passes: by
// default they run on a scoring worker, and with { thread: "caller" } the detector yields to the
// event loop after every batch. Counted with a setImmediate loop (deterministic, unlike timer lag):
// callbacks of the check phase run only when the thread returns to the event loop, so a detector
// that scored three batches back to back would let none run in between.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";
import { Detector, type DecodedImage } from "../../src/index.js";
import { loadDataset } from "../../src/data/registry.js";
import { fixtureBundle } from "../serve/fixture.js";

/** Three batches of 256 decoded 28x28 images. */
async function images(): Promise<DecodedImage[]> {
  const ds = await loadDataset("fashion-mnist", { split: "test" });
  return Array.from({ length: 3 * 256 }, (_, i) => ({ pixels: ds.images.subarray(i * 784, (i + 1) * 784) }));
}

/** Scores `inputs` while counting event-loop turns (setImmediate callbacks); how many ran, and the records. */
async function countTurns(det: Detector, inputs: DecodedImage[]): Promise<{ turns: number; flagged: number }> {
  let turns = 0;
  let handle: NodeJS.Immediate | null = null;
  const spin = (): void => {
    turns++;
    handle = setImmediate(spin);
  };
  handle = setImmediate(spin);
  try {
    const r = await det.score(inputs);
    assert.equal(r.length, inputs.length);
    return { turns, flagged: r.filter((x) => x.flagged).length };
  } finally {
    if (handle) clearImmediate(handle);
  }
}

test("scoring three batches gives the event loop a turn after each batch, on a worker or on the caller's thread", async () => {
  const before = memory().numTensors;
  const bundle = await fixtureBundle();
  const inputs = await images();
  const onWorker = await Detector.load(bundle, { onWarning: () => undefined });
  const onCaller = await Detector.load(bundle, { onWarning: () => undefined, thread: "caller" });
  try {
    const w = await countTurns(onWorker, inputs);
    const c = await countTurns(onCaller, inputs);
    // Off-thread: the loop keeps turning while the worker computes.
    assert.ok(w.turns >= 3, `worker: ${w.turns} event-loop turns while 3 batches were scored`);
    // On the caller's thread: at least one turn per batch.
    assert.ok(c.turns >= 3, `caller: ${c.turns} event-loop turns while 3 batches were scored`);
    // The same detector, the same verdicts either way.
    assert.equal(w.flagged, c.flagged);
  } finally {
    await onWorker.dispose();
    await onCaller.dispose();
  }
  assert.equal(memory().numTensors, before);
});
