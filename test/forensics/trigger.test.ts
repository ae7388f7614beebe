// The trigger estimate on synthetic flagged inputs: a bright 3x3 patch that every map points at
// gives its exact box, the target class and a positive pattern there; maps spread over the image
// give no box. Also the region helpers behind the benchmark's measures.
import { test } from "node:test";
import assert from "node:assert/strict";
import { triggerEstimate } from "../../src/forensics/trigger.js";
import { boxesIoU, dilate, maskBoxes, topShareInMask } from "../../src/forensics/regions.js";
import { Rng } from "../../src/util/rng.js";

const H = 28;
const W = 28;
const PATCH = { top: 20, left: 22, side: 3 };

function inPatch(p: number): boolean {
  const r = Math.floor(p / W);
  const c = p % W;
  return r >= PATCH.top && r < PATCH.top + PATCH.side && c >= PATCH.left && c < PATCH.left + PATCH.side;
}

function synthetic(
  n: number,
  focused: boolean,
  patch = focused,
): { images: Float32Array; maps: Float32Array; preds: Int32Array; cleanMean: Float32Array } {
  const rng = new Rng(7);
  const images = new Float32Array(n * H * W);
  const maps = new Float32Array(n * H * W);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < H * W; p++) {
      images[i * H * W + p] = patch && inPatch(p) ? 1 : 0.4 * rng.next();
      maps[i * H * W + p] = focused ? (inPatch(p) ? 0.8 + 0.2 * rng.next() : 0.3 * rng.next()) : rng.next();
    }
  }
  // 9 of 10 pushed to class 4.
  const preds = Int32Array.from({ length: n }, (_, i) => (i % 10 === 9 ? 2 : 4));
  return { images, maps, preds, cleanMean: new Float32Array(H * W).fill(0.2) };
}

test("a patch every map points at: its exact box, the target class, a positive pattern there", () => {
  const s = synthetic(40, true);
  const e = triggerEstimate({ ...s, channels: 1, height: H, width: W, numClasses: 10 });
  assert.equal(e.count, 40);
  assert.equal(e.target, 4);
  assert.equal(e.targetShare, 36 / 40);
  assert.equal(e.targetCounts[2], 4);
  assert.equal(e.compact, true);
  assert.deepEqual(e.boxes, [
    { top: PATCH.top, left: PATCH.left, bottom: PATCH.top + PATCH.side, right: PATCH.left + PATCH.side },
  ]);
  const mask = Float32Array.from({ length: H * W }, (_, p) => (inPatch(p) ? 1 : 0));
  assert.equal(boxesIoU(e.boxes, maskBoxes(mask, H, W), H, W), 1);
  // The pattern is brighter than the clean mean on the patch, near zero where B does not look.
  for (let p = 0; p < H * W; p++)
    if (inPatch(p)) assert.ok((e.pattern[p] as number) > 0.5, `pattern at ${p}: ${e.pattern[p]}`);
  assert.ok(Math.abs(Math.max(...Array.from(e.meanMap)) - 1) < 1e-6, "mean map normalised to 1");
});

test("maps spread over the whole image: not compact, no box", () => {
  const s = synthetic(40, false);
  const e = triggerEstimate({ ...s, channels: 1, height: H, width: W, numClasses: 10 }, { threshold: 0.3 });
  assert.equal(e.compact, false);
  assert.deepEqual(e.boxes, []);
});

test("no inputs, and inconsistent sizes", () => {
  const e = triggerEstimate({
    images: new Float32Array(0),
    maps: new Float32Array(0),
    preds: new Int32Array(0),
    channels: 1,
    height: H,
    width: W,
    numClasses: 10,
  });
  assert.equal(e.target, -1);
  assert.equal(e.compact, false);
  assert.throws(
    () =>
      triggerEstimate({
        images: new Float32Array(5),
        maps: new Float32Array(H * W),
        preds: Int32Array.of(0),
        channels: 1,
        height: H,
        width: W,
        numClasses: 10,
      }),
    /images hold 5 values, expected 1 x 1 x 28 x 28 = 784/,
  );
  assert.throws(
    () =>
      triggerEstimate({ ...synthetic(2, true), channels: 1, height: H, width: W, numClasses: 10 }, { threshold: 2 }),
    /threshold must be in \(0, 1\], got 2/,
  );
});

test("region measures: dilation, top-share, boxes of a two-patch mask, IoU", () => {
  const mask = new Float32Array(H * W);
  mask[0] = 1;
  mask[H * W - 1] = 1;
  assert.deepEqual(maskBoxes(mask, H, W), [
    { top: 0, left: 0, bottom: 1, right: 1 },
    { top: 27, left: 27, bottom: 28, right: 28 },
  ]);
  assert.equal(
    dilate(mask, H, W, 1).reduce((a, b) => a + b, 0),
    8,
    "two corner pixels grow to 2x2 each",
  );
  const map = new Float32Array(H * W);
  map[29] = 1; // (1, 1): inside the dilated mask
  map[400] = 0.5;
  const share = topShareInMask(map, mask, H, W, { fraction: 2 / (H * W) });
  assert.equal(share, 0.5);
  assert.equal(
    boxesIoU([{ top: 0, left: 0, bottom: 2, right: 2 }], [{ top: 0, left: 0, bottom: 2, right: 4 }], H, W),
    0.5,
  );
  assert.equal(boxesIoU([], [], H, W), 0);
});
