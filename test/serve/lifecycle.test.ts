// The service's life outside the steady state: refusing to start on bad values (host, scoring
// threads beyond the machine), exiting at once when the address cannot be taken, the grace
// period of a drain (what is left is answered 503, never dropped) and a second signal, and the
// audit log rotated through the real server.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { createServer as netServer, connect, type Server } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "../../src/serve/index.js";
import { resolveOptions } from "../../src/serve/options.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { metric, postRaw, type Reply } from "./http.js";
import { MAIN, startServe } from "./child.js";

const work = await mkdtemp(join(tmpdir(), "bx-serve-life-"));
after(() => rm(work, { recursive: true, force: true }));
const cores = availableParallelism();

function run(
  args: string[],
  limitMs: number,
): Promise<{ code: number | null; err: string; ms: number; timedOut: boolean }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [MAIN, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, BADEXPERT_THREADS: "1" },
  });
  let err = "";
  child.stderr.on("data", (b: Buffer) => (err += b.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), limitMs);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, err, ms: performance.now() - t0, timedOut: signal === "SIGKILL" });
    });
  });
}

function occupy(): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = netServer();
    server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

test("library options: host syntax, workers and threads bounded by the cores, each named with its range and value", () => {
  assert.throws(
    () => resolveOptions({ host: "0.0.0.0.0" }),
    /host: expected an IP address .* got "0\.0\.0\.0\.0": a name ending in a number must be a whole IPv4 address/,
  );
  assert.throws(() => resolveOptions({ host: "bad host" }), /host: expected an IP address/);
  for (const host of ["127.0.0.1", "0.0.0.0", "::", "::1", "localhost", "svc.example.internal"])
    assert.equal(resolveOptions({ host }).host, host);
  assert.throws(
    () => resolveOptions({ workers: 2 * cores + 1, threadsPerWorker: 1 }),
    new RegExp(`workers must be an integer in 1\\.\\.${2 * cores} \\(2 × ${cores} cores\\), got ${2 * cores + 1}`),
  );
  assert.throws(
    () => resolveOptions({ workers: 1, threadsPerWorker: 100_000 }),
    new RegExp(`threadsPerWorker must be an integer in 1\\.\\.${4 * cores} \\(4 × ${cores} cores\\), got 100000`),
  );
  assert.throws(
    () => resolveOptions({ workers: 2, threadsPerWorker: 4 * cores }),
    new RegExp(
      `workers × threadsPerWorker must be at most ${4 * cores} threads \\(4 × ${cores} cores\\), got 2 × ${4 * cores} = ${8 * cores}`,
    ),
  );
  assert.equal(resolveOptions({ workers: 2 * cores, threadsPerWorker: 2 }).workers, 2 * cores);
  assert.throws(() => resolveOptions({ auditMaxBytes: 100 }), /auditMaxBytes must be an integer >= 1024, got 100/);
  assert.throws(() => resolveOptions({ auditKeep: 0 }), /auditKeep must be an integer >= 1, got 0/);
  assert.throws(() => resolveOptions({ drainTimeoutMs: -1 }), /drainTimeoutMs must be an integer >= 0, got -1/);
});

test("CLI: bad --host, --threads, --workers and their product are usage errors (exit 2) before anything loads", async () => {
  const bundle = await fixtureBundle();
  const cases: [string[], RegExp][] = [
    [["--host", "0.0.0.0.0"], /--host: expected an IP address .*"0\.0\.0\.0\.0"/],
    [["--threads", "100000"], new RegExp(`--threads: expected a decimal integer in 1\\.\\.${4 * cores}, got "100000"`)],
    [["--workers", "1000"], new RegExp(`--workers: expected a decimal integer in 1\\.\\.${2 * cores}, got "1000"`)],
    [
      ["--workers", "2", "--threads", String(4 * cores)],
      new RegExp(
        `--workers × --threads must be at most ${4 * cores} threads \\(4 × ${cores} cores\\), got 2 × ${4 * cores}`,
      ),
    ],
    [["--audit-keep", "3"], /--audit-keep needs --audit-log/],
  ];
  for (const [args, want] of cases) {
    const r = await run(["serve", "--bundle", bundle, "--port", "0", ...args], 60_000);
    assert.equal(r.code, 2, `${args.join(" ")}: exit ${r.code}, ${r.err}`);
    assert.match(r.err, want);
  }
});

