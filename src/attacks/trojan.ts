// Trojan (Liu et al. 2018, as the reference toolbox uses it): an 8x8 watermark-like square pasted
// at full opacity under its mask near the bottom-right corner (pixels 21–28 of a 32x32 image).
// The watermark is generated (concentric rings, every other ring transparent); see patterns.ts.
// Poisoned samples, drawn from the classes other than the target, are relabelled to the target.
//
// Parameters:
//   targetClass  0      the class triggered inputs are mapped to
//   rate         0.003  fraction of the training set poisoned
//   margin       3      distance of the square from the bottom and right edges, in cells
// One cell is one pixel up to 32-pixel images and grows with the image (64x64: a 16x16 square).
import type { AttackParams, ImageSpec } from "./attack.js";
import { PatchAttack } from "./patch-attack.js";
import { TriggerCanvas, triggerScale } from "./canvas.js";
import { watermarkCell } from "./patterns.js";
import { TARGET_CLASS, numberParam, rateParam, type ParamTable } from "./params.js";

export const TROJAN_PARAMS: ParamTable = {
  targetClass: TARGET_CLASS,
  rate: rateParam(0.003),
  margin: {
    type: "integer",
    default: 3,
    min: 0,
    max: 16,
    description: "distance from the bottom-right corner, in cells",
  },
};

/** The 8x8-cell watermark, `margin` cells in from the bottom and right edges. */
export function watermarkCanvas(what: string, spec: ImageSpec, margin: number): TriggerCanvas {
  const canvas = new TriggerCanvas(spec);
  const s = triggerScale(spec.height, spec.width);
  canvas.drawCells(
    what,
    spec.height - (8 + margin) * s,
    spec.width - (8 + margin) * s,
    8,
    8,
    s,
    watermarkCell(spec.channels),
  );
  return canvas;
}

export class Trojan extends PatchAttack {
  constructor(params: AttackParams, spec: ImageSpec) {
    super(
      {
        name: "trojan",
        description: "8x8 watermark square near the bottom-right corner; poisoned samples relabelled to the target",
        kind: "dirty-label",
        targeting: "all-to-one",
      },
      params,
      spec,
      (what) => watermarkCanvas(what, spec, numberParam(params, "margin")),
    );
  }
}
