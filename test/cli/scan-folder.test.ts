// `scan DIR`: a folder's image files in natural order, its sub-folders only with --recursive,
// symbolic links never followed, and what else it held named on stderr; and the conversion of an
// image to the model's input (another size, colour or an alpha channel) recorded in its line and
// warned about on stderr, never silent.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { fixtureBundle, fixturePngs } from "../serve/fixture.js";
import { runCli } from "./fixtures.js";
import { inputFiles } from "../../src/data/input-files.js";
import { conversionOf } from "../../src/data/image-decode.js";

let dir: string;
let bundle: string;
let pngs: Uint8Array[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "bx-scan-folder-"));
  bundle = await fixtureBundle();
  pngs = await fixturePngs(4);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function records(lines: string[]): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** A folder: 1, 2 and 10.png, notes.txt, sub/3.png, sub/deeper/4.png, a link to 2.png and a link to sub/. */
async function folder(name: string): Promise<string> {
  const root = join(dir, name);
  await mkdir(join(root, "sub", "deeper"), { recursive: true });
  await writeFile(join(root, "10.png"), pngs[0] as Uint8Array);
  await writeFile(join(root, "2.png"), pngs[1] as Uint8Array);
  await writeFile(join(root, "1.png"), pngs[2] as Uint8Array);
  await writeFile(join(root, "notes.txt"), "not an image");
  await writeFile(join(root, "sub", "3.png"), pngs[3] as Uint8Array);
  await writeFile(join(root, "sub", "deeper", "4.png"), pngs[0] as Uint8Array);
  await symlink(join(root, "2.png"), join(root, "link.png"));
  await symlink(join(root, "sub"), join(root, "linked-dir"));
  return root;
}

test("inputFiles: natural order, sub-folders only when recursive, links and non-images skipped and reported", async () => {
  const root = await folder("lib");
  const flat = await inputFiles([root]);
  assert.deepEqual(
    flat.files,
    ["1.png", "2.png", "10.png"].map((n) => join(root, n)),
  );
  assert.deepEqual(flat.skipped.links.sort(), [join(root, "link.png"), join(root, "linked-dir")]);
  assert.deepEqual(flat.skipped.folders, [join(root, "sub")]);
  assert.deepEqual(flat.skipped.notImages, [join(root, "notes.txt")]);
  const deep = await inputFiles([root], { recursive: true });
  assert.deepEqual(
    deep.files,
    ["1.png", "2.png", "10.png", "sub/3.png", "sub/deeper/4.png"].map((n) => join(root, n)),
  );
  assert.equal(deep.skipped.links.length, 2, "links are not followed when descending either");
  // Named paths are taken as given, in the order given; a missing one is kept for the reader to report.
  const named = await inputFiles([
    join(root, "link.png"),
    join(root, "missing.png"),
    join(root, "sub", "deeper"),
    join(root, "sub"),
  ]);
  assert.deepEqual(named.files, [
    join(root, "link.png"),
    join(root, "missing.png"),
    join(root, "sub", "deeper", "4.png"),
    join(root, "sub", "3.png"),
  ]);
  // A folder with no image is kept where it was named, for the caller to report.
  await mkdir(join(root, "nothing"));
  const empty = await inputFiles([join(root, "1.png"), join(root, "nothing")]);
  assert.deepEqual(
    [empty.files, empty.emptyFolders],
    [[join(root, "1.png"), join(root, "nothing")], [join(root, "nothing")]],
  );
});

test("scan DIR scans its images in natural order; --recursive adds the sub-folders'; stderr names what was not scanned", async () => {
  const root = await folder("cli");
  const r = await runCli(["scan", "--bundle", bundle, root]);
  assert.equal(r.code, 0, r.err);
  const out = records(r.lines);
  assert.deepEqual(
    out.slice(0, -1).map((l) => l.input),
    ["1.png", "2.png", "10.png"].map((n) => join(root, n)),
  );
  assert.equal(out.at(-1)?.inputs, 3);
  assert.match(r.err, /2 symbolic link\(s\) inside a folder \(never followed\) not scanned/);
  assert.match(r.err, /1 sub-folder\(s\) \(--recursive descends into them\) not scanned: .*sub/);
  assert.match(r.err, /1 file\(s\) without an image extension not scanned: .*notes\.txt/);
  const deep = await runCli(["scan", "--bundle", bundle, "--recursive", root]);
  assert.equal(deep.code, 0, deep.err);
  assert.deepEqual(
    records(deep.lines)
      .slice(0, -1)
      .map((l) => l.input),
    ["1.png", "2.png", "10.png", "sub/3.png", "sub/deeper/4.png"].map((n) => join(root, n)),
  );
  // The same image scores the same whether named or found in a folder.
  const named = records((await runCli(["scan", "--bundle", bundle, join(root, "2.png")])).lines)[0];
  assert.ok(
    Math.abs((named?.score as number) - (records(deep.lines)[1]?.score as number)) < 1e-5,
    "the same image, the same score (up to batch numerics)",
  );
});

