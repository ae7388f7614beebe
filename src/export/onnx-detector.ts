// The detector on onnxruntime: the exported graph scores images with the same interface as
// BadExpertDetector (pred, b, a, score, flagged), for `scan --engine onnxruntime` and services.
import { emptyScores, putScores, type BatchScores, type BadExpertDetector } from "../defense/detector.js";
import type { ScoreRule } from "../defense/scores.js";
import { assertScoreRule } from "../defense/scores.js";
import type { ImageDataset } from "../data/dataset.js";
import type { Preprocessing } from "../train/checkpoint.js";
import { Progress } from "../util/progress.js";
import { readRegularFile } from "../util/read-regular-file.js";
import { DETECTOR_OUTPUTS, INPUT_NAME, detectorGraph } from "./detector-graph.js";
import { decodeModel, encodeModel } from "./onnx-proto.js";
import { floatTensor, openSession, type OrtSession, type SessionOptions } from "./onnx-runtime.js";

export interface OnnxDetectorInfo {
  architecture: string;
  preprocessing: Preprocessing;
  classNames: string[];
  rule: ScoreRule;
  threshold: number;
}

/** uint8 NHWC images [start, start + count) of a dataset → float32 NCHW in [0, 1]. */
export function imagesToFloat(ds: ImageDataset, start: number, count: number): Float32Array {
  const { height: h, width: w, channels: c } = ds;
  const plane = h * w;
  const out = new Float32Array(count * c * plane);
  const src = ds.images;
  for (let n = 0; n < count; n++) {
    const base = (start + n) * plane * c;
    const dst = n * c * plane;
    for (let p = 0; p < plane; p++) {
      for (let k = 0; k < c; k++) out[dst + k * plane + p] = (src[base + p * c + k] as number) / 255;
    }
  }
  return out;
}

function parseInfo(meta: Map<string, string>, where: string): OnnxDetectorInfo {
  const get = (k: string): string => {
    const v = meta.get(`badexpert.${k}`);
    if (v === undefined)
      throw new Error(
        `${where}: metadata badexpert.${k} is missing (was this file written by \`badexpert export --format onnx\` without --model-only?)`,
      );
    return v;
  };
  if (get("kind") !== "detector") throw new Error(`${where}: is a ${get("kind")} export, not a detector`);
  const p: Partial<Preprocessing> = JSON.parse(get("preprocessing"));
  const classNames: unknown = JSON.parse(get("classNames"));
  const numbers = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === "number");
  if (
    !numbers(p.imageSize) ||
    p.imageSize.length !== 2 ||
    typeof p.channels !== "number" ||
    !numbers(p.mean) ||
    !numbers(p.std)
  ) {
    throw new Error(
      `${where}: metadata badexpert.preprocessing must hold imageSize [h, w], channels, mean and std, got ${get("preprocessing")}`,
    );
  }
  if (!Array.isArray(classNames) || !classNames.every((x) => typeof x === "string"))
    throw new Error(`${where}: metadata badexpert.classNames must be a list of strings`);
  const preprocessing: Preprocessing = {
    imageSize: [p.imageSize[0] as number, p.imageSize[1] as number],
    channels: p.channels,
    mean: p.mean,
    std: p.std,
  };
  // "Infinity" and "NaN" are written as such; Number() reads them back.
  return {
    architecture: get("architecture"),
    preprocessing,
    classNames,
    rule: assertScoreRule(get("rule"), `${where}: rule`),
    threshold: Number(get("threshold")),
  };
}

/** The largest ONNX file opened: protobuf's 2 GiB message limit. */
const MAX_ONNX_BYTES = 2 ** 31;

export class OnnxDetector {
  readonly info: OnnxDetectorInfo;
  readonly #session: OrtSession;

  private constructor(session: OrtSession, info: OnnxDetectorInfo) {
    this.#session = session;
    this.info = info;
  }

