// `badexpert scan`: score inputs with a detector bundle — one JSON line per input on stdout,
// then a summary line. Inputs are image files or a dataset split.
import { readFile } from "node:fs/promises";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, int, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { loadBundle } from "../../defense/bundle.js";
import { loadDataset } from "../../data/registry.js";
import { decodeImage } from "../../data/image-decode.js";
import { subset } from "../../data/splits.js";
import type { ImageDataset } from "../../data/dataset.js";
import { OnnxDetector } from "../../export/onnx-detector.js";

async function imagesFromFiles(files: string[], h: number, w: number, channels: 1 | 3, classNames: string[]): Promise<ImageDataset> {
  const per = h * w * channels;
  const images = new Uint8Array(files.length * per);
  for (const [i, f] of files.entries()) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(f);
    } catch (e) {
      throw new UsageError(`${f}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const img = await decodeImage(bytes, f, { size: { height: h, width: w }, channels });
    images.set(img.pixels, i * per);
  }
  return { name: "files", split: "test", images, labels: new Int32Array(files.length).fill(-1), count: files.length, height: h, width: w, channels, classNames, source: "files" };
}

export const scan: Command = {
  name: "scan",
  summary: "score inputs with a detector bundle and flag suspected backdoor inputs",
  details: [
    "Prints one JSON line per input ({input, pred, predClass, expertConfidence, auxiliaryConfidence, score, flagged})",
    "and a summary line. Image files are resized to the model's input size; a dataset split is scored as is",
    "(its images must have the model's size and channel count).",
    "",
    "Examples:",
    "  badexpert scan --bundle runs/detector photo1.png photo2.jpg",
    "  badexpert scan --bundle runs/detector --dataset fashion-mnist --split test --limit 100",
  ].join("\n"),
  options: {
    bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`)" },
    dataset: { type: "string", short: "d", description: "score a dataset split instead of files" },
    "data-path": { type: "string", description: "dataset location" },
    split: { type: "string", description: "train or test", default: "test" },
    limit: { type: "string", description: "score only the first N inputs of the dataset" },
    "flagged-only": { type: "boolean", description: "print lines only for flagged inputs" },
    "verify-key": { type: "string", description: "Ed25519 public key (PEM): refuse the bundle unless it is signed by its private key" },
    engine: { type: "string", description: "libtorch, or onnxruntime (the exported graph on onnxruntime-node)", default: "libtorch" },
    ...RUNTIME_OPTIONS,
  },
  async run(v, positionals) {
    applyRuntimeOptions(v);
    const bundle = str(v, "bundle");
    if (!bundle) throw new UsageError("--bundle is required (a directory written by `badexpert defend`)");
    const verifyKey = str(v, "verify-key");
    const engine = choice(v, "engine", ["libtorch", "onnxruntime"] as const) ?? "libtorch";
    const det = await loadBundle(bundle, verifyKey !== undefined ? { verifyKey } : {});
    let onnx: OnnxDetector | null = null;
    try {
      const [h, w] = det.info.preprocessing.imageSize;
      const channels = det.info.preprocessing.channels === 1 ? 1 : 3;
      const datasetName = str(v, "dataset");
      let ds: ImageDataset;
      let names: string[];
      if (datasetName) {
        if (positionals.length) throw new UsageError("give either image files or --dataset, not both");
        const path = str(v, "data-path");
        const full = await loadDataset(datasetName, { split: choice(v, "split", ["train", "test"] as const) ?? "test", ...(path ? { path } : {}) });
        det.checkInput(full.height, full.width, full.channels, `--dataset ${datasetName}`);
        const limit = int(v, "limit", { min: 1 });
        ds = limit && limit < full.count ? subset(full, Int32Array.from({ length: limit }, (_, i) => i)) : full;
        names = Array.from({ length: ds.count }, (_, i) => `${datasetName}/${ds.split}/${i}`);
      } else {
        if (!positionals.length) throw new UsageError("nothing to scan: give image files, or --dataset NAME");
        ds = await imagesFromFiles(positionals, h, w, channels, det.info.classNames);
        names = positionals;
      }
      if (engine === "onnxruntime") onnx = await OnnxDetector.fromDetector(det);
      const t0 = Date.now();
      const r = onnx ? await onnx.scoreDataset(ds, { progressLabel: "scanning" }) : det.scoreDataset(ds, { progressLabel: "scanning" });
      const seconds = (Date.now() - t0) / 1000;
      let flagged = 0;
      for (let i = 0; i < ds.count; i++) {
        const f = r.flagged[i] === 1;
        if (f) flagged++;
        if (v["flagged-only"] && !f) continue;
        const p = r.pred[i] as number;
        console.log(JSON.stringify({
          input: names[i],
          pred: p,
          predClass: det.info.classNames[p],
          expertConfidence: r.expertConfidence[i],
          auxiliaryConfidence: r.auxiliaryConfidence[i],
          score: r.score[i],
          flagged: f,
          ...(ds.labels[i] !== -1 ? { label: ds.labels[i] } : {}),
        }));
      }
      console.log(JSON.stringify({ summary: true, bundle, inputs: ds.count, flagged, flaggedRate: ds.count ? flagged / ds.count : 0, rule: det.rule, threshold: det.threshold, engine, seconds, inputsPerSecond: ds.count / Math.max(seconds, 1e-9) }));
      return 0;
    } finally {
      await onnx?.release();
      det.dispose();
    }
  },
};
