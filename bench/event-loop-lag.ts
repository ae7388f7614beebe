// `npm run bench:event-loop`: how long the library holds the caller's thread. While a Detector
// scores 10,000 images (PNG bytes of Fashion-MNIST test images, the service tests' compact-CNN
// bundle), a 10 ms interval timer records how late each of its ticks fires; the worst lag is the
// longest the event loop was kept from running. Measured for the default (forward passes on a
// scoring worker thread) and for { thread: "caller" } (on this thread, yielding after each batch
// of 256), whose worst lag is about one batch's forward passes. Last, the same timer alone for as
// long: the lag the machine adds by itself (a loaded machine schedules the thread late).
import sharp from "sharp";
import { Detector, type LoadOptions } from "../src/index.js";
import { loadDataset } from "../src/data/registry.js";
import { fixtureBundle } from "../test/serve/fixture.js";
import { helpAndExit, round, usageFailure, wantsJson } from "./harness.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:event-loop -- [options]

A 10 ms interval timer's lag while the library scores N images (PNG bytes, decoded and scored
256 at a time): worst, p99 and mean lag, ticks, images per second; for the default scoring thread
(a worker) and, with --caller, also for { thread: "caller" }.

  --images N    images to score (default 10000)
  --bundle DIR  the bundle (default: the service tests' compact-CNN Fashion-MNIST bundle)
  --caller      also measure { thread: "caller" }
  --threads N   libtorch threads of the scoring thread (default: libtorch's, BADEXPERT_THREADS or all cores)
  --json        print the results as JSON on the last line
  --help        this text`,
);

const fail = usageFailure("bench:event-loop");

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const count = Number(arg("images") ?? 10_000);
if (!Number.isInteger(count) || count < 1) fail(`--images: expected a positive integer, got ${String(arg("images"))}`);
const INTERVAL_MS = 10;

/** `n` PNG images: Fashion-MNIST's test images, repeated. */
async function pngs(n: number): Promise<Uint8Array[]> {
  const ds = await loadDataset("fashion-mnist", { split: "test" });
  const distinct = Math.min(n, ds.count);
  const out: Uint8Array[] = [];
  for (let i = 0; i < distinct; i++) {
    out.push(
      new Uint8Array(
        await sharp(Buffer.from(ds.images.subarray(i * 784, (i + 1) * 784)), {
          raw: { width: 28, height: 28, channels: 1 },
        })
          .png()
          .toBuffer(),
      ),
    );
  }
  for (let i = distinct; i < n; i++) out.push(out[i % distinct] as Uint8Array);
  return out;
}

interface Row {
  thread: "worker" | "caller" | "none (idle timer)";
  images: number;
  seconds: number;
  imagesPerSecond: number;
  ticks: number;
  worstLagMs: number;
  p99LagMs: number;
  meanLagMs: number;
  flagged: number;
}

/** Runs `work` under a 10 ms interval timer; the timer's lags (ms) and the work's wall time (s). */
async function timed(work: () => Promise<void>): Promise<{ lags: number[]; seconds: number }> {
  const lags: number[] = [];
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    lags.push(Math.max(0, now - last - INTERVAL_MS));
    last = now;
  }, INTERVAL_MS);
  const t0 = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return { lags, seconds: (performance.now() - t0) / 1000 };
}

function row(thread: Row["thread"], images: number, t: { lags: number[]; seconds: number }, flagged: number): Row {
  const sorted = [...t.lags].sort((a, b) => a - b);
  return {
    thread,
    images,
    seconds: round(t.seconds, 2),
    imagesPerSecond: round(images / t.seconds, 0),
    ticks: t.lags.length,
    worstLagMs: round(sorted.at(-1) ?? 0, 1),
    p99LagMs: round(sorted[Math.floor(0.99 * (sorted.length - 1))] ?? 0, 1),
    meanLagMs: round(t.lags.reduce((a, b) => a + b, 0) / Math.max(t.lags.length, 1), 2),
    flagged,
  };
}

async function measure(bundle: string, images: Uint8Array[], thread: "worker" | "caller"): Promise<Row> {
  const o: LoadOptions = { thread, onWarning: () => undefined, ...(threads !== undefined ? { threads } : {}) };
  const det = await Detector.load(bundle, o);
  try {
    await det.score(images.slice(0, 256)); // warm-up: the first batch pays for lazy initialisation
    let flagged = 0;
    const t = await timed(async () => {
      for await (const part of det.scoreEach(images)) for (const r of part) if (r.ok && r.detection.flagged) flagged++;
    });
    return row(thread, images.length, t, flagged);
  } finally {
    await det.dispose();
  }
}

/** The same timer with nothing to do for `seconds`: the lag the machine itself adds (scheduling under load). */
async function idle(seconds: number): Promise<Row> {
  return row(
    "none (idle timer)",
    0,
    await timed(() => new Promise((resolve) => setTimeout(resolve, seconds * 1000))),
    0,
  );
}

const threadsArg = arg("threads");
const threads = threadsArg === undefined ? undefined : Number(threadsArg);
if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1))
  fail(`--threads: expected a positive integer, got ${String(threadsArg)}`);
const bundle = arg("bundle") ?? (await fixtureBundle());
const images = await pngs(count);
const rows: Row[] = [await measure(bundle, images, "worker")];
if (process.argv.includes("--caller")) rows.push(await measure(bundle, images, "caller"));
rows.push(await idle(Math.min(rows[0]?.seconds ?? 10, 30)));
console.log(
  `event-loop lag of a ${INTERVAL_MS} ms interval timer while the library scores ${count} images (${bundle})`,
);
console.log("| forward passes on | images/s | worst lag | p99 lag | mean lag | ticks |\n|---|---|---|---|---|---|");
for (const r of rows)
  console.log(
    `| ${r.thread} | ${r.imagesPerSecond} | ${r.worstLagMs} ms | ${r.p99LagMs} ms | ${r.meanLagMs} ms | ${r.ticks} |`,
  );
if (wantsJson()) console.log(JSON.stringify({ intervalMs: INTERVAL_MS, bundle, rows }));
