// A folder of triggered images with their labels (`evaluate-defense --triggered DIR`): the rows
// of DIR/labels.csv (labels-csv.ts) in file order, each image decoded at its own size (never
// resized: resizing would blur the trigger the images carry; the caller checks the size against
// the model's). Every image file in the folder must be listed, so a typo in labels.csv cannot
// leave part of the set out unnoticed.
import { join, resolve, sep } from "node:path";
import { readRegularFile, readRegularTextFile } from "../../util/read-regular-file.js";
import { forEachLimit } from "../concurrency.js";
import { isJunkPath, listFiles } from "../file-tree.js";
import { decodeImage, isImageFile } from "../image-decode.js";
import { MAX_IMAGE_FILE_BYTES } from "../read-image-file.js";
import type { RawImage } from "../ppm.js";
import type { LabelledImages } from "../labelled-images.js";
import { parseLabelsCsv } from "./labels-csv.js";
import { BadExpertError } from "../../util/errors.js";

export const LABELS_FILE = "labels.csv";
const MAX_LABELS_BYTES = 64 * 2 ** 20;
const DECODE_CONCURRENCY = 4;

/** Reads DIR/labels.csv and the images it lists, converted to `channels` (grey ↔ RGB as the dataset readers do). */
export async function readTriggeredFolder(dir: string, channels: 1 | 3): Promise<LabelledImages> {
  const csvPath = join(dir, LABELS_FILE);
  const csv = parseLabelsCsv(
    await readRegularTextFile(csvPath, { maxBytes: MAX_LABELS_BYTES, what: "labels file" }),
    csvPath,
  );
  const root = resolve(dir);
  const listed = new Set<string>();
  for (const r of csv.rows) {
    const path = resolve(root, r.file);
    if (!path.startsWith(root + sep))
      throw new BadExpertError(
        "E_DATA",
        `${csvPath}: ${JSON.stringify(r.file)} is not inside ${dir} (file names are relative to the folder)`,
      );
    listed.add(path);
  }
  const unlisted = (await listFiles(root)).filter(
    (rel) => !isJunkPath(rel) && isImageFile(rel) && !listed.has(resolve(root, rel)),
  );
  if (unlisted.length > 0) {
    const names = unlisted.slice(0, 3).join(", ");
    throw new BadExpertError(
      "E_DATA",
      `${dir}: ${unlisted.length} image file(s) are not listed in ${LABELS_FILE} (${names}${unlisted.length > 3 ? ", ..." : ""}): list them or move them out`,
    );
  }
  const decoded = new Array<RawImage>(csv.rows.length);
  await forEachLimit(csv.rows, DECODE_CONCURRENCY, async (r, i) => {
    const file = join(dir, r.file);
    decoded[i] = await decodeImage(
      await readRegularFile(file, { maxBytes: MAX_IMAGE_FILE_BYTES, what: "image file" }),
      file,
      { channels },
    );
  });
  const first = decoded[0] as RawImage;
  const per = first.height * first.width * channels;
  const images = new Uint8Array(per * csv.rows.length);
  decoded.forEach((img, i) => {
    if (img.height !== first.height || img.width !== first.width) {
      throw new BadExpertError(
        "E_DATA",
        `${join(dir, csv.rows[i]?.file ?? "")} is ${img.width}x${img.height} but ${join(dir, csv.rows[0]?.file ?? "")} is ${first.width}x${first.height}: the images of a triggered set must all have the model's input size`,
      );
    }
    images.set(img.pixels, i * per);
  });
  return {
    images,
    count: csv.rows.length,
    height: first.height,
    width: first.width,
    channels,
    labels: Int32Array.from(csv.rows, (r) => r.label),
    targets: csv.hasTargets ? Int32Array.from(csv.rows, (r) => r.target as number) : null,
  };
}
