// Replacing a directory is for directories of ours only: --force must never delete what badexpert
// did not write. A directory is replaced when it holds its writer's manifest and nothing but that
// writer's files; anything else is refused, naming what is there, and left exactly as it was —
// checked before the work and again at the moment of the swap.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  assertWritableDir,
  outputDirKind,
  OUTPUT_MANIFEST,
  outputManifest,
  removeOwnedDir,
  writeDirAtomically,
  type OwnedDirKind,
} from "../../src/util/atomic-dir.js";
import { CHECKPOINT_DIR, saveCheckpoint } from "../../src/train/checkpoint.js";
import { BUNDLE_DIR } from "../../src/defense/bundle.js";
import { DETECTOR_BUNDLE_DIRS } from "../../src/detectors/bundle.js";
import { createModel } from "../../src/models/registry.js";
import { manualSeed, memory } from "../../src/engine/index.js";

/** A writer of two files, recognised by its manifest's "kind". */
const THING: OwnedDirKind = {
  what: "test thing",
  manifest: "thing.json",
  files: ["thing.json", "data.bin", /^part-\d+\.bin$/],
  dirs: { pages: { files: [/\.txt$/] } },
  recognise: (m) => typeof m === "object" && m !== null && (m as { kind?: unknown }).kind === "thing",
};

async function fillThing(dir: string, tag: string): Promise<void> {
  await writeFile(join(dir, "thing.json"), JSON.stringify({ kind: "thing", tag }));
  await writeFile(join(dir, "data.bin"), tag);
  await mkdir(join(dir, "pages"));
  await writeFile(join(dir, "pages", "a.txt"), tag);
}

