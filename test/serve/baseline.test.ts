// The service on baseline detector bundles (`defend --detector strip|frequency`): real HTTP
// requests get the library's own scoreBatch scores (with the per-input seeds the workers use),
// STRIP answers an image the same alone or inside a batch, /v1/detector describes the baseline,
// engines other than libtorch are refused, a NaN-producing bundle fails closed, and SIGHUP-style
// reloads switch between baselines but refuse a change of kind (baseline <-> BaDExpert).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory, tensor, tidy } from "../../src/engine/index.js";
import { imagesToTensor } from "../../src/data/batch.js";
import { openDetector } from "../../src/detectors/open.js";
import { loadCheckpoint } from "../../src/train/checkpoint.js";
import { inputSeeds } from "../../src/detectors/input-seeds.js";
import { saveTensors } from "../../src/io/weights.js";
import { createServer, DEFAULT_OPTIONS, type DetectionRecord } from "../../src/serve/index.js";
import { decodeForModel, probeUpload } from "../../src/serve/decode.js";
import { baselineFixture, baselinePngs, type BaselineFixture } from "./baseline-fixture.js";
import { fixtureBundle } from "./fixture.js";
import { b64, get, metric, postJson, postRaw } from "./http.js";
import { runCli } from "../cli/fixtures.js";

const TOL = 1e-5;
const N = 12;
const quietLog = { logLevel: "silent" as const, port: 0 };

let fx: BaselineFixture;
let pngs: Uint8Array<ArrayBuffer>[];
let work: string;
let tensorsAtStart: number;

before(async () => {
  tensorsAtStart = memory().numTensors;
  fx = await baselineFixture();
  pngs = await baselinePngs(N);
  work = await mkdtemp(join(tmpdir(), "bx-serve-baseline-"));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
  assert.equal(memory().numTensors, tensorsAtStart);
});

/** The library's scores of the PNGs, decoded as the server decodes them, with the workers' per-input seeds. */
async function libraryScores(
  bundle: string,
  images: Uint8Array[],
): Promise<{ pred: number[]; score: number[]; threshold: number; alone: number[] }> {
  const loaded = await openDetector(bundle, { onWarning: () => undefined });
  try {
    const limits = { maxPixels: DEFAULT_OPTIONS.maxPixels, frames: DEFAULT_OPTIONS.frames, maxFrames: 1 };
    const pixels = await Promise.all(
      images.map(
        async (p, i) =>
          (
            await decodeForModel(
              p,
              `image ${i}`,
              { height: 28, width: 28, channels: 1 },
              await probeUpload(p, `image ${i}`, limits),
              limits,
            )
          )[0] as Uint8Array,
      ),
    );
    const bytes = new Uint8Array(pixels.length * 28 * 28);
    pixels.forEach((p, i) => bytes.set(p, i * 28 * 28));
    return tidy(() => {
      const x = imagesToTensor(bytes, pixels.length, 28, 28, 1);
      const r = loaded.scorer.scoreBatch(x, { seeds: inputSeeds(x, loaded.inputSeedKey) });
      // Each image alone (a batch of one), after the batch: neither its batch nor the calls before may matter.
      const alone = pixels.map((_, i) => {
        const xi = x.narrow(0, i, 1);
        return loaded.scorer.scoreBatch(xi, { seeds: inputSeeds(xi, loaded.inputSeedKey) }).score[0] as number;
      });
      return { pred: Array.from(r.pred), score: Array.from(r.score), threshold: loaded.threshold, alone };
    });
  } finally {
    loaded.dispose();
  }
}

function lines(): { stream: { write(l: string): void }; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  return { logs, stream: { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) } };
}

