// The comparison report: several detectors on the same splits and attack — one table (AUROC,
// TPR/FPR at each detector's calibrated threshold, CA and ASR after, cost), every ROC curve in one
// chart, as a self-contained HTML page, Markdown (with the chart as an SVG beside it) and JSON.
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
import type { DefenseMetrics, RocPoint } from "../defense/metrics.js";
import { axes, esc, frame, legend, svg, sx, sy } from "./svg.js";

export interface CompareReportRow {
  detector: string;
  params: Record<string, unknown>;
  metrics: DefenseMetrics;
  roc: RocPoint[];
  secondsPer1000: number;
  fitSeconds: number;
  /** Inputs flagged only because their score was not finite. */
  nonFinite: number;
}

export interface CompareReport {
  title: string;
  dataset: string;
  model: string;
  attack: { name: string; params: Record<string, unknown> };
  targetFpr: number;
  rows: CompareReportRow[];
  details: Record<string, string | number>;
}

// Colour-blind-safe palette (Okabe–Ito), one colour per detector in table order.
const COLORS = ["#000000", "#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442"];

/** At most `max` points of a ROC curve, always keeping both ends (the chart needs no more). */
export function thinRoc(points: readonly RocPoint[], max = 400): RocPoint[] {
  if (points.length <= max) return points.slice();
  const out: RocPoint[] = [];
  const step = (points.length - 1) / (max - 1);
  for (let i = 0; i < max; i++) out.push(points[Math.round(i * step)] as RocPoint);
  return out;
}

export function multiRocChart(
  curves: { label: string; points: readonly RocPoint[]; operating: { fpr: number; tpr: number } }[],
): string {
  const f = frame({ x0: 0, x1: 1, y0: 0, y1: 1, width: 520, height: 400 });
  const body = [
    axes(f, { title: "ROC curves, one per detector", xLabel: "false-positive rate", yLabel: "true-positive rate" }),
    `<line x1="${sx(f, 0)}" y1="${sy(f, 0)}" x2="${sx(f, 1)}" y2="${sy(f, 1)}" stroke="#bbb" stroke-dasharray="4 3"/>`,
  ];
  curves.forEach((c, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const d = thinRoc(c.points)
      .map((p, j) => `${j ? "L" : "M"}${sx(f, p.fpr).toFixed(1)},${sy(f, p.tpr).toFixed(1)}`)
      .join("");
    body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2" stroke-opacity="0.85"/>`);
    body.push(
      `<circle cx="${sx(f, c.operating.fpr).toFixed(1)}" cy="${sy(f, c.operating.tpr).toFixed(1)}" r="4" fill="none" stroke="${color}" stroke-width="2"/>`,
    );
  });
  body.push(
    legend(
      f,
      curves.map((c, i) => ({ label: c.label, color: COLORS[i % COLORS.length] as string })),
      "br",
    ),
  );
  return svg(f, body.join(""));
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(2)}%` : "n/a");
const fixed = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");

export const COMPARE_HEADER = [
  "detector",
  "AUROC",
  "TPR at threshold",
  "FPR at threshold",
  "CA before → after",
  "ASR before → after",
  "s per 1,000 inputs",
  "fit (s)",
];

export function compareRows(rows: readonly CompareReportRow[]): string[][] {
  return rows.map((r) => {
    const m = r.metrics;
    return [
      r.detector,
      fixed(m.auroc, 4),
      pct(m.tpr),
      pct(m.fpr),
      `${pct(m.cleanAccuracyBefore)} → ${pct(m.cleanAccuracyAfter)}`,
      `${pct(m.asrBefore)} → ${pct(m.asrAfter)}`,
      fixed(r.secondsPer1000, 2),
      fixed(r.fitSeconds, 1),
    ];
  });
}

export function renderCompareMarkdown(r: CompareReport, rocFile: string): string {
  return [
    `# ${r.title}`,
    "",
    `Dataset **${r.dataset}**, model **${r.model}**, attack **${r.attack.name}** \`${JSON.stringify(r.attack.params)}\`; every threshold at ${pct(r.targetFpr)} FPR on the same clean calibration split.`,
    "",
    `| ${COMPARE_HEADER.join(" | ")} |`,
    `|${"---|".repeat(COMPARE_HEADER.length)}`,
    ...compareRows(r.rows).map((c) => `| ${c.join(" | ")} |`),
    "",
    `![ROC curves](${rocFile})`,
    "",
    "| detector | parameters |",
    "|---|---|",
    ...r.rows.map((row) => `| ${row.detector} | \`${JSON.stringify(row.params)}\` |`),
    "",
    "| detail | value |",
    "|---|---|",
    ...Object.entries(r.details).map(([k, v]) => `| ${k} | ${String(v)} |`),
    "",
  ].join("\n");
}

