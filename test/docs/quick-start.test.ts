// The README's quick start, end to end through the CLI: its three lines (import a TorchScript
// model, defend it with clean data from a .npz, scan a folder) are taken from the README and run
// with the README's options, on a model that real PyTorch wrote (test/fixtures/pytorch: the
// smiley-backdoored CNN, 1x28x28). What differs from the README is what must: the file names, the
// model's own input shape and normalisation, and options that make defend fast enough for a test
// (a small reserved set, fixed rates, one epoch of M'), appended to the README's line.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32 } from "node:zlib";
import sharp from "sharp";
import { loadDataset } from "../../src/data/registry.js";
import { memory } from "../../src/engine/index.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import { runCli, tinyFashionMnist } from "../cli/fixtures.js";

const ROOT = resolve(fileURLToPath(new URL("../../..", import.meta.url)));

/** A .npy file: version 1.0 header, C order. */
function npy(descr: string, shape: readonly number[], data: Uint8Array): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header += " ".repeat(63 - ((10 + header.length) % 64)) + "\n";
  const out = new Uint8Array(10 + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, "latin1"), 10);
  out.set(data, 10 + header.length);
  return out;
}

/** A .npz as numpy.savez writes it: an uncompressed zip of .npy members. */
function npz(members: Record<string, Uint8Array>): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(members)) {
    const n = Buffer.from(name);
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(n.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(n.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, n, Buffer.from(data));
    centrals.push(central, n);
    offset += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(members).length, 8);
  end.writeUInt16LE(Object.keys(members).length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, cd, end]));
}

/** The README's quick-start lines: the `npx badexpert import|defend|scan` lines of the block after "Then import, defend, scan". */
function quickStart(readme: string): string[][] {
  const at = readme.indexOf("Then import, defend, scan");
  assert.ok(at > 0, "the README has its quick start");
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  const lines = (block?.[1] ?? "")
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter(Boolean);
  return lines.map((l) => {
    assert.match(l, /^npx badexpert /);
    return l.split(/\s+/).slice(2);
  });
}

/** `words` with the value of each option in `values` replaced, and the positionals after `--bundle B` replaced by `inputs`. */
function withValues(words: readonly string[], values: Record<string, string>): string[] {
  const out = [...words];
  for (const [opt, v] of Object.entries(values)) {
    const i = out.indexOf(opt);
    assert.ok(i >= 0, `the README's line has ${opt}: ${words.join(" ")}`);
    out[i + 1] = v;
  }
  return out;
}

test("the quick start runs: import a TorchScript model, defend it with clean.npz, scan a folder", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-quick-start-"));
  after(() => rm(dir, { recursive: true, force: true }));
  process.env.BADEXPERT_CACHE = join(dir, "cache");
  const [imp, def, scan] = quickStart(await readFile(join(ROOT, "README.md"), "utf8"));
  assert.deepEqual([imp?.[0], def?.[0], scan?.[0]], ["import", "defend", "scan"]);

  // clean.npz as the README's numpy.savez line writes it: x uint8 [N, H, W, C], y int64 [N].
  const data = await tinyFashionMnist(after, 100, 800);
  const test = await loadDataset("fashion-mnist", { split: "test", path: data });
  const y = new BigInt64Array(test.count);
  test.labels.forEach((l, i) => (y[i] = BigInt(l)));
  await writeFile(
    join(dir, "clean.npz"),
    npz({
      "x.npy": npy("|u1", [test.count, 28, 28, 1], test.images),
      "y.npy": npy("<i8", [test.count], new Uint8Array(y.buffer)),
    }),
  );
  const incoming = join(dir, "incoming");
  await mkdir(incoming);
  for (let i = 0; i < 12; i++) {
    await writeFile(
      join(incoming, `${i}.png`),
      await sharp(Buffer.from(test.images.subarray(i * 784, (i + 1) * 784)), {
        raw: { width: 28, height: 28, channels: 1 },
      })
        .png()
        .toBuffer(),
    );
  }

  const before = memory().numTensors;
  const model = join(dir, "runs", "mine");
  const bundle = join(dir, "runs", "mine-detector");
  const i = await runCli(
    withValues(imp as string[], {
      "--torchscript": fixture("smiley-cnn-scripted.pt"),
      "--input": "1x28x28",
      "--mean": "0.286",
      "--std": "0.353",
      "--out": model,
    }),
  );
  assert.equal(i.code, 0, i.err);
  const d = await runCli([
    ...withValues(def as string[], { "--checkpoint": model, "--data-path": join(dir, "clean.npz"), "--out": bundle }),
    "--reserved",
    "256",
    "--calibration",
    "200",
    "--unlearn-lr",
    "1e-4",
    "--finetune-lr",
    "0.01",
    "--finetune-epochs",
    "1",
    "--fpr",
    "0.05",
  ]);
  assert.equal(d.code, 0, d.err);
  const s = await runCli([...withValues((scan as string[]).slice(0, -1), { "--bundle": bundle }), incoming]);
  assert.equal(s.code, 0, s.err);
  const lines = s.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 13, "one line per image of the folder, then the summary");
  assert.deepEqual(
    lines.slice(0, 12).map((l) => l.input),
    Array.from({ length: 12 }, (_, k) => join(incoming, `${k}.png`)),
  );
  for (const l of lines.slice(0, 12)) {
    assert.equal(typeof l.score, "number");
    assert.equal(typeof l.flagged, "boolean");
    assert.equal(l.converted, undefined, "28x28 grey images for a 1x28x28 model");
  }
  assert.deepEqual([lines[12]?.inputs, lines[12]?.scored, lines[12]?.failed], [12, 12, 0]);
  assert.equal(memory().numTensors, before);
});
