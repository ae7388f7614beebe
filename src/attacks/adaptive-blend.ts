// Adaptive-Blend (Qi et al. 2023, "Revisiting the assumption of latent separability"): the Blend
// noise pattern is cut into a g×g grid of pieces; each poisoned or cover training sample gets a
// random subset of the pieces blended in at a low weight. Poisoned samples (outside the target
// class) are relabelled; cover samples keep their label, which weakens the latent separation
// between poisoned and clean samples that many defenses rely on. At test time the full pattern
// is blended at a higher weight.
//
// Parameters (reference toolbox defaults):
//   targetClass  0      the class triggered inputs are mapped to
//   rate         0.003  fraction of the training set poisoned
//   coverRate    0.003  fraction of the training set used as cover samples
//   pieces       16     number of pieces (a square number: 16 = a 4x4 grid)
//   piecesUsed   8      pieces applied to each training sample (chosen per sample)
//   trainAlpha   0.15   blend weight in training
//   testAlpha    0.2    blend weight of the full pattern at test time
//   patternSeed  0      seed of the noise pattern
import { tensor, type Tensor } from "../engine/index.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { AdaptiveAttack } from "./adaptive.js";
import { blendWith } from "./blend.js";
import { checkImages } from "./canvas.js";
import { noisePattern } from "./patterns.js";
import { AttackParamError, PATTERN_SEED, TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const ADAPTIVE_BLEND_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003),
  coverRate: rateParam(0.003, "fraction of the training set used as cover samples"),
  pieces: { type: "integer", default: 16, min: 1, max: 1024, description: "pieces of the pattern (a square number)" },
  piecesUsed: { type: "integer", default: 8, min: 1, max: 1024, description: "pieces applied to each training sample" },
  trainAlpha: { type: "number", default: 0.15, above: 0, max: 1, description: "blend weight in training" },
  testAlpha: {
    type: "number",
    default: 0.2,
    above: 0,
    max: 1,
    description: "blend weight of the full pattern at test time",
  },
  patternSeed: PATTERN_SEED,
};

/**
 * Masks [n, 1, H, W]: for each sample, `used` of the g×g pieces (g = sqrt(pieces)) chosen with
 * `rng` are 1. Piece (r, c) covers rows ⌊r·H/g⌋..⌊(r+1)·H/g⌋ − 1 and likewise columns.
 */
export function pieceMasks(
  n: number,
  height: number,
  width: number,
  pieces: number,
  used: number,
  rng: Rng,
): Float32Array {
  const g = Math.round(Math.sqrt(pieces));
  const out = new Float32Array(n * height * width);
  for (let s = 0; s < n; s++) {
    const order = rng.permutation(pieces).subarray(0, used);
    for (const piece of order) {
      const r = Math.floor(piece / g);
      const c = piece % g;
      for (let i = Math.floor((r * height) / g); i < Math.floor(((r + 1) * height) / g); i++) {
        out.fill(
          1,
          s * height * width + i * width + Math.floor((c * width) / g),
          s * height * width + i * width + Math.floor(((c + 1) * width) / g),
        );
      }
    }
  }
  return out;
}

export class AdaptiveBlend extends AdaptiveAttack {
  readonly pattern: Float32Array;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "adaptive-blend",
        description:
          "half of a 4x4-piece blend pattern at alpha 0.15 on poison and cover samples; full pattern at alpha 0.2 at test",
        kind: "adaptive",
        targeting: "all-to-one",
      },
      params,
      spec,
    );
    const pieces = numberParam(params, "pieces");
    const g = Math.round(Math.sqrt(pieces));
    if (g * g !== pieces)
      throw new AttackParamError(
        `attack '${this.name}': parameter 'pieces' must be a square number (4, 9, 16, ...), got ${pieces}`,
      );
    if (g > spec.height || g > spec.width) {
      throw new AttackParamError(
        `attack '${this.name}': parameter 'pieces' (${pieces}) makes a ${g}x${g} grid, finer than the ${spec.height}x${spec.width} image`,
      );
    }
    const used = numberParam(params, "piecesUsed");
    if (used > pieces)
      throw new AttackParamError(
        `attack '${this.name}': parameter 'piecesUsed' must be at most pieces (${pieces}), got ${used}`,
      );
    this.pattern = noisePattern(spec, numberParam(params, "patternSeed"));
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    return blendWith(x, this.pattern, numberParam(this.params, "testAlpha"));
  }

  /** The training-time trigger: random pieces at trainAlpha, for poison and cover samples alike. */
  trainingTrigger(x: Tensor, rng: Rng): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    const { height: h, width: w } = this.spec;
    const n = x.dim(0);
    const masks = pieceMasks(n, h, w, numberParam(this.params, "pieces"), numberParam(this.params, "piecesUsed"), rng);
    const m = tensor(masks, { shape: [n, 1, h, w] });
    try {
      return blendWith(x, this.pattern, numberParam(this.params, "trainAlpha"), m);
    } finally {
      m.dispose();
    }
  }
}
