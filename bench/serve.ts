// `npm run bench:serve`: the scoring service under load on loopback. The server runs as a child
// process (`badexpert serve`) so the load generator (autocannon, in this process) does not share
// its event loop. For each concurrency (1, 16, 64) with and without dynamic batching: throughput,
// p50/p99 latency, errors. Then the bare model's inference throughput in this process (three
// forward passes per input bound the service at a third of it), the service's share of that
// bound, and resident memory of the server over a soak run. Every configuration runs once per
// scoring engine (libtorch, and onnxruntime when onnxruntime-node is installed), and the bound of
// each engine is its own bare model: the service cannot beat three passes on the engine it uses.
//
// Options: --duration S (per configuration, default 8), --soak S (default 60; the issue asks for
// 300), --engines libtorch,onnxruntime (default: both), --bundle DIR (default: the test
// fixture's compact-CNN Fashion-MNIST bundle), --random-model NAME (instead of --bundle: a zoo
// architecture at 3x32x32 with random weights, calibrated at 1% FPR on random images; the cost
// per input depends only on the architecture, so this measures the service on a heavier model
// than the fixture's), --json. The requests are PNGs at the bundle's own input size (the
// fixture's Fashion-MNIST images, or synthetic ones for another size), so no resize is measured.
//
// --protocols: only the Open Inference Protocol beside /v1, on one server (default flags,
// --grpc-port): at concurrency 64, one image per request, /v1/detect with a raw PNG body, /v2 infer
// with the binary extension (UINT8 pixels, and the PNG as BYTES) and gRPC ModelInfer (raw UINT8),
// in interleaved rounds (the median of --rounds, default 2) so that drift in a shared machine's
// load falls on every protocol alike.
//
// A baseline detector bundle (`defend --detector NAME`) as --bundle: libtorch only (the engine
// baselines run on), the default configuration at concurrency 1, 16 and 64, and as its bound the
// library's own scoreBatch throughput on batches of 64 in this process (the detector's whole cost
// per input: STRIP's 1 + n passes, ...); no feed rows (a baseline has no overlays) and no soak.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createServer as netServer } from "node:net";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { credentials, loadPackageDefinition, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import pngjs from "pngjs";
import { inferenceMode, manualSeed, memory, rand, setNumThreads, tidy } from "../src/engine/index.js";
import { imagesToTensor } from "../src/data/batch.js";
import { normalize } from "../src/data/augment.js";
import { loadBundle, saveBundle } from "../src/defense/bundle.js";
import { BadExpertDetector } from "../src/defense/detector.js";
import { calibrateThreshold } from "../src/defense/threshold.js";
import { createModel } from "../src/models/registry.js";
import { bundleKind, openDetector } from "../src/detectors/open.js";
import { detectorInfo } from "../src/detectors/registry.js";
import { Detector } from "../src/api/detector.js";
import { modelGraph } from "../src/export/detector-graph.js";
import { encodeModel } from "../src/export/onnx-proto.js";
import { floatTensor, openSession } from "../src/export/onnx-runtime.js";
import type { ScoringEngine } from "../src/workers/protocol.js";
import { fixtureBundle, fixturePngs } from "../test/serve/fixture.js";
import { helpAndExit, round, wantsJson } from "./harness.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:serve -- [options]

The scoring service under load on loopback (autocannon in this process, \`badexpert serve\` as a
child): throughput, p50/p99 latency and errors at concurrency 1, 16 and 64, with and without
dynamic batching, on each engine; the bare model's throughput and the service's share of the
three-pass bound; the explain feed's cost; resident memory over a soak run.

  --duration S          seconds per configuration (default 8)
  --soak S              seconds of the soak run at c=64 (default 60; the issue asks for 300)
  --engines a,b         libtorch, onnxruntime (default both)
  --bundle DIR          the bundle to serve (default: the test fixture's compact-CNN Fashion-MNIST bundle)
  --random-model NAME   instead of --bundle: a zoo architecture at 3x32x32 with random weights
  --protocols           only /v1 raw PNG vs /v2 binary (UINT8, BYTES) vs gRPC at c=64, one image per request
  --rounds N            with --protocols: interleaved rounds, the median reported (default 2)
  --json                print the results as JSON on the last line
  --help                this text`,
);

