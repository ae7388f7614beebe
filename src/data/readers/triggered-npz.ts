// Triggered images with their labels in one NumPy file (`evaluate-defense --triggered FILE.npz`),
// as `np.savez(path, x=images, y=labels, target=targets)` writes it:
//   x       uint8 [N, H, W] or [N, H, W, C] (C 1 or 3), or float32/float64 [N, C, H, W] in 0..1
//   y       integer [N]: each image's true class
//   target  integer [N] or a scalar (optional): the class the trigger is meant to reach
// Other arrays in the file are ignored. Images keep their size (the caller checks it against the
// model's); grey and colour are converted to `channels` as the dataset readers convert them.
import { ZipArchive } from "../../io/zip.js";
import { npyValues, parseNpy, type NpyArray } from "../../io/npy.js";
import { readRegularFile } from "../../util/read-regular-file.js";
import { convertChannels } from "../image-decode.js";
import { toNhwcBytes } from "./array-file.js";
import type { LabelledImages } from "../labelled-images.js";
import { BadExpertError } from "../../util/errors.js";

/** 2 GiB: a Node Buffer's practical limit, and far above any evaluation set. */
const MAX_NPZ_BYTES = 2 * 2 ** 30;
const INTEGER_DTYPES = ["uint8", "int8", "int16", "int32", "int64"];

function classIndices(a: NpyArray, source: string, name: string): Int32Array {
  if (!INTEGER_DTYPES.includes(a.dtype))
    throw new BadExpertError("E_DATA", `${source}: ${name} must hold integer class indices, got ${a.dtype}`);
  const v = npyValues(a);
  const out = new Int32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const c = v[i] as number;
    if (!(c >= 0 && c <= 2 ** 31 - 1))
      throw new BadExpertError("E_DATA", `${source}: ${name}[${i}] is ${c}, not a class index`);
    out[i] = c;
  }
  return out;
}

export async function readTriggeredNpz(path: string, channels: 1 | 3): Promise<LabelledImages> {
  const zip = new ZipArchive(await readRegularFile(path, { maxBytes: MAX_NPZ_BYTES, what: ".npz file" }), path, {
    code: "E_DATA",
  });
  const array = (name: string): NpyArray | null =>
    zip.has(`${name}.npy`) ? parseNpy(zip.read(`${name}.npy`), `${path}:${name}`) : null;
  const x = array("x");
  const y = array("y");
  if (x === null || y === null)
    throw new BadExpertError(
      "E_DATA",
      `${path}: expected arrays x (images) and y (true labels), found ${[...zip.entries.keys()].join(", ") || "none"}`,
    );
  const img = toNhwcBytes(x, `${path}:x`);
  if (img.count === 0) throw new BadExpertError("E_DATA", `${path}: x holds no images`);
  if (y.shape.length !== 1 || y.shape[0] !== img.count)
    throw new BadExpertError(
      "E_DATA",
      `${path}: y must be a vector of ${img.count} labels (one per image), got shape (${y.shape.join(", ")})`,
    );
  const labels = classIndices(y, path, "y");
  let targets: Int32Array | null = null;
  const t = array("target");
  if (t !== null) {
    const scalar = t.shape.length === 0;
    if (!scalar && (t.shape.length !== 1 || t.shape[0] !== img.count))
      throw new BadExpertError(
        "E_DATA",
        `${path}: target must be a scalar or a vector of ${img.count} (one per image), got shape (${t.shape.join(", ")})`,
      );
    const v = classIndices(t, path, "target");
    targets = scalar ? new Int32Array(img.count).fill(v[0] as number) : v;
  }
  if (img.channels === channels) return { ...img, labels, targets };
  const per = img.height * img.width * img.channels;
  const out = new Uint8Array(img.count * img.height * img.width * channels);
  for (let i = 0; i < img.count; i++) {
    const one = convertChannels(
      {
        width: img.width,
        height: img.height,
        channels: img.channels,
        pixels: img.images.subarray(i * per, (i + 1) * per),
      },
      channels,
    );
    out.set(one.pixels, i * img.height * img.width * channels);
  }
  return { ...img, images: out, channels, labels, targets };
}
