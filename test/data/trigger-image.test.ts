// A trigger image stamped on clean images: x' = (1 − A·m)·x + A·m·P, with m from the trigger's
// alpha channel or a separate mask image (the same stamp either way), or the whole image; refused
// where the mask would be given twice, is empty, or the trigger is not at the model's size.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import type { ImageDataset } from "../../src/data/dataset.js";
import { applyTriggerImage, readTriggerImage } from "../../src/data/trigger-image.js";

function images(pixels: number[], channels: number, count: number): ImageDataset {
  return {
    name: "t",
    split: "test",
    images: Uint8Array.from(pixels),
    labels: new Int32Array(count),
    count,
    height: 2,
    width: 2,
    channels,
    classNames: ["a", "b"],
    source: "mem",
  };
}

test("the alpha channel is the mask; a separate mask image gives the same stamp; A blends", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-trigger-"));
  try {
    // 2x2 RGB trigger: red, green, blue, white; alpha 255, 0, 0, 128.
    const rgba = [255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 0, 255, 255, 255, 128];
    await sharp(Buffer.from(rgba), { raw: { width: 2, height: 2, channels: 4 } })
      .png()
      .toFile(join(dir, "t.png"));
    const t = await readTriggerImage(join(dir, "t.png"), undefined, { height: 2, width: 2, channels: 3 });
    assert.equal(t.maskSource, "alpha channel");
    assert.deepEqual(Array.from(t.mask ?? []), [1, 0, 0, Math.fround(128 / 255)]);
    const x = images(new Array<number>(24).fill(100), 3, 2);
    const y = applyTriggerImage(x, t, 1);
    const w = Math.round((1 - 128 / 255) * 100 + (128 / 255) * 255);
    assert.deepEqual(Array.from(y.images.subarray(0, 12)), [255, 0, 0, 100, 100, 100, 100, 100, 100, w, w, w]);
    assert.deepEqual(Array.from(y.images.subarray(12)), Array.from(y.images.subarray(0, 12)));
    assert.equal(x.images[0], 100, "the clean images are left alone");
    const half = applyTriggerImage(x, t, 0.5);
    assert.deepEqual(Array.from(half.images.subarray(0, 3)), [Math.round(0.5 * 100 + 0.5 * 255), 50, 50]);

    // The same trigger opaque, with its mask as a greyscale image.
    await sharp(Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]), {
      raw: { width: 2, height: 2, channels: 3 },
    })
      .png()
      .toFile(join(dir, "rgb.png"));
    await sharp(Buffer.from([255, 0, 0, 128]), { raw: { width: 2, height: 2, channels: 1 } })
      .png()
      .toFile(join(dir, "mask.png"));
    const m = await readTriggerImage(join(dir, "rgb.png"), join(dir, "mask.png"), { height: 2, width: 2, channels: 3 });
    assert.equal(m.maskSource, "mask image");
    assert.deepEqual(Array.from(applyTriggerImage(x, m, 1).images), Array.from(y.images));
    // Opaque and no mask: the whole image, here blended at 0.25.
    const whole = await readTriggerImage(join(dir, "rgb.png"), undefined, { height: 2, width: 2, channels: 1 });
    assert.equal(whole.mask, null);
    const luma = (r: number, g: number, b: number) => Math.floor((r * 299 + g * 587 + b * 114 + 500) / 1000);
    assert.deepEqual(Array.from(whole.pattern), [luma(255, 0, 0), luma(0, 255, 0), luma(0, 0, 255), 255]);
    const g = applyTriggerImage(images([0, 0, 0, 0], 1, 1), whole, 0.25);
    assert.deepEqual(
      Array.from(g.images),
      Array.from(whole.pattern, (p) => Math.round(0.25 * p)),
    );

    await assert.rejects(
      readTriggerImage(join(dir, "t.png"), join(dir, "mask.png"), { height: 2, width: 2, channels: 3 }),
      /t\.png: the trigger image has transparent pixels and a mask image was given too/,
    );
    await assert.rejects(
      readTriggerImage(join(dir, "rgb.png"), join(dir, "t.png"), { height: 2, width: 2, channels: 3 }),
      /t\.png: the mask image has transparent pixels/,
    );
    await sharp(Buffer.alloc(4, 0), { raw: { width: 2, height: 2, channels: 1 } })
      .png()
      .toFile(join(dir, "empty.png"));
    await assert.rejects(
      readTriggerImage(join(dir, "rgb.png"), join(dir, "empty.png"), { height: 2, width: 2, channels: 3 }),
      /empty\.png: the mask is empty: the trigger would change no pixel/,
    );
    await assert.rejects(
      readTriggerImage(join(dir, "rgb.png"), undefined, { height: 3, width: 3, channels: 3 }),
      /rgb\.png: the trigger image is 2x2 but the model takes 3x3 inputs: .*it is not resized/,
    );
    await assert.rejects(
      readTriggerImage(join(dir, "rgb.png"), join(dir, "nope.png"), { height: 2, width: 2, channels: 3 }),
      /nope\.png: no such file/,
    );
    assert.throws(() => applyTriggerImage(x, t, 0), /trigger alpha must be in \(0, 1\], got 0/);
    assert.throws(
      () => applyTriggerImage(images([0, 0, 0, 0], 1, 1), t, 1),
      /the trigger is 2x2x3 but the images are 2x2x1/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
