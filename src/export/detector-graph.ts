// The whole detector as one ONNX graph: images in [0, 1] → normalisation → M, B and M' → M's
// prediction, b and a → the score rule → the verdict against the threshold (an initializer).
// `modelGraph` writes M alone (normalisation included) for comparisons and plain serving.
import type { AnyModule } from "../nn/index.js";
import type { BadExpertDetector } from "../defense/detector.js";
import type { Preprocessing } from "../train/checkpoint.js";
import { GraphBuilder, type Value } from "./graph-builder.js";
import { exportModule } from "./module-export.js";
import { DataType, type ModelProto } from "./onnx-proto.js";
import { scoreGraph, verdictGraph } from "./score-graph.js";

/** Version of the graph's interface (names, types and meaning of inputs and outputs). */
export const EXPORT_FORMAT_VERSION = "2";

/** The dimension name of the batch: any size at run time. */
export const BATCH_DIM = "batch";

/** Graph input: float32 images in [0, 1], before normalisation. */
export const INPUT_NAME = "images";

/** Graph outputs of the detector, in order. */
export const DETECTOR_OUTPUTS = [
  "pred",
  "expert_confidence",
  "expert_complement",
  "auxiliary_confidence",
  "score",
  "flagged",
] as const;

/** Graph outputs of a model-only export, in order. */
export const MODEL_OUTPUTS = ["logits", "pred"] as const;

function imagesInput(g: GraphBuilder, p: Preprocessing): Value {
  const [h, w] = p.imageSize;
  const name = g.input({
    name: INPUT_NAME,
    type: DataType.FLOAT,
    dims: [BATCH_DIM, p.channels, h, w],
    doc: "float32 [N, C, H, W] images in [0, 1], before normalisation",
  });
  return { name, rank: 4, dims: [BATCH_DIM, p.channels, h, w] };
}

/** (x - mean) / std per channel, as data/augment.ts normalize(). */
function normalise(g: GraphBuilder, x: Value, p: Preprocessing): Value {
  const c = p.channels;
  if (p.mean.length !== c || p.std.length !== c) {
    throw new RangeError(
      `onnx export: preprocessing has ${c} channels but ${p.mean.length} mean and ${p.std.length} std values`,
    );
  }
  return g.scoped("normalise", () => {
    const centred = g.op("Sub", [x.name, g.constFloat(p.mean, [1, c, 1, 1])]);
    return {
      name: g.op("Div", [centred, g.constFloat(p.std, [1, c, 1, 1])]),
      rank: 4,
      ...(x.dims ? { dims: x.dims } : {}),
    };
  });
}

function network(g: GraphBuilder, m: AnyModule, x: Value, prefix: string): Value {
  const y = exportModule(g, m, x, prefix);
  if (y.rank !== 2)
    throw new RangeError(`onnx export: ${prefix} gives rank-${y.rank} outputs, expected [N, classes] logits`);
  return y;
}

/** softmax(logits) [N, classes]. */
function probabilities(g: GraphBuilder, logits: Value): string {
  return g.op("Softmax", [logits.name], { axis: 1 });
}

/** probs[i, pred[i]] as float32 [N]; pred is int64 [N, 1]. */
function confidence(g: GraphBuilder, probs: string, pred: string): string {
  return g.op("Squeeze", [g.op("GatherElements", [probs, pred], { axis: 1 }), g.constInt64([1])]);
}

/**
 * 1 − probs[i, pred[i]] as the sum of the other classes' probabilities, float32 [N], as the
 * libtorch detector computes it (src/defense/scores.ts says why). The zeros scattered over
 * pred's column are that column times 0, so a NaN there stays NaN.
 */
function complement(g: GraphBuilder, probs: string, pred: string): string {
  const zeros = g.op("Mul", [g.op("GatherElements", [probs, pred], { axis: 1 }), g.constFloat([0], [])]);
  const others = g.op("ScatterElements", [probs, pred, zeros], { axis: 1 });
  return g.op("ReduceSum", [others, g.constInt64([1])], { keepdims: 0 });
}

function metadata(p: Preprocessing, extra: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {
    "badexpert.format": EXPORT_FORMAT_VERSION,
    "badexpert.preprocessing": JSON.stringify(p),
  };
  for (const [k, v] of Object.entries(extra)) out[`badexpert.${k}`] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}

