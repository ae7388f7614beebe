// GTSRB (German Traffic Sign Recognition Benchmark) in its official layout:
//   GTSRB/Final_Training/Images/000NN/*.ppm + GT-000NN.csv   (one folder per class)
//   GTSRB/Final_Test/Images/*.ppm + GT-final_test.csv          (labels ship separately, GTSRB_Final_Test_GT.zip)
// from a folder holding GTSRB/, the GTSRB folder itself, or a .tar/.tar.gz of either. Whole images are resized
// (the ROI columns are ignored, as most backdoor work on GTSRB does); the official images vary in size.

import { stat } from "node:fs/promises";
import { assertConsistent, type ImageDataset, type ImageSize, type ReadOptions } from "../dataset.js";
import { DatasetFormatError } from "../errors.js";
import { isArchivePath, memberName, scanTree } from "../file-tree.js";
import { copyBytes, decodeImage } from "../image-decode.js";

export const GTSRB_NUM_CLASSES = 43;

// Descriptive names, index = ClassId (the benchmark itself only publishes the ids and pictograms).
export const GTSRB_CLASSES = [
  "Speed limit (20km/h)",
  "Speed limit (30km/h)",
  "Speed limit (50km/h)",
  "Speed limit (60km/h)",
  "Speed limit (70km/h)",
  "Speed limit (80km/h)",
  "End of speed limit (80km/h)",
  "Speed limit (100km/h)",
  "Speed limit (120km/h)",
  "No passing",
  "No passing for vehicles over 3.5 metric tons",
  "Right-of-way at the next intersection",
  "Priority road",
  "Yield",
  "Stop",
  "No vehicles",
  "Vehicles over 3.5 metric tons prohibited",
  "No entry",
  "General caution",
  "Dangerous curve to the left",
  "Dangerous curve to the right",
  "Double curve",
  "Bumpy road",
  "Slippery road",
  "Road narrows on the right",
  "Road work",
  "Traffic signals",
  "Pedestrians",
  "Children crossing",
  "Bicycles crossing",
  "Beware of ice/snow",
  "Wild animals crossing",
  "End of all speed and passing limits",
  "Turn right ahead",
  "Turn left ahead",
  "Ahead only",
  "Go straight or right",
  "Go straight or left",
  "Keep right",
  "Keep left",
  "Roundabout mandatory",
  "End of no passing",
  "End of no passing by vehicles over 3.5 metric tons",
];

export const GTSRB_DEFAULT_SIZE: ImageSize = { height: 32, width: 32 };

const TRAIN_IMAGE = /(?:^|\/)Final_Training\/Images\/(\d{5})\/([^/]+\.ppm)$/i;
const TRAIN_CSV = /(?:^|\/)Final_Training\/Images\/(\d{5})\/GT-(\d{5})\.csv$/;
const TEST_IMAGE = /(?:^|\/)Final_Test\/Images\/([^/]+\.ppm)$/i;
const TEST_CSV = /(?:^|\/)GT-final_test\.csv$/;

/** Lower is preferred when several GT-final_test.csv exist (e.g. one next to GTSRB/ and one inside it). */
function testCsvRank(rel: string): number {
  if (/(?:^|\/)Final_Test\/GT-final_test\.csv$/.test(rel)) return 0;
  if (/(?:^|\/)Final_Test\/Images\/GT-final_test\.csv$/.test(rel)) return 1;
  return 2 + rel.split("/").length;
}

export interface GtsrbRow {
  filename: string;
  classId: number;
  line: number;
}

export function parseGtsrbCsv(text: string, file: string): GtsrbRow[] {
  const fail = (problem: string): never => {
    throw new DatasetFormatError("gtsrb", file, problem);
  };
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const header = (lines[0] ?? "").split(";").map((h) => h.trim());
  const fi = header.indexOf("Filename");
  const ci = header.indexOf("ClassId");
  if (fi < 0) fail(`header has no Filename column: ${JSON.stringify(lines[0] ?? "")}`);
  if (ci < 0) {
    fail("header has no ClassId column (the test labels are in GT-final_test.csv from GTSRB_Final_Test_GT.zip)");
  }
  const rows: GtsrbRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "") continue;
    const cells = line.split(";");
    if (cells.length !== header.length) fail(`line ${i + 1} has ${cells.length} fields, header has ${header.length}`);
    const filename = (cells[fi] ?? "").trim();
    const raw = (cells[ci] ?? "").trim();
    const classId = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!filename) fail(`line ${i + 1} has an empty Filename`);
    if (!(classId >= 0 && classId < GTSRB_NUM_CLASSES)) {
      fail(`line ${i + 1}: ClassId ${JSON.stringify(raw)} is outside 0..${GTSRB_NUM_CLASSES - 1}`);
    }
    rows.push({ filename, classId, line: i + 1 });
  }
  return rows;
}

