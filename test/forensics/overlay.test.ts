// Overlay PNGs have the image's own size and put the hot colour where the map is high.
import { test } from "node:test";
import assert from "node:assert/strict";
import sharp from "sharp";
import { heatmapPng, hotColour, overlayPng, signedPatternPng } from "../../src/forensics/overlay.js";

async function rgb(png: Buffer): Promise<{ width: number; height: number; data: Buffer }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data };
}

test("overlay of a 28x20 grey image: same size, red-yellow-white where the map is hot, the image elsewhere", async () => {
  const h = 28;
  const w = 20;
  const pixels = new Uint8Array(h * w).fill(100);
  const map = new Float32Array(h * w);
  map[5 * w + 7] = 2;
  const png = await overlayPng(pixels, h, w, 1, map);
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, "png");
  const img = await rgb(png);
  assert.equal(img.width, w);
  assert.equal(img.height, h);
  const at = (r: number, c: number) => Array.from(img.data.subarray((r * w + c) * 3, (r * w + c) * 3 + 3));
  assert.deepEqual(at(0, 0), [100, 100, 100], "cold pixel shows the image");
  const hot = at(5, 7);
  assert.ok((hot[0] as number) > 200 && (hot[2] as number) > 150, `hot pixel ${hot}`);
});

test("colour image overlay, heatmap and signed pattern keep the size; bad sizes are refused", async () => {
  const pixels = new Uint8Array(8 * 6 * 3).fill(50);
  const map = new Float32Array(8 * 6).fill(0.5);
  for (const png of [
    await overlayPng(pixels, 8, 6, 3, map),
    await heatmapPng(map, 8, 6),
    await signedPatternPng(new Float32Array(3 * 8 * 6).fill(-0.2), 3, 8, 6),
  ]) {
    const img = await rgb(png);
    assert.deepEqual([img.width, img.height], [6, 8]);
  }
  assert.deepEqual(hotColour(0), [0, 0, 0]);
  assert.deepEqual(hotColour(1), [1, 1, 1]);
  await assert.rejects(
    async () => overlayPng(pixels, 8, 6, 3, new Float32Array(10)),
    /the map has 10 values, a 8x6 image needs 48/,
  );
  await assert.rejects(async () => overlayPng(pixels, 8, 6, 2, map), /channels must be 1 or 3, got 2/);
});
