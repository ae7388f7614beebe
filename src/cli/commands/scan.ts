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
import { ACCEPTED_FORMATS, FRAME_POLICIES, shapeText, type ImageConversion } from "../../data/image-decode.js";
import { inputFiles } from "../../data/input-files.js";
import { bundleKind } from "../../detectors/open.js";
import { detectorInfo } from "../../detectors/registry.js";
import { checkScoringDevice } from "../../jobs/device.js";
import { requireDataPath } from "../../jobs/data-path.js";
import { datasetNames, loadDataset } from "../../data/registry.js";
import { subset } from "../../data/splits.js";
import { returnLargeBuffersToTheOs } from "../../engine/index.js";
import { Progress } from "../../util/progress.js";
import { PUBLIC_KEY_FILE, VERIFY_KEY_ENV } from "../../defense/signature.js";
import type { ErrorCode } from "../../util/errors.js";

/** Inputs decoded and scored at a time: the bound on scan's memory. */
export const SCAN_BATCH = BATCH;

const OPTIONS: Record<string, OptionSpec> = {
  bundle: {
    type: "string",
    short: "b",
    description: "detector bundle directory (from `badexpert defend`, BaDExpert's or a baseline's with --detector)",
  },
  dataset: {
    type: "string",
    short: "d",
    description: "score a dataset split instead of files",
    value: { kind: "choice", values: datasetNames() },
  },
  "data-path": { type: "string", description: "dataset location" },
  split: {
    type: "string",
    description: "train or test",
    default: "test",
    value: { kind: "choice", values: ["train", "test"] },
  },
  limit: { type: "string", description: "score only the first N inputs of the dataset", value: COUNT },
  "flagged-only": { type: "boolean", description: "print lines only for flagged inputs (and errors)" },
  recursive: {
    type: "boolean",
    short: "r",
    description: "scan the image files in the sub-folders of a folder too (symbolic links are never followed)",
  },
  frames: {
    type: "string",
    description: `images of several frames (animated GIF/WebP/PNG, multi-page TIFF): refuse (an error line) or all (score every frame, at most ${SCAN_BATCH}; flagged when any frame is)`,
    default: "refuse",
    value: { kind: "choice", values: [...FRAME_POLICIES] },
  },
  "verify-key": {
    type: "string",
    description: `Ed25519 public key (PEM): refuse the bundle unless it is signed by its private key (default: $${VERIFY_KEY_ENV}, then ~/.config/badexpert/${PUBLIC_KEY_FILE} if present, which verify a signed bundle)`,
  },
  "require-signature": {
    type: "boolean",
    description: "refuse a bundle that is not signed, or whose signature cannot be verified for want of a key",
  },
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
  if (n === 0)
    console.error(
      `badexpert scan: warning: ${input}: a ${shapeText(c.from)} image, converted to the model's ${shapeText(c.to)} input (further inputs converted the same way are counted in the summary; each record has "converted")`,
    );
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

/** Prints one input's outcome; a score that is not a finite number is an error line, never clean. */
function emit(v: Values, r: Outcome, label: number | undefined, tally: Tally, emptyFolders: ReadonlySet<string>): void {
  tally.inputs++;
  // A folder named on the command line that holds no image file is its own error line, where it was named: nothing in it was checked.
  if (emptyFolders.has(r.input)) {
    emitError(
      r.input,
      `${r.input}: a folder with no image files in it (${ACCEPTED_FORMATS}, by extension)`,
      tally,
      "E_INPUT_UNSUPPORTED",
      "empty_folder",
    );
    return;
  }
  if (!r.ok) {
    emitError(r.input, r.message, tally, r.code, r.reason);
    return;
  }
  const d: Detection = r.detection;
  const f = d.frames !== undefined ? { frames: d.frames, frame: d.frame } : null;
  if (!Number.isFinite(d.score)) {
    emitError(
      r.input,
      `${f ? `frame ${f.frame ?? 0} of ${f.frames}: ` : ""}no valid score (${String(d.score)}): the detector cannot judge this input`,
      tally,
      "E_UNSCORABLE",
    );
    return;
  }
  tally.scored++;
  if (d.flagged) tally.flagged++;
  if (r.converted) noteConversion(r.input, r.converted, tally);
  if (v["flagged-only"] && !d.flagged) return;
  console.log(
    JSON.stringify({
      input: r.input,
      pred: d.pred,
      predClass: d.predClass,
      ...(d.expertConfidence !== undefined ? { expertConfidence: d.expertConfidence } : {}),
      ...(d.auxiliaryConfidence !== undefined ? { auxiliaryConfidence: d.auxiliaryConfidence } : {}),
      score: d.score,
      flagged: d.flagged,
      ...(f ? f : {}),
      ...(r.converted ? { converted: r.converted } : {}),
      ...(label !== undefined && label !== -1 ? { label } : {}),
    }),
  );
}

/** A dataset split's images as decoded inputs (they must have the model's size and channel count), named NAME/SPLIT/i. */
async function* datasetImages(
  v: Values,
  det: Detector,
  datasetName: string,
  labels: (l: Int32Array) => void,
  total: (n: number) => void,
): AsyncGenerator<DecodedImage> {
  const path = str(v, "data-path");
  const split = choiceWithDefault(v, "split", ["train", "test"] as const, OPTIONS);
  const limit = num(v, "limit", OPTIONS);
  requireDataPath(datasetName, path);
  const full = await loadDataset(datasetName, { split, ...(path ? { path } : {}) });
  const {
    imageSize: [h, w],
    channels,
  } = det.summary;
  if (full.height !== h || full.width !== w || full.channels !== channels) {
    throw new RangeError(
      `--dataset ${datasetName}: images are ${full.height}x${full.width}x${full.channels} but the detector's model takes ${h}x${w}x${channels}`,
    );
  }
  const ds =
    limit !== undefined && limit < full.count
      ? subset(
          full,
          Int32Array.from({ length: limit }, (_, i) => i),
        )
      : full;
  labels(ds.labels);
  total(ds.count);
  const per = h * w * channels;
  for (let i = 0; i < ds.count; i++)
    yield { pixels: ds.images.subarray(i * per, (i + 1) * per), name: `${datasetName}/${split}/${i}` };
}

export const scan: Command = {
  name: "scan",
  summary: "score inputs with a detector bundle and flag suspected backdoor inputs",
  details: [
    "Prints one JSON line per input ({input, pred, predClass, expertConfidence, auxiliaryConfidence, score, flagged};",
    "a detector without B and M', a baseline from `defend --detector NAME`, has no expertConfidence/auxiliaryConfidence)",
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
    if (!datasetName && !positionals.length)
      throw new UsageError("nothing to scan: give image files or folders, or --dataset NAME");
    if (datasetName && v.recursive === true)
      throw new UsageError("--recursive applies to folders of image files, not to --dataset");
    if (datasetName && str(v, "frames") === "all")
      throw new UsageError("--frames all applies to image files; a dataset's images have one frame each");
    const verifyKey = str(v, "verify-key");
    const requireSignature = v["require-signature"] === true;
    const engine = choiceWithDefault(v, "engine", ["libtorch", "onnxruntime"] as const, OPTIONS);
    // What the bundle's kind cannot do is a usage mistake, said before anything is loaded.
    const kind = await bundleKind(bundle);
    const entry = detectorInfo(kind);
    if (engine === "onnxruntime" && entry.onnx !== true)
      throw new UsageError(
        `--engine onnxruntime: the ${kind} detector scores with libtorch only (onnxruntime runs BaDExpert's exported graph)`,
      );
    if (verifyKey !== undefined && entry.signs !== true)
      throw new UsageError(
        `--verify-key: ${kind} detector bundles are not signed (their checkpoint's weights are hash-checked)`,
      );
    // Said on stderr, before any result line: a bundle that is not signed and verified is a decision anyone could have edited.
    const warn = (w: string): void => console.error(`badexpert scan: warning: ${w}`);
    const det = await Detector.load(bundle, {
      ...(verifyKey !== undefined ? { verifyKey } : {}),
      requireSignature,
      onWarning: warn,
      engine,
    });
    try {
      const tally: Tally = { inputs: 0, scored: 0, failed: 0, flagged: 0, converted: new Map() };
      const t0 = Date.now();
      const listed = datasetName
        ? { files: [], emptyFolders: [] }
        : await filesToScan(positionals, v.recursive === true);
      const emptyFolders = new Set(listed.emptyFolders);
      // A dataset's labels and size are known once it is read (inside the stream).
      const seen: { labels: Int32Array | null; bar: Progress | null } = {
        labels: null,
        bar: datasetName ? null : new Progress("scanning", listed.files.length),
      };
      const inputs = datasetName
        ? datasetImages(
            v,
            det,
            datasetName,
            (l) => (seen.labels = l),
            (n) => (seen.bar = new Progress("scanning", n)),
          )
        : listed.files;
      const frames = datasetName ? "refuse" : choiceWithDefault(v, "frames", FRAME_POLICIES, OPTIONS);
      for await (const part of det.scoreEach(inputs, { frames, maxFrames: SCAN_BATCH })) {
        for (const r of part) emit(v, r, seen.labels?.[r.index], tally, emptyFolders);
        seen.bar?.tick(part.length);
        await drained();
      }
      seen.bar?.finish();
      for (const [kind, n] of tally.converted)
        if (n > 1) console.error(`badexpert scan: warning: ${n} inputs converted ${kind}`);
      const { rule, threshold } = det.summary;
      return summary(bundle, det.kind, rule ?? det.kind, threshold, engine, tally, t0);
    } finally {
      await det.dispose();
    }
  },
};

/** Prints the summary line; the exit status. */
function summary(
  bundle: string,
  detector: string,
  rule: string,
  threshold: number,
  engine: string,
  tally: Tally,
  t0: number,
): number {
  const seconds = (Date.now() - t0) / 1000;
  console.log(
    JSON.stringify({
      summary: true,
      bundle,
      detector,
      inputs: tally.inputs,
      scored: tally.scored,
      failed: tally.failed,
      flagged: tally.flagged,
      flaggedRate: tally.scored ? tally.flagged / tally.scored : 0,
      convertedInputs: [...tally.converted.values()].reduce((a, b) => a + b, 0),
      rule,
      threshold,
      engine,
      seconds,
      inputsPerSecond: tally.inputs / Math.max(seconds, 1e-9),
    }),
  );
  return tally.failed > 0 ? 1 : 0;
}

/** The files to scan: folders expanded (inputFiles), what they held besides images said on stderr. */
async function filesToScan(
  paths: readonly string[],
  recursive: boolean,
): Promise<{ files: string[]; emptyFolders: string[] }> {
  const { files, emptyFolders, skipped } = await inputFiles(paths, { recursive });
  const note = (what: string, list: readonly string[]): void => {
    if (list.length > 0)
      console.error(
        `badexpert scan: ${list.length} ${what} not scanned: ${list.slice(0, 3).join(", ")}${list.length > 3 ? ", …" : ""}`,
      );
  };
  note("symbolic link(s) inside a folder (never followed)", skipped.links);
  note("sub-folder(s) (--recursive descends into them)", skipped.folders);
  note("file(s) without an image extension", skipped.notImages);
  note("special file(s) (FIFO, socket, device)", skipped.special);
  return { files, emptyFolders };
}