const MAIN = fileURLToPath(new URL("../src/cli/main.js", import.meta.url));

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
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

interface Server {
  child: ChildProcess;
  url: string;
}

async function startServer(bundle: string, extra: string[]): Promise<Server> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [MAIN, "serve", "--bundle", bundle, "--port", String(port), "--log-level", "warn", "--max-queue", "4096", ...extra],
    {
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { child, url };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error("serve did not become ready in 60 s");
}

async function stopServer(s: Server): Promise<void> {
  const done = new Promise((r) => s.child.on("exit", r));
  s.child.kill("SIGTERM");
  await done;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function load(url: string, pngs: Uint8Array[], connections: number, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url,
    connections,
    duration: seconds,
    requests: pngs.map((p) => ({
      method: "POST" as const,
      path: "/v1/detect",
      headers: { "content-type": "image/png" },
      body: Buffer.from(p),
    })),
  });
}

/** Images per second of M alone (one forward pass), batch 64, in inference mode, on `engine`. */
async function bareThroughput(
  bundle: string,
  seconds: number,
  threads: number,
  engine: ScoringEngine,
): Promise<number> {
  setNumThreads(threads);
  const before = memory().numTensors;
  const det = await loadBundle(bundle);
  const { mean, std, imageSize, channels } = det.info.preprocessing;
  const [h, w] = imageSize;
  const x = imagesToTensor(
    new Uint8Array(64 * h * w * channels).map((_, i) => (i * 37) % 256),
    64,
    h,
    w,
    channels,
  );
  let step: () => Promise<void>;
  let release = async (): Promise<void> => {};
  if (engine === "libtorch") {
    step = async () =>
      inferenceMode(() =>
        tidy(
          () =>
            void det.model
              .forward(normalize(x, mean, std))
              .argmax(1)
              .data(),
        ),
      );
  } else {
    const session = await openSession(
      encodeModel(
        modelGraph(det.model, {
          preprocessing: det.info.preprocessing,
          architecture: det.info.spec.name,
          classNames: det.info.classNames,
        }),
      ),
      { threads },
    );
    const input = floatTensor(
      tidy(() => x.contiguous().data() as Float32Array),
      [64, channels, h, w],
    );
    step = async () => void (await session.run({ images: input }, ["pred"]));
    release = () => session.release();
  }
  for (let i = 0; i < 5; i++) await step();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await step();
    n += 64;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  await release();
  x.dispose();
  det.dispose();
  if (memory().numTensors !== before) throw new Error("bare throughput leaked tensors");
  return rate;
}

interface Row {
  engine: ScoringEngine;
  config: string;
  connections: number;
  reqPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  non2xx: number;
}

function engines(): ScoringEngine[] {
  const list = (strArg("engines") ?? "libtorch,onnxruntime").split(",");
  for (const e of list)
    if (e !== "libtorch" && e !== "onnxruntime")
      throw new RangeError(`--engines: each must be libtorch or onnxruntime, got ${JSON.stringify(e)}`);
  return list as ScoringEngine[];
}

/** Images per second of a baseline's own scoreBatch (with the service's per-input seeds), batch 64, in this process. */
async function baselineThroughput(bundle: string, seconds: number, threads: number): Promise<number> {
  setNumThreads(threads);
  const before = memory().numTensors;
  const loaded = await openDetector(bundle, { onWarning: () => undefined });
  const { imageSize, channels } = loaded.preprocessing;
  const [h, w] = imageSize;
  const x = imagesToTensor(
    new Uint8Array(64 * h * w * channels).map((_, i) => (i * 37) % 256),
    64,
    h,
    w,
    channels,
  );
  const step = (): void => tidy(() => void loaded.judge(x));
  step();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000 || n === 0) {
    step();
    n += 64;
  }
  const rate = n / ((performance.now() - t0) / 1000);
  x.dispose();
  loaded.dispose();
  if (memory().numTensors !== before) throw new Error("baseline throughput leaked tensors");
  return rate;
}