export async function readGtsrb(path: string, opts: ReadOptions & { name?: string }): Promise<ImageDataset> {
  const info = await stat(path).catch((e: unknown) => {
    throw new DatasetFormatError("gtsrb", path, "does not exist", { cause: e });
  });
  if (!info.isDirectory() && !isArchivePath(path)) {
    throw new DatasetFormatError("gtsrb", path, "expected the GTSRB folder, its parent, or a .tar/.tar.gz of it");
  }
  const size = opts.imageSize ?? GTSRB_DEFAULT_SIZE;
  const channels = opts.channels ?? 3;
  const per = size.height * size.width * channels;
  const train = opts.split === "train";

  // Images are decoded as the archive streams by (CSV order is only known once the CSVs have been read).
  const pixels = new Map<string, Uint8Array>();
  const csvs = new Map<string, { rel: string; text: string }>();
  let testCsv: { rel: string; text: string } | undefined;
  await scanTree(
    path,
    {
      select: (rel) =>
        train ? TRAIN_IMAGE.test(rel) || TRAIN_CSV.test(rel) : TEST_IMAGE.test(rel) || TEST_CSV.test(rel),
      onFile: async (rel, data) => {
        if (train) {
          const csv = TRAIN_CSV.exec(rel);
          if (csv) {
            const dir = csv[1] ?? "";
            const prev = csvs.get(dir);
            if (prev)
              throw new DatasetFormatError("gtsrb", path, `two label files for class ${dir}: ${prev.rel} and ${rel}`);
            csvs.set(dir, { rel, text: data.toString("utf8") });
            return;
          }
        } else if (TEST_CSV.test(rel)) {
          if (!testCsv || testCsvRank(rel) < testCsvRank(testCsv.rel)) testCsv = { rel, text: data.toString("utf8") };
          return;
        }
        const m = train ? TRAIN_IMAGE.exec(rel) : TEST_IMAGE.exec(rel);
        const key = train ? `${m?.[1] ?? ""}/${m?.[2] ?? ""}` : (m?.[1] ?? "");
        if (pixels.has(key))
          throw new DatasetFormatError("gtsrb", path, `image ${key} appears twice (a second copy at ${rel})`);
        const img = await decodeImage(data, memberName(path, rel), { size, channels });
        // Copy: a PPM decoded without resizing is a view into the archive's read buffer, which must not be kept alive.
        pixels.set(key, copyBytes(img.pixels));
      },
    },
    { progressLabel: `decoding GTSRB ${opts.split} from ${path}`, progress: opts.progress ?? true, concurrency: 8 },
  );

  // Row order: classes ascending, each in its CSV's order (train); the CSV's order (test).
  const order: { key: string; classId: number; csv: string; line: number }[] = [];
  if (train) {
    const dirs = [...new Set([...csvs.keys(), ...[...pixels.keys()].map((k) => k.split("/")[0] ?? "")])].sort();
    if (dirs.length === 0) {
      throw new DatasetFormatError(
        "gtsrb",
        path,
        "no Final_Training/Images/000NN/ folders with .ppm images or GT-000NN.csv",
      );
    }
    for (const dir of dirs) {
      const csv = csvs.get(dir);
      if (!csv)
        throw new DatasetFormatError("gtsrb", memberName(path, `Final_Training/Images/${dir}`), `no GT-${dir}.csv`);
      const csvName = memberName(path, csv.rel);
      for (const row of parseGtsrbCsv(csv.text, csvName)) {
        if (row.classId !== Number(dir)) {
          throw new DatasetFormatError(
            "gtsrb",
            csvName,
            `line ${row.line}: ClassId ${row.classId} in the folder of class ${dir}`,
          );
        }
        order.push({ key: `${dir}/${row.filename}`, classId: row.classId, csv: csvName, line: row.line });
      }
    }
  } else {
    if (!testCsv) {
      throw new DatasetFormatError(
        "gtsrb",
        path,
        "no GT-final_test.csv (the test labels, from GTSRB_Final_Test_GT.zip; put it in GTSRB/Final_Test/)",
      );
    }
    const csvName = memberName(path, testCsv.rel);
    for (const row of parseGtsrbCsv(testCsv.text, csvName)) {
      order.push({ key: row.filename, classId: row.classId, csv: csvName, line: row.line });
    }
  }

  const images = new Uint8Array(order.length * per);
  const labels = new Int32Array(order.length);
  order.forEach((o, i) => {
    const px = pixels.get(o.key);
    if (!px)
      throw new DatasetFormatError(
        "gtsrb",
        o.csv,
        `line ${o.line} names ${o.key.split("/").pop() ?? o.key}, which is missing`,
      );
    images.set(px, i * per);
    labels[i] = o.classId;
  });
  const ds: ImageDataset = {
    name: opts.name ?? "gtsrb",
    split: opts.split,
    images,
    labels,
    count: order.length,
    height: size.height,
    width: size.width,
    channels,
    classNames: [...GTSRB_CLASSES],
    source: path,
  };
  assertConsistent(ds);
  return ds;
}
