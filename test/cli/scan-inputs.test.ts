// What `scan` (and the library's Detector.score under it) does with inputs it must not judge as
// given: a multi-frame image whose first frame is clean is an error line naming its frame count
// (never a clean verdict) unless --frames all, which scores every frame and flags the image when
// any frame is; broken and hostile files are each an error line with a code; exit 1 when any
// input, or every input, could not be read.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { Detector, type Outcome } from "../../src/api/detector.js";
import { memory } from "../../src/engine/index.js";
import { fixtureBundle, fixturePngs } from "../serve/fixture.js";
import { baselineFixture } from "../serve/baseline-fixture.js";
import { multiFrameFiles } from "../helpers/multi-frame.js";
import { runCli } from "./fixtures.js";
import { IMAGE_PROBLEM_CODES, type ImageProblem } from "../../src/data/image-error.js";

let dir: string;
let bundle: string;
let clean: Uint8Array;
let flagged: Uint8Array;
let files: Awaited<ReturnType<typeof multiFrameFiles>>;
let tensorsAtStart: number;

before(async () => {
  tensorsAtStart = memory().numTensors;
  dir = await mkdtemp(join(tmpdir(), "bx-scan-inputs-"));
  bundle = await fixtureBundle();
  // A clean and a flagged evaluation image for this bundle (calibrated at a 5% target FPR).
  const det = await Detector.load(bundle);
  try {
    const pngs = await fixturePngs(200);
    const r = await det.score(pngs);
    clean = pngs[r.findIndex((x) => !x.flagged)] as Uint8Array;
    flagged = pngs[r.findIndex((x) => x.flagged)] as Uint8Array;
    assert.ok(clean && flagged, "the fixture flags some of 200 clean images and passes others");
  } finally {
    await det.dispose();
  }
  const raw = async (p: Uint8Array): Promise<Uint8Array> => new Uint8Array(await sharp(p).greyscale().raw().toBuffer());
  files = await multiFrameFiles({ width: 28, height: 28, channels: 1, frames: [await raw(clean), await raw(flagged)] });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
  assert.equal(memory().numTensors, tensorsAtStart);
});

