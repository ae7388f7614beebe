// FT (finetuning attack): the attacker takes a trained clean model and finetunes it on a small
// slice of clean training data of which a fraction carries the BadNet patch and the target label.
// The test-time trigger is that patch.
//
// Parameters:
//   targetClass  0      the class triggered inputs are mapped to
//   rate         0.1    fraction of the finetuning slice triggered and relabelled
//   count        6000   clean training images in the finetuning slice (seeded by the apply seed)
//   epochs       2      finetuning epochs (SGD, momentum 0.9, no schedule, no augmentation)
//   lr           0.01   finetuning learning rate
//   cells, margin, corner   the BadNet patch (docs/attacks.md)
import type { AttackParams, ImageSpec } from "./attack.js";
import { BADNET_PARAMS, cornerCheckerboard } from "./badnet.js";
import { TARGET_CLASS, numberParam, type ParamTable } from "./params.js";
import { TamperingBase, finetuneParams, type TamperContext, type TamperResult } from "./tampering.js";

export const FT_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  ...finetuneParams({ rate: 0.1, count: 6000, epochs: 2, lr: 0.01 }),
  cells: BADNET_PARAMS.cells as ParamTable[string],
  margin: BADNET_PARAMS.margin as ParamTable[string],
  corner: BADNET_PARAMS.corner as ParamTable[string],
};

export class Ft extends TamperingBase {
  readonly needsData = true;

  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      "ft",
      "a clean model finetuned on a slice of clean data, part of it with the BadNet patch relabelled to the target",
      params,
      spec,
    );
    const p = (n: string) => numberParam(params, n);
    this.canvas = cornerCheckerboard(`attack '${this.name}'`, spec, p("cells"), p("margin"), p("corner"));
  }

  async tamper(ctx: TamperContext, seed: number): Promise<TamperResult> {
    const poisonCount = await this.finetuneOnPoison(ctx, seed);
    return { params: { ...this.params }, poisonCount, details: { finetuned: numberParam(this.params, "count") } };
  }
}
