import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { naturalCompare } from "../../src/data/natural-sort.js";
import { progressReporter } from "../../src/data/progress.js";
import { datasetInfo, datasetNames, loadDataset } from "../../src/data/registry.js";
import { channelStats } from "../../src/data/stats.js";
import { png, solid, tempDir, writeBytes } from "./fixtures.js";

void describe("dataset registry", () => {
  void it("lists the known datasets with consistent metadata", () => {
    assert.deepEqual(datasetNames(), [
      "mnist",
      "fashion-mnist",
      "cifar10",
      "cifar10-folder",
      "gtsrb",
      "image-folder",
      "array",
    ]);
    for (const name of datasetNames()) {
      const info = datasetInfo(name);
      if (info.mean) {
        assert.equal(info.mean.length, info.channels, name);
        assert.equal(info.std?.length, info.channels, name);
      }
    }
    assert.deepEqual(datasetInfo("cifar10").mean, [0.4914, 0.4822, 0.4465]);
    assert.deepEqual(datasetInfo("fashion-mnist").std, [0.353]);
    assert.equal(datasetInfo("gtsrb").numClasses, 43);
    assert.equal(datasetInfo("fashion-mnist").defaultPath, "/usr/share/datasets/fashion-mnist");
  });

  void it("names the valid datasets when given an unknown one", async () => {
    await assert.rejects(loadDataset("cifar100", { split: "train" }), {
      message:
        "unknown dataset 'cifar100'; valid names: mnist, fashion-mnist, cifar10, cifar10-folder, gtsrb, image-folder, array",
    });
  });

  void it("says which path was tried and what to pass", async () => {
    const dir = await tempDir(after);
    const missing = join(dir, "nowhere");
    await assert.rejects(loadDataset("gtsrb", { split: "train", path: missing }), {
      message: `dataset 'gtsrb': ${missing} (the given path) does not exist; pass the path of the GTSRB folder, its parent, or a .tar/.tar.gz of it`,
    });
    await assert.rejects(
      loadDataset("image-folder", { split: "train" }),
      /dataset 'image-folder' has no default location; pass its path \(a folder with <class>\/ sub-folders/,
    );
    await assert.rejects(
      loadDataset("mnist", { split: "valid" as "train", path: dir }),
      /split must be "train" or "test"/,
    );
  });

  void it("loads an image folder through the registry with a resize", async () => {
    const dir = await tempDir(after);
    await writeBytes(join(dir, "x/1.png"), await png(8, 8, solid(8, 8, [5, 6, 7])));
    const ds = await loadDataset("image-folder", {
      split: "train",
      path: dir,
      imageSize: [2, 4],
      cache: false,
      progress: false,
    });
    assert.deepEqual([ds.count, ds.height, ds.width, ds.channels, ds.name], [1, 2, 4, 3, "image-folder"]);
    assert.deepEqual(ds.images, solid(4, 2, [5, 6, 7]));
  });
});

void describe("helpers", () => {
  void it("computes per-channel mean and std in 0..1 units", () => {
    const s = channelStats({ images: Uint8Array.of(0, 255, 255, 255, 0, 255), channels: 3 });
    assert.deepEqual(s.mean, [0.5, 0.5, 1]);
    assert.deepEqual(s.std, [0.5, 0.5, 0]);
  });

  void it("sorts file names numerically", () => {
    const names = ["10.jpg", "2.jpg", "0001.jpg", "b.png", "a10.png", "a9.png"];
    assert.deepEqual([...names].sort(naturalCompare), ["0001.jpg", "2.jpg", "10.jpg", "a9.png", "a10.png", "b.png"]);
  });

  void it("reports progress every 10% once slow, and stays silent when quick or disabled", () => {
    const lines: string[] = [];
    const p = progressReporter("decoding x", 200, true, (l) => lines.push(l), 0);
    for (let i = 1; i <= 200; i++) p.update(i);
    p.finish();
    assert.equal(lines.length, 10);
    assert.match(lines[0] ?? "", /^decoding x: 10% \(\d+\.\d s\)$/);
    assert.match(lines[9] ?? "", /^decoding x: 100% /);

    const quiet: string[] = [];
    const q = progressReporter("y", 10, true, (l) => quiet.push(l));
    for (let i = 1; i <= 10; i++) q.update(i);
    q.finish();
    const off = progressReporter("z", 10, false, (l) => quiet.push(l), 0);
    off.update(10);
    assert.deepEqual(quiet, []);
  });
});
