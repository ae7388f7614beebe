// `badexpert scan`: score inputs with a detector bundle — one JSON line per input on stdout,
// then a summary line. Inputs are image files or a dataset split. Both stream: files are read,
// decoded and scored a batch at a time and each batch's lines are printed before the next is
// read, so memory is bounded by the batch, not by the number of inputs. An input that cannot be
// read, decoded or given a finite score is its own error line (never a clean verdict), the scan
// goes on, and the exit status is 1.
import type { Command, OptionSpec } from "../command.js";
import { UsageError } from "../command.js";
import { COUNT, choiceWithDefault, num, requireStr, str, type Values } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { Detector, detectionsOf, worstFrame, type DecodeOutcome, type Detection, type FrameOptions } from "../../api/detector.js";
import { ACCEPTED_FORMATS, FRAME_POLICIES, shapeText, type FramePolicy, type ImageConversion } from "../../data/image-decode.js";
import { inputFiles } from "../../data/input-files.js";
import { isBaselineBundle, loadDetectorBundle } from "../../detectors/bundle.js";
import { baselineScanModel } from "./scan-baseline.js";
import type { ScanModel, ScanRecord } from "./scan-model.js";
import { checkScoringDevice } from "../../jobs/device.js";
import { requireDataPath } from "../../jobs/data-path.js";
import { datasetNames, loadDataset } from "../../data/registry.js";
import { imagesToTensor } from "../../data/batch.js";
import { DataLoader } from "../../data/loader.js";
import { subset } from "../../data/splits.js";
import { OnnxDetector } from "../../export/onnx-detector.js";
import { returnLargeBuffersToTheOs, tidy, type Tensor } from "../../engine/index.js";
import { Progress } from "../../util/progress.js";
import { PUBLIC_KEY_FILE, VERIFY_KEY_ENV } from "../../defense/signature.js";
import { BadExpertError, type ErrorCode } from "../../util/errors.js";

/** Inputs decoded and scored at a time: the bound on scan's memory. */
export const SCAN_BATCH = 256;

const OPTIONS: Record<string, OptionSpec> = {
  bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`, BaDExpert's or a baseline's with --detector)" },
  dataset: { type: "string", short: "d", description: "score a dataset split instead of files", value: { kind: "choice", values: datasetNames() } },
  "data-path": { type: "string", description: "dataset location" },
  split: { type: "string", description: "train or test", default: "test", value: { kind: "choice", values: ["train", "test"] } },
  limit: { type: "string", description: "score only the first N inputs of the dataset", value: COUNT },
  "flagged-only": { type: "boolean", description: "print lines only for flagged inputs (and errors)" },
  recursive: { type: "boolean", short: "r", description: "scan the image files in the sub-folders of a folder too (symbolic links are never followed)" },
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

export type { ScanModel, ScanRecord } from "./scan-model.js";

interface Tally {
  inputs: number;
  scored: number;
  failed: number;
  flagged: number;
  /** Inputs resized or converted to the model's channels, per kind of conversion ("224x224 RGB → 28x28 grey"). */
  converted: Map<string, number>;
}

function conversionText(c: ImageConversion): string {
  return `${shapeText(c.from)} → ${shapeText(c.to)}`;
}

/**
 * Says on stderr, the first time each kind of conversion is met, that the model reads a converted
 * image (a photo squeezed into a small grey input is mostly lost); the summary counts them all.
 */
function noteConversion(input: string, c: ImageConversion, tally: Tally): void {
  const kind = conversionText(c);
  const n = tally.converted.get(kind) ?? 0;
  tally.converted.set(kind, n + 1);
  if (n === 0) console.error(`badexpert scan: warning: ${input}: a ${shapeText(c.from)} image, converted to the model's ${shapeText(c.to)} input (further inputs converted the same way are counted in the summary; each record has "converted")`);
}

/** Waits when stdout's buffer is full, so a slow reader cannot make lines pile up in memory. */
async function drained(): Promise<void> {
  if (process.stdout.writableNeedDrain) await new Promise<void>((resolve) => process.stdout.once("drain", resolve));
}

/** An input's error line: {input, code, reason?, message} as the service's error body has them, and `error` (the message, as the README promises). */
function emitError(input: string, message: string, tally: Tally, code: ErrorCode, reason?: string): void {
  tally.failed++;
  console.log(JSON.stringify({ input, code, ...(reason !== undefined ? { reason } : {}), message, error: message }));
}