async function baselineMain(bundle: string, detector: string, duration: number, defaultFlags: string[]): Promise<void> {
  const pngs = await fixturePngs(64);
  const cores = availableParallelism();
  const rows: Row[] = [];
  const s = await startServer(bundle, [...defaultFlags, "--engine", "libtorch"]);
  try {
    for (const connections of [1, 16, 64]) {
      await load(s.url, pngs, connections, 1); // warm-up
      const r = await load(s.url, pngs, connections, duration);
      const row = {
        engine: "libtorch" as const,
        config: `${detector}: batching (max-batch 64, max-wait 2 ms), ${cores} workers x 1 thread (default)`,
        connections,
        reqPerSec: round(r.requests.average, 0),
        p50ms: r.latency.p50,
        p99ms: r.latency.p99,
        errors: r.errors,
        non2xx: r.non2xx,
      };
      rows.push(row);
      if (!wantsJson())
        console.log(
          `${row.config} | c=${connections}: ${row.reqPerSec} req/s, p50 ${row.p50ms} ms, p99 ${row.p99ms} ms, errors ${row.errors}, non-2xx ${row.non2xx}`,
        );
    }
  } finally {
    await stopServer(s);
  }
  const all = await baselineThroughput(bundle, 4, cores);
  const one = await baselineThroughput(bundle, 4, 1);
  const bound = Math.max(all, one);
  const best = Math.max(...rows.map((r) => r.reqPerSec));
  const summary = {
    detector,
    bareAllThreads: round(all, 0),
    bareOneThread: round(one, 0),
    msPerInput: round(1000 / bound, 3),
    bestService: best,
    shareOfBound: round(best / bound, 3),
  };
  if (wantsJson()) {
    console.log(JSON.stringify({ cores, detector, rows, bound: summary }));
    return;
  }
  console.log(
    `${detector}: library scoreBatch (batch 64) ${summary.bareAllThreads} images/s with ${cores} threads, ${summary.bareOneThread} with 1 (${summary.msPerInput} ms per input); best service ${best} req/s = ${(summary.shareOfBound * 100).toFixed(1)}% of that bound`,
  );
}

/** A BaDExpert bundle of zoo architecture `name` (3x32x32, 10 classes) with random weights, threshold at 1% FPR on random images. */
async function randomBundle(name: string): Promise<string> {
  manualSeed(0);
  const spec = { name, numClasses: 10, inChannels: 3, imageSize: 32 };
  const parts = { model: createModel(name, spec), expert: createModel(name, spec), auxiliary: createModel(name, spec) };
  const preprocessing = {
    imageSize: [32, 32] as [number, number],
    channels: 3,
    mean: [0.49, 0.48, 0.45],
    std: [0.25, 0.24, 0.26],
  };
  const raw = BadExpertDetector.uncalibrated(parts, {
    spec,
    preprocessing,
    classNames: Array.from({ length: 10 }, String),
    rule: "triangle",
  });
  const x = rand([256, 3, 32, 32]);
  const scores = tidy(() => raw.scoreBatch(x).score);
  x.dispose();
  const calibration = calibrateThreshold(scores, 0.01);
  const det = raw.withDecision("triangle", calibration.threshold, calibration);
  const dir = join(mkdtempSync(join(tmpdir(), `badexpert-bench-serve-${name}-`)), "bundle");
  try {
    await saveBundle(dir, det);
  } finally {
    det.dispose();
  }
  return dir;
}

/**
 * 64 PNG requests at the bundle's input size: the fixture's Fashion-MNIST test images for a
 * 28x28 grey model, otherwise synthetic images (smooth gradients with a little texture, so they
 * compress like photographs rather than like noise).
 */
async function requestPngs(bundle: string): Promise<Uint8Array[]> {
  const det = await loadBundle(bundle);
  const { imageSize, channels } = det.info.preprocessing;
  det.dispose();
  const [h, w] = imageSize;
  if (h === 28 && w === 28 && channels === 1) return fixturePngs(64);
  return Array.from({ length: 64 }, (_, k) => {
    const png = new pngjs.PNG({ width: w, height: h });
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = (y * w + x) * 4;
        for (let c = 0; c < 3; c++)
          png.data[o + c] =
            channels === 1 && c > 0
              ? (png.data[o] as number)
              : (((x * (c + 2) + y * (k % 7) + k * 13) & 0xff) ^ (((x * y + k) % 5) * 3)) & 0xff;
        png.data[o + 3] = 255;
      }
    }
    return new Uint8Array(pngjs.PNG.sync.write(png, { colorType: channels === 1 ? 0 : 2 }));
  });
}

