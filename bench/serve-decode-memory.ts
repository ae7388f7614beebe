// `npm run bench:serve-decode-memory`: resident memory of `badexpert serve` (a child process)
// before, during and after requests that carry large images: small on the wire (a flat PNG of
// 4999x5000 is ~35 KB grey, ~100 KB RGBA), 25 megapixels each decoded. Three requests, each measured on its own:
//   A  one multipart request with --images of them (default 64: 1.6 gigapixels; refused from
//      the headers by the per-request budget, --max-request-pixels);
//   B  one request with as many as the per-request budget allows (4), decoded and scored;
//   C  --concurrent such requests at once (default 8: 800 megapixels offered together; the
//      in-flight budget, --max-inflight-pixels, lets 100 be decoded at a time).
// RSS is read from /proc/PID/status every 10 ms while a request runs (its peak), and 1 s and 5 s
// after it was answered. --main PATH runs another build's CLI (dist/src/cli/main.js), e.g. an
// older commit's, on the same requests.
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer as netServer } from "node:net";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";
import { fixtureBundle, fixturePngs } from "../test/serve/fixture.js";
import { helpAndExit, printTable, round, wantsJson } from "./harness.js";
import { pngChunk as chunk } from "../test/helpers/png-chunk.js";

helpAndExit(
  process.argv.includes("--help"),
  `npm run bench:serve-decode-memory -- [options]

Resident memory of \`badexpert serve\` before, during and after requests of large PNGs
(4999x5000, ~35 KB each on the wire).

  --images N        images in request A (default 64)
  --kind K          grey (8-bit grey PNGs: decoded and resized in one streaming libvips pass) or
                    rgba (8-bit RGBA PNGs: decoded whole, alpha dropped, then resized); default grey
  --concurrent N    simultaneous requests in C (default 8)
  --bundle DIR      detector bundle (default: the test fixture's)
  --main PATH       the CLI to run (default: this build's dist/src/cli/main.js)
  --json            print the rows as JSON`,
);

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
}

const MAIN = arg("main") ?? fileURLToPath(new URL("../src/cli/main.js", import.meta.url));
const IMAGES = Number(arg("images") ?? 64);
const CONCURRENT = Number(arg("concurrent") ?? 8);
const KIND = arg("kind") ?? "grey";
if (KIND !== "grey" && KIND !== "rgba") throw new Error(`--kind: grey or rgba, got ${KIND}`);
const WIDTH = 4999;
const HEIGHT = 5000;

/** A flat 8-bit grey or RGBA PNG: each image gets its own value, so the requests are not all alike. */
function flatPng(value: number): Uint8Array {
  const channels = KIND === "rgba" ? 4 : 1;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(WIDTH, 0);
  ihdr.writeUInt32BE(HEIGHT, 4);
  ihdr[8] = 8;
  ihdr[9] = KIND === "rgba" ? 6 : 0;
  const stride = WIDTH * channels + 1;
  const rows = Buffer.alloc(HEIGHT * stride, value);
  for (let r = 0; r < HEIGHT; r++) rows[r * stride] = 0;
  return new Uint8Array(
    Buffer.concat([
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
      chunk("IHDR", ihdr),
      chunk("IDAT", deflateSync(rows)),
      chunk("IEND", new Uint8Array(0)),
    ]),
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => (a && typeof a === "object" ? resolve(a.port) : reject(new Error("no port"))));
    });
  });
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function start(bundle: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      MAIN,
      "serve",
      "--bundle",
      bundle,
      "--port",
      String(port),
      "--workers",
      "1",
      "--flagged-keep",
      "0",
      "--log-level",
      "warn",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
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

function form(images: Uint8Array[]): FormData {
  const f = new FormData();
  for (const [i, bytes] of images.entries())
    f.append("image", new Blob([new Uint8Array(bytes)], { type: "image/png" }), `big${i}.png`);
  return f;
}

interface Row {
  request: string;
  statuses: string;
  seconds: number;
  rssBeforeMb: number;
  rssPeakMb: number;
  rssAfter1sMb: number;
  rssAfter5sMb: number;
}

/** Sends the requests together, sampling the server's RSS every 10 ms until all are answered, then 1 s and 5 s later. */
async function measure(pid: number, url: string, request: string, bodies: FormData[]): Promise<Row> {
  const before = rssMb(pid);
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 10);
  const t0 = performance.now();
  const statuses = await Promise.all(
    bodies.map(
      async (body) =>
        await fetch(`${url}/v1/detect`, { method: "POST", body }).then(async (r) => (await r.arrayBuffer(), r.status)),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  clearInterval(timer);
  peak = Math.max(peak, rssMb(pid));
  const after1 = rssMb(pid);
  await new Promise((r) => setTimeout(r, 4000));
  const counts = new Map<number, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  return {
    request,
    statuses: [...counts].map(([s, n]) => `${n}x${s}`).join(" "),
    seconds: round(seconds, 2),
    rssBeforeMb: round(before),
    rssPeakMb: round(peak),
    rssAfter1sMb: round(after1),
    rssAfter5sMb: round(rssMb(pid)),
  };
}

const bundle = arg("bundle") ?? (await fixtureBundle());
const [small] = await fixturePngs(1);
const big = Array.from({ length: Math.max(IMAGES, 4) }, (_, i) => flatPng(16 + ((i * 37) % 224)));
const { child, url } = await start(bundle);
const pid = child.pid as number;
try {
  // Warm-up: one small image through every stage (decoder, batcher, worker).
  for (let i = 0; i < 4; i++)
    await fetch(`${url}/v1/detect`, {
      method: "POST",
      headers: { "content-type": "image/png" },
      body: new Uint8Array(small as Uint8Array),
    });
  const rows: Row[] = [];
  rows.push(await measure(pid, url, `A: 1 request of ${IMAGES} PNGs ${WIDTH}x${HEIGHT}`, [form(big.slice(0, IMAGES))]));
  rows.push(await measure(pid, url, `B: 1 request of 4 PNGs ${WIDTH}x${HEIGHT}`, [form(big.slice(0, 4))]));
  rows.push(
    await measure(
      pid,
      url,
      `C: ${CONCURRENT} concurrent requests of 4`,
      Array.from({ length: CONCURRENT }, (_, k) => form(big.slice(k % (big.length - 3), (k % (big.length - 3)) + 4))),
    ),
  );
  if (wantsJson())
    console.log(JSON.stringify({ main: MAIN, kind: KIND, wireBytesPerImage: big[0]?.length, rows }, null, 1));
  else {
    console.log(`serve: ${MAIN}; ${KIND} PNGs of ${big[0]?.length} bytes on the wire`);
    for (const r of rows) {
      printTable(r.request, [
        ["answers", r.statuses],
        ["seconds", String(r.seconds)],
        ["RSS before (MB)", String(r.rssBeforeMb)],
        ["RSS peak during (MB)", String(r.rssPeakMb)],
        ["RSS 1 s after (MB)", String(r.rssAfter1sMb)],
        ["RSS 5 s after (MB)", String(r.rssAfter5sMb)],
      ]);
    }
  }
} finally {
  const done = new Promise((r) => child.on("exit", r));
  child.kill("SIGTERM");
  await done;
}