async function withRoot(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), "bx-atomic-"));
  try {
    await fn(root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

test("--force on a directory of someone else's files is refused, naming them, and every file survives", () =>
  withRoot(async (root) => {
    const home = join(root, "home");
    await mkdir(join(home, "projects"), { recursive: true });
    for (let i = 0; i < 37; i++) await writeFile(join(home, `file-${String(i).padStart(2, "0")}.txt`), `mine ${i}`);
    const write = writeDirAtomically(home, (tmp) => fillThing(tmp, "new"), {
      kinds: [THING],
      replace: true,
      forceHint: "--force",
      argument: "--out",
    });
    await assert.rejects(write, (e: Error) => {
      assert.match(
        e.message,
        /^--out .*home is not a test thing \(no thing\.json\): it holds 38 entries badexpert did not write \(file-00\.txt, file-01\.txt, file-02\.txt, file-03\.txt, file-04\.txt, \.\.\.\); refusing to replace it/,
      );
      return true;
    });
    // The same refusal before any work.
    await assert.rejects(
      assertWritableDir(home, { kinds: [THING], replace: true, argument: "--out" }),
      /is not a test thing \(no thing\.json\): it holds 38 entries/,
    );
    assert.equal((await readdir(home)).length, 38);
    assert.equal(await readFile(join(home, "file-36.txt"), "utf8"), "mine 36");
    assert.deepEqual(await readdir(root), ["home"], "no temporary or old sibling left");
  }));

test("a directory of ours is replaced; one extra file, a foreign subdirectory, a link or a foreign manifest is refused and kept", () =>
  withRoot(async (root) => {
    const dest = join(root, "out");
    await writeDirAtomically(dest, (tmp) => fillThing(tmp, "one"), { kinds: [THING] });
    await assert.rejects(
      writeDirAtomically(dest, (tmp) => fillThing(tmp, "two"), { kinds: [THING], forceHint: "--force" }),
      /out already exists and is not empty \(3 entries\); refusing to overwrite it \(--force replaces it\)/,
    );
    await writeDirAtomically(
      dest,
      async (tmp) => {
        await fillThing(tmp, "two");
        await writeFile(join(tmp, "part-7.bin"), "p");
      },
      { kinds: [THING], replace: true },
    );
    assert.equal(await readFile(join(dest, "data.bin"), "utf8"), "two");
    assert.deepEqual(await readdir(root), ["out"]);

    const cases: [string, (d: string) => Promise<void>, RegExp][] = [
      [
        "a stranger's file",
        (d) => writeFile(join(d, "notes.txt"), "mine"),
        /holds a test thing and 1 entry badexpert did not write \(notes\.txt\)/,
      ],
      [
        "a stranger's subdirectory",
        (d) => mkdir(join(d, "photos")),
        /holds a test thing and 1 entry badexpert did not write \(photos\/\)/,
      ],
      [
        "a stranger's file in our subdirectory",
        (d) => writeFile(join(d, "pages", "x.doc"), "mine"),
        /and 1 entry badexpert did not write \(pages\/x\.doc\)/,
      ],
      [
        "a link under one of our names",
        async (d) => {
          await rm(join(d, "data.bin"));
          await symlink(join(root, "elsewhere"), join(d, "data.bin"));
        },
        /and 1 entry badexpert did not write \(data\.bin\)/,
      ],
      [
        "a directory under one of our file names",
        async (d) => {
          await rm(join(d, "data.bin"));
          await mkdir(join(d, "data.bin"));
        },
        /and 1 entry badexpert did not write \(data\.bin\/\)/,
      ],
      [
        "a manifest of something else",
        (d) => writeFile(join(d, "thing.json"), JSON.stringify({ kind: "other" })),
        /is not a test thing \(its thing\.json is not one badexpert wrote\): it holds 3 entries/,
      ],
      ["a manifest that is not JSON", (d) => writeFile(join(d, "thing.json"), "{"), /\(its thing\.json is not JSON\)/],
    ];
    for (const [name, spoil, expected] of cases) {
      await rm(dest, { recursive: true, force: true });
      await writeDirAtomically(dest, (tmp) => fillThing(tmp, "ours"), { kinds: [THING] });
      await spoil(dest);
      const before = (await readdir(dest, { recursive: true })).sort();
      await assert.rejects(
        writeDirAtomically(dest, (tmp) => fillThing(tmp, "new"), { kinds: [THING], replace: true }),
        expected,
        name,
      );
      await assert.rejects(removeOwnedDir(dest, [THING]), expected, name);
      assert.deepEqual((await readdir(dest, { recursive: true })).sort(), before, `${name}: nothing removed`);
      assert.deepEqual(await readdir(root), ["out"], `${name}: no sibling left`);
    }
    await rm(dest, { recursive: true, force: true });
    await writeDirAtomically(dest, (tmp) => fillThing(tmp, "ours"), { kinds: [THING] });
    await removeOwnedDir(dest, [THING]);
    assert.deepEqual(await readdir(root), [], "removeOwnedDir removes a directory of ours");

    // A symbolic link as the destination is not written through, whatever it points at.
    await mkdir(join(root, "target"));
    await writeFile(join(root, "target", "keep.txt"), "mine");
    await symlink(join(root, "target"), join(root, "link"));
    await assert.rejects(
      writeDirAtomically(join(root, "link"), (tmp) => fillThing(tmp, "x"), { kinds: [THING], replace: true }),
      /link is a symbolic link; refusing to write through it/,
    );
    assert.equal(await readFile(join(root, "target", "keep.txt"), "utf8"), "mine");
  }));

test("the check is made again at the moment of replacing: a file added during the work is kept, and so is the old directory", () =>
  withRoot(async (root) => {
    const dest = join(root, "bundle");
    await writeDirAtomically(dest, (tmp) => fillThing(tmp, "old"), { kinds: [THING] });
    await assertWritableDir(dest, { kinds: [THING], replace: true });
    const write = writeDirAtomically(
      dest,
      async (tmp) => {
        await fillThing(tmp, "new");
        // Someone saves a file into the destination while the long work runs.
        await writeFile(join(dest, "report.docx"), "mine");
      },
      { kinds: [THING], replace: true },
    );
    await assert.rejects(
      write,
      /bundle holds a test thing and 1 entry badexpert did not write \(report\.docx\); refusing to replace it/,
    );
    assert.equal(await readFile(join(dest, "report.docx"), "utf8"), "mine");
    assert.equal(await readFile(join(dest, "data.bin"), "utf8"), "old");
    assert.deepEqual(await readdir(root), ["bundle"], "the temporary directory was removed");
  }));

test("an old directory left by a killed swap is removed by our file names only", () =>
  withRoot(async (root) => {
    const dest = join(root, "ckpt");
    await writeDirAtomically(dest, (tmp) => fillThing(tmp, "current"), { kinds: [THING] });
    // A process id that is certainly dead: a child that has exited.
    const dead = spawnSync(process.execPath, ["-e", ""]).pid;
    assert.ok(dead !== undefined);
    const ours = join(root, `.ckpt.old-${dead}-0000aaaa`);
    await mkdir(ours);
    await fillThing(ours, "stale");
    const mixed = join(root, `.ckpt.old-${dead}-0000bbbb`);
    await mkdir(mixed);
    await fillThing(mixed, "stale");
    await writeFile(join(mixed, "diary.txt"), "mine");
    await writeDirAtomically(dest, (tmp) => fillThing(tmp, "next"), { kinds: [THING], replace: true });
    assert.deepEqual(
      (await readdir(root)).sort(),
      [`.ckpt.old-${dead}-0000bbbb`, "ckpt"],
      "ours removed, the mixed one kept",
    );
    assert.equal(await readFile(join(mixed, "diary.txt"), "utf8"), "mine");
  }));

test("output directories without a manifest of their own get one; the real writers' kinds recognise what they wrote", () =>
  withRoot(async (root) => {
    const before = memory().numTensors;
    const kind = outputDirKind("explain", "badexpert explain output", { files: ["summary.json"] });
    const out = join(root, "explain");
    await writeDirAtomically(
      out,
      async (tmp) => {
        await writeFile(join(tmp, "summary.json"), "{}");
        await writeFile(join(tmp, OUTPUT_MANIFEST), outputManifest("explain"));
      },
      { kinds: [kind] },
    );
    assert.deepEqual(JSON.parse(await readFile(join(out, OUTPUT_MANIFEST), "utf8")), {
      tool: "badexpert",
      output: "explain",
      version: 1,
    });
    await assertWritableDir(out, { kinds: [kind], replace: true });
    // Another kind of output is not this one.
    await assert.rejects(
      assertWritableDir(out, {
        kinds: [outputDirKind("defense-report", "badexpert defense report", { files: [] })],
        replace: true,
      }),
      /is not a badexpert defense report \(its badexpert-output\.json is not one badexpert wrote\)/,
    );

    // A checkpoint saveCheckpoint wrote (with a training state beside it) is replaced; with a stranger's file it is not.
    manualSeed(0);
    const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 28 };
    const model = createModel("compact-cnn", spec);
    try {
      const meta = {
        model: spec,
        dataset: { name: "fashion-mnist" },
        preprocessing: { imageSize: [28, 28] as [number, number], channels: 1, mean: [0.286], std: [0.353] },
        classNames: Array.from({ length: 10 }, (_, i) => String(i)),
        training: {},
        metrics: {},
      };
      const ckpt = join(root, "ckpt");
      await saveCheckpoint(ckpt, model, meta, { also: (d) => writeFile(join(d, "train-state.json"), "{}") });
      await saveCheckpoint(ckpt, model, meta, { replace: true, carry: ["train-state.json"] });
      assert.deepEqual((await readdir(ckpt)).sort(), ["model.json", "model.safetensors", "train-state.json"]);
      await writeFile(join(ckpt, "README.md"), "mine");
      await assert.rejects(
        saveCheckpoint(ckpt, model, meta, { replace: true, forceHint: "--force", argument: "--out" }),
        /--out .*ckpt holds a badexpert checkpoint and 1 entry badexpert did not write \(README\.md\); refusing to replace it/,
      );
      assert.equal(await readFile(join(ckpt, "README.md"), "utf8"), "mine");
      // A checkpoint is not a detector bundle: defend's --out does not replace it.
      await rm(join(ckpt, "README.md"));
      await assert.rejects(
        assertWritableDir(ckpt, { kinds: DETECTOR_BUNDLE_DIRS, replace: true }),
        /is not a badexpert detector bundle \(no detector\.json\)/,
      );
      await assertWritableDir(ckpt, { kinds: [CHECKPOINT_DIR], replace: true });
    } finally {
      model.dispose();
    }

    // A bundle's manifest is recognised by its format; a baseline's bundle is one of ours too.
    const bundle = join(root, "bundle");
    await mkdir(bundle);
    await writeFile(join(bundle, "detector.json"), JSON.stringify({ format: "badexpert-detector" }));
    for (const f of ["model.safetensors", "expert.safetensors", "auxiliary.safetensors", "detector.json.sig"])
      await writeFile(join(bundle, f), "x");
    await assertWritableDir(bundle, { kinds: [BUNDLE_DIR], replace: true });
    await writeFile(join(bundle, "detector.json"), JSON.stringify({ format: "badexpert-baseline-detector" }));
    await assert.rejects(
      assertWritableDir(bundle, { kinds: [BUNDLE_DIR], replace: true }),
      /its detector\.json is not one badexpert wrote/,
    );
    await assert.rejects(
      assertWritableDir(bundle, { kinds: DETECTOR_BUNDLE_DIRS, replace: true }),
      /holds a badexpert baseline detector bundle and 4 entries badexpert did not write/,
    );
    for (const f of ["model.safetensors", "expert.safetensors", "auxiliary.safetensors", "detector.json.sig"])
      await rm(join(bundle, f));
    await writeFile(join(bundle, "state.safetensors"), "x");
    await assertWritableDir(bundle, { kinds: DETECTOR_BUNDLE_DIRS, replace: true });
    assert.equal(memory().numTensors, before);
  }));
