// The defense report: a self-contained HTML page (inline SVG, no external assets) and a Markdown
// summary with the same metrics table and the charts as SVG files beside it, plus metrics.json.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  OUTPUT_MANIFEST,
  assertWritableDir,
  outputDirKind,
  outputManifest,
  writeDirAtomically,
  type WritableDirOptions,
} from "../util/atomic-dir.js";
import type { DefenseMetrics } from "../defense/metrics.js";
import { rocCurve } from "../defense/metrics.js";
import type { ScoreRule } from "../defense/scores.js";
import type { ScoredInputs } from "../defense/evaluate.js";
import type { UnlearningRecord } from "../defense/records.js";

export type { ScoredInputs, UnlearningRecord };

/** Per-input scores as a report draws them: b and a only where the detector has them (BaDExpert). */
export type ReportScores = Omit<ScoredInputs, "a" | "b"> & Partial<Pick<ScoredInputs, "a" | "b">>;

/** A baseline detector's report (a bundle from `defend --detector NAME`): no (b, a) plane and no B to explain with. */
export interface BaselineReportDetector {
  name: string;
  params: Record<string, unknown>;
}
import { rocChart, histogramChart, planeChart } from "./charts.js";
import type { Box } from "../forensics/regions.js";
import { esc } from "./svg.js";

export interface DefenseReport {
  title: string;
  dataset: string;
  model: string;
  attack: { name: string; params: Record<string, unknown> } | null;
  /** BaDExpert's score rule; null when `baseline` is set. */
  rule: ScoreRule | null;
  /** Set for a baseline detector: the sections that need B and M' are omitted, each with a sentence saying why. */
  baseline?: BaselineReportDetector;
  threshold: number;
  targetFpr: number;
  metrics: DefenseMetrics;
  clean: ReportScores;
  poisoned: ReportScores;
  /** Free-form facts shown in the details table (splits, seeds, timings, command). */
  details: Record<string, string | number>;
  /** How B's unlearning rate was set. */
  unlearning?: UnlearningRecord;
  /** What the detector saw in the flagged poisoned inputs (src/forensics); absent when not computed. */
  forensics?: ForensicsSection;
}

/** The "What the detector saw" section: saliency of B on flagged poisoned inputs and the trigger estimate. */
export interface ForensicsSection {
  method: string;
  /** Flagged poisoned evaluation inputs, and how many of them were explained. */
  flagged: number;
  explained: number;
  target: { name: string; share: number } | null;
  byClass: { name: string; count: number }[];
  /** Overlays (PNG at the model's input size) of the first explained inputs. */
  examples: { png: Buffer; class: string; score: number }[];
  meanMapPng: Buffer;
  patternPng: Buffer;
  boxes: Box[];
  compact: boolean;
}

const SOURCES: Record<UnlearningRecord["source"], string> = {
  "until-forgotten": "unlearned until B's clean accuracy on held-out images fell to 20%, the rate growing from 1e-5",
  paper: "the paper's rate for this architecture and dataset",
  default: "this architecture's fixed default on this dataset (measured; docs/defense.md)",
  canary: "chosen with backdoors the defender planted itself (canaries)",
  "canary-inconclusive": "the architecture's static default (the canaries could not choose)",
  given: "given by the user",
};

/** The unlearning-rate section's sentence: the rate and where it came from. */
export function unlearningSentence(u: UnlearningRecord): string {
  return `Unlearning rate of B: ${u.lr} — ${SOURCES[u.source]}.`;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : "n/a");

export function metricsRows(m: DefenseMetrics): [string, string, string][] {
  return [
    ["Clean accuracy (CA)", pct(m.cleanAccuracyBefore), pct(m.cleanAccuracyAfter)],
    ["Attack success rate (ASR)", pct(m.asrBefore), pct(m.asrAfter)],
    ["AUROC", Number.isFinite(m.auroc) ? m.auroc.toFixed(4) : "n/a", ""],
    ["TPR at threshold (backdoor inputs flagged)", "", pct(m.tpr)],
    ["FPR at threshold (clean inputs flagged)", "", pct(m.fpr)],
  ];
}