/** An image scored frame by frame: how many frames, and the one whose record is printed. */
interface FrameChoice {
  frames: number;
  frame: number;
}

/** Prints one scored input; a score that is not a finite number is an error line, never clean. */
function emitScore(v: Values, input: string, d: ScanRecord, label: number | undefined, tally: Tally, f?: FrameChoice, converted?: ImageConversion): void {
  if (!Number.isFinite(d.score)) {
    emitError(input, `${f ? `frame ${f.frame} of ${f.frames}: ` : ""}no valid score (${String(d.score)}): the detector cannot judge this input`, tally, "E_UNSCORABLE");
    return;
  }
  tally.scored++;
  if (d.flagged) tally.flagged++;
  if (converted) noteConversion(input, converted, tally);
  if (v["flagged-only"] && !d.flagged) return;
  console.log(JSON.stringify({
    input,
    pred: d.pred,
    predClass: d.predClass,
    ...(d.expertConfidence !== undefined ? { expertConfidence: d.expertConfidence } : {}),
    ...(d.auxiliaryConfidence !== undefined ? { auxiliaryConfidence: d.auxiliaryConfidence } : {}),
    score: d.score,
    flagged: d.flagged,
    ...(f ? { frames: f.frames, frame: f.frame } : {}),
    ...(converted ? { converted } : {}),
    ...(label !== undefined && label !== -1 ? { label } : {}),
  }));
}

/**
 * Files are decoded SCAN_BATCH at a time and scored together. With --frames all an image may add
 * up to SCAN_BATCH frames, so files are decoded one at a time instead and scored once SCAN_BATCH
 * frames are waiting: memory stays bounded by frames, not files.
 */
async function scanFiles(v: Values, det: ScanModel, files: readonly string[], tally: Tally, bar: Progress, frames: FramePolicy): Promise<void> {
  const { imageSize, channels } = det;
  const per = imageSize[0] * imageSize[1] * channels;
  const step = frames === "all" ? 1 : SCAN_BATCH;
  let pending: { file: string; d: DecodeOutcome }[] = [];
  let pendingFrames = 0;
  const flush = async (): Promise<void> => {
    const pixels = new Uint8Array(pendingFrames * per);
    let k = 0;
    for (const { d } of pending) {
      if (!d.ok) continue;
      pixels.set(d.pixels, per * k);
      k += d.frames;
    }
    const scores: ScanRecord[] = [];
    for (let at = 0; at < pendingFrames; at += SCAN_BATCH) {
      const n = Math.min(SCAN_BATCH, pendingFrames - at);
      const x = imagesToTensor(pixels.subarray(at * per, (at + n) * per), n, imageSize[0], imageSize[1], channels);
      try {
        scores.push(...(await det.score(x)));
      } finally {
        x.dispose();
      }
    }
    k = 0;
    for (const { file, d } of pending) {
      tally.inputs++;
      if (!d.ok) {
        emitError(file, d.message, tally, d.code, d.reason);
        continue;
      }
      const mine = scores.slice(k, k + d.frames);
      k += d.frames;
      if (d.frames === 1) {
        emitScore(v, file, mine[0] as ScanRecord, undefined, tally, undefined, d.converted);
      } else {
        const worst = worstFrame(mine);
        emitScore(v, file, { ...(mine[worst.index] as ScanRecord), flagged: worst.flagged }, undefined, tally, { frames: d.frames, frame: worst.index }, d.converted);
      }
    }
    bar.tick(pending.length);
    pending = [];
    pendingFrames = 0;
    await drained();
  };
  for (let at = 0; at < files.length; at += step) {
    const part = files.slice(at, at + step);
    const decoded = await det.decodeEach(part, at, { frames, maxFrames: SCAN_BATCH });
    for (const [i, d] of decoded.entries()) {
      pending.push({ file: part[i] as string, d });
      if (d.ok) pendingFrames += d.frames;
    }
    if (pendingFrames >= SCAN_BATCH || pending.length >= SCAN_BATCH || at + step >= files.length) await flush();
  }
}