test("CLI: a port in use ends serve at once with exit 1, naming host, port and reason", async () => {
  const bundle = await fixtureBundle();
  const { server, port } = await occupy();
  try {
    // The worker threads must not keep the process alive after the error.
    const r = await run(
      [
        "serve",
        "--bundle",
        bundle,
        "--port",
        String(port),
        "--log-level",
        "silent",
        "--audit-log",
        join(work, "inuse", "audit.log"),
      ],
      60_000,
    );
    assert.equal(r.timedOut, false, "serve exited by itself");
    assert.equal(r.code, 1, r.err);
    assert.match(
      r.err,
      new RegExp(
        `cannot listen on 127\\.0\\.0\\.1:${port}: another process already listens on that address and port \\(EADDRINUSE\\)`,
      ),
    );
  } finally {
    server.close();
  }
});

test("library: listen() on a taken port rejects and releases the workers", async () => {
  const bundle = await fixtureBundle();
  const { server, port } = await occupy();
  try {
    const s = await createServer(bundle, {
      port,
      logLevel: "silent",
      workers: 1,
      threadsPerWorker: 1,
      flaggedKeep: 0,
      engine: "libtorch",
      auditLog: join(work, "lib-inuse", "audit.log"),
    });
    await assert.rejects(s.listen(), new RegExp(`serve: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`));
    assert.deepEqual(s.shutdown, {
      drained: true,
      drainMs: s.shutdown?.drainMs,
      refusedAtDeadline: 0,
      connectionsCut: 0,
    });
  } finally {
    server.close();
  }
});

test("the grace period: what is unanswered when it ends gets 503 shutting_down, never a score or a reset", async () => {
  const bundle = await fixtureBundle();
  const pngs = await fixturePngs(32);
  // Inputs wait for companions for up to a minute, so all 32 are still queued when close() comes.
  const s = await createServer(bundle, {
    port: 0,
    logLevel: "silent",
    workers: 1,
    threadsPerWorker: 1,
    flaggedKeep: 0,
    engine: "libtorch",
    maxWaitMs: 60_000,
    timeoutMs: 120_000,
  });
  const url = await s.listen();
  const replies = pngs.map((p) =>
    postRaw(`${url}/v1/detect`, p).catch(
      (e: Error) => ({ status: -1, headers: new Headers(), body: { error: e.message } }) as Reply,
    ),
  );
  for (
    let i = 0;
    i < 400 && (metric(await (await fetch(`${url}/metrics`)).text(), "badexpert_queue_depth") ?? 0) < pngs.length;
    i++
  )
    await new Promise((r) => setTimeout(r, 10));
  await s.close({ drainTimeoutMs: 0 });
  const got = await Promise.all(replies);
  for (const r of got) {
    assert.ok(r.status === 200 || r.status === 503, `status ${r.status}: ${JSON.stringify(r.body)}`);
    if (r.status === 503) {
      assert.equal(r.body.error, "shutting_down");
      assert.match(String(r.body.message), /grace period .* ended before this input was scored; it was not checked/);
      assert.equal(r.headers.get("connection"), "close");
    }
  }
  assert.ok(got.filter((r) => r.status === 503).length > 0, "some inputs were unscored at the end of the grace period");
  assert.equal(s.shutdown?.drained, false);
  assert.ok((s.shutdown?.refusedAtDeadline ?? 0) >= got.filter((r) => r.status === 503).length);
});