/** Positives: poisoned inputs that fool M; negatives: clean inputs M gets right (the authors' sets). */
function split(s: ReportScores): { a: number[]; b: number[]; score: number[] } {
  const out = { a: [] as number[], b: [] as number[], score: [] as number[] };
  for (let i = 0; i < s.pred.length; i++) {
    if (s.pred[i] !== s.label[i]) continue;
    if (s.a) out.a.push(s.a[i] as number);
    if (s.b) out.b.push(s.b[i] as number);
    out.score.push(s.score[i] as number);
  }
  return out;
}

/** The charts; `plane` is null for a baseline (the (b, a) plane is BaDExpert's). */
export function renderCharts(r: DefenseReport): { roc: string; scores: string; plane: string | null } {
  const neg = split(r.clean);
  const pos = split(r.poisoned);
  return {
    roc: rocChart(rocCurve(pos.score, neg.score), { fpr: r.metrics.fpr, tpr: r.metrics.tpr }, r.metrics.auroc),
    scores: histogramChart(neg.score, pos.score, r.threshold),
    plane: r.rule !== null && !r.baseline && r.clean.a && r.clean.b ? planeChart(r.rule, r.threshold, neg, pos) : null,
  };
}

/** The sentences that stand for the sections a baseline's report leaves out. */
export function omittedSections(b: BaselineReportDetector): { plane: string; forensics: string } {
  return {
    plane: `No decision plane: it places each input at (b, a), the confidences of BaDExpert's backdoor expert B and auxiliary model M', which the baseline detector ${b.name} does not have.`,
    forensics: `No "What the detector saw" section: it shows the saliency of BaDExpert's backdoor expert B on flagged inputs, and the baseline detector ${b.name} has no B.`,
  };
}

/** "score rule triangle" or "detector strip", for the summary lines. */
function detectorWords(r: DefenseReport): string {
  return r.baseline
    ? `detector **${r.baseline.name}** (${JSON.stringify(r.baseline.params)})`
    : `score rule **${r.rule ?? "n/a"}**`;
}

function unlearningMarkdown(u: UnlearningRecord | undefined): string[] {
  return u ? [unlearningSentence(u), ""] : [];
}

const dataUrl = (png: Buffer): string => `data:image/png;base64,${png.toString("base64")}`;

function boxesText(f: ForensicsSection): string {
  if (!f.compact) return "not compact (spread over the image: a blend- or warp-like trigger, or no single patch)";
  return f.boxes.map((b) => `rows ${b.top}–${b.bottom - 1}, columns ${b.left}–${b.right - 1}`).join("; ");
}

function forensicsSentence(f: ForensicsSection): string {
  const target = f.target ? `${f.target.name} (${pct(f.target.share)} of them)` : "n/a";
  return `${f.flagged} poisoned evaluation inputs were flagged; ${f.explained} were explained with ${f.method} saliency of the backdoor expert B. Target class: ${target}. Trigger estimate's box: ${boxesText(f)}.`;
}

function forensicsHtml(f: ForensicsSection | undefined): string {
  if (!f) return "";
  const img = (png: Buffer, alt: string) => `<img class="px" src="${dataUrl(png)}" alt="${esc(alt)}">`;
  const grid = f.examples
    .map(
      (e, i) =>
        `<figure>${img(e.png, `flagged input ${i}`)}<figcaption>→ ${esc(e.class)}<br>score ${e.score.toFixed(3)}</figcaption></figure>`,
    )
    .join("");
  const byClass = f.byClass
    .filter((c) => c.count > 0)
    .map((c) => `<tr><td>${esc(c.name)}</td><td>${c.count}</td></tr>`)
    .join("");
  return `<h2>What the detector saw</h2>
<p class="note">${esc(forensicsSentence(f))} B kept only the backdoor, so where its confidence in M's label comes from is where the trigger is.</p>
<div class="charts">
<figure>${img(f.meanMapPng, "mean saliency map")}<figcaption>Mean saliency map over the explained inputs (a patch shows as a hot spot, a blend or warp as a diffuse map).</figcaption></figure>
<figure>${img(f.patternPng, "trigger estimate")}<figcaption>Trigger estimate: saliency-weighted mean of flagged inputs minus the mean clean input (grey = no difference).</figcaption></figure>
<table><tr><th>predicted class</th><th>flagged</th></tr>${byClass}</table>
</div>
<div class="grid">${grid}</div>`;
}