test("STRIP bundle: library scores over HTTP, alone = in a batch, /v1/detector, engine fallback and the feed off", async () => {
  const want = await libraryScores(fx.strip, pngs);
  for (const [i, s] of want.alone.entries())
    assert.ok(
      Math.abs(s - (want.score[i] as number)) <= TOL,
      `library: image ${i} alone ${s} vs in its batch ${want.score[i]}`,
    );
  const { stream, logs } = lines();
  const server = await createServer(fx.strip, {
    port: 0,
    logLevel: "info",
    logStream: stream,
    workers: 2,
    maxBatch: 5,
    maxWaitMs: 5,
    timeoutMs: 60_000,
  });
  try {
    assert.equal(server.engine, "libtorch");
    const fallback = logs.find((l) => l.event === "engine_fallback");
    assert.match(String(fallback?.reason), /the strip detector scores with libtorch only/);
    const off = logs.filter((l) => l.event === "explain_off");
    assert.equal(off.length, 1);
    assert.equal(off[0]?.level, 30, "info: the feed was not asked for explicitly");
    assert.match(
      String(off[0]?.msg),
      /flagged-input feed and the dashboard's overlays are off: .*the strip detector has none/,
    );
    const url = await server.listen();
    // Concurrent single-image requests land in batches formed by arrival: each gets its own image's score.
    const single = await Promise.all(pngs.map((p) => postRaw<DetectionRecord>(`${url}/v1/detect`, p)));
    for (const [i, r] of single.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.detector, "strip");
      assert.equal(r.body.pred, want.pred[i]);
      assert.ok(
        Math.abs((r.body.score ?? Number.NaN) - (want.score[i] as number)) <= TOL,
        `image ${i}: served ${r.body.score} vs library ${want.score[i]}`,
      );
      assert.equal(r.body.threshold, want.threshold);
      assert.equal(r.body.flagged, (r.body.score as number) > want.threshold);
      assert.equal(r.body.expertConfidence, null);
      assert.equal(r.body.auxiliaryConfidence, null);
    }
    // The same images again, as one batch in reverse order, after all the calls above: the same scores.
    const batch = await postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, {
      images: [...pngs].reverse().map(b64),
    });
    assert.equal(batch.status, 200, JSON.stringify(batch.body));
    for (const [k, r] of batch.body.results.entries()) {
      const i = N - 1 - k;
      assert.ok(
        Math.abs((r.score ?? Number.NaN) - (single[i]?.body.score ?? Number.NaN)) <= TOL,
        `image ${i}: in a batch ${r.score} vs alone ${single[i]?.body.score}`,
      );
    }
    const flaggedCount = single.filter((r) => r.body.flagged).length;
    assert.ok(flaggedCount < N, "a clean image set is not all flagged");

    const d = await get<
      Record<string, unknown> & {
        params: Record<string, unknown>;
        checkpoint: { path: string; weightsSha256: string };
        hashes: Record<string, string>;
        serving: { engine: string; engineRequested: string };
      }
    >(`${url}/v1/detector`);
    assert.equal(d.status, 200);
    const manifest = JSON.parse(await readFile(join(fx.strip, "detector.json"), "utf8")) as {
      params: Record<string, unknown>;
      calibration: { threshold: number; targetFpr: number };
    };
    assert.deepEqual(
      [d.body.detector, d.body.kind, d.body.architecture, d.body.rule],
      ["strip", "baseline", "compact-cnn", null],
    );
    assert.deepEqual(d.body.params, manifest.params);
    assert.equal(d.body.params.n, 8);
    assert.deepEqual([d.body.threshold, d.body.targetFpr], [manifest.calibration.threshold, 0.05]);
    const weights = createHash("sha256")
      .update(await readFile(join(fx.checkpoint, "model.safetensors")))
      .digest("hex");
    assert.equal(d.body.checkpoint.weightsSha256, weights);
    assert.equal(d.body.checkpoint.path, fx.checkpoint);
    assert.deepEqual(Object.keys(d.body.hashes).sort(), ["detector.json", "state.safetensors"]);
    assert.equal(
      d.body.hashes["detector.json"],
      createHash("sha256")
        .update(await readFile(join(fx.strip, "detector.json")))
        .digest("hex"),
    );
    assert.deepEqual([d.body.serving.engine, d.body.serving.engineRequested], ["libtorch", "auto"]);

    const feed = await get<{ message: string }>(`${url}/v1/flagged`);
    assert.equal(feed.status, 404);
    assert.match(feed.body.message, /the strip detector has no B/);
    const text = await (await fetch(`${url}/metrics`)).text();
    assert.equal(metric(text, "badexpert_inputs_scored_total"), 2 * N);
    let flagged = 0;
    // Class names hold spaces ("Ankle boot"): the value is after the last one.
    for (const line of text.split("\n"))
      if (line.startsWith("badexpert_inputs_flagged_total{")) flagged += Number(line.slice(line.lastIndexOf(" ") + 1));
    assert.equal(flagged, 2 * flaggedCount);
    // The workers hold M's weights and STRIP's clean pool, nothing else between batches.
    const { model } = await loadCheckpoint(fx.checkpoint);
    const held = model.stateDict().size + 1;
    model.dispose();
    assert.equal(metric(text, "badexpert_worker_live_tensors"), held);
  } finally {
    assert.equal(await server.close(), 0, "workers freed every tensor");
  }
});

test("Frequency bundle: library scores over HTTP; an explicit --flagged-keep is warned about, not a crash", async () => {
  const want = await libraryScores(fx.frequency, pngs);
  const { stream, logs } = lines();
  const server = await createServer(fx.frequency, {
    port: 0,
    logLevel: "info",
    logStream: stream,
    workers: 1,
    engine: "libtorch",
    flaggedKeep: 8,
  });
  try {
    assert.equal(
      logs.some((l) => l.event === "engine_fallback"),
      false,
      "libtorch was asked for: nothing to fall back from",
    );
    const off = logs.find((l) => l.event === "explain_off");
    assert.equal(off?.level, 40, "a warning: the options asked for the feed");
    assert.match(String(off?.msg), /--flagged-keep, --explain-method\) ignored: .*the frequency detector has none/);
    const url = await server.listen();
    const r = await postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, pngs.map(b64));
    assert.equal(r.status, 200, JSON.stringify(r.body));
    for (const [i, x] of r.body.results.entries()) {
      assert.equal(x.detector, "frequency");
      assert.equal(x.pred, want.pred[i]);
      assert.ok(
        Math.abs((x.score ?? Number.NaN) - (want.score[i] as number)) <= TOL,
        `image ${i}: served ${x.score} vs library ${want.score[i]}`,
      );
      assert.equal(x.flagged, (x.score as number) > want.threshold);
    }
    const clean = r.body.results.findIndex((x) => !x.flagged);
    const p = await postRaw(`${url}/v1/predict`, pngs[clean] as Uint8Array<ArrayBuffer>);
    assert.deepEqual([p.status, p.body.flagged, p.body.pred], [200, false, want.pred[clean]]);
  } finally {
    assert.equal(await server.close(), 0);
  }
});