async function main(bundle: string): Promise<void> {
  const duration = arg("duration", 8);
  const soak = arg("soak", 60);
  const kind = await bundleKind(bundle);
  if (detectorInfo(kind).onnx !== true) {
    await baselineMain(bundle, kind, duration, ["--max-batch", "64", "--max-wait-ms", "2"]);
    return;
  }
  const pngs = await requestPngs(bundle);
  const cores = availableParallelism();
  const configs: { name: string; flags: string[] }[] = [
    {
      name: `batching (max-batch 64, max-wait 2 ms), ${cores} workers x 1 thread (default)`,
      flags: ["--max-batch", "64", "--max-wait-ms", "2"],
    },
    {
      name: `no batching (max-batch 1), ${cores} workers x 1 thread`,
      flags: ["--max-batch", "1", "--max-wait-ms", "0"],
    },
    {
      name: `batching, 1 worker x ${cores} threads`,
      flags: ["--max-batch", "64", "--max-wait-ms", "2", "--workers", "1", "--threads", String(cores)],
    },
  ];
  const rows: Row[] = [];
  for (const engine of engines()) {
    for (const [ci, c] of configs.entries()) {
      const s = await startServer(bundle, [...c.flags, "--engine", engine]);
      try {
        for (const connections of ci === 2 ? [64] : [1, 16, 64]) {
          await load(s.url, pngs, connections, 1); // warm-up
          const r = await load(s.url, pngs, connections, duration);
          const row = {
            engine,
            config: c.name,
            connections,
            reqPerSec: round(r.requests.average, 0),
            p50ms: r.latency.p50,
            p99ms: r.latency.p99,
            errors: r.errors,
            non2xx: r.non2xx,
          };
          rows.push(row);
          if (!wantsJson())
            console.log(
              `${engine} | ${row.config} | c=${connections}: ${row.reqPerSec} req/s, p50 ${row.p50ms} ms, p99 ${row.p99ms} ms, errors ${row.errors}, non-2xx ${row.non2xx}`,
            );
        }
      } finally {
        await stopServer(s);
      }
    }
  }
  // The dashboard's explain worker makes an overlay for every flagged input (up to its queue), on
  // the same cores. The fixture's quick bundle flags about 1 in 9 of these clean images, far more
  // than a calibrated 1% FPR would, so the default rows pay for many overlays: the same load with
  // the feed off (--flagged-keep 0), and with only the unflagged images, shows what it costs.
  const lib = await Detector.load(bundle);
  const verdicts = await lib.score(pngs);
  await lib.dispose();
  const unflagged = pngs.filter((_, i) => verdicts[i]?.flagged === false);
  const feedRows: (Row & { images: string; feed: string })[] = [];
  for (const engine of engines()) {
    for (const v of [
      { images: "all", feed: "off", set: pngs, flags: ["--flagged-keep", "0"] },
      { images: "unflagged", feed: "on", set: unflagged, flags: [] },
      { images: "unflagged", feed: "off", set: unflagged, flags: ["--flagged-keep", "0"] },
    ]) {
      const s = await startServer(bundle, [...(configs[0]?.flags ?? []), "--engine", engine, ...v.flags]);
      try {
        await load(s.url, v.set, 64, 1);
        const r = await load(s.url, v.set, 64, duration);
        const row = {
          engine,
          config: `default, ${v.images} images (${v.set.length}), explain feed ${v.feed}`,
          images: v.images,
          feed: v.feed,
          connections: 64,
          reqPerSec: round(r.requests.average, 0),
          p50ms: r.latency.p50,
          p99ms: r.latency.p99,
          errors: r.errors,
          non2xx: r.non2xx,
        };
        feedRows.push(row);
        if (!wantsJson())
          console.log(
            `${engine} | ${row.config} | c=64: ${row.reqPerSec} req/s, p50 ${row.p50ms} ms, p99 ${row.p99ms} ms, errors ${row.errors}, non-2xx ${row.non2xx}`,
          );
      } finally {
        await stopServer(s);
      }
    }
  }

  const best64 = (e: ScoringEngine): number =>
    Math.max(...rows.filter((r) => r.engine === e && r.connections === 64).map((r) => r.reqPerSec));
  const soakEngine = engines().reduce((a, b) => (best64(b) > best64(a) ? b : a));

  // Soak: the faster engine, default flags, concurrency 64; RSS of the server process sampled every second.
  const s = await startServer(bundle, [...(configs[0]?.flags ?? []), "--engine", soakEngine]);
  const pid = s.child.pid as number;
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(rssMb(pid)), 1000);
  const soakResult = await load(s.url, pngs, 64, soak);
  clearInterval(timer);
  await stopServer(s);
  const warm = samples[Math.min(5, samples.length - 1)] ?? Number.NaN;
  const end = samples[samples.length - 1] ?? Number.NaN;
  const soakRow = {
    engine: soakEngine,
    seconds: soak,
    reqPerSec: round(soakResult.requests.average, 0),
    errors: soakResult.errors,
    non2xx: soakResult.non2xx,
    rssAfterWarmupMb: round(warm),
    rssEndMb: round(end),
    rssMaxMb: round(Math.max(...samples)),
    growthMb: round(end - warm),
  };

  // Each engine's bound is the best its bare model does alone here: all cores in one team, or one thread.
  const bounds = [];
  for (const engine of engines()) {
    const bareAll = await bareThroughput(bundle, 4, cores, engine);
    const bareOne = await bareThroughput(bundle, 4, 1, engine);
    const bare = Math.max(bareAll, bareOne);
    const bound = bare / 3;
    bounds.push({
      engine,
      bareModelImagesPerSec: round(bare, 0),
      bareAllThreads: round(bareAll, 0),
      bareOneThread: round(bareOne, 0),
      serviceBoundPerSec: round(bound, 0),
      bestServiceAt64: best64(engine),
      shareOfBound: round(best64(engine) / bound, 3),
    });
  }
  if (wantsJson()) {
    console.log(
      JSON.stringify({
        cores,
        flaggedInFixture: pngs.length - unflagged.length,
        rows,
        feedRows,
        soak: soakRow,
        bounds,
      }),
    );
    return;
  }
  console.log(
    `soak ${soak} s at c=64 on ${soakEngine}: ${soakRow.reqPerSec} req/s, errors ${soakRow.errors}, non-2xx ${soakRow.non2xx}; RSS ${soakRow.rssAfterWarmupMb} MB after 5 s -> ${soakRow.rssEndMb} MB at the end (max ${soakRow.rssMaxMb}, growth ${soakRow.growthMb} MB)`,
  );
  for (const b of bounds) {
    const lt = bounds.find((x) => x.engine === "libtorch");
    if (lt && b.engine !== "libtorch")
      console.log(
        `${b.engine}: best service at c=64 = ${((b.bestServiceAt64 / lt.serviceBoundPerSec) * 100).toFixed(1)}% of libtorch's bound`,
      );
    console.log(
      `${b.engine}: bare model M (batch 64) ${b.bareAllThreads} images/s with ${cores} threads, ${b.bareOneThread} with 1; bound for three passes ${b.serviceBoundPerSec}/s; best service at c=64 ${b.bestServiceAt64} req/s = ${(b.shareOfBound * 100).toFixed(1)}% of the bound`,
    );
  }
}

