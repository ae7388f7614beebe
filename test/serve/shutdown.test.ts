// `badexpert serve` as a child process: SIGHUP reloads the bundle under load without failing a
// request, and SIGTERM under load answers every request already received, flushes the audit
// log and exits 0.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { get, metric, postRaw, type Reply } from "./http.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

test("SIGHUP reloads under load and SIGTERM finishes the requests in flight", async () => {
  const dir = await fixtureBundle();
  const work = await mkdtemp(join(tmpdir(), "bx-serve-sig-"));
  const pngs = await fixturePngs(40);
  const audit = join(work, "audit.jsonl");
  const child = spawn(
    process.execPath,
    [
      MAIN,
      "serve",
      "--bundle",
      dir,
      "--port",
      "0",
      "--max-wait-ms",
      "5000",
      "--timeout-ms",
      "30000",
      "--threads",
      "1",
      "--audit-log",
      audit,
      "--log-level",
      "info",
    ],
    {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, BADEXPERT_THREADS: "1" },
    },
  );
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.on("line", (line) => {
        const o = JSON.parse(line) as Record<string, unknown>;
        logs.push(o);
        if (o.event === "listening") resolve(String(o.url));
      });
      child.on("exit", (code) => reject(new Error(`serve exited with ${code} before listening`)));
    });

    // Reload while requests are queued: none fails, and the detector's load time changes.
    const loadedAt = (await get(`${url}/v1/detector`)).body.loadedAt;
    const during = pngs.slice(0, 20).map((p) => postRaw(`${url}/v1/detect`, p));
    child.kill("SIGHUP");
    const more = pngs.slice(20, 30).map((p) => postRaw(`${url}/v1/detect`, p));
    const first: Reply[] = await Promise.all([...during, ...more]);
    for (const r of first) assert.equal(r.status, 200, JSON.stringify(r.body));
    for (let i = 0; i < 100 && !logs.some((l) => l.event === "reloaded"); i++)
      await new Promise((r) => setTimeout(r, 50));
    assert.ok(
      logs.some((l) => l.event === "reloaded"),
      "the log says the bundle was reloaded",
    );
    assert.notEqual((await get(`${url}/v1/detector`)).body.loadedAt, loadedAt);

    // SIGTERM once all 40 requests wait in the queue (a partial batch waits up to 5 s): every one is answered.
    const inFlight = pngs.map((p) => postRaw(`${url}/v1/detect`, p));
    let depth = 0;
    for (let i = 0; i < 200 && depth < pngs.length; i++) {
      depth = metric(await (await fetch(`${url}/metrics`)).text(), "badexpert_queue_depth") ?? 0;
      if (depth < pngs.length) await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(depth, pngs.length, "all requests are queued before SIGTERM");
    child.kill("SIGTERM");
    const last = await Promise.all(inFlight);
    for (const r of last) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(typeof r.body.score, "number");
    }
    assert.equal(await exited, 0);
    await assert.rejects(fetch(`${url}/healthz`), "no longer listening");
    const flagged = [...first, ...last].filter((r) => r.body.flagged === true).length;
    const lines = (await readFile(audit, "utf8")).split("\n").filter((l) => l.length > 0);
    assert.equal(lines.length, flagged, "one audit line per flagged input, all flushed");
    const stopped = logs.find((l) => l.event === "stopped");
    assert.equal(stopped?.workerTensorsLeft, 0);
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL");
    await rm(work, { recursive: true, force: true });
  }
});
