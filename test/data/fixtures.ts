// Builders for small files in each dataset's official format, written to throw-away folders.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import sharp from "sharp";
import { create as createTar } from "tar";
import { encodePnm } from "../../src/data/ppm.js";

/** A fresh temporary folder, removed when `after` hooks run. */
export async function tempDir(after: (fn: () => Promise<void>) => void, prefix = "bx-data-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic bytes (mulberry32), so failures reproduce. */
export function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return out;
}

export async function writeBytes(file: string, data: Uint8Array | string): Promise<string> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, data);
  return file;
}

export function idxBytes(magic: number, dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, magic);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

export interface IdxFixture {
  images: Uint8Array;
  labels: number[];
  height: number;
  width: number;
}

/** Writes `<prefix>-images-idx3-ubyte[.gz]` and the labels file the way the official distribution names them. */
export async function writeIdxPair(
  dir: string,
  prefix: "train" | "t10k",
  fx: IdxFixture,
  gzip: boolean,
): Promise<{ images: string; labels: string }> {
  const n = fx.labels.length;
  const img = idxBytes(0x803, [n, fx.height, fx.width], fx.images);
  const lbl = idxBytes(0x801, [n], Uint8Array.from(fx.labels));
  const ext = gzip ? ".gz" : "";
  return {
    images: await writeBytes(join(dir, `${prefix}-images-idx3-ubyte${ext}`), gzip ? gzipSync(img) : img),
    labels: await writeBytes(join(dir, `${prefix}-labels-idx1-ubyte${ext}`), gzip ? gzipSync(lbl) : lbl),
  };
}

/** One CIFAR record: label byte, then R, G, B planes of 32x32. */
export function cifarRecord(label: number, planar: Uint8Array): Uint8Array {
  const out = new Uint8Array(3073);
  out[0] = label;
  out.set(planar, 1);
  return out;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function solid(width: number, height: number, rgb: readonly number[]): Uint8Array {
  const c = rgb.length;
  const out = new Uint8Array(width * height * c);
  for (let i = 0; i < width * height; i++) out.set(rgb, i * c);
  return out;
}

export function ppm(width: number, height: number, pixels: Uint8Array, channels = 3): Uint8Array {
  return encodePnm({ width, height, channels, pixels });
}

export async function png(width: number, height: number, pixels: Uint8Array, channels: 1 | 3 | 4 = 3): Promise<Buffer> {
  return sharp(pixels, { raw: { width, height, channels } }).png().toBuffer();
}

export async function jpeg(width: number, height: number, pixels: Uint8Array): Promise<Buffer> {
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

export async function tarGz(cwd: string, entries: string[], out: string): Promise<string> {
  await createTar({ gzip: true, file: out, cwd, portable: true }, entries);
  return out;
}

export interface GtsrbImage {
  file: string;
  classId: number;
  width: number;
  height: number;
  pixels: Uint8Array;
}

const GT_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId";

function gtRow(img: GtsrbImage): string {
  return `${img.file};${img.width};${img.height};0;0;${img.width - 1};${img.height - 1};${img.classId}`;
}

/** The official GTSRB tree under `<root>/GTSRB`; CSV lines use CRLF like the real files. */
export async function writeGtsrbTree(
  root: string,
  train: GtsrbImage[],
  test: GtsrbImage[],
  testOrder?: string[],
): Promise<string> {
  const base = join(root, "GTSRB");
  const byClass = new Map<number, GtsrbImage[]>();
  for (const img of train) byClass.set(img.classId, [...(byClass.get(img.classId) ?? []), img]);
  for (const [cls, imgs] of byClass) {
    const dir = join(base, "Final_Training", "Images", String(cls).padStart(5, "0"));
    for (const img of imgs) await writeBytes(join(dir, img.file), ppm(img.width, img.height, img.pixels));
    const csv = [GT_HEADER, ...imgs.map(gtRow)].join("\r\n") + "\r\n";
    await writeBytes(join(dir, `GT-${String(cls).padStart(5, "0")}.csv`), csv);
  }
  const testDir = join(base, "Final_Test", "Images");
  for (const img of test) await writeBytes(join(testDir, img.file), ppm(img.width, img.height, img.pixels));
  const ordered = testOrder
    ? testOrder.map((f) => test.find((t) => t.file === f)).filter((t) => t !== undefined)
    : test;
  await writeBytes(
    join(base, "Final_Test", "GT-final_test.csv"),
    [GT_HEADER, ...ordered.map(gtRow)].join("\r\n") + "\r\n",
  );
  // The unlabelled copy the official test zip ships next to the images; readers must not mistake it for labels.
  const noLabels =
    "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2\r\n" +
    test.map((t) => `${t.file};${t.width};${t.height};0;0;1;1`).join("\r\n");
  await writeBytes(join(testDir, "GT-final_test.test.csv"), noLabels);
  return base;
}