// ---- --protocols: /v1 beside the Open Inference Protocol

interface ProtocolRow {
  protocol: string;
  reqPerSec: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  non2xx: number;
  /** Requests answered (2xx) in the run. */
  answered: number;
  /** CPU time of the server process (all its threads) per answered request. */
  serverCpuMs?: number;
  /** CPU time of this process (the load generator) per answered request. */
  clientCpuMs?: number;
}

/** CPU seconds (user + system, all threads) a process has used. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8")
    .replace(/^.*\) /, "")
    .split(" ");
  // After the command name: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const PROTO = fileURLToPath(new URL("../../proto/grpc_predict_v2.proto", import.meta.url));
type Infer = (req: unknown, cb: (e: ServiceError | null) => void) => void;

/** `connections` concurrent ModelInfer loops on one channel for `seconds`; one request in `bodies` after another. */
async function grpcLoad(
  address: string,
  bodies: unknown[],
  connections: number,
  seconds: number,
): Promise<ProtocolRow> {
  const def = loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = loadPackageDefinition(def) as unknown as {
    inference: {
      GRPCInferenceService: new (
        a: string,
        c: ReturnType<typeof credentials.createInsecure>,
      ) => Client & { ModelInfer: Infer };
    };
  };
  const client = new pkg.inference.GRPCInferenceService(address, credentials.createInsecure());
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const end = performance.now() + seconds * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const body = bodies[next++ % bodies.length];
      const t0 = performance.now();
      const failed = await new Promise<boolean>((resolve) => client.ModelInfer(body, (e) => resolve(e !== null)));
      if (failed) errors++;
      else latencies.push(performance.now() - t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: connections }, loop));
  const elapsed = (performance.now() - t0) / 1000;
  client.close();
  latencies.sort((a, b) => a - b);
  const q = (p: number): number =>
    round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN, 1);
  return {
    protocol: "grpc",
    reqPerSec: round(latencies.length / elapsed, 0),
    p50ms: q(0.5),
    p99ms: q(0.99),
    errors,
    non2xx: 0,
    answered: latencies.length,
  };
}