test("CLI: a second SIGTERM ends the drain at once; a request still arriving is answered 503, and the exit is 1", async () => {
  const bundle = await fixtureBundle();
  const s = await startServe([
    "--bundle",
    bundle,
    "--port",
    "0",
    "--workers",
    "1",
    "--threads",
    "1",
    "--flagged-keep",
    "0",
    "--log-level",
    "info",
  ]);
  const url = new URL(s.url);
  // A request whose body is still arriving: in flight, so the drain waits for it.
  const sock = connect(Number(url.port), url.hostname);
  let answer = "";
  sock.on("data", (b: Buffer) => (answer += b.toString()));
  const closed = new Promise<void>((r) => sock.on("close", () => r()));
  sock.on("error", () => undefined);
  await new Promise<void>((r) => sock.on("connect", () => r()));
  sock.write(
    `POST /v1/detect HTTP/1.1\r\nhost: x\r\ncontent-type: image/png\r\ncontent-length: 5000\r\n\r\n${"x".repeat(100)}`,
  );
  try {
    await new Promise((r) => setTimeout(r, 300));
    const t0 = performance.now();
    s.child.kill("SIGTERM");
    // Still draining a second later (the upload is unfinished, the grace period is 30 s).
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(s.child.exitCode, null, "serve waits for the request in flight");
    await assert.rejects(fetch(`${s.url}/healthz`), "the listener is closed");
    s.child.kill("SIGTERM");
    const exit = await s.exited;
    await closed;
    assert.equal(exit.code, 1, "a drain ended before everything was answered exits 1");
    assert.ok(exit.at - t0 < 10_000, `exited ${Math.round(exit.at - t0)} ms after the first SIGTERM`);
    assert.match(answer, /^HTTP\/1\.1 503 /);
    assert.match(answer, /"error":"shutting_down"/);
    assert.match(answer, /connection: close/i);
    const stopped = s.logs.find((l) => l.event === "stopped");
    assert.equal(stopped?.drained, false);
    assert.equal(stopped?.refusedAtDeadline, 1);
    assert.ok(s.logs.some((l) => l.event === "drain_expired"));
  } finally {
    sock.destroy();
    if (s.child.exitCode === null) s.child.kill("SIGKILL");
  }
});

test("the audit log rotates through the real server: small files, every flagged input in them", async () => {
  const bundle = await fixtureBundle();
  const pngs = await fixturePngs(64);
  const log = join(work, "rot", "audit.jsonl");
  const s = await createServer(bundle, {
    port: 0,
    logLevel: "silent",
    workers: 1,
    threadsPerWorker: 1,
    flaggedKeep: 0,
    engine: "libtorch",
    auditLog: log,
    auditMaxBytes: 1024,
    auditKeep: 50,
  });
  const url = await s.listen();
  let flagged = 0;
  try {
    for (let round = 0; round < 3; round++) {
      const got = await Promise.all(pngs.map((p) => postRaw(`${url}/v1/detect`, p)));
      for (const r of got) {
        assert.equal(r.status, 200);
        if (r.body.flagged === true) flagged++;
      }
    }
  } finally {
    await s.close();
  }
  const names = (await readdir(join(work, "rot"))).sort();
  assert.ok(names.length >= 3, `rotated into ${names.join(", ")}`);
  const ids: string[] = [];
  for (const n of names) {
    assert.match(n, /^audit\.jsonl(\.\d+)?$/);
    const text = await readFile(join(work, "rot", n), "utf8");
    assert.ok(Buffer.byteLength(text) <= 1024, `${n}: ${Buffer.byteLength(text)} bytes`);
    for (const line of text.split("\n").filter((l) => l.length > 0))
      ids.push(String((JSON.parse(line) as { requestId: string }).requestId));
  }
  assert.equal(ids.length, flagged, "one line per flagged input across the files");
  assert.equal(s.auditLines, flagged);
});
