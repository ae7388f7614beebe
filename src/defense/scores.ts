// BaDExpert's score rules. For an input x with M's prediction ŷ: b = softmax(B(x))[ŷ] (the
// backdoor expert's confidence) and a = softmax(M'(x))[ŷ] (the auxiliary model's). Backdoor
// inputs have high b (the expert kept the backdoor) and low a (finetuning weakened it).
// Higher score = more suspicious.

export const SCORE_RULES = ["triangle", "triangle-vgg", "triangle-mobilenet", "single", "rectangle", "angle"] as const;
export type ScoreRule = (typeof SCORE_RULES)[number];

export const SCORE_RULE_DESCRIPTIONS: Record<ScoreRule, string> = {
  triangle: "ensemble (default): -min(2a / max(b, 1e-8), (1 - b) / max(0.5 - a, 1e-8))",
  "triangle-vgg": "ensemble variant the authors used for VGG16: -min(2.5a / b, (1 - b) / (0.4 - a))",
  "triangle-mobilenet": "ensemble variant the authors used for MobileNetV2: -min(5a / b, (1 - b) / (0.2 - a))",
  single: "backdoor expert alone: b",
  rectangle: "-min(a, 1 - b)",
  angle: "-a / b",
};

const EPS = 1e-8;

/** The triangle family: the decision boundary is a triangle in the (b, a) plane with corner (1, 0). */
function triangle(a: number, b: number, slope: number, apex: number): number {
  return -Math.min((slope * a) / Math.max(b, EPS), (1 - b) / Math.max(apex - a, EPS));
}

export function scoreOf(rule: ScoreRule, a: number, b: number): number {
  switch (rule) {
    case "triangle":
      return triangle(a, b, 2, 0.5);
    case "triangle-vgg":
      return triangle(a, b, 2.5, 0.4);
    case "triangle-mobilenet":
      return triangle(a, b, 5, 0.2);
    case "single":
      return b;
    case "rectangle":
      return -Math.min(a, 1 - b);
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

export function scoreAll(rule: ScoreRule, a: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  if (a.length !== b.length) throw new RangeError(`scoreAll: ${a.length} auxiliary confidences but ${b.length} expert confidences`);
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = scoreOf(rule, a[i] as number, b[i] as number);
  return out;
}
