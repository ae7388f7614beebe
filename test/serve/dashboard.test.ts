// The dashboard in a real browser: the real service with the small real bundle, headless Debian
// Chromium driven by playwright-core. The page shows nothing flagged, then, after one flagged
// input is sent, shows it with its saliency overlay (a PNG of the model's input size), the
// flagged count and its class; clean inputs never appear. Also GET /v1/flagged and the token.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { access } from "node:fs/promises";
import sharp from "sharp";
import { chromium, type Browser } from "playwright-core";
import { memory } from "../../src/engine/index.js";
import { Detector } from "../../src/api/detector.js";
import { createServer, type BadExpertServer } from "../../src/serve/index.js";
import type { FlaggedEntry, FeedStats } from "../../src/serve/flagged-feed.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { get, postRaw } from "./http.js";

/** Debian's package (scripts/setup.sh installs it); BADEXPERT_CHROMIUM points elsewhere. */
const CHROMIUM = process.env.BADEXPERT_CHROMIUM ?? "/usr/bin/chromium";

interface FlaggedReply {
  window: { scored: number; flagged: number; rate: number; flaggedByClass: { class: string; flagged: number }[] };
  feed: FeedStats;
  recent: FlaggedEntry[];
}

let server: BadExpertServer;
let url: string;
let browser: Browser;
let flaggedPng: Uint8Array<ArrayBuffer>;
let flaggedClass: string;
let cleanPngs: Uint8Array<ArrayBuffer>[];
let tensorsAtStart: number;

before(async () => {
  tensorsAtStart = memory().numTensors;
  await access(CHROMIUM).catch(() => {
    throw new Error(
      `${CHROMIUM} not found: run scripts/setup.sh (installs Debian's chromium) or set BADEXPERT_CHROMIUM`,
    );
  });
  const dir = await fixtureBundle();
  const pngs = await fixturePngs(48);
  const lib = await Detector.load(dir);
  const scores = await lib.score(pngs);
  await lib.dispose();
  const i = scores.findIndex((s) => s.flagged);
  assert.ok(i >= 0, "the 5%-FPR fixture flags at least one of 48 inputs");
  flaggedPng = pngs[i] as Uint8Array<ArrayBuffer>;
  flaggedClass = (scores[i] as { predClass: string }).predClass;
  cleanPngs = pngs.filter((_, k) => !scores[k]?.flagged).slice(0, 5);
  server = await createServer(dir, {
    port: 0,
    logLevel: "silent",
    onFlag: "annotate",
    workers: 1,
    flaggedKeep: 4,
    token: "dashboard-test-token-0123",
  });
  url = await server.listen();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
});

after(async () => {
  await browser?.close();
  assert.equal(await server.close(), 0, "scoring and explain workers freed every tensor");
  assert.equal(memory().numTensors, tensorsAtStart);
});

const auth = { authorization: "Bearer dashboard-test-token-0123" };

test("the page shows a flagged input with its overlay after one is sent, and no clean ones", async () => {
  const page = await browser.newPage();
  await page.goto(`${url}/#token=dashboard-test-token-0123`);
  await page.waitForFunction(() => document.getElementById("status")?.textContent?.startsWith("updated"), undefined, {
    timeout: 20_000,
  });
  assert.equal(await page.locator(".flagged-item").count(), 0, "nothing flagged yet");

  for (const p of cleanPngs)
    assert.equal((await postRaw<{ flagged: boolean }>(`${url}/v1/detect`, p, "image/png", auth)).body.flagged, false);
  const r = await postRaw<{ flagged: boolean; class: string }>(`${url}/v1/detect`, flaggedPng, "image/png", auth);
  assert.equal(r.status, 200);
  assert.equal(r.body.flagged, true);

  await page.waitForSelector(".flagged-item img", { timeout: 30_000 });
  assert.equal(await page.locator(".flagged-item").count(), 1, "exactly the one flagged input");
  const img = page.locator(".flagged-item img");
  assert.match((await img.getAttribute("src")) ?? "", /^data:image\/png;base64,/);
  assert.equal(await img.evaluate((e: HTMLImageElement) => e.naturalWidth), 28, "overlay at the model's input size");
  assert.match((await page.locator(".flagged-item .label").textContent()) ?? "", new RegExp(`→ ${flaggedClass}$`));
  assert.equal(await page.locator("#flagged").textContent(), "1");
  assert.equal(await page.locator("#scored").textContent(), String(cleanPngs.length + 1));
  assert.equal(await page.locator(`#by-class .bar[data-class="${flaggedClass}"] .count`).textContent(), "1");
  await page.close();
});

test("GET /v1/flagged: the entry, its overlay PNG, counts; the token is required; the page is public", async () => {
  const anon = await get(`${url}/v1/flagged`);
  assert.equal(anon.status, 401);
  const page = await fetch(`${url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /Latest flagged inputs/);
  const r = await get<FlaggedReply>(`${url}/v1/flagged`, auth);
  assert.equal(r.status, 200);
  const e = r.body.recent[0] as FlaggedEntry;
  assert.equal(r.body.recent.length, 1);
  assert.equal(e.class, flaggedClass);
  assert.equal(e.route, "/v1/detect");
  const meta = await sharp(Buffer.from((e.overlay ?? "").replace(/^data:image\/png;base64,/, ""), "base64")).metadata();
  assert.deepEqual([meta.width, meta.height, meta.format], [28, 28, "png"]);
  assert.ok(e.peak && e.peak[0] >= 0 && e.peak[0] < 28 && e.peak[1] >= 0 && e.peak[1] < 28);
  assert.deepEqual([r.body.feed.offered, r.body.feed.explained, r.body.feed.dropped, r.body.feed.failed], [1, 1, 0, 0]);
  assert.equal(r.body.feed.method, "smoothgrad");
  assert.equal(r.body.window.flagged, 1);
  assert.equal(r.body.window.flaggedByClass.find((c) => c.class === flaggedClass)?.flagged, 1);
});