test("a folder without images is an error line where it was named (exit 1); --recursive with --dataset is a usage error", async () => {
  const empty = join(dir, "empty");
  await mkdir(empty);
  await writeFile(join(empty, "readme.md"), "# no images");
  const r = await runCli(["scan", "--bundle", bundle, empty]);
  assert.equal(r.code, 1);
  const [line, summary] = records(r.lines);
  assert.equal(line?.input, empty);
  assert.match(String(line?.error), /empty: a folder with no image files in it/);
  assert.equal(line?.flagged, undefined, "never a verdict");
  assert.deepEqual([summary?.inputs, summary?.scored, summary?.failed], [1, 0, 1]);
  assert.match(r.err, /1 file\(s\) without an image extension not scanned: .*readme\.md/);
  const u = await runCli(["scan", "--bundle", bundle, "--dataset", "fashion-mnist", "--recursive"]);
  assert.equal(u.code, 2);
  assert.match(u.err, /--recursive applies to folders of image files/);
});

test("an image converted to the model's input says so: `converted` in its line, one warning per kind, a count in the summary", async () => {
  // The fixture's model reads 28x28 grey; its PNGs are grey pictures stored as RGB (no loss: not reported).
  const grey = pngs[0] as Uint8Array;
  const raw = await sharp(grey).raw().toBuffer();
  // Colour: the grey picture in the red channel only, at twice the size.
  const red = Buffer.alloc(56 * 56 * 3);
  const big = await sharp(raw, { raw: { width: 28, height: 28, channels: 3 } })
    .resize(56, 56)
    .raw()
    .toBuffer();
  for (let i = 0; i < 56 * 56; i++) red[3 * i] = big[3 * i] as number;
  const rgb = await sharp(red, { raw: { width: 56, height: 56, channels: 3 } })
    .png()
    .toBuffer();
  const rgba = await sharp(raw, { raw: { width: 28, height: 28, channels: 3 } })
    .ensureAlpha()
    .png()
    .toBuffer();
  const paths = {
    grey: join(dir, "grey.png"),
    rgb1: join(dir, "big-1.png"),
    rgb2: join(dir, "big-2.png"),
    rgba: join(dir, "alpha.png"),
  };
  await writeFile(paths.grey, grey);
  await writeFile(paths.rgb1, rgb);
  await writeFile(paths.rgb2, rgb);
  await writeFile(paths.rgba, rgba);
  const r = await runCli(["scan", "--bundle", bundle, paths.grey, paths.rgb1, paths.rgb2, paths.rgba]);
  assert.equal(r.code, 0, r.err);
  const [g, b1, b2, a, summary] = records(r.lines);
  assert.equal(g?.converted, undefined, "an image at the model's size, grey (though stored as RGB), is not converted");
  const bigRgb = { from: { width: 56, height: 56, colour: "RGB" }, to: { width: 28, height: 28, colour: "grey" } };
  assert.deepEqual(b1?.converted, bigRgb);
  assert.deepEqual(b2?.converted, bigRgb);
  // Grey pixels with an alpha channel: the colour is no loss, the dropped alpha is.
  assert.deepEqual(a?.converted, {
    from: { width: 28, height: 28, colour: "grey+alpha" },
    to: { width: 28, height: 28, colour: "grey" },
  });
  assert.equal(summary?.convertedInputs, 3);
  const warnings = r.err.split("\n").filter((l) => l.includes("warning"));
  assert.equal(warnings.filter((l) => l.includes("big-")).length, 1, "one warning for the first of a kind");
  assert.match(r.err, /big-1\.png: a 56x56 RGB image, converted to the model's 28x28 grey input/);
  assert.match(r.err, /alpha\.png: a 28x28 grey\+alpha image, converted to the model's 28x28 grey input/);
  assert.match(r.err, /2 inputs converted 56x56 RGB → 28x28 grey/);
});

test("conversionOf: size, colour and alpha each count; the target's own shape is no conversion", () => {
  const target = { size: { height: 28, width: 28 }, channels: 1 as const };
  assert.equal(conversionOf({ width: 28, height: 28, colourChannels: 1, alpha: false }, target), null);
  assert.deepEqual(conversionOf({ width: 224, height: 224, colourChannels: 3, alpha: false }, target), {
    from: { width: 224, height: 224, colour: "RGB" },
    to: { width: 28, height: 28, colour: "grey" },
  });
  assert.deepEqual(
    conversionOf(
      { width: 32, height: 32, colourChannels: 1, alpha: true },
      { size: { height: 32, width: 32 }, channels: 3 },
    ),
    { from: { width: 32, height: 32, colour: "grey+alpha" }, to: { width: 32, height: 32, colour: "RGB" } },
  );
  assert.equal(
    conversionOf(
      { width: 32, height: 32, colourChannels: 1, alpha: false },
      { size: { height: 32, width: 32 }, channels: 3 },
    ),
    null,
    "grey read by a colour model loses nothing",
  );
});
