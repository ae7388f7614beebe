// The score rules of src/defense/scores.ts as ONNX nodes, and the fail-closed verdict. The score
// is computed in float64 from the float32 confidences, as scoreOf() does in JavaScript, so the
// same a, b and c give the same score bit for bit.
import type { ScoreRule } from "../defense/scores.js";
import type { GraphBuilder } from "./graph-builder.js";
import { DataType } from "./onnx-proto.js";

const EPS = 1e-8;

function triangle(g: GraphBuilder, a: string, b: string, c: string, slope: number, apex: number): string {
  const d = (v: number): string => g.constDouble([v], []);
  // -min(slope*a / max(b, eps), c / max(apex - a, eps))
  const left = g.op("Div", [g.op("Mul", [d(slope), a]), g.op("Max", [b, d(EPS)])]);
  const right = g.op("Div", [c, g.op("Max", [g.op("Sub", [d(apex), a]), d(EPS)])]);
  return g.op("Neg", [g.op("Min", [left, right])]);
}

function formula(g: GraphBuilder, rule: ScoreRule, a: string, b: string, c: string): string {
  switch (rule) {
    case "triangle":
      return triangle(g, a, b, c, 2, 0.5);
    case "triangle-vgg":
      return triangle(g, a, b, c, 2.5, 0.4);
    case "triangle-mobilenet":
      return triangle(g, a, b, c, 5, 0.2);
    case "single":
      return g.op("Sub", [g.constDouble([1], []), c]);
    case "rectangle":
      return g.op("Neg", [g.op("Min", [a, c])]);
    case "angle":
      return g.op("Neg", [g.op("Div", [a, g.op("Max", [b, g.constDouble([EPS], [])])])]);
  }
}

/**
 * score (float64 [N]) from a = auxiliary and b = expert confidences and c = 1 − b (float32 [N]).
 * Where a value the rule reads is NaN the score is NaN, as in JavaScript (ONNX Min/Max need not
 * propagate NaN, so it is set explicitly).
 */
export function scoreGraph(g: GraphBuilder, rule: ScoreRule, a32: string, b32: string, c32: string): string {
  const [a, b, c] = [a32, b32, c32].map((v) => g.op("Cast", [v], { to: DataType.DOUBLE })) as [string, string, string];
  const raw = formula(g, rule, a, b, c);
  const nan = (...vs: string[]): string => vs.map((v) => g.op("IsNaN", [v])).reduce((x, y) => g.op("Or", [x, y]));
  const bad = rule === "single" ? nan(b, c) : nan(a, b, c);
  return g.op("Where", [bad, g.constDouble([Number.NaN], []), raw]);
}

/**
 * flagged = NOT(score <= threshold): a NaN score, or a NaN threshold, flags the input (fail
 * closed) where `score > threshold` would let it pass.
 */
export function verdictGraph(g: GraphBuilder, score: string, threshold: string): string {
  return g.op("Not", [g.op("LessOrEqual", [score, threshold])]);
}
