// The dashboard's feed on its own: a burst of flagged inputs fills the bounded queue and the rest
// are dropped (counted, never queued without limit); the ring keeps the newest `keep` entries,
// each with a PNG overlay of the model's input size; closing frees the explain worker's tensors.
// On Linux the explain worker's thread runs at nice 19, and no other thread of the process does.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import sharp from "sharp";
import { FlaggedFeed } from "../../src/serve/flagged-feed.js";
import { fixtureBundle } from "./fixture.js";

test("a burst beyond the queue is dropped and counted; the ring keeps the newest; close frees everything", async () => {
  const dir = await fixtureBundle();
  const feed = await FlaggedFeed.start(
    { source: { kind: "bundle", dir, detector: "badexpert" }, threads: 1, engine: "libtorch", bundleLoad: {} },
    { keep: 2, method: "gradient-x-input", maxQueue: 2, width: 28 },
  );
  if (process.platform === "linux") {
    assert.equal(feed.stats.background, true, `explain worker priority: ${feed.stats.backgroundError ?? ""}`);
    const niceOf = (stat: string): number => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
    const nices = readdirSync("/proc/self/task").map((t) => niceOf(readFileSync(`/proc/self/task/${t}/stat`, "utf8")));
    const mine = niceOf(readFileSync("/proc/thread-self/stat", "utf8"));
    if (mine < 19) {
      assert.equal(
        nices.filter((n) => n === 19).length,
        1,
        `one thread at nice 19 (the explain worker); nice values: ${nices.join(",")}`,
      );
      assert.equal(mine, nices[0], "the main thread keeps its priority");
    }
  }
  const pixels = new Uint8Array(28 * 28);
  for (let p = 0; p < pixels.length; p++) pixels[p] = (p * 37) % 256;
  for (let i = 0; i < 30; i++)
    feed.offer({
      time: new Date(0).toISOString(),
      requestId: `r${i}`,
      route: "/v1/detect",
      pred: i % 10,
      class: `c${i % 10}`,
      score: i,
      pixels,
    });
  // The first goes to the worker at once, two wait in the queue, 27 are dropped.
  assert.deepEqual([feed.stats.offered, feed.stats.dropped, feed.stats.queued], [30, 27, 2]);
  await feed.idle();
  const s = feed.stats;
  assert.deepEqual([s.explained, s.failed, s.queued], [3, 0, 0]);
  const recent = feed.recent();
  assert.deepEqual(
    recent.map((e) => e.requestId),
    ["r2", "r1"],
    "newest first, only `keep` of them",
  );
  for (const e of recent) {
    assert.equal(e.error, undefined);
    const png = Buffer.from((e.overlay ?? "").replace(/^data:image\/png;base64,/, ""), "base64");
    const meta = await sharp(png).metadata();
    assert.deepEqual([meta.width, meta.height], [28, 28]);
  }
  assert.equal(await feed.close(), 0, "the explain worker freed its tensors");
  feed.offer({ time: "", requestId: "late", route: "/v1/detect", pred: 0, class: "c0", score: 0, pixels });
  assert.equal(feed.stats.offered, 30, "a closed feed takes nothing");
});
