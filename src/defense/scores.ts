// BaDExpert's score rules. For an input x with M's prediction ŷ: b = softmax(B(x))[ŷ] (the
// backdoor expert's confidence) and a = softmax(M'(x))[ŷ] (the auxiliary model's). Backdoor
// inputs have high b (the expert kept the backdoor) and low a (finetuning weakened it).
// Higher score = more suspicious.
//
// Where a rule reads 1 − b it takes it as its own argument, c: the sum of B's probabilities of
// the other classes. In float32, b rounds to exactly 1 once 1 − b < 6e-8, and a very confident
// expert gets there on most backdoored inputs (and on a few clean ones); 1 − b computed from it
// is then 0 for all of them, they tie at the rule's ceiling and no threshold can tell them apart.
// c keeps its precision down to float32's smallest numbers. `single` (b alone) is 1 − c in
// float64 for the same reason: the same value as b where float32 can tell, and ranked by c where
// b rounds to 1.

export const SCORE_RULES = ["triangle", "triangle-vgg", "triangle-mobilenet", "single", "rectangle", "angle"] as const;
export type ScoreRule = (typeof SCORE_RULES)[number];

export const SCORE_RULE_DESCRIPTIONS: Record<ScoreRule, string> = {
  triangle: "ensemble (default): -min(2a / max(b, 1e-8), c / max(0.5 - a, 1e-8)), c = 1 - b",
  "triangle-vgg": "ensemble variant the authors used for VGG16: -min(2.5a / b, c / (0.4 - a))",
  "triangle-mobilenet": "ensemble variant the authors used for MobileNetV2: -min(5a / b, c / (0.2 - a))",
  single: "backdoor expert alone: b (as 1 - c in float64)",
  rectangle: "-min(a, c)",
  angle: "-a / b",
};

/**
 * The highest score each rule can give: a and b are probabilities, so the triangle, rectangle
 * and angle rules are never above 0 and `single` (b) never above 1. Calibration needs it: an
 * input scored at the ceiling can never be strictly above a threshold placed there.
 */
export const SCORE_CEILING: Record<ScoreRule, number> = {
  triangle: 0,
  "triangle-vgg": 0,
  "triangle-mobilenet": 0,
  single: 1,
  rectangle: 0,
  angle: 0,
};

/** Denominators are kept at least this far from 0. */
const EPS = 1e-8;

/**
 * The lowest score each rule can give. With a, b, c in [0, 1]: the triangle rules' min() is at
 * most c / max(apex - a, EPS) <= 1 / EPS, the angle rule's a / max(b, EPS) at most 1 / EPS, the
 * rectangle's min(a, c) at most 1, and `single` (1 - c) is at least 0. A bundle's threshold below
 * its rule's floor, or at or above its ceiling, is one no calibration could have produced.
 */
export const SCORE_FLOOR: Record<ScoreRule, number> = {
  triangle: -1 / EPS,
  "triangle-vgg": -1 / EPS,
  "triangle-mobilenet": -1 / EPS,
  single: 0,
  rectangle: -1,
  angle: -1 / EPS,
};

/** The triangle family: the decision boundary is a triangle in the (b, a) plane with corner (1, 0). */
function triangle(a: number, b: number, c: number, slope: number, apex: number): number {
  return -Math.min((slope * a) / Math.max(b, EPS), c / Math.max(apex - a, EPS));
}

/** c: 1 − b, the expert's probability of the other classes (pass it where it was computed as their sum). */
export function scoreOf(rule: ScoreRule, a: number, b: number, c = 1 - b): number {
  switch (rule) {
    case "triangle":
      return triangle(a, b, c, 2, 0.5);
    case "triangle-vgg":
      return triangle(a, b, c, 2.5, 0.4);
    case "triangle-mobilenet":
      return triangle(a, b, c, 5, 0.2);
    case "single":
      return 1 - c;
    case "rectangle":
      return -Math.min(a, c);
    case "angle":
      return -a / Math.max(b, EPS);
  }
}

export function assertScoreRule(x: string, what = "rule"): ScoreRule {
  if (!(SCORE_RULES as readonly string[]).includes(x)) {
    throw new RangeError(`${what}: unknown score rule '${x}'; valid: ${SCORE_RULES.join(", ")}`);
  }
  return x as ScoreRule;
}

export function scoreAll(
  rule: ScoreRule,
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c: ArrayLike<number>,
): Float64Array {
  if (a.length !== b.length || c.length !== b.length)
    throw new RangeError(
      `scoreAll: ${a.length} auxiliary confidences, ${b.length} expert confidences and ${c.length} complements`,
    );
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = scoreOf(rule, a[i] as number, b[i] as number, c[i] as number);
  return out;
}
