// TeCo's fifteen ImageNet-C corruptions: ranges, shapes, seeded reproducibility, strength growing
// with severity where the reference's constants make it grow, and known answers for JPEG and fog.
import { test } from "node:test";
import assert from "node:assert/strict";
import { inferenceMode, manualSeed, memory, tensor, tidy, type Tensor } from "../../src/engine/index.js";
import { CORRUPTIONS } from "../../src/detectors/corruptions.js";
import { jpegRoundTrip, quantTable } from "../../src/detectors/jpeg.js";
import { plasmaFractal } from "../../src/detectors/corruptions-weather.js";
import { affineFromPoints } from "../../src/detectors/corruptions-spatial.js";

/** Smooth 28x28 test images (a product of sines), n of them with c channels. */
function images(n: number, c: number): Tensor {
  const [h, w] = [28, 28];
  const v = new Float32Array(n * c * h * w);
  for (let i = 0; i < n; i++)
    for (let ch = 0; ch < c; ch++)
      for (let r = 0; r < h; r++)
        for (let q = 0; q < w; q++)
          v[((i * c + ch) * h + r) * w + q] = 0.5 + 0.4 * Math.sin((r + i) / 4) * Math.cos((q * (ch + 1)) / 5);
  return tensor(v, { shape: [n, c, h, w] });
}

/** Mean |corrupt(x) − x| at each severity 1..5 (seeded per severity). */
function strengths(name: string, x: Tensor): number[] {
  const f = CORRUPTIONS[name];
  assert.ok(f, name);
  return [1, 2, 3, 4, 5].map((s) => {
    manualSeed(s);
    return tidy(() => inferenceMode(() => f(x, s).sub(x).abs().mean().item()));
  });
}

test("all fifteen ImageNet-C corruptions exist, keep shape and [0, 1] range, and repeat under the same seed", () => {
  const before = memory().numTensors;
  assert.deepEqual(Object.keys(CORRUPTIONS), [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
  ]);
  for (const c of [1, 3]) {
    const x = images(3, c);
    for (const [name, f] of Object.entries(CORRUPTIONS)) {
      for (const s of [1, 3, 5]) {
        const [lo, hi, shape, a] = tidy(() => {
          manualSeed(7);
          const y = inferenceMode(() => f(x, s));
          return [y.min().item(), y.max().item(), y.shape, y.sum().item()] as const;
        });
        assert.deepEqual(shape, [3, c, 28, 28], name);
        assert.ok(lo >= 0 && hi <= 1, `${name} severity ${s}: range [${lo}, ${hi}]`);
        manualSeed(7);
        const again = tidy(() => inferenceMode(() => f(x, s).sum().item()));
        assert.equal(again, a, `${name} severity ${s} under the same seed`);
      }
      assert.throws(() => f(x, 0), /severity must be an integer in 1\.\.5, got 0/);
    }
    x.dispose();
  }
  assert.equal(memory().numTensors, before);
});

test("severity: strength grows with it where the reference's constants grow, and the new six change the image", () => {
  const before = memory().numTensors;
  const x = images(8, 1);
  for (const name of [
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "fog",
    "brightness",
    "contrast",
    "jpeg_compression",
  ]) {
    const d = strengths(name, x);
    for (let s = 1; s < 5; s++)
      assert.ok((d[s] as number) >= (d[s - 1] as number), `${name}: ${d.map((v) => v.toFixed(4)).join(" ")}`);
  }
  // Glass blur, frost and the elastic transform trade one constant against another across
  // severities (e.g. elastic: the affine shift shrinks as the displacement field grows), so only
  // that each of them changes the image is asserted; glass and frost are stronger at 5 than at 1.
  for (const name of ["glass_blur", "frost", "elastic_transform"])
    for (const v of strengths(name, x)) assert.ok(v > 0.005, `${name}: ${v}`);
  for (const name of ["glass_blur", "frost"]) {
    const d = strengths(name, x);
    assert.ok((d[4] as number) > (d[0] as number), `${name}: ${d.join(" ")}`);
  }
  x.dispose();
  assert.equal(memory().numTensors, before);
});

test("known answers: JPEG tables and flat blocks, the plasma fractal's range, the 3-point affine; moving pixels keeps a flat image flat", () => {
  const before = memory().numTensors;
  // Quality 50 is the standard table itself; quality 100 quantises by 1.
  assert.equal(quantTable([16, 11, 99], 50).join(","), "16,11,99");
  assert.equal(quantTable([16, 11, 99], 100).join(","), "1,1,1");
  assert.equal(quantTable([16, 11, 99], 25).join(","), "32,22,198");
  assert.throws(() => quantTable([16], 0), /quality must be an integer in 1\.\.100, got 0/);
  // A flat 8-bit image survives every quality exactly (only its DC term is quantised and rounds back).
  for (const v of [0, 37, 100, 200, 255]) {
    for (const q of [80, 40]) {
      const err = tidy(() => {
        const flat = tensor(new Float32Array(2 * 3 * 16 * 16).fill(v / 255), { shape: [2, 3, 16, 16] });
        return jpegRoundTrip(flat, q).sub(flat).abs().max().item();
      });
      assert.ok(err <= 1 / 255 + 1e-6, `value ${v}, quality ${q}: error ${err}`);
    }
  }
  // A noisy image loses detail, more at a lower quality.
  const noisy = tidy(() =>
    images(2, 1)
      .add(
        tensor(
          Float32Array.from({ length: 2 * 784 }, (_, k) => ((k * 7919) % 17) / 170 - 0.05),
          { shape: [2, 1, 28, 28] },
        ),
      )
      .clamp(0, 1),
  );
  const e80 = tidy(() => jpegRoundTrip(noisy, 80).sub(noisy).abs().mean().item());
  const e20 = tidy(() => jpegRoundTrip(noisy, 20).sub(noisy).abs().mean().item());
  assert.ok(e80 > 0.001 && e20 > e80, `quality 80: ${e80}, 20: ${e20}`);
  noisy.dispose();
  manualSeed(1);
  const p = plasmaFractal(32, 3);
  assert.equal(Math.min(...p), 0);
  assert.equal(Math.max(...p), 1);
  assert.throws(() => plasmaFractal(28, 3), /size must be a power of two >= 2, got 28/);
  const m = affineFromPoints(
    [
      [0, 0],
      [1, 0],
      [0, 1],
    ],
    [
      [2, 3],
      [4, 3],
      [2, 6],
    ],
  );
  assert.deepEqual(
    m.map((v) => Math.round(v * 1e9) / 1e9),
    [2, 0, 2, 0, 3, 3],
  );
  const flat = tensor(new Float32Array(2 * 784).fill(0.4), { shape: [2, 1, 28, 28] });
  for (const name of ["glass_blur", "elastic_transform", "motion_blur", "zoom_blur", "defocus_blur"]) {
    const err = tidy(() =>
      inferenceMode(() => CORRUPTIONS[name]?.(flat, 5).sub(flat).abs().max().item() ?? Number.NaN),
    );
    assert.ok(err < 2 / 255, `${name} moved a flat image by ${err}`);
  }
  flat.dispose();
  assert.equal(memory().numTensors, before);
});
