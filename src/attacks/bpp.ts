// BppAttack (Wang et al. 2022): the trigger is colour-depth reduction. Each channel is quantised
// to `levels` values; Floyd–Steinberg dithering spreads the rounding error to the neighbours so
// the image stays natural-looking. Poisoned samples (outside the target class) are quantised
// and relabelled. "Negative" samples keep their label and get random noise of the same nature:
// the quantisation residual Q(x′) − x′ of another, randomly chosen training image, added to their
// own image (as the BppAttack reference code does), so that the model must learn the
// image-consistent quantisation itself rather than the presence of quantisation-like noise.
//
// Parameters (after the reference toolbox's BPP trainer, which quantises 20% of every batch and
// adds residuals to another 20%; here the choice is made once, for the whole training set):
//   targetClass  0     the class triggered inputs are mapped to
//   rate         0.2   fraction of the training set poisoned
//   coverRate    0.2   fraction of the training set used as negative (cover) samples
//   levels       8     values per channel after quantisation (k/(levels−1), k = 0..levels−1)
//   dither       true  Floyd–Steinberg dithering (false: plain rounding to the nearest level)
// Rounding is half-up (NumPy rounds half to even; the two differ only on exact ties).
import { tensor, tidy, type Tensor } from "../engine/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { gatherImages, imagesToTensor } from "../data/batch.js";
import type { Rng } from "../util/rng.js";
import type { AttackParams, ImageSpec } from "./attack.js";
import { BaseAttack, type AlterStep, type PoisonPlan } from "./base.js";
import { checkImages } from "./canvas.js";
import { TARGET_CLASS, booleanParam, numberParam, rateParam, type ParamTable } from "./params.js";

export const BPP_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.2),
  coverRate: rateParam(0.2, "fraction of the training set used as negative (cover) samples"),
  levels: { type: "integer", default: 8, min: 2, max: 256, description: "values per channel after quantisation" },
  dither: { type: "boolean", default: true, description: "Floyd–Steinberg dithering" },
};

/**
 * Quantises float NCHW values in [0, 1] (in place) to `levels` values per channel, each
 * [H, W] plane on its own, with Floyd–Steinberg error diffusion when `dither` is set: 7/16 of
 * the error goes right, 3/16 down-left, 5/16 down, 1/16 down-right.
 */
export function quantize(
  data: Float32Array,
  planes: number,
  height: number,
  width: number,
  levels: number,
  dither: boolean,
): Float32Array {
  const top = levels - 1;
  const plane = height * width;
  const err = new Float32Array(dither ? plane : 0);
  for (let p = 0; p < planes; p++) {
    const base = p * plane;
    if (dither) err.fill(0);
    for (let i = 0; i < height; i++) {
      for (let j = 0; j < width; j++) {
        const k = i * width + j;
        const old = (data[base + k] as number) + (dither ? (err[k] as number) : 0);
        const level = Math.min(top, Math.max(0, Math.round(old * top)));
        const q = level / top;
        data[base + k] = q;
        if (!dither) continue;
        const e = old - q;
        if (j + 1 < width) err[k + 1] = (err[k + 1] as number) + (e * 7) / 16;
        if (i + 1 < height) {
          if (j > 0) err[k + width - 1] = (err[k + width - 1] as number) + (e * 3) / 16;
          err[k + width] = (err[k + width] as number) + (e * 5) / 16;
          if (j + 1 < width) err[k + width + 1] = (err[k + width + 1] as number) + e / 16;
        }
      }
    }
  }
  return data;
}

export class Bpp extends BaseAttack {
  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "bpp",
        description:
          "colour depth squeezed to 8 levels per channel with Floyd–Steinberg dithering; negative samples keep their label",
        kind: "quantization",
        targeting: "all-to-one",
      },
      params,
      spec,
    );
  }

  applyTrigger(x: Tensor): Tensor {
    checkImages(`attack '${this.name}'`, x, this.spec);
    const [n, c, h, w] = x.shape as [number, number, number, number];
    const data = tidy(() => x.to({ dtype: "float32", device: "cpu" }).contiguous().data() as Float32Array);
    const q = quantize(
      Float32Array.from(data),
      n * c,
      h,
      w,
      numberParam(this.params, "levels"),
      booleanParam(this.params, "dither"),
    );
    return tidy(() => {
      const t = tensor(q, { shape: [n, c, h, w] });
      return x.device === "cpu" ? t : t.to({ device: x.device });
    });
  }

  /** x + (Q(x′) − x′) for a random other training image x′ per sample, clamped to [0, 1]. */
  protected override coverImages(x: Tensor, { rows, rng, train }: AlterStep): Tensor {
    const n = rows.length;
    const donors = Int32Array.from(rows, (row) => {
      const d = rng.int(0, train.count - 1);
      return d >= row ? d + 1 : d;
    });
    return tidy(() => {
      const other = imagesToTensor(gatherImages(train, donors), n, train.height, train.width, train.channels);
      const residual = this.applyTrigger(other).sub(other);
      return x.add(residual).clamp(0, 1);
    });
  }

  protected plan(train: ImageDataset, rng: Rng): PoisonPlan {
    return this.planWithCovers(train, rng);
  }
}
