// Test-time triggers: each changes exactly the pixels it should, by the amount it should, at
// every image size and channel count.
import { test } from "node:test";
import assert from "node:assert/strict";
import { tensor, tidy, type Tensor } from "../../src/engine/index.js";
import { createAttack, quantize, sigSignal, type Attack, type ImageSpec } from "../../src/attacks/index.js";
import { AdaptiveBlend } from "../../src/attacks/adaptive-blend.js";
import { AdaptivePatch } from "../../src/attacks/adaptive-patch.js";
import { Blend } from "../../src/attacks/blend.js";
import { Rng } from "../../src/util/rng.js";
import { noLeaks } from "../helpers/memory.js";
import { SIZES } from "./fixtures.js";

const spec = (h: number, w: number, c: number): ImageSpec => ({ numClasses: 10, height: h, width: w, channels: c });

/** n random images [n, c, h, w] with values in [lo, hi), as a tensor and the raw array. */
function randomImages(
  n: number,
  c: number,
  h: number,
  w: number,
  seed = 1,
  lo = 0.1,
  hi = 0.9,
): { x: Tensor; v: Float32Array } {
  const rng = new Rng(seed);
  const v = Float32Array.from({ length: n * c * h * w }, () => rng.uniform(lo, hi));
  return { x: tensor(v, { shape: [n, c, h, w] }), v };
}

/**
 * Asserts that out equals `expected(n, ch, i, j)` wherever that is a number and equals the input
 * exactly where it is null (outside the trigger).
 */
function assertPixels(
  out: Float32Array,
  input: Float32Array,
  n: number,
  c: number,
  h: number,
  w: number,
  expected: (s: number, ch: number, i: number, j: number) => number | null,
): void {
  for (let s = 0; s < n; s++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < w; j++) {
          const k = ((s * c + ch) * h + i) * w + j;
          const e = expected(s, ch, i, j);
          if (e === null) assert.equal(out[k], input[k], `pixel (${s},${ch},${i},${j}) outside the trigger changed`);
          else
            assert.ok(
              Math.abs((out[k] as number) - e) < 1e-6,
              `pixel (${s},${ch},${i},${j}) is ${out[k]}, expected ${e}`,
            );
        }
      }
    }
  }
}

function trigger(a: Attack, x: Tensor): Float32Array {
  return tidy(() => a.applyTrigger(x).data() as Float32Array);
}

test("BadNet pastes a 3x3 checkerboard one cell in from the bottom-right corner, scaled with the image", () =>
  noLeaks(() =>
    tidy(() => {
      // 28 and 32: one pixel per cell; 64: two.
      for (const [h, w, c] of SIZES) {
        const s = h >= 64 ? 2 : 1;
        const top = h - 4 * s;
        const left = w - 4 * s;
        const a = createAttack("badnet", {}, spec(h, w, c));
        const { x, v } = randomImages(2, c, h, w);
        assertPixels(trigger(a, x), v, 2, c, h, w, (_s, _ch, i, j) => {
          if (i < top || i >= top + 3 * s || j < left || j >= left + 3 * s) return null;
          return (Math.floor((i - top) / s) + Math.floor((j - left) / s)) % 2 === 0 ? 1 : 0;
        });
      }
      // On 32x32 the patch is rows and columns 28..30, white at its top-left.
      const out = trigger(
        createAttack("badnet", {}, spec(32, 32, 1)),
        tensor(new Float32Array(32 * 32).fill(0.5), { shape: [1, 1, 32, 32] }),
      );
      assert.deepEqual(
        [out[28 * 32 + 28], out[28 * 32 + 29], out[30 * 32 + 30], out[31 * 32 + 31], out[27 * 32 + 28]],
        [1, 0, 1, 0.5, 0.5],
      );
    }),
  ));