function forensicsMarkdown(f: ForensicsSection | undefined): string[] {
  if (!f) return [];
  return [
    "## What the detector saw",
    "",
    forensicsSentence(f),
    "",
    "![Mean saliency map](forensics-mean-map.png) ![Trigger estimate](forensics-trigger-estimate.png)",
    "",
  ];
}

function unlearningHtml(u: UnlearningRecord | undefined): string {
  return u ? `<h2>Unlearning rate</h2><p class="note">${esc(unlearningSentence(u))}</p>` : "";
}

export function renderMarkdown(r: DefenseReport, files: { roc: string; scores: string; plane: string | null }): string {
  const rows = metricsRows(r.metrics).map(([k, b, a]) => `| ${k} | ${b} | ${a} |`);
  const details = Object.entries(r.details).map(([k, v]) => `| ${k} | ${String(v)} |`);
  return [
    `# ${r.title}`,
    "",
    `Dataset **${r.dataset}**, model **${r.model}**, attack **${r.attack?.name ?? "none"}**, ${detectorWords(r)}, ` +
      `threshold ${r.threshold.toPrecision(6)} (target FPR ${pct(r.targetFpr)} on the calibration split).`,
    "",
    "| metric | before defense | after defense |",
    "|---|---|---|",
    ...rows,
    "",
    `Clean evaluation inputs: ${r.metrics.cleanCount}; poisoned evaluation inputs: ${r.metrics.poisonCount}.`,
    "",
    `![ROC curve](${files.roc})`,
    `![Score histograms](${files.scores})`,
    ...(files.plane !== null ? [`![Decision plane](${files.plane})`] : []),
    "",
    ...(r.baseline ? [omittedSections(r.baseline).plane, ""] : []),
    ...unlearningMarkdown(r.unlearning),
    ...(r.baseline ? [omittedSections(r.baseline).forensics, ""] : forensicsMarkdown(r.forensics)),
    "| detail | value |",
    "|---|---|",
    ...details,
    "",
  ].join("\n");
}

