// `badexpert scan`: score inputs with a detector bundle — one JSON line per input on stdout,
// then a summary line. Inputs are image files or a dataset split. Both stream: files are read,
// decoded and scored a batch at a time and each batch's lines are printed before the next is
// read, so memory is bounded by the batch, not by the number of inputs. An input that cannot be
// read, decoded or given a finite score is its own error line (never a clean verdict), the scan
// goes on, and the exit status is 1. Every kind of detector bundle is scanned the same way: the
// library's Detector (its one scoring loop, on a scoring worker thread).
import type { Command, OptionSpec } from "../command.js";
import { UsageError } from "../command.js";
import { COUNT, choiceWithDefault, num, requireStr, str, type Values } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { BATCH, Detector, type DecodedImage, type Detection, type Outcome } from "../../api/detector.js";
import { FRAME_POLICIES } from "../../data/image-decode.js";
import { bundleKind } from "../../detectors/open.js";
import { detectorInfo } from "../../detectors/registry.js";
import { checkScoringDevice } from "../../jobs/device.js";
import { requireDataPath } from "../../jobs/data-path.js";
import { datasetNames, loadDataset } from "../../data/registry.js";
import { subset } from "../../data/splits.js";
import { returnLargeBuffersToTheOs } from "../../engine/index.js";
import { Progress } from "../../util/progress.js";
import { PUBLIC_KEY_FILE, VERIFY_KEY_ENV } from "../../defense/signature.js";

/** Inputs decoded and scored at a time: the bound on scan's memory. */
export const SCAN_BATCH = BATCH;

