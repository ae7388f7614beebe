// The report's three pictures: the ROC curve, score histograms of clean vs backdoor inputs, and
// the plane of (B's confidence, M''s confidence) with the detector's decision region — the
// picture that explains the method.
import { axes, frame, legend, svg, sx, sy, esc } from "./svg.js";
import { scoreOf, type ScoreRule } from "../defense/scores.js";
import type { RocPoint } from "../defense/metrics.js";

const CLEAN = "#1f77b4";
const BACKDOOR = "#d62728";

export function rocChart(points: RocPoint[], operating: { fpr: number; tpr: number }, aurocValue: number): string {
  const f = frame({ x0: 0, x1: 1, y0: 0, y1: 1 });
  const path = points.map((p, i) => `${i ? "L" : "M"}${sx(f, p.fpr).toFixed(1)},${sy(f, p.tpr).toFixed(1)}`).join("");
  const body = [
    axes(f, {
      title: `ROC curve (AUROC ${aurocValue.toFixed(4)})`,
      xLabel: "false-positive rate (clean inputs flagged)",
      yLabel: "true-positive rate (backdoor inputs flagged)",
    }),
    `<line x1="${sx(f, 0)}" y1="${sy(f, 0)}" x2="${sx(f, 1)}" y2="${sy(f, 1)}" stroke="#bbb" stroke-dasharray="4 3"/>`,
    `<path d="${path}" fill="none" stroke="${BACKDOOR}" stroke-width="2"/>`,
    `<circle cx="${sx(f, operating.fpr)}" cy="${sy(f, operating.tpr)}" r="5" fill="none" stroke="#000" stroke-width="2"/>`,
    legend(
      f,
      [
        {
          label: `threshold: FPR ${(100 * operating.fpr).toFixed(2)}%, TPR ${(100 * operating.tpr).toFixed(2)}%`,
          color: "#000",
        },
      ],
      "br",
    ),
  ];
  return svg(f, body.join(""));
}

export function histogramChart(
  clean: ArrayLike<number>,
  backdoor: ArrayLike<number>,
  threshold: number,
  bins = 40,
): string {
  const all = [...Array.from(clean), ...Array.from(backdoor)].filter(Number.isFinite);
  // Scores can have far outliers (divisions by small confidences); clip the view to robust bounds.
  const sorted = all.slice().sort((a, b) => a - b);
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
  let lo = q(0.01);
  let hi = Math.max(q(1 - 1e-9), Number.isFinite(threshold) ? threshold : -Infinity);
  if (!(hi > lo)) hi = lo + 1;
  lo = Math.min(lo, Number.isFinite(threshold) ? threshold : lo);
  const width = (hi - lo) / bins;
  const count = (xs: ArrayLike<number>) => {
    const h = new Array<number>(bins).fill(0);
    for (let i = 0; i < xs.length; i++) {
      const v = Math.min(hi, Math.max(lo, xs[i] as number));
      const k = Math.min(bins - 1, Math.floor((v - lo) / width));
      h[k] = (h[k] ?? 0) + 1;
    }
    const n = Math.max(1, xs.length);
    return h.map((c) => c / n);
  };
  const hc = count(clean);
  const hb = count(backdoor);
  const ymax = Math.max(0.05, ...hc, ...hb) * 1.05;
  const f = frame({ x0: lo, x1: hi, y0: 0, y1: ymax });
  const bars = (h: number[], color: string) =>
    h
      .map((v, i) => {
        const x = sx(f, lo + i * width);
        const w = sx(f, lo + (i + 1) * width) - x;
        return v > 0
          ? `<rect x="${x.toFixed(1)}" y="${sy(f, v).toFixed(1)}" width="${Math.max(0.5, w - 0.5).toFixed(1)}" height="${(sy(f, 0) - sy(f, v)).toFixed(1)}" fill="${color}" fill-opacity="0.55"/>`
          : "";
      })
      .join("");
  const tx = sx(f, Math.min(hi, Math.max(lo, threshold)));
  return svg(
    f,
    [
      axes(f, {
        title: "BaDExpert score: clean vs backdoor inputs",
        xLabel: "score (higher = more suspicious; clipped to the 1st percentile)",
        yLabel: "fraction of inputs",
      }),
      bars(hc, CLEAN),
      bars(hb, BACKDOOR),
      `<line x1="${tx}" y1="${sy(f, 0)}" x2="${tx}" y2="${sy(f, ymax)}" stroke="#000" stroke-width="2" stroke-dasharray="5 3"/>`,
      legend(
        f,
        [
          { label: `clean inputs (${clean.length})`, color: CLEAN },
          { label: `backdoor inputs (${backdoor.length})`, color: BACKDOOR },
          { label: "threshold", color: "#000" },
        ],
        "tl",
      ),
    ].join(""),
  );
}

/**
 * The (b, a) plane: x = B's confidence in M's label, y = M''s confidence. Shaded: where the rule
 * flags an input (score > threshold). Backdoor inputs should sit bottom-right (B agrees with M,
 * M' does not), clean ones to the left or top.
 */
export function planeChart(
  rule: ScoreRule,
  threshold: number,
  clean: { a: ArrayLike<number>; b: ArrayLike<number> },
  backdoor: { a: ArrayLike<number>; b: ArrayLike<number> },
  maxPoints = 1500,
): string {
  const f = frame({ x0: 0, x1: 1, y0: 0, y1: 1, width: 440, height: 400 });
  const cells = 160;
  const step = 1 / cells;
  const region: string[] = [];
  for (let i = 0; i < cells; i++) {
    const b = (i + 0.5) * step;
    let runStart = -1;
    for (let j = 0; j <= cells; j++) {
      const a = (j + 0.5) * step;
      const flagged = j < cells && scoreOf(rule, a, b) > threshold;
      if (flagged && runStart < 0) runStart = j;
      if (!flagged && runStart >= 0) {
        const x = sx(f, i * step);
        const y = sy(f, j * step);
        region.push(
          `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(sx(f, (i + 1) * step) - x + 0.3).toFixed(1)}" height="${(sy(f, runStart * step) - y + 0.3).toFixed(1)}"/>`,
        );
        runStart = -1;
      }
    }
  }
  const dots = (p: { a: ArrayLike<number>; b: ArrayLike<number> }, color: string) => {
    const n = p.a.length;
    const stride = Math.max(1, Math.ceil(n / maxPoints));
    const out: string[] = [];
    for (let i = 0; i < n; i += stride)
      out.push(`<circle cx="${sx(f, p.b[i] as number).toFixed(1)}" cy="${sy(f, p.a[i] as number).toFixed(1)}" r="2"/>`);
    return `<g fill="${color}" fill-opacity="0.5">${out.join("")}</g>`;
  };
  return svg(
    f,
    [
      axes(f, {
        title: `Decision plane (${esc(rule)} rule)`,
        xLabel: "b = backdoor expert B's confidence in M's label",
        yLabel: "a = auxiliary model M''s confidence",
      }),
      `<g fill="#f4a582" fill-opacity="0.45">${region.join("")}</g>`,
      dots(clean, CLEAN),
      dots(backdoor, BACKDOOR),
      legend(
        f,
        [
          { label: "flagged region", color: "#f4a582" },
          { label: "clean inputs", color: CLEAN },
          { label: "backdoor inputs", color: BACKDOOR },
        ],
        "tl",
      ),
    ].join(""),
  );
}
