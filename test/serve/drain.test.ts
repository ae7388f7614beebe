// SIGTERM under load: `badexpert serve` as a child process, 64 keep-alive connections sending
// requests back to back, SIGTERM in the middle. Every request the server received gets an HTTP
// answer (200 for those in flight, 503 shutting_down with `connection: close` for those that
// arrive during the drain), none is reset, /readyz answers 503 while draining, and the process
// exits 0 well within the grace period. A new connection after SIGTERM is refused (the listener
// is closed), which a client can tell from a request that was sent and lost.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { startServe } from "./child.js";

interface Outcome {
  sentAt: number;
  doneAt: number;
  status?: number;
  body?: Record<string, unknown>;
  connection?: string;
  /** The error code when no response came. */
  error?: string;
}

function send(agent: Agent, url: URL, method: "GET" | "POST", path: string, body?: Uint8Array): Promise<Outcome> {
  const sentAt = performance.now();
  return new Promise((resolve) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path,
        method,
        agent,
        headers: body ? { "content-type": "image/png", "content-length": body.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>;
          } catch {
            parsed = { unparsed: Buffer.concat(chunks).toString().slice(0, 200) };
          }
          resolve({
            sentAt,
            doneAt: performance.now(),
            status: res.statusCode ?? 0,
            body: parsed,
            ...(res.headers.connection ? { connection: res.headers.connection } : {}),
          });
        });
        res.on("error", (e: NodeJS.ErrnoException) =>
          resolve({ sentAt, doneAt: performance.now(), error: e.code ?? e.message }),
        );
      },
    );
    req.on("error", (e: NodeJS.ErrnoException) =>
      resolve({ sentAt, doneAt: performance.now(), error: e.code ?? e.message }),
    );
    req.end(body);
  });
}

test("SIGTERM under 64 keep-alive connections: every request answered, none reset, exit 0 within the grace period", async (t) => {
  const bundle = await fixtureBundle();
  const pngs = await fixturePngs(64);
  const s = await startServe(["--bundle", bundle, "--port", "0", "--threads", "1", "--log-level", "info"]);
  const url = new URL(s.url);
  const outcomes: Outcome[] = [];
  const ready: Outcome[] = [];
  let stop = false;
  // One agent per loop: each loop is one keep-alive connection (a fresh one after `connection: close`).
  const loop = async (k: number): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; !stop; i++) {
      const o = await send(agent, url, "POST", "/v1/detect", pngs[(k + i) % pngs.length]);
      outcomes.push(o);
      if (o.error !== undefined) break;
    }
    agent.destroy();
  };
  const probe = async (): Promise<void> => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    while (!stop) {
      const o = await send(agent, url, "GET", "/readyz");
      ready.push(o);
      if (o.error !== undefined) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    agent.destroy();
  };
  const loops = [...Array.from({ length: 64 }, (_, k) => loop(k)), probe()];
  try {
    while (outcomes.filter((o) => o.status === 200).length < 300 && s.child.exitCode === null)
      await new Promise((r) => setTimeout(r, 20));
    const termAt = performance.now();
    s.child.kill("SIGTERM");
    const limit = new Promise<null>((r) => setTimeout(() => r(null), 40_000).unref());
    const exit = await Promise.race([s.exited, limit]);
    stop = true;
    await Promise.all(loops);
    assert.ok(exit !== null, "serve exited within 40 s of SIGTERM");
    assert.equal(exit.code, 0, `exit code (stderr: ${s.stderr().slice(0, 500)})`);
    assert.ok(
      exit.at - termAt < 30_000,
      `exited ${Math.round(exit.at - termAt)} ms after SIGTERM, within the 30 s grace period`,
    );

    // No request went unanswered: the only error allowed is a refused connection (nothing was sent).
    const lost = outcomes.filter((o) => o.error !== undefined && o.error !== "ECONNREFUSED");
    assert.deepEqual(
      lost.map((o) => o.error),
      [],
      `${lost.length} of ${outcomes.length} requests got no answer`,
    );
    for (const o of outcomes.filter((x) => x.status !== undefined)) {
      assert.ok(o.status === 200 || o.status === 503, `status ${o.status}: ${JSON.stringify(o.body)}`);
      if (o.status === 503) {
        assert.equal(o.body?.error, "shutting_down", JSON.stringify(o.body));
        assert.equal(o.connection, "close", "a refused request's connection is closed");
      } else {
        assert.equal(typeof o.body?.score, "number", "a 200 carries a score");
      }
    }
    // Requests in flight at SIGTERM were scored (200), not refused.
    const finished = outcomes.filter((o) => o.sentAt < termAt && o.doneAt > termAt && o.status === 200).length;
    assert.ok(finished > 0, "some requests in flight at SIGTERM were answered with a score after it");
    // After the drain every connection was closed by the server: the loops ended on a refused reconnect.
    assert.equal(
      outcomes.filter((o) => o.error === "ECONNREFUSED").length,
      64,
      "each of the 64 connections was closed, and reconnecting was refused",
    );
    // Readiness said so while draining.
    const drainingReady = ready.filter((o) => o.status === 503);
    assert.ok(
      drainingReady.length >= 1,
      `/readyz answered 503 while draining (saw ${ready
        .map((o) => o.status ?? o.error)
        .slice(-5)
        .join(",")})`,
    );
    assert.equal(drainingReady[0]?.body?.status, "draining");
    assert.ok(
      ready.every((o) => o.error === undefined || o.error === "ECONNREFUSED"),
      "no readiness probe was reset",
    );

    const stopped = s.logs.find((l) => l.event === "stopped");
    const count = (f: (o: Outcome) => boolean): number => outcomes.filter(f).length;
    t.diagnostic(
      `${outcomes.length} requests: ${count((o) => o.status === 200)} answered 200 (${finished} of them in flight at SIGTERM), ${count((o) => o.status === 503)} answered 503, ${count((o) => o.error === "ECONNREFUSED")} reconnects refused; exit ${Math.round(exit.at - termAt)} ms after SIGTERM (drain ${String(stopped?.drainMs)} ms)`,
    );
    assert.equal(stopped?.workerTensorsLeft, 0);
    assert.equal(stopped?.drained, true, "the drain finished within the grace period");
  } finally {
    stop = true;
    if (s.child.exitCode === null) s.child.kill("SIGKILL");
    await Promise.all(loops);
  }
});