const OPTIONS: Record<string, OptionSpec> = {
  bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`, BaDExpert's or a baseline's with --detector)" },
  dataset: { type: "string", short: "d", description: "score a dataset split instead of files", value: { kind: "choice", values: datasetNames() } },
  "data-path": { type: "string", description: "dataset location" },
  split: { type: "string", description: "train or test", default: "test", value: { kind: "choice", values: ["train", "test"] } },
  limit: { type: "string", description: "score only the first N inputs of the dataset", value: COUNT },
  "flagged-only": { type: "boolean", description: "print lines only for flagged inputs (and errors)" },
  frames: {
    type: "string",
    description: `images of several frames (animated GIF/WebP/PNG, multi-page TIFF): refuse (an error line) or all (score every frame, at most ${SCAN_BATCH}; flagged when any frame is)`,
    default: "refuse",
    value: { kind: "choice", values: [...FRAME_POLICIES] },
  },
  "verify-key": { type: "string", description: `Ed25519 public key (PEM): refuse the bundle unless it is signed by its private key (default: $${VERIFY_KEY_ENV}, then ~/.config/badexpert/${PUBLIC_KEY_FILE} if present, which verify a signed bundle)` },
  "require-signature": { type: "boolean", description: "refuse a bundle that is not signed, or whose signature cannot be verified for want of a key" },
  engine: {
    type: "string",
    description: "libtorch, or onnxruntime (the exported graph on onnxruntime-node)",
    default: "libtorch",
    value: { kind: "choice", values: ["libtorch", "onnxruntime"] },
  },
  ...RUNTIME_OPTIONS,
};

interface Tally {
  inputs: number;
  scored: number;
  failed: number;
  flagged: number;
}

/** Waits when stdout's buffer is full, so a slow reader cannot make lines pile up in memory. */
async function drained(): Promise<void> {
  if (process.stdout.writableNeedDrain) await new Promise<void>((resolve) => process.stdout.once("drain", resolve));
}

function emitError(input: string, error: string, tally: Tally, code?: string): void {
  tally.failed++;
  console.log(JSON.stringify({ input, error, ...(code ? { code } : {}) }));
}

/** Prints one input's outcome; a score that is not a finite number is an error line, never clean. */
function emit(v: Values, r: Outcome, label: number | undefined, tally: Tally): void {
  tally.inputs++;
  if (!r.ok) {
    emitError(r.input, r.error, tally, r.code);
    return;
  }
  const d: Detection = r.detection;
  const f = d.frames !== undefined ? { frames: d.frames, frame: d.frame } : null;
  if (!Number.isFinite(d.score)) {
    emitError(r.input, `${f ? `frame ${f.frame ?? 0} of ${f.frames}: ` : ""}no valid score (${String(d.score)}): the detector cannot judge this input`, tally);
    return;
  }
  tally.scored++;
  if (d.flagged) tally.flagged++;
  if (v["flagged-only"] && !d.flagged) return;
  console.log(JSON.stringify({
    input: r.input,
    pred: d.pred,
    predClass: d.predClass,
    ...(d.expertConfidence !== undefined ? { expertConfidence: d.expertConfidence } : {}),
    ...(d.auxiliaryConfidence !== undefined ? { auxiliaryConfidence: d.auxiliaryConfidence } : {}),
    score: d.score,
    flagged: d.flagged,
    ...(f ? f : {}),
    ...(label !== undefined && label !== -1 ? { label } : {}),
  }));
}

/** A dataset split's images as decoded inputs (they must have the model's size and channel count), named NAME/SPLIT/i. */
async function* datasetImages(v: Values, det: Detector, datasetName: string, labels: (l: Int32Array) => void, total: (n: number) => void): AsyncGenerator<DecodedImage> {
  const path = str(v, "data-path");
  const split = choiceWithDefault(v, "split", ["train", "test"] as const, OPTIONS);
  const limit = num(v, "limit", OPTIONS);
  requireDataPath(datasetName, path);
  const full = await loadDataset(datasetName, { split, ...(path ? { path } : {}) });
  const { imageSize: [h, w], channels } = det.summary;
  if (full.height !== h || full.width !== w || full.channels !== channels) {
    throw new RangeError(`--dataset ${datasetName}: images are ${full.height}x${full.width}x${full.channels} but the detector's model takes ${h}x${w}x${channels}`);
  }
  const ds = limit !== undefined && limit < full.count ? subset(full, Int32Array.from({ length: limit }, (_, i) => i)) : full;
  labels(ds.labels);
  total(ds.count);
  const per = h * w * channels;
  for (let i = 0; i < ds.count; i++) yield { pixels: ds.images.subarray(i * per, (i + 1) * per), name: `${datasetName}/${split}/${i}` };
}

