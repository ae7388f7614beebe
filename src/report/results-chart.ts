// RESULTS.md's picture of one dataset and model: AUROC per attack, one bar per detector side by
// side (BaDExpert first, then the baselines that were measured on the same cells), with the
// spread over seeds as a whisker. Built from the report's SVG blocks (svg.ts), so the results
// page and the defense report draw with the same code.
import { esc, frame, legend, svg, sx, sy, type Frame } from "./svg.js";

/** One detector's AUROC on one attack: the mean over seeds and its sample standard deviation (0 for one seed). */
export interface AurocBar {
  mean: number;
  std: number;
  seeds: number;
}

export interface AurocChartGroup {
  /** The attack and its parameters, as the tables name it. */
  label: string;
  /** Whether the backdoor took (ASR before ≥ 50%): a detector is not judged on one that did not, so its bars are faint. */
  took: boolean;
  /** Per detector name (AurocChartInput.detectors); absent where that detector was not measured on this attack. */
  bars: Record<string, AurocBar | undefined>;
}

export interface AurocChartInput {
  title: string;
  /** Detector names in legend order; the first is BaDExpert. */
  detectors: readonly string[];
  groups: readonly AurocChartGroup[];
}

/** The y axis starts at 0.5, chance: a detector below it ranks backdoor inputs as cleaner than clean ones. */
export const AUROC_FLOOR = 0.5;

const PALETTE = [
  "#d62728",
  "#1f77b4",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#7f7f7f",
  "#bcbd22",
  "#17becf",
];
const BAR = 14;
const GAP = 16;
/** Pixels per character of an 11 px label, as legend() estimates them. */
const CHAR = 6.2;
/** Degrees the attack labels are turned by (counter-clockwise), so that long ones fit under narrow groups. */
export const LABEL_ANGLE = 40;

export function detectorColor(index: number): string {
  return PALETTE[index % PALETTE.length] as string;
}

function fmt(x: number): string {
  return x.toFixed(4);
}

/**
 * The chart as SVG text. Bars carry class "bar" and data-detector / data-attack / data-auroc
 * attributes (what a test reads back from the rendered page); each has a <title> with the figure.
 */
