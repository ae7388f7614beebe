// Every file the toolkit opens on a user's word is checked on the open handle before it is read:
// a FIFO (which would block forever) or a device (which would never end) in place of a dataset
// file, an archive, a checkpoint's metadata, a training state, a TorchScript program, an ONNX
// model or a class list is refused at once with a message naming the file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readMaybeGzipped } from "../../src/data/readers/idx.js";
import { readArrayFile } from "../../src/data/readers/array-file.js";
import { readCifar10Binary } from "../../src/data/readers/cifar10-binary.js";
import { scanTree } from "../../src/data/file-tree.js";
import { readCheckpointMeta } from "../../src/train/checkpoint.js";
import { loadTrainState } from "../../src/train/resume.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { OnnxDetector } from "../../src/export/onnx-detector.js";
import { readClassNames } from "../../src/jobs/import.js";
import { releaseFifo, within } from "../helpers/fifo.js";

test("dataset files, archives, checkpoints, training state, programs, ONNX models and class lists that are FIFOs are refused at once", async () => {
  const root = await mkdtemp(join(tmpdir(), "bx-fifo-"));
  const fifos: string[] = [];
  const watchdogs: ChildProcess[] = [];
  const watched = (fifo: string): string => {
    watchdogs.push(spawn("sh", ["-c", 'sleep 3; : > "$1"', "sh", fifo], { stdio: "ignore" }));
    return fifo;
  };
  const mkfifo = async (...parts: string[]): Promise<string> => {
    const p = join(root, ...parts);
    await mkdir(join(p, ".."), { recursive: true });
    execFileSync("mkfifo", [p]);
    fifos.push(p);
    return p;
  };
  try {
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      [
        "idx",
        async () => readMaybeGzipped(await mkfifo("t10k-images-idx3-ubyte")),
        /idx: .*t10k-images-idx3-ubyte: the file is not a regular file \(a device, socket or pipe\)/,
      ],
      [
        "npz",
        async () => readArrayFile(await mkfifo("set.npz"), { split: "test", name: "set" }),
        /array-file: .*set\.npz: the file is not a regular file/,
      ],
      [
        "cifar10",
        async () => (
          await mkfifo("cifar", "test_batch.bin"),
          readCifar10Binary(join(root, "cifar"), { split: "test", progress: false })
        ),
        /cifar10: .*test_batch\.bin: the file is not a regular file/,
      ],
      [
        "archive",
        async () => scanTree(await mkfifo("data.tar.gz"), { select: () => true, onFile: () => undefined }),
        /archive: .*data\.tar\.gz: the archive is not a regular file/,
      ],
      [
        "checkpoint",
        async () => (await mkfifo("ckpt", "model.json"), readCheckpointMeta(join(root, "ckpt"))),
        /checkpoint: .*model\.json: the checkpoint metadata file is not a regular file/,
      ],
      [
        "training state",
        async () => (await mkfifo("run", "train-state.json"), loadTrainState(join(root, "run"))),
        /resume: .*train-state\.json: the training state file is not a regular file/,
      ],
      // A synchronous read cannot be raced against a timer: a watchdog process writes to the FIFO after 3 s, so a
      // read that waits on it gets end-of-file and fails on the message instead of hanging the test.
      [
        "torchscript",
        async () => TorchScriptModule.load(watched(await mkfifo("model.torchscript.pt"))),
        /torchscript: cannot read .*model\.torchscript\.pt: .*the TorchScript file is not a regular file/,
      ],
      [
        "onnx",
        async () => OnnxDetector.open(await mkfifo("detector.onnx")),
        /detector\.onnx: the ONNX model is not a regular file/,
      ],
      [
        "classes",
        async () => readClassNames(await mkfifo("classes.txt")),
        /classes: .*classes\.txt is neither a number nor a readable file of class names \(the class names file is not a regular file/,
      ],
      ["/dev/zero as IDX", () => readMaybeGzipped("/dev/zero"), /idx: \/dev\/zero: the file is not a regular file/],
    ];
    for (const [name, run, expected] of cases) {
      const t0 = Date.now();
      await assert.rejects(within(5000, run()), expected, name);
      assert.ok(Date.now() - t0 < 5000, name);
    }
  } finally {
    for (const w of watchdogs) w.kill("SIGKILL");
    for (const f of fifos) releaseFifo(f);
    await rm(root, { recursive: true, force: true });
  }
});