export const scan: Command = {
  name: "scan",
  summary: "score inputs with a detector bundle and flag suspected backdoor inputs",
  details: [
    "Prints one JSON line per input ({input, pred, predClass, expertConfidence, auxiliaryConfidence, score, flagged};",
    "a detector without B and M', a baseline from `defend --detector NAME`, has no expertConfidence/auxiliaryConfidence)",
    "as it goes, and a summary line last. Image files are resized to the model's input size; a dataset split is",
    "scored as is (its images must have the model's size and channel count). Inputs are read and scored",
    `${SCAN_BATCH} at a time, so memory does not grow with their number.`,
    "",
    "An input that cannot be read, decoded or scored gets a line {input, error, code} and the scan goes on (code, for",
    "images: empty, not_an_image, unsupported_format, corrupt, too_many_pixels, multi_frame, too_many_frames).",
    "An image of several frames (animated GIF/WebP/PNG, multi-page TIFF, multi-image PPM) is refused by default: its",
    "first frame is not the whole input. --frames all scores every frame; the line is the worst frame's (the highest",
    "score), with {frames, frame}, and flagged when any frame is.",
    "",
    `A signed bundle is verified whenever a key is known: --verify-key, else $${VERIFY_KEY_ENV}, else`,
    `~/.config/badexpert/${PUBLIC_KEY_FILE}. An unsigned bundle, or a signed one with no key to check it, is scanned`,
    "with a warning on stderr; --require-signature refuses it (exit 1).",
    "Exit status: 0 when every input was scored, 1 when some could not be (see the error lines), 2 usage error.",
  ].join("\n"),
  examples: [
    "badexpert scan --bundle out/demo/detector --dataset fashion-mnist --split test --limit 100",
    "badexpert scan --bundle out/demo/detector badnet.png   # the picture `attack preview` wrote",
  ],
  options: OPTIONS,
  async run(v, positionals) {
    const { device } = applyRuntimeOptions(v);
    // Memory bounded by the batch, not by N: freed activations go back to the OS.
    returnLargeBuffersToTheOs();
    checkScoringDevice(device);
    const bundle = requireStr(v, "bundle", "a directory written by `badexpert defend`");
    const datasetName = str(v, "dataset");
    if (datasetName && positionals.length) throw new UsageError("give either image files or --dataset, not both");
    if (!datasetName && !positionals.length) throw new UsageError("nothing to scan: give image files, or --dataset NAME");
    if (datasetName && str(v, "frames") === "all") throw new UsageError("--frames all applies to image files; a dataset's images have one frame each");
    const verifyKey = str(v, "verify-key");
    const requireSignature = v["require-signature"] === true;
    const engine = choiceWithDefault(v, "engine", ["libtorch", "onnxruntime"] as const, OPTIONS);
    // What the bundle's kind cannot do is a usage mistake, said before anything is loaded.
    const kind = await bundleKind(bundle);
    const entry = detectorInfo(kind);
    if (engine === "onnxruntime" && entry.onnx !== true) throw new UsageError(`--engine onnxruntime: the ${kind} detector scores with libtorch only (onnxruntime runs BaDExpert's exported graph)`);
    if (verifyKey !== undefined && entry.signs !== true) throw new UsageError(`--verify-key: ${kind} detector bundles are not signed (their checkpoint's weights are hash-checked)`);
    // Said on stderr, before any result line: a bundle that is not signed and verified is a decision anyone could have edited.
    const warn = (w: string): void => console.error(`badexpert scan: warning: ${w}`);
    const det = await Detector.load(bundle, { ...(verifyKey !== undefined ? { verifyKey } : {}), requireSignature, onWarning: warn, engine });
    try {
      const tally: Tally = { inputs: 0, scored: 0, failed: 0, flagged: 0 };
      const t0 = Date.now();
      // A dataset's labels and size are known once it is read (inside the stream).
      const seen: { labels: Int32Array | null; bar: Progress | null } = { labels: null, bar: datasetName ? null : new Progress("scanning", positionals.length) };
      const inputs = datasetName
        ? datasetImages(v, det, datasetName, (l) => (seen.labels = l), (n) => (seen.bar = new Progress("scanning", n)))
        : positionals;
      const frames = datasetName ? "refuse" : choiceWithDefault(v, "frames", FRAME_POLICIES, OPTIONS);
      for await (const part of det.scoreEach(inputs, { frames, maxFrames: SCAN_BATCH })) {
        for (const r of part) emit(v, r, seen.labels?.[r.index], tally);
        seen.bar?.tick(part.length);
        await drained();
      }
      seen.bar?.finish();
      const { rule, threshold } = det.summary;
      return summary(bundle, det.kind, rule ?? det.kind, threshold, engine, tally, t0);
    } finally {
      await det.dispose();
    }
  },
};

/** Prints the summary line; the exit status. */
function summary(bundle: string, detector: string, rule: string, threshold: number, engine: string, tally: Tally, t0: number): number {
  const seconds = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({
    summary: true,
    bundle,
    detector,
    inputs: tally.inputs,
    scored: tally.scored,
    failed: tally.failed,
    flagged: tally.flagged,
    flaggedRate: tally.scored ? tally.flagged / tally.scored : 0,
    rule,
    threshold,
    engine,
    seconds,
    inputsPerSecond: tally.inputs / Math.max(seconds, 1e-9),
  }));
  return tally.failed > 0 ? 1 : 0;
}