test("BadNet's corner parameter moves the same patch to each corner, margin cells in from its two edges", () =>
  noLeaks(() =>
    tidy(() => {
      const grey = tensor(new Float32Array(32 * 32).fill(0.5), { shape: [1, 1, 32, 32] });
      // [corner, top, left] of the 3x3 patch on 32x32 with margin 1.
      for (const [corner, top, left] of [
        [0, 28, 28],
        [1, 28, 1],
        [2, 1, 28],
        [3, 1, 1],
      ] as const) {
        const out = trigger(createAttack("badnet", { corner }, spec(32, 32, 1)), grey);
        const changed: number[] = [];
        out.forEach((o, k) => {
          if (o !== 0.5) changed.push(k);
        });
        const inside = (k: number) =>
          Math.floor(k / 32) >= top && Math.floor(k / 32) < top + 3 && k % 32 >= left && k % 32 < left + 3;
        assert.equal(changed.length, 9, `corner ${corner}`);
        assert.ok(
          changed.every(inside),
          `corner ${corner}: a pixel outside rows ${top}.. and columns ${left}.. changed`,
        );
        assert.equal(out[top * 32 + left], 1, `corner ${corner}: the patch starts white`);
      }
      assert.throws(
        () => createAttack("badnet", { corner: 4 }, spec(32, 32, 1)),
        /parameter 'corner' must be an integer >= 0 and <= 3, got 4/,
      );
    }),
  ));

test("Trojan pastes its 8x8 watermark at pixels 21-28 of a 32x32 image; the transparent ring keeps the image", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [h, w, c] of SIZES) {
        const s = h >= 64 ? 2 : 1;
        const top = h - 11 * s;
        const outer = c === 3 ? [1, 0.75, 0] : [1];
        const inner = c === 3 ? [0, 0.25, 1] : [0];
        const { x, v } = randomImages(2, c, h, w, 3);
        for (const name of ["trojan", "tact"]) {
          const a = createAttack(name, {}, spec(h, w, c));
          assertPixels(trigger(a, x), v, 2, c, h, w, (_s, ch, i, j) => {
            if (i < top || i >= top + 8 * s || j < top || j >= top + 8 * s) return null;
            const ci = Math.floor((i - top) / s);
            const cj = Math.floor((j - top) / s);
            const ring = Math.min(ci, cj, 7 - ci, 7 - cj);
            return ring === 1 ? null : ((ring === 2 ? inner : outer)[ch] as number);
          });
        }
      }
      // On 32x32 the square spans rows and columns 21..28: its corner pixel is drawn, the pixel before it is not.
      const out = trigger(
        createAttack("trojan", {}, spec(32, 32, 1)),
        tensor(new Float32Array(32 * 32).fill(0.5), { shape: [1, 1, 32, 32] }),
      );
      assert.deepEqual(
        [
          out[21 * 32 + 21],
          out[28 * 32 + 28],
          out[20 * 32 + 21],
          out[29 * 32 + 28],
          out[22 * 32 + 22],
          out[23 * 32 + 23],
        ],
        [1, 1, 0.5, 0.5, 0.5, 0],
      );
    }),
  ));

test("Clean-Label's test trigger is a checkerboard in each corner and nothing else", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [h, w, c] of SIZES) {
        const s = h >= 64 ? 2 : 1;
        const a = createAttack("clean-label", {}, spec(h, w, c));
        const { x, v } = randomImages(1, c, h, w, 4);
        const starts = (n: number) => [s, n - 4 * s];
        assertPixels(trigger(a, x), v, 1, c, h, w, (_s, _ch, i, j) => {
          const r = starts(h).find((t) => i >= t && i < t + 3 * s);
          const q = starts(w).find((t) => j >= t && j < t + 3 * s);
          if (r === undefined || q === undefined) return null;
          return (Math.floor((i - r) / s) + Math.floor((j - q) / s)) % 2 === 0 ? 1 : 0;
        });
      }
    }),
  ));