export function aurocChart(input: AurocChartInput): string {
  const nDet = Math.max(1, input.detectors.length);
  const labels = input.groups.map((g) => (g.took ? g.label : `${g.label} *`));
  const groupWidth = Math.max(nDet * BAR + GAP, 300 / Math.max(1, input.groups.length));
  const plotWidth = input.groups.length * groupWidth || 300;
  // Labels hang down and to the left of their group's centre, rotated by LABEL_ANGLE: the left
  // margin must hold the first ones, the bottom margin the longest.
  const cos = Math.cos((LABEL_ANGLE * Math.PI) / 180);
  const sin = Math.sin((LABEL_ANGLE * Math.PI) / 180);
  const reach = labels.map((l, i) => l.length * CHAR * cos - (i + 0.5) * groupWidth);
  const left = Math.ceil(Math.max(56, ...reach.map((r) => r + 12)));
  const labelDrop = Math.ceil(Math.max(8, ...labels.map((l) => l.length)) * CHAR * sin) + 20;
  const notes = ["whisker: ± std over seeds", "0.5 = chance"];
  const legendWidth =
    Math.max(...[...input.detectors, "* faint bar: backdoor did not take", ...notes].map((d) => d.length)) * CHAR + 28;
  const plotHeight = 240;
  const f: Frame = frame({
    x0: 0,
    x1: Math.max(1, input.groups.length),
    y0: AUROC_FLOOR,
    y1: 1,
    left,
    right: legendWidth + 16,
    top: 28,
    bottom: labelDrop + 24,
    width: left + plotWidth + legendWidth + 16,
    height: Math.max(28 + plotHeight + labelDrop + 24, 28 + 16 * (input.detectors.length + 1 + notes.length) + 40),
  });
  const base = f.height - f.bottom;
  const parts: string[] = [];
  parts.push(
    `<rect x="${f.left}" y="${f.top}" width="${f.width - f.left - f.right}" height="${base - f.top}" fill="#fff" stroke="#999"/>`,
  );
  for (let i = 0; i <= 5; i++) {
    const v = AUROC_FLOOR + (i * (1 - AUROC_FLOOR)) / 5;
    const y = sy(f, v);
    parts.push(
      `<line x1="${f.left}" y1="${y.toFixed(1)}" x2="${f.width - f.right}" y2="${y.toFixed(1)}" stroke="#eee"/>`,
    );
    parts.push(`<line x1="${f.left - 4}" y1="${y.toFixed(1)}" x2="${f.left}" y2="${y.toFixed(1)}" stroke="#666"/>`);
    parts.push(
      `<text x="${f.left - 7}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#333">${v.toFixed(1)}</text>`,
    );
  }
  input.groups.forEach((g, gi) => {
    const x0 = sx(f, gi) + (sx(f, gi + 1) - sx(f, gi) - nDet * BAR) / 2;
    input.detectors.forEach((d, di) => {
      const b = g.bars[d];
      if (b === undefined || !Number.isFinite(b.mean)) return;
      const x = x0 + di * BAR;
      const shown = Math.max(AUROC_FLOOR, Math.min(1, b.mean));
      const y = sy(f, shown);
      const tip = `${d} on ${g.label}: AUROC ${fmt(b.mean)}${b.seeds > 1 ? ` ± ${fmt(b.std)} over ${b.seeds} seeds` : ""}${g.took ? "" : " (the backdoor did not take)"}`;
      parts.push(
        `<rect class="bar" data-detector="${esc(d)}" data-attack="${esc(g.label)}" data-auroc="${Number(b.mean.toFixed(6))}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${BAR - 2}" height="${(base - y).toFixed(1)}" ` +
          `fill="${detectorColor(di)}" fill-opacity="${g.took ? 0.9 : 0.3}"><title>${esc(tip)}</title></rect>`,
      );
      if (b.mean < AUROC_FLOOR)
        parts.push(
          `<text x="${(x + (BAR - 2) / 2).toFixed(1)}" y="${(base - 3).toFixed(1)}" font-size="10" text-anchor="middle" fill="#000">↓</text>`,
        );
      if (b.seeds > 1 && b.std > 0) {
        const cx = x + (BAR - 2) / 2;
        const lo = sy(f, Math.max(AUROC_FLOOR, Math.min(1, b.mean - b.std)));
        const hi = sy(f, Math.max(AUROC_FLOOR, Math.min(1, b.mean + b.std)));
        parts.push(
          `<line class="whisker" x1="${cx.toFixed(1)}" y1="${lo.toFixed(1)}" x2="${cx.toFixed(1)}" y2="${hi.toFixed(1)}" stroke="#000" stroke-width="1.2"/>`,
        );
      }
    });
    const lx = (sx(f, gi) + sx(f, gi + 1)) / 2;
    const ly = base + 12;
    parts.push(
      `<text class="attack-label" x="${lx.toFixed(1)}" y="${ly}" font-size="11" text-anchor="end" fill="${g.took ? "#111" : "#888"}" transform="rotate(-${LABEL_ANGLE} ${lx.toFixed(1)} ${ly})">${esc(labels[gi] as string)}</text>`,
    );
  });
  parts.push(
    `<text x="${(f.left + f.width - f.right) / 2}" y="${f.height - 8}" font-size="12" text-anchor="middle" fill="#111">attack</text>`,
  );
  const yx = f.left - 40;
  parts.push(
    `<text x="${yx}" y="${(f.top + base) / 2}" font-size="12" text-anchor="middle" fill="#111" transform="rotate(-90 ${yx} ${(f.top + base) / 2})">AUROC</text>`,
  );
  parts.push(
    `<text x="${f.width / 2}" y="18" font-size="13" font-weight="bold" text-anchor="middle" fill="#111">${esc(input.title)}</text>`,
  );
  const items = input.detectors.map((d, i) => ({ label: d, color: detectorColor(i) }));
  if (input.groups.some((g) => !g.took)) items.push({ label: "* faint bar: backdoor did not take", color: "#ddd" });
  // The legend sits right of the plot, where no bar is.
  parts.push(legend({ ...f, right: 8 }, items, "tr"));
  const noteY = f.top + 16 * items.length + 26;
  notes.forEach((n, i) =>
    parts.push(
      `<text x="${f.width - legendWidth - 4}" y="${noteY + 15 * i}" font-size="11" fill="#555">${esc(n)}</text>`,
    ),
  );
  return svg(f, parts.join(""));
}
