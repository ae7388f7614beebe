// The defense report on a hand-made scored set: the numbers it prints, that the HTML is
// self-contained, and the unlearning-rate section.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defenseMetrics } from "../../src/defense/metrics.js";
import {
  writeReport,
  unlearningSentence,
  type DefenseReport,
  type ForensicsSection,
  type ScoredInputs,
} from "../../src/report/report.js";
import { heatmapPng } from "../../src/forensics/overlay.js";

// Four clean inputs (M right on three) and four poisoned ones (three fool M); higher score = more suspicious.
const clean: ScoredInputs = {
  a: [0.9, 0.8, 0.7, 0.6],
  b: [0.1, 0.2, 0.3, 0.4],
  score: [-3, -2, -1, 0.5],
  pred: [0, 1, 2, 0],
  label: [0, 1, 2, 3],
};
const poisoned: ScoredInputs = {
  a: [0.1, 0.1, 0.2, 0.3],
  b: [0.9, 0.95, 0.8, 0.7],
  score: [1, 2, -2.5, 3],
  pred: [0, 0, 0, 1],
  label: [0, 0, 0, 0],
};

function report(over: Partial<DefenseReport> = {}): DefenseReport {
  const threshold = 0;
  return {
    title: "BaDExpert vs test <attack>",
    dataset: "fashion-mnist",
    model: "compact-cnn",
    attack: { name: "badnet", params: { rate: 0.003 } },
    rule: "triangle",
    threshold,
    targetFpr: 0.01,
    metrics: defenseMetrics(clean, poisoned, threshold),
    clean,
    poisoned,
    details: { seed: 0 },
    ...over,
  };
}

test("the report states the metrics of its inputs, in HTML, Markdown and JSON, with inline charts only", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-report-"));
  try {
    const files = await writeReport(dir, report());
    assert.deepEqual((await readdir(dir)).sort(), [
      "badexpert-output.json",
      "metrics.json",
      "plane.svg",
      "report.html",
      "report.md",
      "roc.svg",
      "scores.svg",
    ]);
    // A report of ours is replaced whole; a directory with anything else in it is refused, and kept.
    await writeReport(dir, report());
    await writeFile(join(dir, "notes.txt"), "mine");
    await assert.rejects(
      writeReport(dir, report()),
      /--report .* holds a badexpert defense report and 1 entry badexpert did not write \(notes\.txt\); refusing to replace it/,
    );
    assert.equal(await readFile(join(dir, "notes.txt"), "utf8"), "mine");
    await rm(join(dir, "notes.txt"));
    const m = JSON.parse(await readFile(join(dir, "metrics.json"), "utf8")) as Record<string, number>;
    // Clean: 3 of 4 right, none of those flagged (only the wrong one scores 0.5 > 0) → CA 75% before and after.
    assert.equal(m.cleanAccuracyBefore, 0.75);
    assert.equal(m.cleanAccuracyAfter, 0.75);
    // Poisoned: 3 of 4 reach the target; two of those are flagged (scores 1, 2) → ASR 75% → 25%.
    assert.equal(m.asrBefore, 0.75);
    assert.equal(m.asrAfter, 0.25);
    // Positives {1, 2, -2.5} vs negatives {-3, -2, -1}: 7 of 9 pairs ordered right.
    assert.ok(Math.abs((m.auroc as number) - 7 / 9) < 1e-12);
    const md = await readFile(files.markdown, "utf8");
    assert.match(md, /\| Attack success rate \(ASR\) \| 75\.00% \| 25\.00% \|/);
    assert.match(md, /\| AUROC \| 0\.7778 \|/);
    const html = await readFile(files.html, "utf8");
    // Self-contained: charts inline, nothing fetched, and the title escaped.
    assert.equal((html.match(/<svg/g) ?? []).length, 3);
    assert.doesNotMatch(html, /<link|<script|src="http|href="http/);
    assert.match(html, /BaDExpert vs test &lt;attack&gt;/);
    assert.doesNotMatch(html, /Unlearning rate/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("the unlearning section says where the rate came from", async () => {
  assert.equal(
    unlearningSentence({ lr: 1e-5, source: "until-forgotten" }),
    "Unlearning rate of B: 0.00001 — unlearned until B's clean accuracy on held-out images fell to 20%, the rate growing from 1e-5.",
  );
  assert.match(unlearningSentence({ lr: 1e-4, source: "paper" }), /the paper's rate/);
  assert.match(
    unlearningSentence({ lr: 1e-4, source: "default" }),
    /^Unlearning rate of B: 0\.0001 — this architecture's fixed default on this dataset/,
  );

  const dir = await mkdtemp(join(tmpdir(), "bx-report-"));
  try {
    const files = await writeReport(dir, report({ unlearning: { lr: 3e-4, source: "given" } }));
    assert.match(await readFile(files.markdown, "utf8"), /^Unlearning rate of B: 0\.0003 — given by the user\.$/m);
    assert.match(
      await readFile(files.html, "utf8"),
      /<h2>Unlearning rate<\/h2><p class="note">Unlearning rate of B: 0\.0003 — given by the user\.<\/p>/,
    );
    const m = JSON.parse(await readFile(join(dir, "metrics.json"), "utf8")) as {
      unlearning: { lr: number; source: string };
    };
    assert.deepEqual([m.unlearning.lr, m.unlearning.source], [3e-4, "given"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the "What the detector saw" section: overlays, mean map and trigger estimate inline, the target class and box', async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-report-"));
  try {
    const map = new Float32Array(28 * 28);
    map[26 * 28 + 26] = 1;
    const png = await heatmapPng(map, 28, 28);
    const forensics: ForensicsSection = {
      method: "occlusion",
      flagged: 120,
      explained: 48,
      target: { name: "T-shirt/top", share: 1 },
      byClass: [
        { name: "T-shirt/top", count: 48 },
        { name: "Trouser", count: 0 },
      ],
      examples: [
        { png, class: "T-shirt/top", score: 0.75 },
        { png, class: "T-shirt/top", score: 0.5 },
      ],
      meanMapPng: png,
      patternPng: png,
      boxes: [{ top: 24, left: 24, bottom: 27, right: 27 }],
      compact: true,
    };
    const files = await writeReport(dir, report({ forensics }));
    const html = await readFile(files.html, "utf8");
    assert.match(html, /<h2>What the detector saw<\/h2>/);
    assert.match(html, /120 poisoned evaluation inputs were flagged; 48 were explained with occlusion saliency/);
    assert.match(html, /Target class: T-shirt\/top \(100\.00% of them\)/);
    assert.match(html, /rows 24–26, columns 24–26/);
    // Two examples, the mean map and the estimate, all inline PNGs (the report stays self-contained).
    assert.equal((html.match(/<img class="px" src="data:image\/png;base64,/g) ?? []).length, 4);
    assert.doesNotMatch(html, /<td>Trouser<\/td>/, "classes with no flagged input are left out");
    const md = await readFile(files.markdown, "utf8");
    assert.match(md, /## What the detector saw/);
    assert.ok((await readdir(dir)).includes("forensics-mean-map.png"));
    const m = JSON.parse(await readFile(join(dir, "metrics.json"), "utf8")) as {
      forensics: { boxes: unknown[]; target: { name: string } };
    };
    assert.equal(m.forensics.target.name, "T-shirt/top");
    assert.equal(m.forensics.boxes.length, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
