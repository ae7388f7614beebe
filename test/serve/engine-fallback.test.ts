// serve's default engine ("auto") on TorchScript-imported detectors. One whose operators the ONNX
// exporter translates is served on onnxruntime with the library's scores. One with an operator
// outside that set falls back to libtorch, and never silently: a warning in the log,
// serving.engineFallback in /v1/detector and badexpert_engine_fallback in the metrics; an
// explicit --engine onnxruntime refuses it, naming the operator.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { memory } from "../../src/engine/index.js";
import { Detector } from "../../src/api/detector.js";
import { importModel } from "../../src/jobs/import.js";
import { defendCheckpoint } from "../../src/jobs/defend.js";
import { createServer } from "../../src/serve/index.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import { get, metric, postRaw } from "./http.js";

const quiet = (): void => {};

async function defended(dir: string, file: string): Promise<string> {
  await importModel({ out: join(dir, "ck"), torchscript: fixture(file), dataset: "fashion-mnist", log: quiet });
  await defendCheckpoint({
    checkpoint: join(dir, "ck"),
    out: join(dir, "bundle"),
    splits: { reserved: 256, calibration: 200 },
    unlearn: { lr: 3e-4 },
    finetune: { epochs: 1 },
    silent: true,
    log: quiet,
  });
  return join(dir, "bundle");
}

function lines(): { stream: { write(l: string): void }; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  return { logs, stream: { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) } };
}

interface Serving {
  serving: { engine: string; engineRequested: string; engineFallback: string | null };
}

test("engine auto serves a TorchScript-imported detector on onnxruntime, or falls back to libtorch and says so everywhere", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-engine-fallback-"));
  try {
    const pngs = await Promise.all(
      [40, 128, 220].map((v) =>
        sharp(Buffer.alloc(28 * 28, v), { raw: { width: 28, height: 28, channels: 1 } })
          .png()
          .toBuffer(),
      ),
    );
    for (const [file, engine] of [
      ["tiny-mixer-traced.pt", "onnxruntime"],
      ["unsupported-op-scripted.pt", "libtorch"],
    ] as const) {
      const bundle = await defended(join(dir, file), file);
      const lib = await Detector.load(bundle);
      const want = await lib.score(pngs.map((p) => new Uint8Array(p)));
      await lib.dispose();
      const { stream, logs } = lines();
      const server = await createServer(bundle, {
        port: 0,
        logLevel: "info",
        logStream: stream,
        workers: 1,
        flaggedKeep: 0,
      });
      try {
        assert.equal(server.engine, engine, file);
        const url = await server.listen();
        const info = await get<Serving>(`${url}/v1/detector`);
        const fallbackLog = logs.find((l) => l.event === "engine_fallback");
        const metrics = await (await fetch(`${url}/metrics`)).text();
        assert.equal(
          metric(metrics, `badexpert_scoring_engine{engine="${engine}",requested="auto"}`),
          1,
          `${file}: scoring engine gauge`,
        );
        if (engine === "onnxruntime") {
          assert.deepEqual(info.body.serving, {
            ...info.body.serving,
            engine: "onnxruntime",
            engineRequested: "auto",
            engineFallback: null,
          });
          assert.equal(fallbackLog, undefined);
          assert.equal(metric(metrics, "badexpert_engine_fallback"), 0);
        } else {
          assert.deepEqual([info.body.serving.engine, info.body.serving.engineRequested], ["libtorch", "auto"]);
          assert.match(info.body.serving.engineFallback ?? "", /aten::cumsum in head/);
          assert.equal(fallbackLog?.level, 40, "logged at warning level");
          assert.match(String(fallbackLog?.reason), /aten::cumsum in head/);
          assert.equal(metric(metrics, "badexpert_engine_fallback"), 1);
        }
        for (const [i, png] of pngs.entries()) {
          const r = await postRaw<{ pred: number; score: number }>(`${url}/v1/detect`, new Uint8Array(png));
          assert.equal(r.status, 200, JSON.stringify(r.body));
          assert.equal(r.body.pred, want[i]?.pred);
          const w = want[i]?.score ?? Number.NaN;
          assert.ok(
            Math.abs(r.body.score - w) <= 1e-4 * Math.max(Math.abs(w), 1e-6),
            `${file} image ${i}: score ${r.body.score} vs library ${w}`,
          );
        }
      } finally {
        assert.equal(await server.close(), 0);
      }
      if (engine === "libtorch") {
        // An explicit --engine onnxruntime does not fall back: it fails, naming the operator.
        await assert.rejects(
          createServer(bundle, { port: 0, logLevel: "silent", workers: 1, flaggedKeep: 0, engine: "onnxruntime" }),
          /aten::cumsum in head/,
        );
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