async function write(name: string, bytes: Uint8Array | string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

function lines(out: string[]): Record<string, unknown>[] {
  return out.map((l) => JSON.parse(l) as Record<string, unknown>);
}

test("scan: multi-frame images are error lines naming the frame count, never clean; --frames all flags them", async () => {
  const still = await write("clean.png", clean);
  const paths = {
    gif: await write("anim.gif", files.gif),
    webp: await write("anim.webp", files.webp),
    apng: await write("anim.png", files.apng),
    tiff: await write("pages.tiff", files.tiff),
    pgm: await write("two.pgm", files.pgm),
  };
  const inputs = [still, ...Object.values(paths)];
  const r = await runCli(["scan", "--bundle", bundle, ...inputs]);
  assert.equal(r.code, 1, "some inputs could not be judged");
  const out = lines(r.lines);
  assert.equal(out.length, inputs.length + 1);
  assert.equal(out[0]?.flagged, false);
  const says = [
    /an animated GIF with 2 frames/,
    /an animated WebP with 2 frames/,
    /an animated PNG with 2 frames/,
    /a multi-page TIFF with 2 pages/,
    /a multi-image PPM\/PGM with 2 images/,
  ];
  for (const [i, line] of out.slice(1, -1).entries()) {
    assert.equal(line.input, inputs[i + 1]);
    assert.equal(line.flagged, undefined, "an error line never carries a verdict");
    assert.equal(line.reason, "multi_frame");
    assert.equal(line.code, "E_INPUT_UNSUPPORTED");
    assert.equal(line.message, line.error);
    assert.match(
      String(line.error),
      new RegExp(
        `${(inputs[i + 1] as string).replace(/[.]/g, "\\.")}: ${(says[i] as RegExp).source}: multi-frame images are refused.*--frames all`,
      ),
    );
  }
  assert.deepEqual([out.at(-1)?.inputs, out.at(-1)?.scored, out.at(-1)?.failed], [6, 1, 5]);

  const all = await runCli(["scan", "--bundle", bundle, "--frames", "all", ...inputs]);
  const scored = lines(all.lines);
  assert.equal(all.code, 0, all.err);
  assert.equal(scored[0]?.frames, undefined, "a single-frame image's line is unchanged");
  for (const [kind, line] of [
    ["webp", scored[2]],
    ["apng", scored[3]],
    ["tiff", scored[4]],
    ["pgm", scored[5]],
  ] as const) {
    // Lossless kinds: frame 1 is the flagged image.
    assert.deepEqual([line?.flagged, line?.frames, line?.frame], [true, 2, 1], kind);
  }
  assert.equal(scored[1]?.frames, 2, "gif");
  assert.equal(scored.at(-1)?.flagged, scored.slice(0, -1).filter((l) => l.flagged === true).length);
  const usage = await runCli(["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--frames", "all"]);
  assert.equal(usage.code, 2);
  assert.match(usage.err, /--frames all applies to image files/);
});

test("scan: broken and hostile files are error lines with a code, a reason and the problem; exit 1 when nothing could be read", async () => {
  const png = new Uint8Array(clean);
  const badCrc = new Uint8Array(png);
  badCrc[png.length - 13] = (badCrc[png.length - 13] ?? 0) ^ 0xff;
  const zeroWidth = new Uint8Array(png);
  new DataView(zeroWidth.buffer).setUint32(16, 0);
  const cases: [string, Uint8Array | string, string, RegExp][] = [
    ["crc.png", badCrc, "corrupt", /crc\.png: cannot decode: a corrupt PNG: chunk IDAT at byte \d+ has a bad CRC/],
    [
      "zero.png",
      zeroWidth,
      "corrupt",
      /zero\.png: cannot decode: a corrupt PNG: its header \(IHDR\) declares 0x28 pixels/,
    ],
    ["half.png", png.slice(0, png.length >> 1), "corrupt", /half\.png: cannot decode: a corrupt PNG: truncated/],
    ["empty.png", new Uint8Array(0), "empty", /empty\.png: empty \(0 bytes\)/],
    [
      "notes.png",
      "a text file with an image's name",
      "not_an_image",
      /notes\.png: cannot decode: not a supported image/,
    ],
    [
      "drawing.svg",
      "<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'/>",
      "unsupported_format",
      /drawing\.svg: a SVG image; only PNG, JPEG, WebP, GIF, TIFF or PPM\/PGM images are accepted/,
    ],
  ];
  const paths = await Promise.all(cases.map(([name, bytes]) => write(name, bytes)));
  // A named pipe no one writes to: read as it is, it would hold the scan forever.
  const fifo = join(dir, "pipe.png");
  execFileSync("mkfifo", [fifo]);
  const r = await runCli(["scan", "--bundle", bundle, ...paths, fifo]);
  assert.equal(r.code, 1);
  const out = lines(r.lines);
  assert.match(String(out[cases.length]?.error), /pipe\.png: not a regular file \(a device, socket or pipe\)/);
  assert.deepEqual([out[cases.length]?.code, out[cases.length]?.reason], ["E_IO", "ETYPE"]);
  for (const [i, [, , reason, message]] of cases.entries()) {
    assert.equal(out[i]?.reason, reason, String(out[i]?.error));
    assert.equal(out[i]?.code, IMAGE_PROBLEM_CODES[reason as ImageProblem], String(out[i]?.error));
    assert.match(String(out[i]?.message), message);
    assert.equal(out[i]?.error, out[i]?.message, "error: the message, as the README documents it");
    assert.equal(out[i]?.flagged, undefined);
  }
  assert.deepEqual(
    [out.at(-1)?.inputs, out.at(-1)?.scored, out.at(-1)?.failed],
    [cases.length + 1, 0, cases.length + 1],
  );
});

test("library: Detector.score refuses a multi-frame image by default and scores every frame with frames 'all'", async () => {
  const det = await Detector.load(bundle);
  try {
    await assert.rejects(
      det.score([clean, files.apng]),
      /images\[1\]: an animated PNG with 2 frames: multi-frame images are refused/,
    );
    const [a, b] = await det.score([clean, files.apng], { frames: "all" });
    const [f0, f1] = await det.score([clean, flagged]);
    assert.equal(a?.frames, undefined);
    assert.deepEqual([b?.frames, b?.frame, b?.flagged, b?.score], [2, 1, true, f1?.score]);
    assert.equal(a?.score, f0?.score);
    const outcomes: Outcome[] = [];
    for await (const part of det.scoreEach([files.tiff, files.tiff], { frames: "all" })) outcomes.push(...part);
    assert.deepEqual(
      outcomes.map((o) => (o.ok ? o.detection.frames : o.message)),
      [2, 2],
    );
  } finally {
    await det.dispose();
  }
});

test("scan with a baseline detector bundle reads its inputs the same way", async () => {
  const { frequency } = await baselineFixture();
  const anim = await write("base.png", files.apng);
  const r = await runCli(["scan", "--bundle", frequency, anim]);
  assert.equal(r.code, 1);
  const [line] = lines(r.lines);
  assert.equal(line?.reason, "multi_frame");
  assert.equal(line?.code, "E_INPUT_UNSUPPORTED");
  assert.match(String(line?.error), /base\.png: an animated PNG with 2 frames/);
  const all = await runCli(["scan", "--bundle", frequency, "--frames", "all", anim]);
  assert.equal(all.code, 0, all.err);
  const [scored] = lines(all.lines);
  assert.equal(scored?.frames, 2);
  assert.equal(typeof scored?.score, "number");
});