async function scanDataset(v: Values, det: ScanModel, datasetName: string, tally: Tally, progress: (total: number) => Progress): Promise<void> {
  const path = str(v, "data-path");
  const split = choiceWithDefault(v, "split", ["train", "test"] as const, OPTIONS);
  const limit = num(v, "limit", OPTIONS);
  requireDataPath(datasetName, path);
  const full = await loadDataset(datasetName, { split, ...(path ? { path } : {}) });
  det.checkInput(full.height, full.width, full.channels, `--dataset ${datasetName}`);
  const ds = limit !== undefined && limit < full.count ? subset(full, Int32Array.from({ length: limit }, (_, i) => i)) : full;
  const bar = progress(ds.count);
  let at = 0;
  for (const batch of new DataLoader(ds, { batchSize: SCAN_BATCH })) {
    let r: ScanRecord[];
    try {
      r = await det.score(batch.x);
    } finally {
      batch.x.dispose();
      batch.y.dispose();
    }
    for (const [i, d] of r.entries()) {
      tally.inputs++;
      emitScore(v, `${datasetName}/${split}/${at + i}`, d, ds.labels[at + i], tally);
    }
    at += r.length;
    bar.tick(r.length);
    await drained();
  }
  bar.finish();
}

export const scan: Command = {
  name: "scan",
  summary: "score inputs with a detector bundle and flag suspected backdoor inputs",
  details: [
    "Prints one JSON line per input ({input, pred, predClass, expertConfidence, auxiliaryConfidence, score, flagged};",
    "a baseline detector's bundle, from `defend --detector NAME`, has no expertConfidence/auxiliaryConfidence)",
    "as it goes, and a summary line last. Inputs are image files or folders of them: a folder's image files (by",
    "extension) in natural order (2.png before 10.png); --recursive adds its sub-folders'. Symbolic links inside a",
    "folder are not followed; what a folder holds besides images is named on stderr, and a folder with no image file",
    "is an error line. A dataset split is scored as is (its images must have the model's size and channel count).",
    `Inputs are read and scored ${SCAN_BATCH} at a time, so memory does not grow with their number.`,
    "",
    "An image of another size or colour than the model's input is resized and converted (grey ↔ RGB, alpha dropped)",
    "before it is scored: its record says so ({converted: {from, to}}), and a warning on stderr names the first input",
    "of each kind of conversion; the summary counts them (convertedInputs).",
    "",
    "An input that cannot be read, decoded or scored gets a line {input, code, reason, message, error} and the scan goes",
    "on: code is the error code (E_IO, E_INPUT_DECODE, E_INPUT_UNSUPPORTED, E_INPUT_TOO_LARGE, E_UNSCORABLE; docs/errors.md),",
    "reason, for images: empty, not_an_image, unsupported_format, corrupt, too_many_pixels, multi_frame, too_many_frames;",
    "error is the message again.",
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
    "badexpert scan --bundle out/demo/detector --recursive --flagged-only uploads/   # every image under uploads/",
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
    if (!datasetName && !positionals.length) throw new UsageError("nothing to scan: give image files or folders, or --dataset NAME");
    if (datasetName && v.recursive === true) throw new UsageError("--recursive applies to folders of image files, not to --dataset");
    if (datasetName && str(v, "frames") === "all") throw new UsageError("--frames all applies to image files; a dataset's images have one frame each");
    const verifyKey = str(v, "verify-key");
    const requireSignature = v["require-signature"] === true;
    const engine = choiceWithDefault(v, "engine", ["libtorch", "onnxruntime"] as const, OPTIONS);
    // Said on stderr, before any result line: a bundle that is not signed and verified is a decision anyone could have edited.
    const warn = (w: string): void => console.error(`badexpert scan: warning: ${w}`);
    if (await isBaselineBundle(bundle)) {
      if (engine !== "libtorch") throw new UsageError(`--engine ${engine}: a baseline detector bundle scores with libtorch only`);
      if (verifyKey !== undefined) throw new UsageError("--verify-key: baseline detector bundles are not signed (their checkpoint's weights are hash-checked)");
      if (requireSignature) throw new BadExpertError("E_BUNDLE_INTEGRITY", `${bundle} is a baseline detector bundle, which is not signed, and --require-signature refuses unsigned bundles`);
      const loaded = await loadDetectorBundle(bundle);
      loaded.warnings.forEach(warn);
      try {
        return await runScan(v, baselineScanModel(loaded), datasetName, positionals, { bundle, detector: loaded.detector.name, rule: loaded.detector.name, threshold: loaded.threshold, engine });
      } finally {
        loaded.dispose();
      }
    }
    const det = await Detector.load(bundle, { ...(verifyKey !== undefined ? { verifyKey } : {}), requireSignature, onWarning: warn });
    let onnx: OnnxDetector | null = null;
    try {
      if (engine === "onnxruntime") onnx = await OnnxDetector.fromDetector(det.detector);
      const session = onnx;
      const score = session
        ? (x: Tensor) => session.scoreBatch(tidy(() => x.contiguous().data() as Float32Array), x.shape[0] as number)
        : (x: Tensor) => Promise.resolve(det.detector.scoreBatch(x));
      const { classNames, threshold, rule, imageSize, channels } = det.summary;
      const model: ScanModel = {
        imageSize,
        channels,
        decodeEach: (files, at, o) => det.decodeEach(files, at, o),
        checkInput: (h, w, c, what) => det.detector.checkInput(h, w, c, what),
        score: async (x) => detectionsOf(await score(x), classNames, threshold),
      };
      return await runScan(v, model, datasetName, positionals, { bundle, detector: "badexpert", rule, threshold, engine });
    } finally {
      await onnx?.release();
      det.dispose();
    }
  },
};