test("Blend gives x' = (1 - alpha) x + alpha P with a seeded full-image noise pattern", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [h, w, c] of SIZES) {
        const a = createAttack("blend", {}, spec(h, w, c));
        assert.ok(a instanceof Blend);
        const p = a.pattern;
        assert.equal(p.length, c * h * w);
        assert.ok(
          Math.min(...p) >= 0 && Math.max(...p) < 1 && Math.min(...p) < 0.01 && Math.max(...p) > 0.99,
          "pattern spans [0, 1)",
        );
        const { x, v } = randomImages(2, c, h, w, 5, 0, 1);
        const plane = c * h * w;
        assertPixels(trigger(a, x), v, 2, c, h, w, (sample, ch, i, j) => {
          const k = (ch * h + i) * w + j;
          return 0.8 * (v[sample * plane + k] as number) + 0.2 * (p[k] as number);
        });
      }
      const b = createAttack("blend", { alpha: 0.5 }, spec(8, 8, 1)) as Blend;
      const out = trigger(b, tensor(new Float32Array(64), { shape: [1, 1, 8, 8] }));
      assert.ok(out.every((o, k) => Math.abs(o - 0.5 * (b.pattern[k] as number)) < 1e-7));
      const same = createAttack("blend", {}, spec(8, 8, 1)) as Blend;
      const other = createAttack("blend", { patternSeed: 1 }, spec(8, 8, 1)) as Blend;
      assert.deepEqual(same.pattern, (createAttack("blend", {}, spec(8, 8, 1)) as Blend).pattern);
      assert.notDeepEqual(same.pattern, other.pattern);
    }),
  ));

test("SIG adds delta*sin(2*pi*j*f/m) along each row and clamps to [0, 1]", () =>
  noLeaks(() =>
    tidy(() => {
      const signal = sigSignal(32, 20 / 255, 6);
      assert.equal(signal[0], 0);
      assert.ok(Math.abs((signal[8] as number) - (20 / 255) * Math.sin((2 * Math.PI * 8 * 6) / 32)) < 1e-7);
      // Column 12 is 4.5 periods in (12*6/32 = 2.25 turns): the crest, +delta.
      assert.ok(Math.abs((signal[12] as number) - 20 / 255) < 1e-7 && Math.abs(Math.max(...signal) - 20 / 255) < 1e-7);
      for (const [h, w, c] of SIZES) {
        const a = createAttack("sig", {}, spec(h, w, c));
        const { x, v } = randomImages(2, c, h, w, 6);
        assertPixels(trigger(a, x), v, 2, c, h, w, (sample, ch, i, j) => {
          const k = ((sample * c + ch) * h + i) * w + j;
          return (v[k] as number) + (20 / 255) * Math.sin((2 * Math.PI * j * 6) / w);
        });
      }
      const bright = trigger(
        createAttack("sig", { delta: "30/255" }, spec(4, 32, 1)),
        tensor(new Float32Array(128).fill(1), { shape: [1, 1, 4, 32] }),
      );
      assert.equal(Math.max(...bright), 1);
      assert.ok(
        Math.abs((bright[4] as number) - (1 - 30 / 255)) < 1e-6,
        "column 4 is 0.75 turns in (4*6/32): the trough, -delta",
      );
    }),
  ));

test("WaNet is the identity at strength 0, a smooth resampling otherwise, in [0, 1] and seeded", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [h, w, c] of SIZES) {
        const { x, v } = randomImages(2, c, h, w, 7, 0, 1);
        const id = trigger(createAttack("wanet", { strength: 0 }, spec(h, w, c)), x);
        assert.ok(
          id.every((o, k) => Math.abs(o - (v[k] as number)) < 1e-5),
          "strength 0 changes the image",
        );
        const warped = trigger(createAttack("wanet", {}, spec(h, w, c)), x);
        const maxDiff = Math.max(...warped.map((o, k) => Math.abs(o - (v[k] as number))));
        assert.ok(maxDiff > 0.05, `the warp barely changes the image (max difference ${maxDiff})`);
        assert.ok(warped.every((o) => o >= 0 && o <= 1));
        // A resampling keeps a constant image constant (an additive trigger would not).
        const flat = trigger(
          createAttack("wanet", {}, spec(h, w, c)),
          tensor(new Float32Array(c * h * w).fill(0.3), { shape: [1, c, h, w] }),
        );
        assert.ok(flat.every((o) => Math.abs(o - 0.3) < 1e-5));
        assert.deepEqual(trigger(createAttack("wanet", {}, spec(h, w, c)), x), warped);
        assert.notDeepEqual(trigger(createAttack("wanet", { patternSeed: 9 }, spec(h, w, c)), x), warped);
      }
    }),
  ));

