// `serve --engine onnxruntime`: each worker exports the loaded detector to ONNX and scores on
// onnxruntime; concurrent requests get the libtorch library's scores (1e-4 relative, the
// export's tolerance), the same flags, and the worker frees the libtorch models it exported.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";
import { Detector } from "../../src/api/detector.js";
import { createServer, type DetectionRecord } from "../../src/serve/index.js";
import { fixtureBundle, fixturePngs } from "./fixture.js";
import { get, postRaw } from "./http.js";

test("the onnxruntime engine answers concurrent requests with the library's scores", async () => {
  const before = memory().numTensors;
  const dir = await fixtureBundle();
  const pngs = await fixturePngs(24);
  const lib = await Detector.load(dir);
  const want = await lib.score(pngs);
  await lib.dispose();
  const server = await createServer(dir, {
    port: 0,
    logLevel: "silent",
    engine: "onnxruntime",
    workers: 2,
    maxBatch: 8,
    maxWaitMs: 5,
    timeoutMs: 60_000,
  });
  try {
    const url = await server.listen();
    const info = await get<{ serving: { engine: string; engineRequested: string } }>(`${url}/v1/detector`);
    assert.deepEqual(info.body.serving, {
      ...info.body.serving,
      engine: "onnxruntime",
      engineRequested: "onnxruntime",
    });
    const replies = await Promise.all(pngs.map((p) => postRaw<DetectionRecord>(`${url}/v1/detect`, p)));
    for (const [i, r] of replies.entries()) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const w = want[i];
      assert.ok(w);
      assert.equal(r.body.pred, w.pred, `image ${i}: pred`);
      const tol = 1e-4 * Math.max(1, Math.abs(w.score));
      assert.ok(
        Math.abs((r.body.score ?? Number.NaN) - w.score) <= tol,
        `image ${i}: score ${r.body.score} vs libtorch ${w.score}`,
      );
      if (Math.abs(w.score - w.threshold) > tol) assert.equal(r.body.flagged, w.flagged, `image ${i}: flagged`);
    }
    assert.ok(want.some((w) => w.flagged) && want.some((w) => !w.flagged), "the fixture has flagged and clean inputs");
  } finally {
    // The workers exported the libtorch models and freed them: nothing is left to free at close.
    assert.equal(await server.close(), 0);
  }
  assert.equal(memory().numTensors, before);
});

test("engine auto (the default) scores on onnxruntime where onnxruntime-node is installed", async () => {
  const dir = await fixtureBundle();
  const server = await createServer(dir, { port: 0, logLevel: "silent", workers: 1, flaggedKeep: 0 });
  try {
    assert.equal(server.options.engine, "auto");
    assert.equal(server.engine, "onnxruntime");
    const info = await get<{ serving: { engine: string; engineRequested: string } }>(
      `${await server.listen()}/v1/detector`,
    );
    assert.deepEqual([info.body.serving.engine, info.body.serving.engineRequested], ["onnxruntime", "auto"]);
  } finally {
    await server.close();
  }
});