test("baselines refuse onnxruntime and --verify-key before any worker starts, in the library and the CLI", async () => {
  await assert.rejects(
    createServer(fx.strip, { ...quietLog, engine: "onnxruntime" }),
    /engine onnxruntime cannot score the strip detector .*libtorch only/,
  );
  await assert.rejects(
    createServer(fx.frequency, { ...quietLog, bundleLoad: { verifyKey: join(work, "no.pub") } }),
    /verifyKey \(--verify-key\): .* is a frequency detector bundle, which is not signed/,
  );
  // The CLI turns the refusal into a usage error (exit 2) naming the detector.
  const cli = await runCli(["serve", "--bundle", fx.strip, "--engine", "onnxruntime", "--port", "0"]);
  assert.equal(cli.code, 2);
  assert.match(cli.err, /engine onnxruntime cannot score the strip detector/);
});

test("a baseline whose scores are NaN fails closed: flagged with the reason, refused by the firewall", async () => {
  const dir = join(work, "strip-nan");
  await cp(fx.strip, dir, { recursive: true });
  // A clean pool of NaN images (manifest hash updated, as a tampered but consistent bundle would be): every superimposition is NaN.
  const pool = tensor(new Float32Array(4 * 28 * 28).fill(Number.NaN), { shape: [4, 1, 28, 28] });
  const written = await saveTensors(join(dir, "state.safetensors"), new Map([["pool", pool]]), {
    format: "badexpert-baseline-detector",
    detector: "strip",
  });
  pool.dispose();
  const manifest = JSON.parse(await readFile(join(dir, "detector.json"), "utf8")) as { stateSha256: string };
  manifest.stateSha256 = written.sha256;
  await writeFile(join(dir, "detector.json"), JSON.stringify(manifest));
  const server = await createServer(dir, { ...quietLog, workers: 1 });
  try {
    const url = await server.listen();
    const r = await postJson<{ results: DetectionRecord[] }>(`${url}/v1/detect`, pngs.slice(0, 3).map(b64));
    assert.equal(r.status, 200);
    for (const x of r.body.results) {
      assert.deepEqual([x.flagged, x.score, x.detector], [true, null, "strip"]);
      assert.match(String(x.reason), /the detector's score is not a finite number \(NaN\)/);
    }
    const p = await postRaw<{ error: string; flagged: { reason: string }[] }>(
      `${url}/v1/predict`,
      pngs[0] as Uint8Array<ArrayBuffer>,
    );
    assert.equal(p.status, 422);
    assert.match(String(p.body.flagged[0]?.reason), /not a finite number/);
  } finally {
    assert.equal(await server.close(), 0);
  }
});

test("reload: STRIP -> Frequency works; to a BaDExpert bundle it is refused and the baseline keeps serving", async () => {
  const dir = join(work, "live");
  await cp(fx.strip, dir, { recursive: true });
  const server = await createServer(dir, { ...quietLog, workers: 1 });
  try {
    const url = await server.listen();
    assert.equal((await get(`${url}/v1/detector`)).body.detector, "strip");
    await rm(dir, { recursive: true });
    await cp(fx.frequency, dir, { recursive: true });
    await server.reload();
    const d = await get<{ detector: string; hashes: Record<string, string> }>(`${url}/v1/detector`);
    assert.equal(d.body.detector, "frequency");
    assert.deepEqual(Object.keys(d.body.hashes), ["detector.json", "state.safetensors"]);
    const want = await libraryScores(fx.frequency, pngs.slice(0, 2));
    const r = await postRaw<DetectionRecord>(`${url}/v1/detect`, pngs[0] as Uint8Array<ArrayBuffer>);
    assert.equal(r.body.detector, "frequency");
    assert.ok(Math.abs((r.body.score ?? Number.NaN) - (want.score[0] as number)) <= TOL);

    await rm(dir, { recursive: true });
    await cp(await fixtureBundle(), dir, { recursive: true });
    await assert.rejects(
      server.reload(),
      /now holds a badexpert detector bundle, the server was started on a frequency one; restart the server to change the kind of detector/,
    );
    const still = await postRaw<DetectionRecord>(`${url}/v1/detect`, pngs[0] as Uint8Array<ArrayBuffer>);
    assert.deepEqual([still.status, still.body.detector], [200, "frequency"]);
    const text = await (await fetch(`${url}/metrics`)).text();
    assert.equal(metric(text, 'badexpert_reloads_total{result="ok"}'), 1);
    assert.equal(metric(text, 'badexpert_reloads_total{result="failed"}'), 1);
  } finally {
    assert.equal(await server.close(), 0);
  }
});
