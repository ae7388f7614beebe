// The user's triggered inputs as data: labels.csv parsed strictly (what is wrong is named with its
// line), an .npz read into the model's channels, and a set that does not fit the model refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import sharp from "sharp";
import { parseLabelsCsv } from "../../src/data/readers/labels-csv.js";
import { readTriggeredSet } from "../../src/data/triggered-set.js";
import { fixture } from "../helpers/pytorch-fixtures.js";

const classes = (n: number) => Array.from({ length: n }, (_, i) => String(i));

test("labels.csv: header, rows with or without targets, BOM, CRLF and blank lines", () => {
  const a = parseLabelsCsv("\uFEFFfile,label,target\r\na.png,1,3\r\n\r\nsub/b.png, 2 ,3\r\n", "l.csv");
  assert.deepEqual(a, {
    hasTargets: true,
    rows: [
      { file: "a.png", label: 1, target: 3 },
      { file: "sub/b.png", label: 2, target: 3 },
    ],
  });
  const b = parseLabelsCsv("File,Label\nx.png,0\n", "l.csv");
  assert.deepEqual(b, { hasTargets: false, rows: [{ file: "x.png", label: 0, target: null }] });
  const bad: [string, RegExp][] = [
    ["name,label\na.png,1\n", /l\.csv: the first line must be the header "file,label" or "file,label,target"/],
    [
      "file,label,target\na.png,1\n",
      /l\.csv, line 2: expected 3 comma-separated values \(file,label,target\), found 2/,
    ],
    ["file,label,target\na.png,1,\n", /line 2: target must be a class index \(a non-negative integer\), found ""/],
    ["file,label\na.png,-1\n", /line 2: label must be a class index/],
    ["file,label\na.png,1.0\n", /line 2: label must be a class index/],
    ["file,label\na.png,1\na.png,2\n", /line 3: "a\.png" is listed twice/],
    ['file,label\n"a,b.png",1\n', /line 2: quoted fields are not supported/],
    ["file,label\n,1\n", /line 2: the file name is empty/],
    ["file,label\n\n", /l\.csv: no rows after the header/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseLabelsCsv(text, "l.csv"), re, text);
});

test("an .npz is read into the model's channels; a set of another size or with labels outside the model's classes is refused", async () => {
  const grey = await readTriggeredSet(fixture("clean-uint8.npz"), {
    height: 28,
    width: 28,
    channels: 1,
    classNames: classes(10),
  });
  assert.deepEqual([grey.dataset.count, grey.dataset.channels, grey.targets], [48, 1, null]);
  // pixel p of image i is (7i + p) mod 256 (make.py)
  assert.equal(grey.dataset.images[3 * 784 + 300], (21 + 300) % 256);
  assert.deepEqual(Array.from(grey.dataset.labels.subarray(0, 3)), [0, 1, 2]);
  const rgb = await readTriggeredSet(fixture("clean-uint8.npz"), {
    height: 28,
    width: 28,
    channels: 3,
    classNames: classes(10),
  });
  assert.deepEqual(Array.from(rgb.dataset.images.subarray(3 * (3 * 784 + 300), 3 * (3 * 784 + 300) + 3)), [
    321 % 256,
    321 % 256,
    321 % 256,
  ]);
  await assert.rejects(
    readTriggeredSet(fixture("clean-uint8.npz"), { height: 32, width: 32, channels: 1, classNames: classes(10) }),
    /the triggered images are 28x28 but the model takes 32x32 inputs \(they are not resized/,
  );
  await assert.rejects(
    readTriggeredSet(fixture("clean-uint8.npz"), { height: 28, width: 28, channels: 1, classNames: classes(5) }),
    /label 5 of image 5 is not a class of the model \(0\.\.4\)/,
  );
  const t = await readTriggeredSet(fixture("smiley-triggered.npz"), {
    height: 28,
    width: 28,
    channels: 1,
    classNames: classes(10),
  });
  // A scalar target applies to every image.
  assert.ok(t.targets !== null && t.targets.length === 200 && t.targets.every((v) => v === 3));
  await assert.rejects(
    readTriggeredSet(fixture("smiley-triggered.npz"), { height: 28, width: 28, channels: 1, classNames: classes(3) }),
    /target 3 of image 0 is not a class of the model \(0\.\.2\)/,
  );
  await assert.rejects(
    readTriggeredSet(fixture("clean-float.npy"), { height: 28, width: 28, channels: 1, classNames: classes(10) }),
    /a triggered set is a folder of images with labels\.csv, or an \.npz file/,
  );
  await assert.rejects(
    readTriggeredSet(fixture("smiley-trigger.png"), { height: 28, width: 28, channels: 1, classNames: classes(10) }),
    /a triggered set is a folder/,
  );
  await assert.rejects(
    readTriggeredSet(fixture("expected.safetensors"), { height: 28, width: 28, channels: 1, classNames: classes(10) }),
    /a triggered set is a folder/,
  );
  await assert.rejects(
    readTriggeredSet("/nonexistent/set.npz", { height: 28, width: 28, channels: 1, classNames: classes(10) }),
    /\/nonexistent\/set\.npz: cannot open the triggered set \(ENOENT\)/,
  );
});

test("a folder: colour images for a grey model become ITU-R 601 luma, in the order of labels.csv; a folder without labels.csv is named", async () => {
  const dir = await mkdtemp(join(tmpdir(), "bx-tset-"));
  try {
    await sharp(Buffer.from(new Array<number>(4 * 3).fill(0).map((_, k) => [200, 100, 50][k % 3] as number)), {
      raw: { width: 2, height: 2, channels: 3 },
    })
      .png()
      .toFile(join(dir, "c.png"));
    await sharp(Buffer.alloc(4, 7), { raw: { width: 2, height: 2, channels: 1 } })
      .png()
      .toFile(join(dir, "g.png"));
    await assert.rejects(
      readTriggeredSet(dir, { height: 2, width: 2, channels: 1, classNames: classes(10) }),
      /labels\.csv: no such file/,
    );
    await writeFile(join(dir, "labels.csv"), "file,label\ng.png,4\nc.png,2\n");
    const s = await readTriggeredSet(dir, { height: 2, width: 2, channels: 1, classNames: classes(10) });
    const luma = Math.floor((200 * 299 + 100 * 587 + 50 * 114 + 500) / 1000);
    assert.deepEqual(Array.from(s.dataset.images), [7, 7, 7, 7, luma, luma, luma, luma]);
    assert.deepEqual(Array.from(s.dataset.labels), [4, 2]);
    await sharp(Buffer.alloc(9, 7), { raw: { width: 3, height: 3, channels: 1 } })
      .png()
      .toFile(join(dir, "g.png"));
    await assert.rejects(
      readTriggeredSet(dir, { height: 2, width: 2, channels: 1, classNames: classes(10) }),
      /c\.png is 2x2 but .*g\.png is 3x3: the images of a triggered set must all have the model's input size/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