  /** Exports a loaded detector in memory and opens it (the libtorch detector can be disposed after). */
  static async fromDetector(det: BadExpertDetector, o: SessionOptions = {}): Promise<OnnxDetector> {
    const bytes = encodeModel(detectorGraph(det));
    const { spec, preprocessing, classNames, rule, threshold } = det.info;
    return new OnnxDetector(await openSession(bytes, o), {
      architecture: spec.name,
      preprocessing,
      classNames,
      rule,
      threshold,
    });
  }

  /** Opens a file written by `badexpert export --format onnx`. */
  static async open(path: string, o: SessionOptions = {}): Promise<OnnxDetector> {
    const bytes = new Uint8Array(await readRegularFile(path, { maxBytes: MAX_ONNX_BYTES, what: "ONNX model" }));
    const model = decodeModel(bytes);
    const info = parseInfo(new Map(model.metadata_props.map((e) => [e.key, e.value])), path);
    return new OnnxDetector(await openSession(bytes, o), info);
  }

  get rule(): ScoreRule {
    return this.info.rule;
  }

  get threshold(): number {
    return this.info.threshold;
  }

  /** Scores n images: float32 [n, C, H, W] in [0, 1] (not normalised). */
  async scoreBatch(images: Float32Array, n: number): Promise<BatchScores> {
    const {
      imageSize: [h, w],
      channels: c,
    } = this.info.preprocessing;
    if (!Number.isInteger(n) || n < 1 || images.length !== n * c * h * w) {
      throw new RangeError(
        `scoreBatch: images hold ${images.length} values, expected n * C * H * W = ${n} * ${c} * ${h} * ${w}`,
      );
    }
    // Files of export format 1 have no expert_complement; their score was computed from 1 − b.
    const wanted = DETECTOR_OUTPUTS.filter((k) => this.#session.outputNames.includes(k));
    const r = await this.#session.run({ [INPUT_NAME]: floatTensor(images, [n, c, h, w]) }, wanted);
    const data = (k: (typeof DETECTOR_OUTPUTS)[number]) => {
      const t = r[k];
      if (t === undefined) throw new Error(`onnxruntime engine: output ${k} is missing`);
      return t.data;
    };
    const pred = data("pred");
    const b = data("expert_confidence");
    const rest = wanted.includes("expert_complement")
      ? data("expert_complement")
      : b instanceof Float32Array
        ? b.map((v) => 1 - v)
        : null;
    const a = data("auxiliary_confidence");
    const score = data("score");
    const flagged = data("flagged");
    if (!(
      pred instanceof BigInt64Array &&
      b instanceof Float32Array &&
      rest instanceof Float32Array &&
      a instanceof Float32Array &&
      score instanceof Float64Array &&
      flagged instanceof Uint8Array
    )) {
      throw new TypeError(
        "onnxruntime engine: outputs are not int64 pred, float32 confidences, float64 score and bool flagged",
      );
    }
    // Like the libtorch detector: a score that is not a finite number is invalid (and flagged by the graph).
    const invalid = Uint8Array.from(score, (s) => (Number.isFinite(s) ? 0 : 1));
    return {
      pred: Int32Array.from(pred, (v) => Number(v)),
      expertConfidence: b,
      expertComplement: rest,
      auxiliaryConfidence: a,
      score,
      flagged,
      invalid,
    };
  }

  /** Scores every image of a dataset, batch by batch (default 256). */
  async scoreDataset(ds: ImageDataset, o: { batchSize?: number; progressLabel?: string } = {}): Promise<BatchScores> {
    const {
      imageSize: [h, w],
      channels: c,
    } = this.info.preprocessing;
    if (ds.height !== h || ds.width !== w || ds.channels !== c) {
      throw new RangeError(
        `${ds.name}: images are ${ds.height}x${ds.width}x${ds.channels} but the detector's model takes ${h}x${w}x${c}`,
      );
    }
    const n = ds.count;
    const out = emptyScores(n);
    const size = o.batchSize ?? 256;
    const bar = o.progressLabel ? new Progress(o.progressLabel, n) : null;
    for (let at = 0; at < n; at += size) {
      const count = Math.min(size, n - at);
      putScores(out, await this.scoreBatch(imagesToFloat(ds, at, count), count), at);
      bar?.tick(count);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.#session.release();
  }
}
