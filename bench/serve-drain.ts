// `npm run bench:serve-drain`: SIGTERM in the middle of a load test. `badexpert serve` runs as a
// child process on a real compact-CNN bundle (the service tests' fixture, or --bundle DIR);
// autocannon in this process keeps 64 keep-alive connections busy with single-image requests to
// /v1/detect; at --sigterm-at seconds the server gets SIGTERM and drains. Every request autocannon
// wrote is accounted for: answered (200, or 503 shutting_down during the drain), refused at
// connect (the listener is closed: the request never reached the server, and a client can tell),
// reset, timed out, or lost without either. The figure that must be 0 is "unanswered": written
// and neither answered nor refused at connect.
//
// autocannon sends the next request on a connection as soon as a response arrives, even one that
// says `connection: close`; an HTTP client must not (RFC 9112, 9.6), and that request would meet a
// closed socket. Each autocannon client here therefore stops after a `connection: close` answer or
// a refused connect, as a client that moves to another instance would. The run ends when the
// server has exited (autocannon's duration is an upper bound).
import { spawn } from "node:child_process";
import { createServer as netServer } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { fixtureBundle, fixturePngs } from "../test/serve/fixture.js";
import { helpAndExit, round, usageFailure, wantsJson } from "./harness.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:serve-drain -- [options]

SIGTERM under load: autocannon at 64 connections against \`badexpert serve\` (a child process),
SIGTERM in the middle; counts requests answered, refused at connect, reset and unanswered.

  --duration S     seconds of load in all (default 60); SIGTERM comes at --sigterm-at
  --sigterm-at S   seconds after the start (default: half of --duration)
  --connections N  default 64
  --bundle DIR     the bundle to serve (default: the test fixture's compact-CNN Fashion-MNIST bundle)
  --json           print the result as JSON on the last line
  --help           this text`,
);

const fail = usageFailure("bench:serve-drain");
const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

function numArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0)
    fail(`--${name}: expected a positive number, got ${JSON.stringify(process.argv[i + 1])}`);
  return v;
}
function strArg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (typeof a === "object" && a ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

/** Per autocannon client: whether its last response said `connection: close`, its outstanding request, and whether it was stopped. */
interface ClientState {
  closing: boolean;
  outstanding: number;
  retired: boolean;
}

/** The client's destroy() (autocannon 7-8; not in its type declarations): the connection closes and no request follows. */
function destroyOf(c: autocannon.Client): () => void {
  const d: unknown = Reflect.get(c, "destroy");
  if (typeof d !== "function")
    throw new Error("autocannon's client has no destroy(): this script was written for autocannon 8");
  return () => void Reflect.apply(d, c, []);
}

/** Whether autocannon's "headers" event (the parser's {statusCode, headers: [name, value, ...]}) says `connection: close`. */
function saysClose(o: unknown): boolean {
  const h =
    typeof o === "object" && o !== null && "headers" in o && Array.isArray(o.headers) ? (o.headers as unknown[]) : [];
  for (let i = 0; i + 1 < h.length; i += 2)
    if (String(h[i]).toLowerCase() === "connection" && String(h[i + 1]).toLowerCase() === "close") return true;
  return false;
}

async function main(): Promise<void> {
  const duration = numArg("duration", 60);
  const sigtermAt = numArg("sigterm-at", duration / 2);
  const connections = numArg("connections", 64);
  if (sigtermAt >= duration) fail(`--sigterm-at (${sigtermAt}) must come before the end of --duration (${duration})`);
  const bundle = strArg("bundle") ?? (await fixtureBundle());
  const pngs = await fixturePngs(64);
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [MAIN, "serve", "--bundle", bundle, "--port", String(port), "--log-level", "info"],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let stopped: Record<string, unknown> | undefined;
  createInterface({ input: child.stdout }).on("line", (line) => {
    // Only the shutdown's summary is parsed (flagged inputs are logged at info too).
    if (line.includes('"event":"stopped"')) stopped = JSON.parse(line) as Record<string, unknown>;
  });
  const exited = new Promise<{ code: number | null; at: number }>((r) =>
    child.on("exit", (code) => r({ code, at: performance.now() })),
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null || i > 600) throw new Error(`serve did not become ready (exit ${child.exitCode})`);
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) break;
    await new Promise((r) => setTimeout(r, 100));
  }

  const n = {
    sent: 0,
    ok: 0,
    refusedAtDoor: 0,
    other: 0,
    connectRefused: 0,
    reset: 0,
    timeouts: 0,
    otherErrors: [] as string[],
  };
  const okBeforeTerm = { count: 0 };
  let termAt = Number.POSITIVE_INFINITY;
  let inFlightAtTerm = 0;
  const states: ClientState[] = [];
  const setupClient = (c: autocannon.Client): void => {
    const st: ClientState = { closing: false, outstanding: 0, retired: false };
    states.push(st);
    const destroy = destroyOf(c);
    const retire = (): void => {
      st.retired = true;
      destroy();
    };
    // addListener: the type declarations list only "headers", "body" and "response" under on().
    c.addListener("request", () => {
      // autocannon also "sends" after destroy() (into the destroyed socket): not a request.
      if (st.retired) return;
      n.sent++;
      st.outstanding++;
    });
    c.on("headers", (o: unknown) => {
      if (saysClose(o)) st.closing = true;
    });
    c.on("response", (status: number) => {
      st.outstanding--;
      if (status === 200) {
        n.ok++;
        if (performance.now() < termAt) okBeforeTerm.count++;
      } else if (status === 503) n.refusedAtDoor++;
      else n.other++;
      if (st.closing) retire();
    });
    c.addListener("connError", (e: NodeJS.ErrnoException) => {
      if (st.outstanding > 0) st.outstanding--;
      if (e.code === "ECONNREFUSED") {
        n.connectRefused++;
        retire();
      } else if (e.code === "ECONNRESET" || e.code === "EPIPE") n.reset++;
      else n.otherErrors.push(e.code ?? e.message);
    });
    c.addListener("timeout", () => {
      if (st.outstanding > 0) st.outstanding--;
      n.timeouts++;
    });
  };

  const start = performance.now();
  let settle: (r: autocannon.Result) => void = () => undefined;
  let failRun: (e: Error) => void = () => undefined;
  const result = new Promise<autocannon.Result>((resolve, reject) => {
    settle = resolve;
    failRun = reject;
  });
  const instance = autocannon(
    {
      url,
      connections,
      duration,
      requests: pngs.map((p) => ({
        method: "POST" as const,
        path: "/v1/detect",
        headers: { "content-type": "image/png" },
        body: Buffer.from(p),
      })),
      setupClient,
    },
    (err: Error | null, r: autocannon.Result) => (err ? failRun(err) : settle(r)),
  );
  const term = setTimeout(() => {
    termAt = performance.now();
    inFlightAtTerm = states.reduce((a, s) => a + s.outstanding, 0);
    child.kill("SIGTERM");
  }, sigtermAt * 1000);
  const exit = await exited;
  clearTimeout(term);
  instance.stop();
  const r = await result;
  const accounted = n.ok + n.refusedAtDoor + n.other + n.connectRefused;
  const unanswered = n.sent - accounted;
  const out = {
    connections,
    durationS: duration,
    sigtermAtS: sigtermAt,
    reqPerSecBeforeSigterm: round(okBeforeTerm.count / ((Math.min(termAt, exit.at) - start) / 1000), 0),
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    sent: n.sent,
    answered200: n.ok,
    answered200AfterSigterm: n.ok - okBeforeTerm.count,
    inFlightAtSigterm: inFlightAtTerm,
    answered503: n.refusedAtDoor,
    answeredOther: n.other,
    connectRefused: n.connectRefused,
    resets: n.reset,
    timeouts: n.timeouts,
    otherErrors: n.otherErrors.length,
    unanswered,
    exitCode: exit.code,
    exitAfterSigtermMs: Math.round(exit.at - termAt),
    drainMs: stopped?.drainMs ?? null,
    drained: stopped?.drained ?? null,
    workerTensorsLeft: stopped?.workerTensorsLeft ?? null,
  };
  if (wantsJson()) {
    console.log(JSON.stringify(out));
  } else {
    console.log(
      `c=${connections}, SIGTERM at ${sigtermAt} s: ${out.reqPerSecBeforeSigterm} req/s before it (p50 ${out.latencyP50Ms} ms, p99 ${out.latencyP99Ms} ms); ` +
        `${out.sent} requests sent: ${out.answered200} answered 200 (${out.answered200AfterSigterm} after SIGTERM, ${out.inFlightAtSigterm} in flight at it), ${out.answered503} answered 503, ` +
        `${out.answeredOther} other statuses, ${out.connectRefused} connects refused after the listener closed, ${out.resets} resets, ${out.timeouts} timeouts; unanswered ${out.unanswered}. ` +
        `Exit ${String(out.exitCode)} ${out.exitAfterSigtermMs} ms after SIGTERM (drain ${String(out.drainMs)} ms, drained ${String(out.drained)}).`,
    );
    if (n.otherErrors.length > 0) console.log(`other errors: ${[...new Set(n.otherErrors)].join(", ")}`);
  }
  if (unanswered !== 0 || n.reset !== 0 || exit.code !== 0) process.exitCode = 1;
}

await main();
