// `badexpert explain`: where the trigger is. Scores image files with a detector bundle and, for
// the flagged ones, maps where the backdoor expert B's confidence in M's label comes from
// (src/forensics): one PNG overlay per flagged input, the float maps, the trigger estimate over
// all of them (target class, mean map, reconstructed trigger, its box when compact) and a JSON
// summary, written together into --out.
import { mkdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Command, OptionSpec } from "../command.js";
import { UsageError } from "../command.js";
import { COUNT, choiceWithDefault, num, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { Detector } from "../../api/detector.js";
import { bundleKind } from "../../detectors/open.js";
import { detectorInfo } from "../../detectors/registry.js";
import { checkScoringDevice } from "../../jobs/device.js";
import { tensor } from "../../engine/index.js";
import { saveTensors } from "../../io/weights.js";
import {
  OUTPUT_MANIFEST,
  assertWritableDir,
  outputDirKind,
  outputManifest,
  writeDirAtomically,
  type WritableDirOptions,
} from "../../util/atomic-dir.js";
import { Progress } from "../../util/progress.js";
import { DEFAULT_SALIENCY_METHOD, SALIENCY_METHODS, SALIENCY_METHOD_INFO } from "../../forensics/saliency.js";
import { summariseFlagged } from "../../forensics/explain.js";
import { heatmapPng, overlayPng, signedPatternPng } from "../../forensics/overlay.js";
import type { BadExpertDetector } from "../../defense/detector.js";

const OPTIONS: Record<string, OptionSpec> = {
  bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`)" },
  out: {
    type: "string",
    short: "o",
    description: "directory to write (overlays/, summary.json, maps, pictures of the trigger estimate)",
  },
  method: {
    type: "string",
    short: "m",
    description: `saliency method: ${SALIENCY_METHODS.join(", ")}`,
    default: DEFAULT_SALIENCY_METHOD,
    value: { kind: "choice", values: SALIENCY_METHODS },
  },
  all: {
    type: "boolean",
    description: "explain every input, not only the flagged ones (the trigger estimate still uses flagged ones only)",
  },
  "max-explained": { type: "string", description: "explain at most this many inputs (the first ones)", value: COUNT },
  force: { type: "boolean", short: "f", description: "replace --out if it exists and is not empty" },
  "verify-key": {
    type: "string",
    description: "Ed25519 public key (PEM): refuse the bundle unless it is signed by its private key",
  },
  ...RUNTIME_OPTIONS,
};

interface Scored {
  input: string;
  index: number;
  pixels: Uint8Array;
  pred: number;
  predClass: string;
  score: number;
  flagged: boolean;
}

/** explain's --out as it writes it: what --force may replace. */
const EXPLAIN_DIR = outputDirKind("explain", "badexpert explain output", {
  files: ["saliency.safetensors", "mean-map.png", "trigger-estimate.png", "summary.json"],
  dirs: { overlays: { files: [/^\d{5,}-[\w.-]*\.png$/] } },
});

/** A file name for input `index`: its position (so names never collide) and its base name, made safe. */
function overlayName(index: number, input: string): string {
  const base = basename(input)
    .replace(/\.[^.]*$/, "")
    .replace(/[^\w.-]+/g, "_")
    .slice(0, 80);
  return `${String(index).padStart(5, "0")}-${base || "input"}.png`;
}

export const explain: Command = {
  name: "explain",
  summary: "show where the trigger is: saliency of the backdoor expert on flagged inputs, and the trigger estimate",
  details: [
    "Scores the image files like `scan`, then for each flagged input computes where B's confidence in M's label",
    "comes from (B kept only the backdoor, so it looks at the trigger). Writes into --out:",
    "  overlays/NNNNN-NAME.png   the map over the input, at the model's input size",
    '  saliency.safetensors      the float maps [N, H, W] (tensor "maps"; metadata "inputs" lists the files)',
    "  mean-map.png              the mean map over the flagged inputs",
    "  trigger-estimate.png      saliency-weighted mean of flagged inputs minus the mean of the unflagged ones",
    "  summary.json              per input (pred, score, flagged, overlay) and the estimate (target class, boxes)",
    "and prints summary.json's totals as one JSON line.",
    "",
    "Methods:",
    ...SALIENCY_METHODS.map((m) => `  ${m.padEnd(17)} ${SALIENCY_METHOD_INFO[m].description}`),
  ].join("\n"),
  examples: [
    "badexpert explain --bundle out/demo/detector --out out/explain badnet.png   # the picture `attack preview` wrote",
    "badexpert explain --bundle out/demo/detector --out out/explain-all --method gradient-x-input --all badnet.png",
  ],
  options: OPTIONS,
  async run(v, files) {
    const { device } = applyRuntimeOptions(v);
    checkScoringDevice(device);
    const bundle = requireStr(v, "bundle", "a directory written by `badexpert defend`");
    const out = requireStr(v, "out", "the directory to write the overlays and summary into");
    const method = choiceWithDefault(v, "method", SALIENCY_METHODS, OPTIONS);
    const maxExplained = num(v, "max-explained", OPTIONS) ?? Number.POSITIVE_INFINITY;
    if (files.length === 0) throw new UsageError("nothing to explain: give image files");
    const writable: WritableDirOptions = {
      kinds: [EXPLAIN_DIR],
      replace: v.force === true,
      forceHint: "--force",
      argument: "--out",
    };
    // Refused before any scoring; a usage mistake (exit 2), as a missing option is.
    await assertWritableDir(out, writable).catch((e: unknown) => {
      throw new UsageError((e as Error).message);
    });
    const verifyKey = str(v, "verify-key");
    const kind = await bundleKind(bundle);
    if (detectorInfo(kind).explains !== true)
      throw new UsageError(
        `--bundle: ${bundle} holds a ${kind} detector, which has no backdoor expert B to explain with (explain needs a BaDExpert bundle)`,
      );
    // On this thread: saliency needs the models' gradients here.
    const det = await Detector.load(bundle, { ...(verifyKey !== undefined ? { verifyKey } : {}), thread: "caller" });
    try {
      if (method === "grad-cam" && det.summary.architecture !== "compact-cnn") {
        throw new UsageError(
          `--method grad-cam: needs B's convolution blocks, available for compact-cnn only (this bundle's model is ${det.summary.architecture}); use ${SALIENCY_METHODS.filter((m) => m !== "grad-cam").join(", ")}`,
        );
      }
      const { imageSize, channels, classNames, threshold } = det.summary;
      const [h, w] = imageSize;
      const per = h * w * channels;
      const t0 = Date.now();
      // Score every file; keep the pixels of those to explain, sum the unflagged ones (the clean reference).
      const kept: Scored[] = [];
      const failed: { input: string; error: string }[] = [];
      const cleanSum = new Float64Array(per);
      let cleanCount = 0;
      let flaggedCount = 0;
      const scoring = new Progress("scoring", files.length);
      for await (const part of det.scoreEach(files, { keepPixels: true })) {
        for (const r of part) {
          if (!r.ok) {
            failed.push({ input: r.input, error: r.message });
            continue;
          }
          const d = r.detection;
          const px = r.pixels as Uint8Array;
          if (d.flagged) flaggedCount++;
          else {
            cleanCount++;
            for (let j = 0; j < per; j++) cleanSum[j] = (cleanSum[j] as number) + (px[j] as number) / 255;
          }
          if ((d.flagged || v.all === true) && kept.length < maxExplained) {
            kept.push({
              input: r.input,
              index: r.index,
              pixels: px,
              pred: d.pred,
              predClass: d.predClass,
              score: d.score,
              flagged: d.flagged,
            });
          }
        }
        scoring.tick(part.length);
      }
      scoring.finish();
      // meanImage's layout [C, H, W] from the HWC running sum.
      const cleanMean =
        cleanCount === 0
          ? null
          : Float32Array.from({ length: per }, (_, k) => {
              const ch = Math.floor(k / (h * w));
              const p = k % (h * w);
              return (cleanSum[p * channels + ch] as number) / cleanCount;
            });
      const flaggedKept = kept.filter((k) => k.flagged);
      const explainBar = new Progress(`explaining (${method})`, kept.length);
      const pixelsOf = (list: Scored[]) => {
        const px = new Uint8Array(list.length * per);
        list.forEach((k, j) => px.set(k.pixels, j * per));
        return { pixels: px, count: list.length, height: h, width: w, channels };
      };
      const d = det.detector.badexpert as BadExpertDetector;
      // The trigger estimate over the flagged inputs; maps of the others (--all) separately.
      const summary = await summariseFlagged(
        d,
        pixelsOf(flaggedKept),
        Int32Array.from(flaggedKept, (k) => k.pred),
        cleanMean,
        { method, examples: 0 },
      );
      explainBar.tick(flaggedKept.length);
      const others = kept.filter((k) => !k.flagged);
      const otherSummary =
        others.length > 0
          ? await summariseFlagged(
              d,
              pixelsOf(others),
              Int32Array.from(others, (k) => k.pred),
              null,
              { method, examples: 0 },
            )
          : null;
      explainBar.tick(others.length);
      explainBar.finish();
      const plane = h * w;
      const mapByInput = new Map<Scored, Float32Array>();
      flaggedKept.forEach((k, j) => mapByInput.set(k, summary.maps.subarray(j * plane, (j + 1) * plane)));
      others.forEach((k, j) =>
        mapByInput.set(k, (otherSummary?.maps ?? new Float32Array(0)).subarray(j * plane, (j + 1) * plane)),
      );
      const mapOf = (k: Scored): Float32Array => mapByInput.get(k) ?? new Float32Array(plane);
      const records = kept.map((k) => ({
        input: k.input,
        pred: k.pred,
        predClass: k.predClass,
        score: k.score,
        flagged: k.flagged,
        overlay: `overlays/${overlayName(k.index, k.input)}`,
      }));
      const e = summary.estimate;
      const result = {
        bundle,
        method,
        inputs: files.length,
        scored: files.length - failed.length,
        failed: failed.length,
        flagged: flaggedCount,
        explained: kept.length,
        threshold,
        target:
          e.target >= 0
            ? { class: e.target, name: classNames[e.target] ?? String(e.target), share: e.targetShare }
            : null,
        flaggedByClass: Object.fromEntries(
          e.targetCounts.flatMap((n, c) => (n > 0 ? [[classNames[c] ?? String(c), n]] : [])),
        ),
        trigger: {
          compact: e.compact,
          boxes: e.boxes,
          cleanReference: summary.cleanReference
            ? `${cleanCount} unflagged inputs`
            : "none (no input was unflagged): the estimate is the weighted mean itself",
        },
        seconds: (Date.now() - t0) / 1000,
      };
      await writeDirAtomically(
        out,
        async (tmp) => {
          await mkdir(join(tmp, "overlays"));
          for (const [j, k] of kept.entries())
            await writeFile(join(tmp, records[j]?.overlay ?? ""), await overlayPng(k.pixels, h, w, channels, mapOf(k)));
          if (kept.length > 0) {
            const all = new Float32Array(kept.length * plane);
            kept.forEach((k, j) => all.set(mapOf(k), j * plane));
            const maps = tensor(all, { shape: [kept.length, h, w] });
            try {
              await saveTensors(join(tmp, "saliency.safetensors"), new Map([["maps", maps]]), {
                method,
                inputs: JSON.stringify(kept.map((k) => k.input)),
              });
            } finally {
              maps.dispose();
            }
          }
          if (flaggedKept.length > 0) {
            await writeFile(join(tmp, "mean-map.png"), await heatmapPng(e.meanMap, h, w));
            await writeFile(join(tmp, "trigger-estimate.png"), await signedPatternPng(e.pattern, channels, h, w));
          }
          await writeFile(
            join(tmp, "summary.json"),
            `${JSON.stringify({ ...result, explainedInputs: records, failedInputs: failed }, null, 2)}\n`,
          );
          await writeFile(join(tmp, OUTPUT_MANIFEST), outputManifest("explain"));
        },
        writable,
      );
      console.log(JSON.stringify({ ...result, out }));
      return failed.length > 0 ? 1 : 0;
    } finally {
      await det.dispose();
    }
  },
};