export function renderHtml(r: DefenseReport, charts: { roc: string; scores: string; plane: string | null }): string {
  const rows = metricsRows(r.metrics)
    .map(([k, b, a]) => `<tr><th>${esc(k)}</th><td>${b}</td><td>${a}</td></tr>`)
    .join("");
  const details = Object.entries(r.details)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`)
    .join("");
  const attack = r.attack ? `${esc(r.attack.name)} <code>${esc(JSON.stringify(r.attack.params))}</code>` : "none";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1400px;color:#111;padding:0 16px}
table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f5f5f5;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.charts figure{margin:0}figcaption{font-size:13px;color:#444;max-width:440px}
code{font-size:12px}.note{color:#444;font-size:14px;max-width:900px}
img.px{width:112px;height:112px;image-rendering:pixelated;display:block}.grid{display:flex;flex-wrap:wrap;gap:10px}.grid figcaption{font-size:12px}
</style></head><body>
<h1>${esc(r.title)}</h1>
<p class="note">Dataset <b>${esc(r.dataset)}</b> · model <b>${esc(r.model)}</b> · attack ${attack} · ${r.baseline ? `detector <b>${esc(r.baseline.name)}</b> <code>${esc(JSON.stringify(r.baseline.params))}</code>` : `score rule <b>${esc(r.rule ?? "n/a")}</b>`} ·
threshold ${r.threshold.toPrecision(6)} calibrated at ${pct(r.targetFpr)} FPR on a held-out clean split.</p>
<table><tr><th>metric</th><th>before defense</th><th>after defense</th></tr>${rows}</table>
<p class="note">Clean evaluation inputs: ${r.metrics.cleanCount}; poisoned evaluation inputs: ${r.metrics.poisonCount}.
AUROC, TPR and FPR use the authors' sets: clean inputs M classifies correctly (negatives) and poisoned inputs that fool M (positives).</p>
<div class="charts">
${
  charts.plane !== null
    ? `<figure>${charts.plane}<figcaption>Each input as (b, a): b = backdoor expert B's confidence in M's label, a = auxiliary model M''s confidence.
Backdoor inputs sit bottom-right (B keeps the backdoor, M' lost it); the shaded region is what the detector flags.</figcaption></figure>`
    : ""
}
<figure>${charts.scores}<figcaption>Score distributions; inputs right of the dashed threshold are flagged.</figcaption></figure>
<figure>${charts.roc}<figcaption>ROC of the score; the circle is the calibrated operating point.</figcaption></figure>
</div>
${r.baseline ? `<p class="note">${esc(omittedSections(r.baseline).plane)}</p>` : ""}
${unlearningHtml(r.unlearning)}
${r.baseline ? `<h2>What the detector saw</h2><p class="note">${esc(omittedSections(r.baseline).forensics)}</p>` : forensicsHtml(r.forensics)}
<h2>Details</h2><table>${details}</table>
</body></html>
`;
}

function forensicsJson(f: ForensicsSection | undefined): Record<string, unknown> | null {
  if (!f) return null;
  return {
    method: f.method,
    flagged: f.flagged,
    explained: f.explained,
    target: f.target,
    byClass: f.byClass,
    boxes: f.boxes,
    compact: f.compact,
  };
}

/** A report directory as writeReport writes it. */
export const REPORT_DIR = outputDirKind("defense-report", "badexpert defense report", {
  files: [
    "report.html",
    "report.md",
    "roc.svg",
    "scores.svg",
    "plane.svg",
    "forensics-mean-map.png",
    "forensics-trigger-estimate.png",
    "metrics.json",
  ],
});

/** A report is written whole and replaces an earlier report of ours; any other non-empty directory is refused. */
const REPORT_WRITE: WritableDirOptions = { kinds: [REPORT_DIR], replace: true, argument: "--report" };

/** Throws unless writeReport could write `dir`: call it before the evaluation, so a refused directory costs no work. */
export async function assertReportDir(dir: string): Promise<void> {
  await assertWritableDir(dir, REPORT_WRITE);
}

/** Writes report.html, report.md, roc.svg, scores.svg, plane.svg and metrics.json into `dir`. */
export async function writeReport(dir: string, r: DefenseReport): Promise<{ html: string; markdown: string }> {
  const charts = renderCharts(r);
  const files = { roc: "roc.svg", scores: "scores.svg", plane: charts.plane !== null ? "plane.svg" : null };
  await writeDirAtomically(
    dir,
    async (tmp) => {
      await writeFile(join(tmp, files.roc), charts.roc);
      await writeFile(join(tmp, files.scores), charts.scores);
      if (charts.plane !== null) await writeFile(join(tmp, "plane.svg"), charts.plane);
      await writeFile(join(tmp, "report.html"), renderHtml(r, charts));
      await writeFile(join(tmp, "report.md"), renderMarkdown(r, files));
      if (r.forensics && !r.baseline) {
        await writeFile(join(tmp, "forensics-mean-map.png"), r.forensics.meanMapPng);
        await writeFile(join(tmp, "forensics-trigger-estimate.png"), r.forensics.patternPng);
      }
      await writeFile(
        join(tmp, "metrics.json"),
        `${JSON.stringify({ dataset: r.dataset, model: r.model, attack: r.attack, detector: r.baseline?.name ?? "badexpert", ...(r.baseline ? { params: r.baseline.params } : {}), rule: r.rule, targetFpr: r.targetFpr, ...r.metrics, unlearning: r.unlearning ?? null, forensics: r.baseline ? null : forensicsJson(r.forensics), details: r.details }, null, 2)}\n`,
      );
      await writeFile(join(tmp, OUTPUT_MANIFEST), outputManifest("defense-report"));
    },
    REPORT_WRITE,
  );
  return { html: join(dir, "report.html"), markdown: join(dir, "report.md") };
}
