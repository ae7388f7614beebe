// Tiny real data for the CLI tests: the first images of the real Fashion-MNIST files, written as
// an official-layout IDX folder, and a CLI runner that captures stdout and stderr in-process.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parseIdx, readMaybeGzipped } from "../../src/data/readers/idx.js";
import { writeIdxPair } from "../data/fixtures.js";
import { main } from "../../src/cli/main.js";

export const FASHION_MNIST = "/usr/share/datasets/fashion-mnist";

async function firstImages(split: "train" | "t10k", n: number): Promise<{ images: Uint8Array; labels: number[] }> {
  const img = parseIdx(
    await readMaybeGzipped(join(FASHION_MNIST, `${split}-images-idx3-ubyte.gz`)),
    split,
    IDX_IMAGES_MAGIC,
    3,
  );
  const lbl = parseIdx(
    await readMaybeGzipped(join(FASHION_MNIST, `${split}-labels-idx1-ubyte.gz`)),
    split,
    IDX_LABELS_MAGIC,
    1,
  );
  return { images: img.data.slice(0, n * 784), labels: Array.from(lbl.data.subarray(0, n)) };
}

/** A Fashion-MNIST folder with `train` and `test` real images; removed by the `after` hook. */
export async function tinyFashionMnist(
  after: (fn: () => Promise<void>) => void,
  train: number,
  test: number,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "bx-cli-fmnist-"));
  after(() => rm(dir, { recursive: true, force: true }));
  await writeIdxPair(dir, "train", { ...(await firstImages("train", train)), height: 28, width: 28 }, true);
  await writeIdxPair(dir, "t10k", { ...(await firstImages("t10k", test)), height: 28, width: 28 }, true);
  return dir;
}

export interface CliRun {
  code: number;
  out: string;
  err: string;
  /** stdout lines. */
  lines: string[];
  /** The last stdout line parsed as JSON (--json's result). */
  json(): unknown;
}

/** Runs the CLI in this process, capturing console output. */
export async function runCli(args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const log = console.log;
  const error = console.error;
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main(args);
    return {
      code,
      out: out.join("\n"),
      err: err.join("\n"),
      lines: out,
      json: () => JSON.parse(out.at(-1) ?? "null") as unknown,
    };
  } finally {
    console.log = log;
    console.error = error;
  }
}
