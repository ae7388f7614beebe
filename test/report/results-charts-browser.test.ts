// RESULTS.md's charts in a real browser (headless Debian Chromium driven by playwright-core, as
// the dashboard's test does): every chart RESULTS.md links exists and every chart file is linked;
// each opens as an image at its declared size; its bars stand at the AUROC they carry; its attack
// labels stay inside the picture and do not run into each other, and the legend covers no bar.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { access, readFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { AUROC_FLOOR, LABEL_ANGLE, aurocChart } from "../../src/report/results-chart.js";
import { CHART_DIR } from "../../bench/results-page.js";

/** Debian's package (scripts/setup.sh installs it); BADEXPERT_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.BADEXPERT_CHROMIUM ?? "/usr/bin/chromium";
const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

let browser: Browser;

before(async () => {
  await access(CHROMIUM).catch(() => {
    throw new Error(
      `${CHROMIUM} not found: run scripts/setup.sh (installs Debian's chromium) or set BADEXPERT_CHROMIUM`,
    );
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
});

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

const overlap = (a: Box, b: Box): boolean =>
  a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

/** Checks one chart's geometry as the browser laid it out; returns the bars it found. */
async function checkChart(
  page: Page,
  svgText: string,
  what: string,
): Promise<{ detector: string; attack: string; auroc: number }[]> {
  await page.setContent(`<!doctype html><html><body style="margin:0">${svgText}</body></html>`);
  const m = await page.evaluate(() => {
    const svg = document.querySelector("svg") as SVGSVGElement;
    const box = (e: Element): { x: number; y: number; width: number; height: number } => {
      const r = e.getBoundingClientRect();
      return { x: r.x, y: r.y, width: r.width, height: r.height };
    };
    const plot = svg.querySelector("rect") as SVGRectElement; // the plot frame is drawn first
    return {
      svg: box(svg),
      plot: box(plot),
      bars: [...svg.querySelectorAll("rect.bar")].map((e) => ({
        detector: e.getAttribute("data-detector") ?? "",
        attack: e.getAttribute("data-attack") ?? "",
        auroc: Number(e.getAttribute("data-auroc")),
        box: box(e),
      })),
      labels: [...svg.querySelectorAll("text.attack-label")].map((e) => ({ text: e.textContent ?? "", box: box(e) })),
      texts: [...svg.querySelectorAll("text")].map((e) => ({ text: e.textContent ?? "", box: box(e) })),
    };
  });
  assert.ok(m.svg.width > 200 && m.svg.height > 200, `${what}: the chart has a size`);
  assert.ok(m.bars.length > 0, `${what}: bars`);
  const floorY = m.plot.y + m.plot.height;
  for (const b of m.bars) {
    assert.ok(Number.isFinite(b.auroc), `${what}: ${b.attack} carries its AUROC`);
    // Height in proportion to AUROC − 0.5 over the plot's 0.5 … 1 range (below 0.5: no height, marked ↓).
    const want = (Math.max(0, Math.min(1, b.auroc) - AUROC_FLOOR) / (1 - AUROC_FLOOR)) * m.plot.height;
    assert.ok(
      Math.abs(b.box.height - want) < 1.5,
      `${what}: ${b.detector} on ${b.attack} is ${b.box.height.toFixed(1)} px high, AUROC ${b.auroc} wants ${want.toFixed(1)}`,
    );
    assert.ok(Math.abs(b.box.y + b.box.height - floorY) < 1.5, `${what}: ${b.attack}'s bar stands on the axis`);
  }
  const attacks = new Set(m.bars.map((b) => b.attack));
  assert.equal(m.labels.length, attacks.size, `${what}: one label per attack`);
  for (const [i, l] of m.labels.entries()) {
    const inside =
      l.box.x >= -0.5 &&
      l.box.y >= -0.5 &&
      l.box.x + l.box.width <= m.svg.width + 0.5 &&
      l.box.y + l.box.height <= m.svg.height + 0.5;
    assert.ok(
      inside,
      `${what}: label ${l.text} lies inside the picture (${JSON.stringify(l.box)} in ${m.svg.width}x${m.svg.height})`,
    );
    // Rotated labels are parallel lines ending at their group's centre (the right edge of their box):
    // the gap between two neighbours is the distance of those ends times sin(angle), and must hold an 11 px line.
    const next = m.labels[i + 1];
    if (next) {
      const gap = (next.box.x + next.box.width - (l.box.x + l.box.width)) * Math.sin((LABEL_ANGLE * Math.PI) / 180);
      assert.ok(gap >= 12, `${what}: labels ${l.text} and ${next.text} are ${gap.toFixed(1)} px apart`);
    }
  }
  const legendTexts = m.texts.filter((t) => m.bars.some((b) => t.text === b.detector) || t.text.startsWith("* faint"));
  for (const t of legendTexts)
    for (const b of m.bars) assert.ok(!overlap(t.box, b.box), `${what}: legend entry ${t.text} covers a bar`);
  // As an image (how a Markdown viewer shows it): it decodes at its declared size.
  const natural = await page.evaluate(
    async (src) => {
      const img = new Image();
      img.src = src;
      await img.decode();
      return { w: img.naturalWidth, h: img.naturalHeight };
    },
    `data:image/svg+xml;base64,${Buffer.from(svgText).toString("base64")}`,
  );
  assert.deepEqual(
    natural,
    { w: Math.round(m.svg.width), h: Math.round(m.svg.height) },
    `${what}: decodes as an image`,
  );
  return m.bars.map(({ detector, attack, auroc }) => ({ detector, attack, auroc }));
}

test("every chart RESULTS.md links exists, each chart file is linked, and each renders as drawn", async () => {
  const md = await readFile(join(ROOT, "RESULTS.md"), "utf8");
  const linked = [...md.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)].map((x) => x[1] as string);
  const files = (await readdir(join(ROOT, CHART_DIR)))
    .filter((n) => n.endsWith(".svg"))
    .map((n) => `${CHART_DIR}/${n}`);
  assert.ok(linked.length > 0, "RESULTS.md shows charts");
  assert.deepEqual([...linked].sort(), [...files].sort());
  const page = await browser.newPage();
  for (const f of linked) {
    const bars = await checkChart(page, await readFile(join(ROOT, f), "utf8"), f);
    // BaDExpert's bars carry the AUROC the page's tables give for the same attack.
    for (const b of bars.filter((x) => x.detector === "badexpert")) {
      const label = b.attack.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      assert.match(
        md,
        new RegExp(`\\| ${label}( · \\*\\*did not take\\*\\*)? \\| [0-9, ]+ \\| ${b.auroc.toFixed(4)}`),
        `${f}: ${b.attack}`,
      );
    }
  }
  await page.close();
});

test("a chart with baselines and long labels: one bar per detector and attack, labels clear of each other and of the edges", async () => {
  const detectors = ["badexpert", "strip", "scale-up", "frequency"];
  const groups = [
    "badnet",
    "adaptive-patch (coverRate=0.02, rate=0.04)",
    "blend (rate=0.03)",
    "wanet (strength=1)",
    "sig",
  ].map((label, i) => ({
    label,
    took: i !== 4,
    bars: Object.fromEntries(
      detectors.map((d, k) => [
        d,
        { mean: [0.999, 0.62, 0.93, 0.41][k] as number, std: k === 0 ? 0.01 : 0, seeds: k === 0 ? 3 : 1 },
      ]),
    ),
  }));
  const page = await browser.newPage();
  const bars = await checkChart(page, aurocChart({ title: "test", detectors, groups }), "synthetic");
  assert.equal(bars.length, detectors.length * groups.length);
  await page.close();
});
