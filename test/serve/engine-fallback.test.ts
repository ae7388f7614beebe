// serve's default engine ("auto") on a detector that does not export to ONNX: a TorchScript
// import (the exporter reads our nn modules, not TorchScript programs). The server falls back to
// libtorch, says so in /v1/detector, and answers with the library's scores.
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
import { get, postRaw } from "./http.js";

const quiet = (): void => {};

test("engine auto falls back to libtorch for a TorchScript-imported detector and serves the library's scores", async () => {
  const before = memory().numTensors;
  const dir = await mkdtemp(join(tmpdir(), "bx-engine-fallback-"));
  try {
    await importModel({ out: join(dir, "ck"), torchscript: fixture("tiny-mixer-traced.pt"), dataset: "fashion-mnist", log: quiet });
    await defendCheckpoint({ checkpoint: join(dir, "ck"), out: join(dir, "bundle"), reserved: 256, calibration: 200, unlearnLr: 3e-4, finetuneEpochs: 1, silent: true, log: quiet });
    const pngs = await Promise.all([40, 128, 220].map((v) => sharp(Buffer.alloc(28 * 28, v), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()));
    const lib = await Detector.load(join(dir, "bundle"));
    const want = await lib.score(pngs.map((p) => new Uint8Array(p)));
    lib.dispose();
    const server = await createServer(join(dir, "bundle"), { port: 0, logLevel: "silent", workers: 1, flaggedKeep: 0 });
    try {
      assert.equal(server.engine, "libtorch");
      const url = await server.listen();
      const info = await get<{ serving: { engine: string; engineRequested: string } }>(`${url}/v1/detector`);
      assert.deepEqual([info.body.serving.engine, info.body.serving.engineRequested], ["libtorch", "auto"]);
      for (const [i, png] of pngs.entries()) {
        const r = await postRaw<{ pred: number; score: number }>(`${url}/v1/detect`, new Uint8Array(png));
        assert.equal(r.status, 200, JSON.stringify(r.body));
        assert.equal(r.body.pred, want[i]?.pred);
        assert.ok(Math.abs(r.body.score - (want[i]?.score ?? Number.NaN)) <= 1e-5, `image ${i}: score ${r.body.score} vs library ${want[i]?.score}`);
      }
    } finally {
      assert.equal(await server.close(), 0);
    }
    // An explicit --engine onnxruntime does not fall back: it fails, naming the reason.
    await assert.rejects(createServer(join(dir, "bundle"), { port: 0, logLevel: "silent", workers: 1, flaggedKeep: 0, engine: "onnxruntime" }), /TorchScript|torchscript/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