/** Scans the files or the dataset with `model` and prints the summary line; the exit status. */
async function runScan(v: Values, model: ScanModel, datasetName: string | undefined, positionals: readonly string[], about: { bundle: string; detector: string; rule: string; threshold: number; engine: string }): Promise<number> {
  const tally: Tally = { inputs: 0, scored: 0, failed: 0, flagged: 0, converted: new Map() };
  const t0 = Date.now();
  const progress = (total: number) => new Progress("scanning", total);
  if (datasetName) {
    await scanDataset(v, model, datasetName, tally, progress);
  } else {
    const { files, emptyFolders } = await filesToScan(positionals, v.recursive === true);
    const bar = progress(files.length);
    await scanFiles(v, withEmptyFolders(model, new Set(emptyFolders)), files, tally, bar, choiceWithDefault(v, "frames", FRAME_POLICIES, OPTIONS));
    bar.finish();
  }
  for (const [kind, n] of tally.converted) if (n > 1) console.error(`badexpert scan: warning: ${n} inputs converted ${kind}`);
  const seconds = (Date.now() - t0) / 1000;
  console.log(JSON.stringify({
    summary: true,
    bundle: about.bundle,
    detector: about.detector,
    inputs: tally.inputs,
    scored: tally.scored,
    failed: tally.failed,
    flagged: tally.flagged,
    flaggedRate: tally.scored ? tally.flagged / tally.scored : 0,
    convertedInputs: [...tally.converted.values()].reduce((a, b) => a + b, 0),
    rule: about.rule,
    threshold: about.threshold,
    engine: about.engine,
    seconds,
    inputsPerSecond: tally.inputs / Math.max(seconds, 1e-9),
  }));
  return tally.failed > 0 ? 1 : 0;
}

/** The files to scan: folders expanded (inputFiles), what they held besides images said on stderr. */
async function filesToScan(paths: readonly string[], recursive: boolean): Promise<{ files: string[]; emptyFolders: string[] }> {
  const { files, emptyFolders, skipped } = await inputFiles(paths, { recursive });
  const note = (what: string, list: readonly string[]): void => {
    if (list.length > 0) console.error(`badexpert scan: ${list.length} ${what} not scanned: ${list.slice(0, 3).join(", ")}${list.length > 3 ? ", …" : ""}`);
  };
  note("symbolic link(s) inside a folder (never followed)", skipped.links);
  note("sub-folder(s) (--recursive descends into them)", skipped.folders);
  note("file(s) without an image extension", skipped.notImages);
  note("special file(s) (FIFO, socket, device)", skipped.special);
  return { files, emptyFolders };
}

/** A folder named on the command line that holds no image file is its own error line, where it was named: nothing in it was checked. */
function withEmptyFolders(model: ScanModel, empty: ReadonlySet<string>): ScanModel {
  if (empty.size === 0) return model;
  return {
    ...model,
    async decodeEach(files, firstIndex, o) {
      const images = files.filter((f) => !empty.has(f));
      const decoded = images.length > 0 ? await model.decodeEach(images, firstIndex, o) : [];
      let next = 0;
      return files.map((f): DecodeOutcome => (empty.has(f) ? { ok: false, code: "E_INPUT_UNSUPPORTED", reason: "empty_folder", message: `${f}: a folder with no image files in it (${ACCEPTED_FORMATS}, by extension)` } : (decoded[next++] as DecodeOutcome)));
    },
  };
}
