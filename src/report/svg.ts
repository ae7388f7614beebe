// Minimal SVG building blocks for the report's charts: a plot frame with linear axes, ticks
// and labels. Output is plain SVG text that embeds in HTML and opens offline.

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  x0: number;
  x1: number;
  y0: number;
  y1: number;
}

export function frame(o: Partial<Frame> & { x0: number; x1: number; y0: number; y1: number }): Frame {
  return { width: 440, height: 340, left: 56, right: 16, top: 28, bottom: 46, ...o };
}

export function sx(f: Frame, x: number): number {
  return f.left + ((x - f.x0) / (f.x1 - f.x0 || 1)) * (f.width - f.left - f.right);
}

export function sy(f: Frame, y: number): number {
  return f.height - f.bottom - ((y - f.y0) / (f.y1 - f.y0 || 1)) * (f.height - f.top - f.bottom);
}

function fmtTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e4)) return v.toExponential(0);
  return String(Math.round(v * 100) / 100);
}

/** Axes with `n` ticks each, axis titles and a chart title. */
export function axes(f: Frame, o: { title: string; xLabel: string; yLabel: string; ticks?: number }): string {
  const n = o.ticks ?? 5;
  const parts: string[] = [];
  const bx = f.height - f.bottom;
  parts.push(
    `<rect x="${f.left}" y="${f.top}" width="${f.width - f.left - f.right}" height="${bx - f.top}" fill="#fff" stroke="#999"/>`,
  );
  for (let i = 0; i <= n; i++) {
    const xv = f.x0 + ((f.x1 - f.x0) * i) / n;
    const yv = f.y0 + ((f.y1 - f.y0) * i) / n;
    const x = sx(f, xv);
    const y = sy(f, yv);
    parts.push(`<line x1="${x}" y1="${bx}" x2="${x}" y2="${bx + 4}" stroke="#666"/>`);
    parts.push(`<text x="${x}" y="${bx + 16}" font-size="11" text-anchor="middle" fill="#333">${fmtTick(xv)}</text>`);
    parts.push(`<line x1="${f.left - 4}" y1="${y}" x2="${f.left}" y2="${y}" stroke="#666"/>`);
    parts.push(
      `<text x="${f.left - 7}" y="${y + 4}" font-size="11" text-anchor="end" fill="#333">${fmtTick(yv)}</text>`,
    );
  }
  parts.push(
    `<text x="${(f.left + f.width - f.right) / 2}" y="${f.height - 8}" font-size="12" text-anchor="middle" fill="#111">${esc(o.xLabel)}</text>`,
  );
  parts.push(
    `<text x="14" y="${(f.top + bx) / 2}" font-size="12" text-anchor="middle" fill="#111" transform="rotate(-90 14 ${(f.top + bx) / 2})">${esc(o.yLabel)}</text>`,
  );
  parts.push(
    `<text x="${f.width / 2}" y="18" font-size="13" font-weight="bold" text-anchor="middle" fill="#111">${esc(o.title)}</text>`,
  );
  return parts.join("");
}

export function svg(f: Frame, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" font-family="sans-serif">${body}</svg>`;
}

export function legend(f: Frame, items: { label: string; color: string }[], corner: "tl" | "tr" | "br" = "tr"): string {
  // Wide enough for the longest label (about 6.2 px per character at 11 px).
  const w = Math.max(...items.map((it) => it.label.length)) * 6.2 + 20;
  const x = corner === "tl" ? f.left + 8 : f.width - f.right - w - 4;
  const y0 = corner === "br" ? f.height - f.bottom - 8 - 16 * items.length : f.top + 8;
  const bg = `<rect x="${x - 4}" y="${y0 - 4}" width="${w + 4}" height="${16 * items.length + 4}" fill="#fff" fill-opacity="0.85" stroke="#ddd"/>`;
  return (
    bg +
    items
      .map(
        (it, i) =>
          `<rect x="${x}" y="${y0 + i * 16}" width="10" height="10" fill="${it.color}"/><text x="${x + 14}" y="${y0 + i * 16 + 9}" font-size="11" fill="#222">${esc(it.label)}</text>`,
      )
      .join("")
  );
}