test("BPP quantises each channel to the levels, with Floyd-Steinberg error diffusion", () =>
  noLeaks(() =>
    tidy(() => {
      // Hand-computed: 0.4 rounds to 0 and passes 7/16*0.4 right, so the neighbour reaches 0.575 → 1.
      assert.deepEqual(Array.from(quantize(Float32Array.from([0.4, 0.4]), 1, 1, 2, 2, true)), [0, 1]);
      assert.deepEqual(Array.from(quantize(Float32Array.from([0.4, 0.4]), 1, 1, 2, 2, false)), [0, 0]);
      // 7/16 right: 0.33 + 0.175 = 0.505 → 1 (6/16 would give 0.48 → 0); 5/16 down: 0.38 + 0.125 = 0.505 → 1.
      assert.deepEqual(Array.from(quantize(Float32Array.from([0.4, 0.33]), 1, 1, 2, 2, true)), [0, 1]);
      assert.deepEqual(Array.from(quantize(Float32Array.from([0.4, 0.38]), 1, 2, 1, 2, true)), [0, 1]);
      // 2x2 of 0.4: (1,0) gets 5/16*0.4 - 3/16*0.425 = 0.4453 → 0; (1,1) ends at 0.4870 → 0.
      assert.deepEqual(Array.from(quantize(new Float32Array(4).fill(0.4), 1, 2, 2, 2, true)), [0, 1, 0, 0]);
      for (const [h, w, c] of SIZES) {
        const { x, v } = randomImages(2, c, h, w, 8, 0, 1);
        const plain = trigger(createAttack("bpp", { dither: false }, spec(h, w, c)), x);
        assert.ok(plain.every((o, k) => Math.abs(o - Math.round((v[k] as number) * 7) / 7) < 1e-6));
        const dithered = trigger(createAttack("bpp", {}, spec(h, w, c)), x);
        assert.ok(
          dithered.every((o) => Math.abs(o * 7 - Math.round(o * 7)) < 1e-5),
          "dithered values must be levels k/7",
        );
        // Dithering keeps the local mean: a flat 0.3 image stays 0.3 on average; rounding alone gives 2/7.
        const flat = trigger(
          createAttack("bpp", {}, spec(h, w, c)),
          tensor(new Float32Array(c * h * w).fill(0.3), { shape: [1, c, h, w] }),
        );
        const mean = flat.reduce((a, b) => a + b, 0) / flat.length;
        assert.ok(Math.abs(mean - 0.3) < 0.01, `dithered mean ${mean}`);
      }
    }),
  ));

test("Adaptive-Blend: full pattern at alpha 0.2 at test; 8 of 16 pieces at alpha 0.15 in training", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [h, w, c] of SIZES) {
        const a = createAttack("adaptive-blend", {}, spec(h, w, c));
        assert.ok(a instanceof AdaptiveBlend);
        const { x, v } = randomImages(3, c, h, w, 9);
        const plane = c * h * w;
        const p = a.pattern;
        assertPixels(
          trigger(a, x),
          v,
          3,
          c,
          h,
          w,
          (s, ch, i, j) =>
            0.8 * (v[s * plane + (ch * h + i) * w + j] as number) + 0.2 * (p[(ch * h + i) * w + j] as number),
        );
        const out = tidy(() => a.trainingTrigger(x, new Rng(1)).data() as Float32Array);
        for (let s = 0; s < 3; s++) {
          let pieces = 0;
          for (let r = 0; r < 4; r++) {
            for (let q = 0; q < 4; q++) {
              // A piece is either fully blended at 0.15 or untouched.
              const i0 = Math.floor((r * h) / 4);
              const j0 = Math.floor((q * w) / 4);
              const k0 = s * plane + i0 * w + j0;
              const blended =
                Math.abs((out[k0] as number) - (0.85 * (v[k0] as number) + 0.15 * (p[i0 * w + j0] as number))) < 1e-6;
              if (blended) pieces++;
              for (let ch = 0; ch < c; ch++) {
                for (let i = i0; i < Math.floor(((r + 1) * h) / 4); i++) {
                  for (let j = j0; j < Math.floor(((q + 1) * w) / 4); j++) {
                    const k = s * plane + (ch * h + i) * w + j;
                    const e = blended
                      ? 0.85 * (v[k] as number) + 0.15 * (p[(ch * h + i) * w + j] as number)
                      : (v[k] as number);
                    assert.ok(Math.abs((out[k] as number) - e) < 1e-6);
                  }
                }
              }
            }
          }
          assert.equal(pieces, 8, `sample ${s} has ${pieces} blended pieces`);
        }
      }
    }),
  ));