function httpLoad(
  url: string,
  requests: { path: string; headers: Record<string, string>; body: Buffer }[],
  connections: number,
  seconds: number,
): Promise<autocannon.Result> {
  return autocannon({
    url,
    connections,
    duration: seconds,
    requests: requests.map((r) => ({ method: "POST" as const, ...r })),
  });
}

async function protocolsMain(bundle: string): Promise<void> {
  const duration = arg("duration", 5);
  const rounds = arg("rounds", 2);
  const pngs = await requestPngs(bundle);
  const lib = await Detector.load(bundle);
  const decoded: Uint8Array[] = [];
  for await (const part of lib.scoreEach(pngs, { keepPixels: true })) {
    for (const r of part) {
      if (!r.ok) throw new Error(r.message);
      decoded.push(r.pixels as Uint8Array);
    }
  }
  const pixels = Buffer.concat(decoded);
  const { imageSize, channels } = lib.summary;
  await lib.dispose();
  const [h, w] = imageSize;
  const c = channels === 1 ? 1 : 3;
  const per = h * w * c;
  const one = (k: number): Buffer => Buffer.from(pixels.subarray(k * per, (k + 1) * per));
  const binary = (header: unknown, tensor: Buffer): { path: string; headers: Record<string, string>; body: Buffer } => {
    const json = Buffer.from(JSON.stringify(header));
    return {
      path: "/v2/models/badexpert/infer",
      headers: { "content-type": "application/octet-stream", "inference-header-content-length": String(json.length) },
      body: Buffer.concat([json, tensor]),
    };
  };
  const asked = { parameters: { binary_data_output: true } };
  const v1 = pngs.map((p) => ({ path: "/v1/detect", headers: { "content-type": "image/png" }, body: Buffer.from(p) }));
  const v2u8 = pngs.map((_, k) =>
    binary(
      {
        inputs: [{ name: "image", datatype: "UINT8", shape: [1, h, w, c], parameters: { binary_data_size: per } }],
        ...asked,
      },
      one(k),
    ),
  );
  const v2png = pngs.map((p) => {
    const t = Buffer.alloc(4 + p.length);
    t.writeUInt32LE(p.length, 0);
    t.set(p, 4);
    return binary(
      {
        inputs: [{ name: "image", datatype: "BYTES", shape: [1], parameters: { binary_data_size: t.length } }],
        ...asked,
      },
      t,
    );
  });
  const grpcBodies = pngs.map((_, k) => ({
    model_name: "badexpert",
    inputs: [{ name: "image", datatype: "UINT8", shape: [1, h, w, c] }],
    raw_input_contents: [one(k)],
  }));
  const grpcPort = await freePort();
  const s = await startServer(bundle, ["--max-batch", "64", "--max-wait-ms", "2", "--grpc-port", String(grpcPort)]);
  const cores = availableParallelism();
  const fromCannon = (protocol: string, r: autocannon.Result): ProtocolRow => ({
    protocol,
    reqPerSec: round(r.requests.average, 0),
    p50ms: r.latency.p50,
    p99ms: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
    answered: r["2xx"],
  });
  const runs: Record<string, () => Promise<ProtocolRow>> = {
    "v1 raw PNG": async () => fromCannon("v1 raw PNG", await httpLoad(s.url, v1, 64, duration)),
    "v2 binary UINT8": async () => fromCannon("v2 binary UINT8", await httpLoad(s.url, v2u8, 64, duration)),
    "v2 binary BYTES (PNG)": async () =>
      fromCannon("v2 binary BYTES (PNG)", await httpLoad(s.url, v2png, 64, duration)),
    "gRPC raw UINT8": async () => ({
      ...(await grpcLoad(`127.0.0.1:${grpcPort}`, grpcBodies, 64, duration)),
      protocol: "gRPC raw UINT8",
    }),
  };
  const results: Record<string, ProtocolRow[]> = {};
  try {
    // Warm-up, then rounds in alternating order (A B C D, D C B A, ...).
    await httpLoad(s.url, v1, 64, 1);
    await grpcLoad(`127.0.0.1:${grpcPort}`, grpcBodies, 64, 1);
    const names = Object.keys(runs);
    for (let r = 0; r < rounds; r++) {
      for (const name of r % 2 === 0 ? names : [...names].reverse()) {
        const server0 = cpuSeconds(s.child.pid as number);
        const client0 = process.cpuUsage();
        const row = await (runs[name] as () => Promise<ProtocolRow>)();
        const client = process.cpuUsage(client0);
        row.serverCpuMs = round(((cpuSeconds(s.child.pid as number) - server0) * 1000) / Math.max(1, row.answered), 3);
        row.clientCpuMs = round((client.user + client.system) / 1000 / Math.max(1, row.answered), 3);
        (results[name] ??= []).push(row);
        if (!wantsJson())
          console.log(
            `round ${r + 1} | ${name} | c=64: ${row.reqPerSec} req/s, p50 ${row.p50ms} ms, p99 ${row.p99ms} ms, errors ${row.errors}, non-2xx ${row.non2xx}; CPU per request: server ${row.serverCpuMs} ms, load generator ${row.clientCpuMs} ms`,
          );
      }
    }
  } finally {
    await stopServer(s);
  }
  const median = (xs: number[]): number => {
    const a = [...xs].sort((x, y) => x - y);
    return a.length % 2 === 1
      ? (a[(a.length - 1) / 2] as number)
      : ((a[a.length / 2 - 1] as number) + (a[a.length / 2] as number)) / 2;
  };
  const rows = Object.entries(results).map(([protocol, rs]) => ({
    protocol,
    reqPerSec: round(median(rs.map((x) => x.reqPerSec)), 0),
    p50ms: round(median(rs.map((x) => x.p50ms)), 1),
    p99ms: round(median(rs.map((x) => x.p99ms)), 1),
    errors: rs.reduce((n, x) => n + x.errors, 0),
    non2xx: rs.reduce((n, x) => n + x.non2xx, 0),
    serverCpuMs: round(median(rs.map((x) => x.serverCpuMs ?? Number.NaN)), 3),
    clientCpuMs: round(median(rs.map((x) => x.clientCpuMs ?? Number.NaN)), 3),
    rounds: rs.map((x) => x.reqPerSec),
  }));
  const base = rows.find((r) => r.protocol === "v1 raw PNG")?.reqPerSec ?? Number.NaN;
  if (wantsJson()) {
    console.log(
      JSON.stringify({
        cores,
        image: [h, w, c],
        duration,
        rounds,
        rows: rows.map((r) => ({ ...r, ofV1: round(r.reqPerSec / base, 3) })),
      }),
    );
    return;
  }
  for (const r of rows) {
    console.log(
      `median | ${r.protocol} | c=64: ${r.reqPerSec} req/s (${((r.reqPerSec / base) * 100).toFixed(0)}% of v1 raw PNG), p50 ${r.p50ms} ms, p99 ${r.p99ms} ms, errors ${r.errors}, non-2xx ${r.non2xx}; server CPU ${r.serverCpuMs} ms/request, load generator ${r.clientCpuMs} ms/request; rounds ${r.rounds.join(", ")} req/s`,
    );
  }
}

const randomModel = strArg("random-model");
if (randomModel !== undefined && strArg("bundle") !== undefined)
  throw new RangeError("--random-model and --bundle: give one of them");
const run = process.argv.includes("--protocols") ? protocolsMain : main;
if (randomModel === undefined) {
  await run(strArg("bundle") ?? (await fixtureBundle()));
} else {
  // The random-weight bundle is this run's own: removed afterwards, whatever happens.
  const bundle = await randomBundle(randomModel);
  try {
    await run(bundle);
  } finally {
    await rm(dirname(bundle), { recursive: true, force: true });
  }
}
