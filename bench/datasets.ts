// `npm run bench:datasets [-- --json]`: loading speed of each reader, first (decode, into an
// empty temporary cache) and cached (second load). Uses the real copies: Fashion-MNIST from
// Debian, CIFAR-10 and GTSRB from ../shared/datasets.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadDataset } from "../src/data/registry.js";
import { round, wantsJson } from "./harness.js";

const shared = resolve(process.env.BADEXPERT_SHARED ?? "../shared/datasets");
const cases: { name: string; path?: string }[] = [
  { name: "fashion-mnist" },
  { name: "cifar10-folder", path: join(shared, "cifar10-jpeg.tar.gz") },
  { name: "gtsrb", path: join(shared, "gtsrb-32.tar.gz") },
];
const cacheDir = await mkdtemp(join(tmpdir(), "bx-bench-cache-"));
const rows: Record<string, unknown>[] = [];
try {
  for (const c of cases) {
    for (const split of ["train", "test"] as const) {
      const opts = { split, cacheDir, progress: false, ...(c.path ? { path: c.path } : {}) };
      let t = Date.now();
      const first = await loadDataset(c.name, opts);
      const firstS = (Date.now() - t) / 1000;
      t = Date.now();
      await loadDataset(c.name, opts);
      const cachedS = (Date.now() - t) / 1000;
      rows.push({
        dataset: c.name,
        split,
        images: first.count,
        firstSeconds: round(firstS, 2),
        cachedSeconds: round(cachedS, 2),
      });
      console.log(
        `| ${c.name} | ${split} | ${first.count} | ${first.height}x${first.width}x${first.channels} | ${round(firstS, 2)} s | ${round(cachedS, 2)} s |`,
      );
    }
  }
} finally {
  await rm(cacheDir, { recursive: true, force: true });
}
if (wantsJson()) console.log(JSON.stringify(rows));