const batchOf = (type: (typeof DataType)[keyof typeof DataType], name: string, doc: string) => ({
  name,
  type,
  dims: [BATCH_DIM],
  doc,
});

export function detectorGraph(det: BadExpertDetector): ModelProto {
  const g = new GraphBuilder();
  const { preprocessing, rule, threshold, classNames, spec, targetFpr } = det.info;
  // As saveBundle: a graph with an uncalibrated (+Infinity) threshold would pass every input.
  if (!Number.isFinite(threshold)) {
    throw new RangeError(
      `export: the detector's threshold is ${threshold}, not a finite number: it was never calibrated or its calibration failed; refusing to export a detector that would pass inputs it cannot judge`,
    );
  }
  const xn = normalise(g, imagesInput(g, preprocessing), preprocessing);
  // Node and weight names start with the network's role ("model/...", "expert.layer1.0.conv1.weight").
  const logitsM = network(g, det.model, xn, "model");
  const logitsB = network(g, det.expert, xn, "expert");
  const logitsA = network(g, det.auxiliary, xn, "auxiliary");
  const pred = g.op("ArgMax", [logitsM.name], { axis: 1, keepdims: 1 });
  const [b, c] = g.scoped("expert", () => {
    const probs = probabilities(g, logitsB);
    return [confidence(g, probs, pred), complement(g, probs, pred)];
  });
  const a = g.scoped("auxiliary", () => confidence(g, probabilities(g, logitsA), pred));
  const score = g.scoped("score", () => scoreGraph(g, rule, a, b, c));
  // A float64 initializer: the bundle's threshold exactly, and easy to find and change.
  const thr = g.initializer("threshold", DataType.DOUBLE, [], Float64Array.of(threshold));
  const flagged = verdictGraph(g, score, thr);
  g.output(g.op("Squeeze", [pred, g.constInt64([1])]), batchOf(DataType.INT64, "pred", "M's predicted class"));
  g.output(
    b,
    batchOf(DataType.FLOAT, "expert_confidence", "b: the backdoor expert's softmax probability of M's class"),
  );
  g.output(
    c,
    batchOf(
      DataType.FLOAT,
      "expert_complement",
      "c = 1 - b, summed over the expert's other classes (exact where b rounds to 1)",
    ),
  );
  g.output(
    a,
    batchOf(DataType.FLOAT, "auxiliary_confidence", "a: the auxiliary model's softmax probability of M's class"),
  );
  g.output(score, batchOf(DataType.DOUBLE, "score", `score rule ${rule}; higher is more suspicious`));
  g.output(
    flagged,
    batchOf(
      DataType.BOOL,
      "flagged",
      "true where NOT(score <= threshold): suspected backdoor input (NaN scores are flagged)",
    ),
  );
  return g.build({
    graphName: `badexpert_${spec.name}`,
    doc: `BaDExpert detector (${spec.name}, rule ${rule}, threshold ${threshold}) exported by badexpert`,
    producerVersion: EXPORT_FORMAT_VERSION,
    metadata: metadata(preprocessing, {
      kind: "detector",
      architecture: spec.name,
      rule,
      threshold: String(threshold),
      targetFpr,
      classNames,
    }),
  });
}

export function modelGraph(
  model: AnyModule,
  o: { preprocessing: Preprocessing; architecture: string; classNames: string[] },
): ModelProto {
  const g = new GraphBuilder();
  const xn = normalise(g, imagesInput(g, o.preprocessing), o.preprocessing);
  const logits = network(g, model, xn, "model");
  const pred = g.op("ArgMax", [logits.name], { axis: 1, keepdims: 0 });
  g.output(logits.name, {
    name: "logits",
    type: DataType.FLOAT,
    dims: [BATCH_DIM, o.classNames.length],
    doc: "M's logits",
  });
  g.output(pred, batchOf(DataType.INT64, "pred", "M's predicted class"));
  return g.build({
    graphName: `badexpert_${o.architecture}_model`,
    doc: `Suspicious model M (${o.architecture}) exported by badexpert, normalisation included`,
    producerVersion: EXPORT_FORMAT_VERSION,
    metadata: metadata(o.preprocessing, { kind: "model", architecture: o.architecture, classNames: o.classNames }),
  });
}
