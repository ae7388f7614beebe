// Bundle files that are FIFOs, devices or far too large are refused at once, before a byte is
// read: a FIFO would block the load forever and a link to /dev/zero would be read without end.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rename, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { memory } from "../../src/engine/index.js";
import { loadBundle, saveBundle } from "../../src/defense/bundle.js";
import { writeKeyPair } from "../../src/defense/signature.js";
import { bundleSource, sourceHashes } from "../../src/workers/source.js";
import { quickDetector } from "./quick-detector.js";
import { releaseFifo, within } from "../helpers/fifo.js";

test("a manifest, signature, key or weight file that is a FIFO or /dev/zero is refused at once", async () => {
  const before = memory().numTensors;
  const det = quickDetector();
  const root = await mkdtemp(join(tmpdir(), "bx-special-"));
  const fifos: string[] = [];
  const mkfifo = (p: string): string => {
    execFileSync("mkfifo", [p]);
    fifos.push(p);
    return p;
  };
  try {
    const dir = join(root, "bundle");
    const keys = join(root, "keys");
    await mkdir(keys);
    const k = await writeKeyPair(keys);
    await saveBundle(dir, det, { signKey: k.privateKey });
    const env = { HOME: join(root, "home"), BADEXPERT_VERIFY_KEY: k.publicKey };
    (await loadBundle(dir, { env })).dispose();
    const rssBefore = process.memoryUsage().rss;
    const swap = async (
      file: string,
      make: (p: string) => Promise<unknown>,
      check: () => Promise<unknown>,
    ): Promise<void> => {
      const p = join(dir, file);
      await rename(p, `${p}.real`);
      try {
        await make(p);
        await check();
      } finally {
        releaseFifo(p);
        await rm(p, { force: true });
        await rename(`${p}.real`, p);
      }
    };
    const zero = (p: string) => symlink("/dev/zero", p);
    const fifo = (p: string) => Promise.resolve(mkfifo(p));
    await swap("detector.json", fifo, () =>
      assert.rejects(
        within(5000, loadBundle(dir, { env })),
        /bundle: .*detector\.json: the manifest is not a regular file \(a device, socket or pipe\)/,
      ),
    );
    await swap("detector.json", zero, () =>
      assert.rejects(within(5000, loadBundle(dir, { env })), /detector\.json: the manifest is not a regular file/),
    );
    // Sparse: 17 MiB on paper, nothing on disk; refused from its size alone.
    await swap(
      "detector.json",
      async (p) => (await writeFile(p, ""), truncate(p, 17 * 2 ** 20)),
      () =>
        assert.rejects(
          within(5000, loadBundle(dir, { env })),
          /detector\.json: 17825792 bytes is over the 16777216-byte limit for a manifest/,
        ),
    );
    await swap("detector.json.sig", zero, () =>
      assert.rejects(
        within(5000, loadBundle(dir, { env })),
        /detector\.json\.sig: the signature is not a regular file/,
      ),
    );
    await swap(
      "detector.json.sig",
      async (p) => (await writeFile(p, ""), truncate(p, 3 * 2 ** 30)),
      () =>
        assert.rejects(
          within(5000, loadBundle(dir, { env })),
          /detector\.json\.sig: 3221225472 bytes is over the 4096-byte limit for a signature/,
        ),
    );
    await swap("expert.safetensors", fifo, () =>
      assert.rejects(
        within(5000, loadBundle(dir, { env })),
        /expert\.safetensors \(B\): safetensors: .* is not a regular file \(a device, socket or pipe\)/,
      ),
    );
    await swap("auxiliary.safetensors", zero, () =>
      assert.rejects(
        within(5000, loadBundle(dir, { env })),
        /auxiliary\.safetensors \(M'\): safetensors: .* is not a regular file/,
      ),
    );
    // The service hashes the bundle's files for GET /v1/detector: the same refusal, not a hang.
    await swap("model.safetensors", fifo, async () =>
      assert.rejects(
        within(5000, sourceHashes(await bundleSource(dir))),
        /model\.safetensors \(model\): cannot read \(the model file is not a regular file/,
      ),
    );
    const pemFifo = mkfifo(join(root, "key.pub"));
    await assert.rejects(
      within(5000, loadBundle(dir, { env: { ...env, BADEXPERT_VERIFY_KEY: pemFifo } })),
      /BADEXPERT_VERIFY_KEY: verification key .*key\.pub: cannot read \(the verification key \(PEM\) is not a regular file/,
    );
    await assert.rejects(
      within(5000, loadBundle(dir, { env, verifyKey: "/dev/zero" })),
      /verification key \/dev\/zero: cannot read \(the verification key \(PEM\) is not a regular file/,
    );
    assert.ok(
      process.memoryUsage().rss - rssBefore < 256 * 2 ** 20,
      `memory stayed flat (${(process.memoryUsage().rss - rssBefore) / 2 ** 20} MiB more)`,
    );
    // Everything back in place: the bundle loads again.
    (await loadBundle(dir, { env })).dispose();
  } finally {
    for (const f of fifos) releaseFifo(f);
    det.dispose();
    await rm(root, { recursive: true, force: true });
  }
  assert.equal(memory().numTensors, before);
});
