// BadNet (Gu et al. 2017): a black/white checkerboard patch in the bottom-right corner, pasted at
// full opacity; poisoned samples (drawn from the classes other than the target) are relabelled
// to the target class.
//
// Parameters (defaults after the reference settings, docs/attacks.md):
//   targetClass  0      the class triggered inputs are mapped to (GTSRB: 2)
//   rate         0.003  fraction of the training set poisoned (GTSRB: 0.01)
//   cells        3      the patch is cells×cells squares
//   margin       1      distance of the patch from the two nearest edges, in cells
//   corner       0      which corner: 0 bottom-right (the reference), 1 bottom-left, 2 top-right,
//                       3 top-left
// One cell is one pixel up to 32-pixel images and grows with the image (64x64: 2 pixels), so the
// patch covers the same share of any image. Test-time trigger: the same patch.
import type { AttackParams, ImageSpec } from "./attack.js";
import type { AttackInfo } from "./base.js";
import { PatchAttack } from "./patch-attack.js";
import { TriggerCanvas, triggerScale } from "./canvas.js";
import { checkerboardCell } from "./patterns.js";
import { TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const BADNET_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003),
  cells: { type: "integer", default: 3, min: 1, max: 16, description: "checkerboard side, in cells" },
  margin: {
    type: "integer",
    default: 1,
    min: 0,
    max: 16,
    description: "distance from the corner's two edges, in cells",
  },
  corner: {
    type: "integer",
    default: 0,
    min: 0,
    max: 3,
    description: "0 bottom-right, 1 bottom-left, 2 top-right, 3 top-left",
  },
};

/**
 * The checkerboard patch in one corner (0 bottom-right, 1 bottom-left, 2 top-right, 3 top-left),
 * `margin` cells in from both edges; a cell is `s` pixels (default: grows with the image).
 */
export function cornerCheckerboard(
  what: string,
  spec: ImageSpec,
  cells: number,
  margin: number,
  corner = 0,
  s = triggerScale(spec.height, spec.width),
): TriggerCanvas {
  const canvas = new TriggerCanvas(spec);
  const side = cells * s;
  const top = corner >= 2 ? margin * s : spec.height - side - margin * s;
  const left = corner % 2 === 1 ? margin * s : spec.width - side - margin * s;
  canvas.drawCells(what, top, left, cells, cells, s, checkerboardCell(spec.channels));
  return canvas;
}

export class BadNet extends PatchAttack {
  constructor(params: AttackParams, spec: ImageSpec, info?: AttackInfo) {
    super(
      info ?? {
        name: "badnet",
        description: "3x3 checkerboard patch in the bottom-right corner; poisoned samples relabelled to the target",
        kind: "dirty-label",
        targeting: "all-to-one",
      },
      params,
      spec,
      (what) =>
        cornerCheckerboard(
          what,
          spec,
          numberParam(params, "cells"),
          numberParam(params, "margin"),
          numberParam(params, "corner"),
        ),
    );
  }
}
