// Adaptive-Patch (Qi et al. 2023): several generated patch triggers, each in its own corner.
// Every poisoned or cover training sample gets one of them (chosen per sample) at that patch's
// low training opacity; poisoned samples (outside the target class) are relabelled, cover
// samples keep their label. At test time the patches listed in `testPatches` are pasted together
// at full opacity.
//
// Parameters (reference toolbox settings):
//   targetClass  0                 the class triggered inputs are mapped to
//   rate         0.003             fraction of the training set poisoned
//   coverRate    0.006             fraction of the training set used as cover samples
//   trainAlphas  0.5,0.2,0.5,0.3   training opacity of each patch; their number (1–4) is the number of patches
//   testPatches  0,2               patches pasted (at opacity 1) by the test-time trigger (the toolbox
//                                  tests with a variant of its first and with its third training trigger)
//   cells        4                 patch side in cells (random black/white or colour-cube cells)
//   patternSeed  0                 seed of the patch colours
// Patches sit one cell in from the corners, in the order top-left, bottom-right, top-right,
// bottom-left; a cell is one pixel up to 32-pixel images and grows with the image.
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { AdaptiveAttack } from "./adaptive.js";
import { TriggerCanvas, checkImages, pasteTrigger, triggerScale } from "./canvas.js";
import { randomPatchCells } from "./patterns.js";
import {
  AttackParamError,
  PATTERN_SEED,
  TARGET_CLASS,
  numberListParam,
  numberParam,
  rateParam,
  type ParamTable,
} from "./params.js";

export const ADAPTIVE_PATCH_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003),
  coverRate: rateParam(0.006, "fraction of the training set used as cover samples"),
  trainAlphas: {
    type: "numbers",
    default: "0.5,0.2,0.5,0.3",
    above: 0,
    max: 1,
    description: "training opacity of each patch (1 to 4 patches)",
  },
  testPatches: {
    type: "integers",
    default: "0,2",
    min: 0,
    max: 3,
    description: "patches (by number) pasted at full opacity at test time",
  },
  cells: { type: "integer", default: 4, min: 1, max: 16, description: "patch side, in cells" },
  patternSeed: PATTERN_SEED,
};

const CORNERS = ["top-left", "bottom-right", "top-right", "bottom-left"] as const;

/** Patch `k` (0..3) drawn into `canvas` in its corner, one cell in from the edges. */
function drawPatch(what: string, canvas: TriggerCanvas, k: number, cells: number, seed: number): void {
  const s = triggerScale(canvas.height, canvas.width);
  const side = cells * s;
  const corner = CORNERS[k] ?? "top-left";
  const top = corner.startsWith("top") ? s : canvas.height - side - s;
  const left = corner.endsWith("left") ? s : canvas.width - side - s;
  const colours = randomPatchCells(canvas.channels, cells, seed, k);
  canvas.drawCells(`${what} (patch ${k}, ${corner})`, top, left, cells, cells, s, (i, j) => colours[i]?.[j] ?? null);
}

export class AdaptivePatch extends AdaptiveAttack {
  /** One canvas per patch, for training. */
  readonly patches: TriggerCanvas[];
  /** The testPatches patches together, for the test-time trigger. */
  readonly testCanvas: TriggerCanvas;
  readonly trainAlphas: number[];

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "adaptive-patch",
        description: "several corner patches at low opacity on poison and cover samples; two at full opacity at test",
        kind: "adaptive",
        targeting: "all-to-one",
      },
      params,
      spec,
    );
    const what = `attack '${this.name}'`;
    this.trainAlphas = numberListParam(params, "trainAlphas");
    if (this.trainAlphas.length > CORNERS.length) {
      throw new AttackParamError(
        `${what}: parameter 'trainAlphas' must list 1 to ${CORNERS.length} opacities (one per patch), got ${this.trainAlphas.length}`,
      );
    }
    const testPatches = numberListParam(params, "testPatches");
    for (const k of testPatches) {
      if (k >= this.trainAlphas.length) {
        throw new AttackParamError(
          `${what}: parameter 'testPatches' must list patches in 0..${this.trainAlphas.length - 1} (one per training opacity), got ${k}`,
        );
      }
    }
    const cells = numberParam(params, "cells");
    const seed = numberParam(params, "patternSeed");
    this.patches = this.trainAlphas.map((_, k) => {
      const c = new TriggerCanvas(spec);
      drawPatch(what, c, k, cells, seed);
      return c;
    });
    this.testCanvas = new TriggerCanvas(spec);
    for (const k of testPatches) drawPatch(what, this.testCanvas, k, cells, seed);
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.testCanvas);
    return pasteTrigger(x, this.testCanvas);
  }

  /** The training-time trigger: one patch per sample, chosen with `rng`, at its training opacity. */
  trainingTrigger(x: Tensor, rng: Rng): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    const { channels: c, height: h, width: w } = this.spec;
    const n = x.dim(0);
    const plane = h * w;
    const alpha = new Float32Array(n * plane);
    const pattern = new Float32Array(n * c * plane);
    for (let s = 0; s < n; s++) {
      const k = rng.int(0, this.patches.length);
      const patch = this.patches[k] as TriggerCanvas;
      const a = this.trainAlphas[k] as number;
      for (let p = 0; p < plane; p++) alpha[s * plane + p] = (patch.mask[p] as number) * a;
      pattern.set(patch.pattern, s * c * plane);
    }
    return tidy(() => {
      const m = tensor(alpha, { shape: [n, 1, h, w] });
      return x.mul(m.rsub(1)).add(tensor(pattern, { shape: [n, c, h, w] }).mul(m));
    });
  }
}