export function renderCompareHtml(r: CompareReport, chart: string): string {
  const head = COMPARE_HEADER.map((h) => `<th>${esc(h)}</th>`).join("");
  const rows = compareRows(r.rows)
    .map((c) => `<tr>${c.map((v) => `<td>${esc(v)}</td>`).join("")}</tr>`)
    .join("");
  const params = r.rows
    .map((row) => `<tr><th>${esc(row.detector)}</th><td><code>${esc(JSON.stringify(row.params))}</code></td></tr>`)
    .join("");
  const details = Object.entries(r.details)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(String(v))}</td></tr>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#111;padding:0 16px}
table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:left}th{background:#f5f5f5;font-weight:600}
code{font-size:12px}.note{color:#444;font-size:14px;max-width:900px}
</style></head><body>
<h1>${esc(r.title)}</h1>
<p class="note">Dataset <b>${esc(r.dataset)}</b> · model <b>${esc(r.model)}</b> · attack <b>${esc(r.attack.name)}</b> <code>${esc(JSON.stringify(r.attack.params))}</code> ·
every detector fitted on the same reserved clean split, its threshold calibrated at ${pct(r.targetFpr)} FPR on the same calibration split, and measured on the same evaluation split with the same metric code.</p>
<table><tr>${head}</tr>${rows}</table>
<p class="note">AUROC, TPR and FPR use the authors' sets: clean inputs M classifies correctly (negatives) and poisoned inputs that fool M (positives). CA and ASR "after" count an input only when it is not flagged. Inputs whose score is not a finite number are flagged (fail closed).</p>
<figure>${chart}<figcaption class="note">One ROC curve per detector; each circle is that detector's calibrated operating point.</figcaption></figure>
<h2>Parameters</h2><table>${params}</table>
<h2>Details</h2><table>${details}</table>
</body></html>
`;
}

/** A comparison report directory as writeCompareReport writes it. */
export const COMPARE_REPORT_DIR = outputDirKind("compare-report", "badexpert comparison report", {
  files: ["compare.html", "compare.md", "roc.svg", "compare.json"],
});

/** A report is written whole and replaces an earlier report of ours; any other non-empty directory is refused. */
const COMPARE_WRITE: WritableDirOptions = { kinds: [COMPARE_REPORT_DIR], replace: true, argument: "--report" };

/** Throws unless writeCompareReport could write `dir`: call it before the comparison, so a refused directory costs no work. */
export async function assertCompareReportDir(dir: string): Promise<void> {
  await assertWritableDir(dir, COMPARE_WRITE);
}

/** Writes compare.html, compare.md, roc.svg and compare.json into `dir`. */
export async function writeCompareReport(
  dir: string,
  r: CompareReport,
): Promise<{ html: string; markdown: string; json: string }> {
  const chart = multiRocChart(
    r.rows.map((row) => ({
      label: `${row.detector} (AUROC ${fixed(row.metrics.auroc, 4)})`,
      points: row.roc,
      operating: { fpr: row.metrics.fpr, tpr: row.metrics.tpr },
    })),
  );
  const rows = r.rows.map((row) => ({
    ...row,
    roc: thinRoc(row.roc, 200).map((p) => ({
      fpr: p.fpr,
      tpr: p.tpr,
      threshold: Number.isFinite(p.threshold) ? p.threshold : String(p.threshold),
    })),
  }));
  await writeDirAtomically(
    dir,
    async (tmp) => {
      await writeFile(join(tmp, "roc.svg"), chart);
      await writeFile(join(tmp, "compare.html"), renderCompareHtml(r, chart));
      await writeFile(join(tmp, "compare.md"), renderCompareMarkdown(r, "roc.svg"));
      await writeFile(join(tmp, "compare.json"), `${JSON.stringify({ ...r, rows }, null, 2)}\n`);
      await writeFile(join(tmp, OUTPUT_MANIFEST), outputManifest("compare-report"));
    },
    COMPARE_WRITE,
  );
  return { html: join(dir, "compare.html"), markdown: join(dir, "compare.md"), json: join(dir, "compare.json") };
}