test("Adaptive-Patch: patches 0 and 2 at full opacity at test; one patch at its training opacity per training sample", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [h, w, c] of SIZES) {
        const s = h >= 64 ? 2 : 1;
        const a = createAttack("adaptive-patch", {}, spec(h, w, c));
        assert.ok(a instanceof AdaptivePatch);
        const { x, v } = randomImages(16, c, h, w, 10);
        const side = 4 * s;
        const inTopLeft = (i: number, j: number) => i >= s && i < s + side && j >= s && j < s + side;
        const inTopRight = (i: number, j: number) => i >= s && i < s + side && j >= w - s - side && j < w - s;
        const test0 = a.testCanvas.pattern;
        assertPixels(trigger(a, x), v, 16, c, h, w, (_s, ch, i, j) =>
          inTopLeft(i, j) || inTopRight(i, j) ? (test0[(ch * h + i) * w + j] as number) : null,
        );
        assert.ok(
          test0.every((p) => p === 0 || p === 1),
          "patch cells are black/white or colour-cube corners",
        );
        const out = tidy(() => a.trainingTrigger(x, new Rng(2)).data() as Float32Array);
        const plane = c * h * w;
        const used = new Set<number>();
        for (let n = 0; n < 16; n++) {
          const matches: boolean[] = a.patches.map((patch, k) => {
            const alpha = a.trainAlphas[k] as number;
            return Array.from({ length: plane }, (_, q) => {
              const pix = q % (h * w);
              const m = (patch.mask[pix] as number) * alpha;
              return (
                Math.abs(
                  (out[n * plane + q] as number) -
                    ((1 - m) * (v[n * plane + q] as number) + m * (patch.pattern[q] as number)),
                ) < 1e-6
              );
            }).every(Boolean);
          });
          assert.equal(
            matches.filter(Boolean).length,
            1,
            `sample ${n} must carry exactly one patch at its training opacity`,
          );
          used.add(matches.indexOf(true));
        }
        assert.ok(used.size >= 3, "patches are chosen per sample");
      }
      assert.deepEqual(createAttack("adaptive-patch", {}, spec(32, 32, 3)).params.trainAlphas, "0.5,0.2,0.5,0.3");
    }),
  ));

test("every attack keeps the batch shape and [0, 1] range at 28x28x1, 32x32x3 and 64x64x3, and rejects other sizes", () =>
  noLeaks(() =>
    tidy(() => {
      const names = [
        "badnet",
        "blend",
        "trojan",
        "clean-label",
        "sig",
        "wanet",
        "bpp",
        "adaptive-blend",
        "adaptive-patch",
        "badnet-all-to-all",
        "tact",
        "sleeper-agent",
      ];
      for (const [h, w, c] of SIZES) {
        const { x, v } = randomImages(2, c, h, w, 11, 0, 1);
        for (const name of names) {
          const a = createAttack(name, {}, spec(h, w, c));
          const t = a.applyTrigger(x);
          assert.deepEqual(t.shape, [2, c, h, w], name);
          const d = t.data() as Float32Array;
          assert.ok(
            d.every((o) => o >= 0 && o <= 1),
            `${name}: values leave [0, 1]`,
          );
          assert.ok(
            d.some((o, k) => Math.abs(o - (v[k] as number)) > 1e-3),
            `${name}: the trigger changes nothing at ${h}x${w}x${c}`,
          );
          assert.throws(
            () => a.applyTrigger(tensor(new Float32Array(c * 16 * 16), { shape: [1, c, 16, 16] })),
            /the size the attack was built for/,
          );
        }
      }
    }),
  ));

test("the patch area grows with the image: 9 pixels at 32x32, 36 at 64x64, 81 at 96x96", () =>
  noLeaks(() =>
    tidy(() => {
      for (const [side, pixels] of [
        [32, 9],
        [64, 36],
        [96, 81],
      ] as const) {
        const a = createAttack("badnet", {}, spec(side, side, 1));
        const out = trigger(a, tensor(new Float32Array(side * side).fill(0.5), { shape: [1, 1, side, side] }));
        assert.equal(out.filter((o) => o !== 0.5).length, pixels);
      }
    }),
  ));
