// Clean images from NumPy arrays, for users whose data has no reader: a .npz holding images
// (x | images | data) and labels (y | labels | targets), or a .npy of images with its labels in
// <name>.labels.npy next to it. Images are uint8 NHWC (or NHW for grey) in 0..255, or float NCHW
// in 0..1 (quantised to uint8, the toolkit's image format). The file is one set: both splits
// return all of it.
import { ZipArchive } from "../../io/zip.js";
import { npyValues, parseNpy, type NpyArray } from "../../io/npy.js";
import { assertConsistent, type ImageDataset, type ReadOptions } from "../dataset.js";
import { readDatasetFile } from "../read-dataset-file.js";
import { BadExpertError } from "../../util/errors.js";

const IMAGE_KEYS = ["x", "images", "data", "X"];
const LABEL_KEYS = ["y", "labels", "targets", "Y"];

async function readArrays(path: string): Promise<{ images: NpyArray; labels: NpyArray }> {
  const bytes = await readDatasetFile(path, "array-file");
  if (path.endsWith(".npz")) {
    const zip = new ZipArchive(bytes, path, { code: "E_DATA" });
    const pick = (keys: string[], what: string): NpyArray => {
      const k = keys.find((name) => zip.has(`${name}.npy`));
      if (k === undefined)
        throw new BadExpertError(
          "E_DATA",
          `${path}: no ${what} array (expected one of ${keys.join(", ")}; found ${[...zip.entries.keys()].join(", ")})`,
        );
      return parseNpy(zip.read(`${k}.npy`), `${path}:${k}`);
    };
    return { images: pick(IMAGE_KEYS, "images"), labels: pick(LABEL_KEYS, "labels") };
  }
  if (path.endsWith(".npy")) {
    const labelsPath = `${path.slice(0, -4)}.labels.npy`;
    let labelBytes: Uint8Array;
    try {
      labelBytes = await readDatasetFile(labelsPath, "array-file");
    } catch (e) {
      throw new BadExpertError(
        "E_DATA",
        `${path}: the labels must be in ${labelsPath} (or put both in a .npz as x and y): ${(e as Error).message}`,
        { cause: e },
      );
    }
    return { images: parseNpy(bytes, path), labels: parseNpy(labelBytes, labelsPath) };
  }
  throw new BadExpertError("E_DATA", `${path}: expected a .npz or .npy file`);
}

/** Images of a .npy array as the toolkit's uint8 NHWC bytes (uint8 NHW/NHWC as is; float NCHW in 0..1 quantised). */
export function toNhwcBytes(
  a: NpyArray,
  source: string,
): { images: Uint8Array; count: number; height: number; width: number; channels: number } {
  const s = a.shape;
  if (a.dtype === "uint8") {
    if (s.length === 3)
      return {
        images: new Uint8Array(a.data),
        count: s[0] as number,
        height: s[1] as number,
        width: s[2] as number,
        channels: 1,
      };
    if (s.length === 4 && (s[3] === 1 || s[3] === 3))
      return {
        images: new Uint8Array(a.data),
        count: s[0] as number,
        height: s[1] as number,
        width: s[2] as number,
        channels: s[3] as number,
      };
    throw new BadExpertError(
      "E_DATA",
      `${source}: uint8 images must be [N, H, W] or [N, H, W, C] with C 1 or 3, got shape (${s.join(", ")})`,
    );
  }
  if (a.dtype === "float32" || a.dtype === "float64") {
    if (s.length !== 4 || (s[1] !== 1 && s[1] !== 3))
      throw new BadExpertError(
        "E_DATA",
        `${source}: float images must be [N, C, H, W] with C 1 or 3, got shape (${s.join(", ")})`,
      );
    const [n, c, h, w] = s as [number, number, number, number];
    const v = npyValues(a);
    const out = new Uint8Array(n * h * w * c);
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < c; ch++) {
        for (let p = 0; p < h * w; p++) {
          const x = v[(i * c + ch) * h * w + p] as number;
          if (!(x >= 0 && x <= 1))
            throw new BadExpertError(
              "E_DATA",
              `${source}: float images must hold unnormalised values in 0..1, found ${x} (image ${i})`,
            );
          out[(i * h * w + p) * c + ch] = Math.round(x * 255);
        }
      }
    }
    return { images: out, count: n, height: h, width: w, channels: c };
  }
  throw new BadExpertError(
    "E_DATA",
    `${source}: images must be uint8 (NHWC) or float32/float64 (NCHW), got ${a.dtype}`,
  );
}

export async function readArrayFile(path: string, opts: ReadOptions & { name: string }): Promise<ImageDataset> {
  const { images, labels } = await readArrays(path);
  const img = toNhwcBytes(images, path);
  if (labels.shape.length !== 1 || labels.shape[0] !== img.count)
    throw new BadExpertError(
      "E_DATA",
      `${path}: labels must be a vector of ${img.count} (one per image), got shape (${labels.shape.join(", ")})`,
    );
  if (!["uint8", "int8", "int16", "int32", "int64"].includes(labels.dtype))
    throw new BadExpertError("E_DATA", `${path}: labels must be integers, got ${labels.dtype}`);
  const y = Int32Array.from(npyValues(labels));
  let max = -1;
  for (const v of y) {
    if (v < 0) throw new BadExpertError("E_DATA", `${path}: labels must be non-negative class indices, found ${v}`);
    max = Math.max(max, v);
  }
  if (opts.imageSize && (opts.imageSize.height !== img.height || opts.imageSize.width !== img.width)) {
    throw new BadExpertError(
      "E_DATA",
      `${path}: images are ${img.height}x${img.width} but ${opts.imageSize.height}x${opts.imageSize.width} are needed (arrays are not resized: save them at the model's size)`,
    );
  }
  if (opts.channels && opts.channels !== img.channels)
    throw new BadExpertError("E_DATA", `${path}: images have ${img.channels} channels but ${opts.channels} are needed`);
  const ds: ImageDataset = {
    name: opts.name,
    split: opts.split,
    ...img,
    labels: y,
    classNames: Array.from({ length: max + 1 }, (_, i) => String(i)),
    source: path,
  };
  assertConsistent(ds);
  return ds;
}
