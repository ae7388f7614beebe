// WaNet (Nguyen & Tran 2021): the trigger is a smooth warp. A random k×k field of control
// displacements in [−1, 1] (normalised to mean magnitude 1) is upsampled bicubically to the image
// size, scaled by the strength s and added to the identity sampling grid; images are resampled
// with grid sampling. Poisoned samples (outside the target class) are warped and relabelled;
// "noise" cover samples get the warp plus random per-pixel grid jitter and keep their label, so
// the model learns that only this exact warp means the target.
//
// Parameters (defaults of the WaNet paper and the reference toolbox):
//   targetClass  0     the class triggered inputs are mapped to
//   rate         0.05  fraction of the training set poisoned
//   coverRate    0.1   fraction of the training set that are noise (cover) samples (cross ratio 2)
//   k            4     control grid side
//   strength     0.5   warp strength s (0: the identity)
//   gridRescale  1     scale applied to the warped grid (1 keeps the image in place)
//   patternSeed  0     seed of the control grid
// Displacements are s·field/size in normalised coordinates per axis (the paper divides both by
// the height of its square images), clamped to [−1, 1]; sampling is bilinear with
// align_corners = true, so strength 0 reproduces the image.
import { F, tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type AlterStep, type PoisonPlan } from "./base.js";
import { checkImages } from "./canvas.js";
import { PATTERN_SEED, TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const WANET_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.05),
  coverRate: rateParam(0.1, "fraction of the training set used as noise (cover) samples"),
  k: { type: "integer", default: 4, min: 2, max: 64, description: "control grid side" },
  strength: { type: "number", default: 0.5, min: 0, description: "warp strength s" },
  gridRescale: { type: "number", default: 1, above: 0, description: "scale applied to the warped grid" },
  patternSeed: PATTERN_SEED,
};

/** The warped sampling grid [H, W, 2] (x, y order, in [−1, 1]). */
export function warpGrid(
  height: number,
  width: number,
  k: number,
  strength: number,
  rescale: number,
  seed: number,
): Float32Array {
  const rng = Rng.derive(seed, 0x77617270); // "warp"
  const ins = Float32Array.from({ length: 2 * k * k }, () => rng.uniform(-1, 1));
  const meanAbs = ins.reduce((a, v) => a + Math.abs(v), 0) / ins.length;
  for (let i = 0; i < ins.length; i++) ins[i] = (ins[i] as number) / meanAbs;
  return tidy(() => {
    const field = F.interpolate(tensor(ins, { shape: [1, 2, k, k] }), [height, width], "bicubic", true).permute([
      0, 2, 3, 1,
    ]);
    const identity = identityGrid(height, width);
    const scale = tensor(Float32Array.from([strength / width, strength / height]), { shape: [1, 1, 1, 2] });
    return identity.add(field.mul(scale)).mul(rescale).clamp(-1, 1).contiguous().data() as Float32Array;
  });
}

/** The grid that samples every pixel at its own position (align_corners = true), [1, H, W, 2]. */
function identityGrid(height: number, width: number): Tensor {
  const g = new Float32Array(height * width * 2);
  const at = (i: number, n: number) => (n === 1 ? 0 : -1 + (2 * i) / (n - 1));
  for (let r = 0; r < height; r++) {
    for (let c = 0; c < width; c++) {
      g[(r * width + c) * 2] = at(c, width);
      g[(r * width + c) * 2 + 1] = at(r, height);
    }
  }
  return tensor(g, { shape: [1, height, width, 2] });
}

export class WaNet extends BaseAttack {
  readonly grid: Float32Array;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "wanet",
        description: "smooth image warp (k=4 control grid, s=0.5); noise cover samples keep their label",
        kind: "warping",
        targeting: "all-to-one",
      },
      params,
      spec,
    );
    const p = (n: string) => numberParam(params, n);
    this.grid = warpGrid(spec.height, spec.width, p("k"), p("strength"), p("gridRescale"), p("patternSeed"));
  }

  private warp(x: Tensor, jitter?: Float32Array): Tensor {
    const { height: h, width: w } = this.spec;
    return tidy(() => {
      const n = x.dim(0);
      let grid = tensor(this.grid, { shape: [1, h, w, 2] }).expand([n, h, w, 2]);
      if (jitter) grid = grid.add(tensor(jitter, { shape: [n, h, w, 2] })).clamp(-1, 1);
      return F.gridSample(x, grid.contiguous(), { mode: "bilinear", paddingMode: "zeros", alignCorners: true }).clamp(
        0,
        1,
      );
    });
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    return this.warp(x);
  }

  /** The warp plus per-pixel grid jitter U(−1, 1)/size on each axis (the paper's noise mode). */
  protected override coverImages(x: Tensor, { rng }: AlterStep): Tensor {
    const { height: h, width: w } = this.spec;
    const n = x.dim(0);
    const jitter = new Float32Array(n * h * w * 2);
    for (let i = 0; i < jitter.length; i += 2) {
      jitter[i] = rng.uniform(-1, 1) / w;
      jitter[i + 1] = rng.uniform(-1, 1) / h;
    }
    return this.warp(x, jitter);
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return this.planWithCovers(train, rng);
  }
}
