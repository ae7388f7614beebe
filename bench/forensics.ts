// `npm run bench:forensics -- [--attacks badnet,trojan,adaptive-patch,blend,wanet] [--methods all]
//   [--max-flagged 200] [--epochs 6] [--seed 0] [--docs docs/forensics] [--json]`
// For each attack (Fashion-MNIST, compact CNN): train (or reuse) the backdoored model, build (or
// reuse) its detector bundle with the defaults, score the triggered evaluation split, and for the
// flagged triggered inputs measure how well each saliency method of B localises the trigger:
// the median share of each input's top-2% pixels inside the true mask dilated by one pixel, and
// the IoU of the trigger estimate's boxes with the mask's boxes; and, as a control, the same
// share on clean images (a method biased towards the mask's position scores high there too).
// Attacks without a mask (blend, wanet) get pictures of the mean map and trigger estimate in --docs.
import { access, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { memory } from "../src/engine/index.js";
import { subset } from "../src/data/splits.js";
import { loadBundle } from "../src/defense/bundle.js";
import { defenseSplits } from "../src/defense/splits.js";
import { createAttack } from "../src/attacks/registry.js";
import type { Attack } from "../src/attacks/attack.js";
import { PatchAttack } from "../src/attacks/patch-attack.js";
import { AdaptivePatch } from "../src/attacks/adaptive-patch.js";
import { cachedModel } from "../src/jobs/model-cache.js";
import { defendCheckpoint } from "../src/jobs/defend.js";
import { testSplit } from "../src/jobs/defender-data.js";
import {
  DEFAULT_SALIENCY_METHOD,
  SALIENCY_METHODS,
  saliencyMethod,
  type SaliencyMethod,
} from "../src/forensics/saliency.js";
import { expertSaliencyOfBytes, meanImage, summariseFlagged } from "../src/forensics/explain.js";
import { boxesIoU, maskBoxes, topShareInMask } from "../src/forensics/regions.js";
import { heatmapPng, signedPatternPng } from "../src/forensics/overlay.js";
import { round, wantsJson, helpAndExit } from "./harness.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:forensics -- [options]

For each attack (Fashion-MNIST, compact CNN): the backdoored model (trained or cached), its default
detector bundle (made once, reused), and for the flagged triggered evaluation inputs how well each
saliency method localises the trigger: the median share of each input's top-2% pixels inside the
true mask (dilated by one pixel), the same share on clean images (a control for positional bias)
and the IoU of the trigger estimate's boxes with the mask's.

  --attacks a,b        attacks (default badnet,trojan,adaptive-patch,blend,wanet)
  --methods all|a,b    saliency methods (default all: ${SALIENCY_METHODS.join(", ")})
  --max-flagged N      flagged inputs explained per attack (default 100)
  --epochs N           training epochs of the models (default 6)
  --seed N             model, split and detector seed (default 0)
  --finetune-lr auto|X the detector's finetuning rate of M' (default: the architecture's; see defend --finetune-lr)
  --docs DIR           where the mean-map and trigger-estimate pictures go (default docs/forensics)
  --json               print the rows as JSON on the last line
  --help               this text`,
);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const attacks = (arg("attacks") ?? "badnet,trojan,adaptive-patch,blend,wanet").split(",");
const methodArg = arg("methods") ?? "all";
const methods: SaliencyMethod[] =
  methodArg === "all" ? [...SALIENCY_METHODS] : methodArg.split(",").map(saliencyMethod);
const maxFlagged = Number(arg("max-flagged") ?? 100);
const epochs = Number(arg("epochs") ?? 6);
const seed = Number(arg("seed") ?? 0);
const docs = arg("docs") ?? join("docs", "forensics");
const finetuneArg = arg("finetune-lr");
const finetuneLr: number | "auto" | undefined =
  finetuneArg === undefined || finetuneArg === "auto" ? finetuneArg : Number(finetuneArg);
if (typeof finetuneLr === "number" && !(finetuneLr > 0))
  throw new RangeError(`--finetune-lr must be "auto" or a positive number, got ${finetuneArg}`);
const dataset = "fashion-mnist";

/** The trigger's mask when the attack pastes a known patch (BadNet, Trojan, Adaptive-Patch's test-time patches). */
function triggerMask(a: Attack): Float32Array | null {
  if (a instanceof AdaptivePatch) return a.testCanvas.mask;
  if (a instanceof PatchAttack) return a.canvas.mask;
  return null;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** A picture for the docs: the image scaled 8x with nearest-neighbour pixels. */
async function big(png: Buffer, side: number): Promise<Buffer> {
  return sharp(png)
    .resize(side * 8, side * 8, { kernel: "nearest" })
    .png()
    .toBuffer();
}

const tensorsAtStart = memory().numTensors;
const rows: Record<string, unknown>[] = [];
console.log(
  "| attack | flagged (of triggered) | method | median top-2% share in mask | mean share | median share, fooled only | same on clean images (control) | box IoU | boxes | seconds |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|");
for (const name of attacks) {
  const { dir } = await cachedModel({ dataset, attack: name, epochs, seed });
  // Made once per model with the defaults, then reused.
  const bundle = join(
    "out",
    "bench",
    `forensics-${name}-e${epochs}-seed${seed}${finetuneLr === undefined ? "" : `-finetune${finetuneLr}`}-detector`,
  );
  if (!(await exists(join(bundle, "detector.json")))) {
    await defendCheckpoint({
      checkpoint: dir,
      out: bundle,
      force: true,
      seed,
      splits: { seed },
      silent: true,
      log: () => {},
      ...(finetuneLr !== undefined ? { finetune: { lr: finetuneLr } } : {}),
    });
  }
  const det = await loadBundle(bundle);
  try {
    const created = det.info.creation;
    if (!created.dataset || !created.splits) throw new Error(`${bundle}: no recorded splits`);
    const [h, w] = det.info.preprocessing.imageSize;
    const test = await testSplit(created.dataset.name, created.dataset.path, [h, w], det.info.preprocessing.channels);
    const splits = defenseSplits(test.count, created.splits);
    const evaluation = subset(test, splits.evaluation);
    const attack = createAttack(name, created.modelTraining?.attack?.params ?? {}, {
      numClasses: test.classNames.length,
      height: h,
      width: w,
      channels: test.channels,
      dataset,
    });
    const poisoned = attack.poisonedTestSet(evaluation).dataset;
    const s = det.scoreDataset(poisoned);
    const flaggedIdx: number[] = [];
    for (let i = 0; i < poisoned.count && flaggedIdx.length < maxFlagged; i++)
      if (s.flagged[i] === 1) flaggedIdx.push(i);
    const flaggedTotal = s.flagged.reduce((a, f) => a + f, 0);
    const flagged = subset(poisoned, flaggedIdx);
    const preds = Int32Array.from(flaggedIdx, (i) => s.pred[i] as number);
    const c = det.info.preprocessing.channels;
    const im = { pixels: flagged.images, count: flagged.count, height: h, width: w, channels: c };
    const cleanMean = meanImage({
      pixels: evaluation.images,
      count: evaluation.count,
      height: h,
      width: w,
      channels: c,
    });
    const mask = triggerMask(attack);
    // Control: the same share on clean evaluation images (M's labels), no trigger present. A
    // method that favours the mask's region by position (corners, background) scores high here too.
    // Only where there is a mask to measure against (Blend and WaNet have none).
    const control = mask
      ? subset(
          evaluation,
          Array.from({ length: Math.min(maxFlagged, evaluation.count) }, (_, i) => i),
        )
      : null;
    const controlPreds = control ? Int32Array.from(det.scoreDataset(control).pred) : null;
    for (const method of methods) {
      const t0 = Date.now();
      const sum = await summariseFlagged(det, im, preds, cleanMean, { method, examples: 0 });
      const seconds = (Date.now() - t0) / 1000;
      const row: Record<string, unknown> = {
        attack: name,
        flagged: flagged.count,
        flaggedTotal,
        triggered: poisoned.count,
        method,
        target: sum.estimate.target,
        targetShare: sum.estimate.targetShare,
        compact: sum.estimate.compact,
        boxes: sum.estimate.boxes,
        seconds,
      };
      if (mask) {
        const shares = Array.from({ length: flagged.count }, (_, i) =>
          topShareInMask(sum.maps.subarray(i * h * w, (i + 1) * h * w), mask, h, w),
        );
        row.medianShare = median(shares);
        row.meanShare = shares.reduce((a, b) => a + b, 0) / Math.max(1, shares.length);
        // The same over the flagged inputs the trigger actually fooled (M predicts the attack's target).
        const target = Number(attack.params.targetClass ?? 0);
        const fooled = shares.filter((_, i) => preds[i] === target);
        row.fooled = fooled.length;
        row.medianShareFooled = median(fooled);
        row.iou = boxesIoU(sum.estimate.boxes, maskBoxes(mask, h, w), h, w);
        if (control && controlPreds) {
          const controlMaps = expertSaliencyOfBytes(
            det,
            { pixels: control.images, count: control.count, height: h, width: w, channels: c },
            controlPreds,
            { method },
          );
          row.cleanControlMedianShare = median(
            Array.from({ length: control.count }, (_, i) =>
              topShareInMask(controlMaps.subarray(i * h * w, (i + 1) * h * w), mask, h, w),
            ),
          );
        }
        row.trueBoxes = maskBoxes(mask, h, w);
      }
      rows.push(row);
      const pct = (x: unknown) => (typeof x === "number" && Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "—");
      const box =
        sum.estimate.boxes.map((b) => `r${b.top}-${b.bottom - 1} c${b.left}-${b.right - 1}`).join(", ") ||
        (sum.estimate.compact ? "" : "not compact");
      console.log(
        `| ${name} | ${flagged.count} of ${flaggedTotal} flagged (${poisoned.count} triggered) | ${method} | ${pct(row.medianShare)} | ${pct(row.meanShare)} | ${pct(row.medianShareFooled)} (${String(row.fooled ?? "—")}) | ${pct(row.cleanControlMedianShare)} | ${typeof row.iou === "number" ? row.iou.toFixed(2) : "—"} | ${box} | ${round(seconds)} |`,
      );
      if (docs && method === (methods.includes(DEFAULT_SALIENCY_METHOD) ? DEFAULT_SALIENCY_METHOD : methods[0])) {
        await mkdir(docs, { recursive: true });
        await writeFile(join(docs, `${name}-mean-map.png`), await big(await heatmapPng(sum.estimate.meanMap, h, w), h));
        await writeFile(
          join(docs, `${name}-trigger-estimate.png`),
          await big(await signedPatternPng(sum.estimate.pattern, c, h, w), h),
        );
      }
    }
  } finally {
    det.dispose();
  }
}
if (memory().numTensors !== tensorsAtStart) throw new Error(`tensor leak: ${memory().numTensors - tensorsAtStart}`);
if (wantsJson()) console.log(JSON.stringify(rows));
