// Writing a directory (a detector bundle, a checkpoint, a report) all at once: the files go into a
// fresh hidden sibling directory, and only when every one is complete is it renamed into place. A
// crash, an error or a signal at any point leaves either the old directory or the new one under
// the real name, never a mix that loads as valid. Temporary directories are removed on error and
// on SIGINT/SIGTERM; ones left by a killed process (SIGKILL) are removed by the next write.
//
// Replacing is for our own directories only. A directory may be replaced when it is recognisably
// one a writer of ours made: it holds that writer's manifest (recognised by its content, e.g. a
// format field) and nothing else but files that writer produces. Anything else (a home, a
// project, /tmp, or one of our directories with someone's file added) is refused with a message
// naming what is there. The check runs before long work (assertWritableDir) and again, without
// yielding to the event loop, just before the swap; the replaced directory is then emptied file by
// file by the names its writer uses, never removed recursively, so even an entry that appeared in
// between survives.
import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readSync,
  renameSync,
  rmdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  type Stats,
} from "node:fs";
import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { escapeControls } from "./printable.js";

/** What a writer puts into its directory: regular files (exact names or patterns) and subdirectories. */
export interface DirContents {
  files: readonly (string | RegExp)[];
  dirs?: Readonly<Record<string, DirContents>>;
}

/** A kind of directory one of our writers makes, and how to recognise one. */
export interface OwnedDirKind extends DirContents {
  /** What such a directory is, for messages ("badexpert checkpoint"). */
  what: string;
  /** The manifest every such directory holds (always accepted, whether `files` lists it or not). */
  manifest: string;
  /** True when the parsed manifest is one this writer wrote (e.g. its format field). */
  recognise: (manifest: unknown) => boolean;
}

export interface WritableDirOptions {
  /** The kinds of directory of ours that may be replaced (the first names the kind in messages). */
  kinds: readonly OwnedDirKind[];
  /** Replace an existing non-empty directory when it is one of `kinds` (anything else is refused). */
  replace?: boolean;
  /** How to tell the user to allow replacing, in the refusal message (default: "replace: true"). */
  forceHint?: string;
  /** The option that named the directory, for messages (e.g. "--out"). */
  argument?: string;
}

export interface AtomicDirOptions extends WritableDirOptions {
  /** Files copied from the existing directory into the new one before `fill` runs. */
  carry?: readonly string[];
}

/** The manifest of an output directory that has none of its own (reports, explanations): the tool and the kind of output. */
export const OUTPUT_MANIFEST = "badexpert-output.json";

/** OUTPUT_MANIFEST's text for one kind of output. */
export function outputManifest(output: string): string {
  return `${JSON.stringify({ tool: "badexpert", output, version: 1 }, null, 2)}\n`;
}

/** The kind of an output directory recognised by OUTPUT_MANIFEST. */
export function outputDirKind(output: string, what: string, contents: DirContents): OwnedDirKind {
  return {
    what,
    manifest: OUTPUT_MANIFEST,
    files: [OUTPUT_MANIFEST, ...contents.files],
    ...(contents.dirs ? { dirs: contents.dirs } : {}),
    recognise: (m) =>
      typeof m === "object" &&
      m !== null &&
      (m as Record<string, unknown>).tool === "badexpert" &&
      (m as Record<string, unknown>).output === output,
  };
}

/** Manifests are kilobytes to a few megabytes; a larger file is not one of ours. */
const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
/** Names listed in a refusal; the rest are counted. */
const SHOWN_ENTRIES = 5;

/** Entries of a directory that its writer does not make: how many, and the first few (directories with a trailing "/"). */
interface Strangers {
  count: number;
  shown: string[];
}

function note(s: Strangers, name: string): void {
  s.count++;
  if (s.shown.length < SHOWN_ENTRIES) s.shown.push(escapeControls(name, 100));
}

function lstatOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function listed(contents: DirContents, name: string): boolean {
  return contents.files.some((f) => (typeof f === "string" ? f === name : f.test(name)));
}

function subdir(contents: DirContents, name: string): DirContents | undefined {
  return contents.dirs !== undefined && Object.hasOwn(contents.dirs, name) ? contents.dirs[name] : undefined;
}

/** Adds to `s` every entry under `dir` that `contents` does not describe (symbolic links and special files never are). */
function findStrangers(dir: string, contents: DirContents, prefix: string, s: Strangers): void {
  for (const name of readdirSync(dir)) {
    const st = lstatOrNull(join(dir, name));
    if (st === null) continue;
    const sub = subdir(contents, name);
    if (st.isDirectory() && sub !== undefined) findStrangers(join(dir, name), sub, `${prefix}${name}/`, s);
    else if (!(st.isFile() && listed(contents, name))) note(s, `${prefix}${name}${st.isDirectory() ? "/" : ""}`);
  }
}

/** Why `dir`'s manifest is not `kind`'s, or null when it is. Read with its type and size checked on the open handle. */
function manifestProblem(dir: string, kind: OwnedDirKind): string | null {
  const path = join(dir, kind.manifest);
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? `no ${kind.manifest}` : `its ${kind.manifest} cannot be read (${code ?? String(e)})`;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) return `its ${kind.manifest} is not a regular file`;
    if (st.size > MAX_MANIFEST_BYTES)
      return `its ${kind.manifest} is ${st.size} bytes, larger than any manifest of ours`;
    const buf = Buffer.alloc(st.size);
    let filled = 0;
    while (filled < buf.length) {
      const n = readSync(fd, buf, filled, buf.length - filled, filled);
      if (n === 0) break;
      filled += n;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.subarray(0, filled).toString("utf8"));
    } catch {
      return `its ${kind.manifest} is not JSON`;
    }
    return kind.recognise(parsed) ? null : `its ${kind.manifest} is not one badexpert wrote`;
  } catch (e) {
    return `its ${kind.manifest} cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
  } finally {
    closeSync(fd);
  }
}

type Verdict = { ours: true; kind: OwnedDirKind } | { ours: false; reason: string };

/** Whether the non-empty directory `dir` is one of `kinds` with nothing else in it, and if not, why (naming what is there). */
function judge(dir: string, names: readonly string[], kinds: readonly OwnedDirKind[]): Verdict {
  const first = kinds[0];
  if (first === undefined) throw new Error("atomic-dir: no kind of directory given to recognise");
  let manifestWhy: string | null = null;
  for (const kind of kinds) {
    const problem = manifestProblem(dir, kind);
    if (problem !== null) {
      manifestWhy ??= problem;
      continue;
    }
    const s: Strangers = { count: 0, shown: [] };
    findStrangers(dir, { ...kind, files: [kind.manifest, ...kind.files] }, "", s);
    if (s.count === 0) return { ours: true, kind };
    return {
      ours: false,
      reason: `holds a ${kind.what} and ${entries(s.count)} badexpert did not write (${listing(s)})`,
    };
  }
  const all: Strangers = { count: 0, shown: [] };
  for (const name of names) {
    const st = lstatOrNull(join(dir, name));
    note(all, `${name}${st?.isDirectory() === true ? "/" : ""}`);
  }
  return {
    ours: false,
    reason: `is not a ${first.what} (${manifestWhy ?? `no ${first.manifest}`}): it holds ${entries(all.count)} badexpert did not write (${listing(all)})`,
  };
}

function entries(n: number): string {
  return `${n} ${n === 1 ? "entry" : "entries"}`;
}

function listing(s: Strangers): string {
  return s.count > s.shown.length ? `${s.shown.join(", ")}, ...` : s.shown.join(", ");
}

/** The entries of `dir`, or null when it does not exist; refuses a symbolic link or a non-directory. */
function listDir(dir: string, label: string): string[] | null {
  let st;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`${label}: cannot inspect (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  if (st.isSymbolicLink())
    throw new Error(`${label} is a symbolic link; refusing to write through it (give the directory itself)`);
  if (!st.isDirectory()) throw new Error(`${label} exists and is not a directory`);
  return readdirSync(dir);
}

/** Throws unless `dir` is absent, empty, or (with `replace`) one of `kinds` with nothing else in it. */
function checkWritable(dir: string, o: WritableDirOptions): void {
  const label = o.argument !== undefined ? `${o.argument} ${dir}` : dir;
  const names = listDir(dir, label);
  if (names === null || names.length === 0) return;
  const v = judge(dir, names, o.kinds);
  const hint = o.forceHint ?? "replace: true";
  if (v.ours) {
    if (o.replace === true) return;
    throw new Error(
      `${label} already exists and is not empty (${entries(names.length)}); refusing to overwrite it (${hint} replaces it)`,
    );
  }
  const what = o.kinds[0]?.what ?? "directory of ours";
  throw new Error(
    `${label} ${v.reason}; refusing to ${o.replace === true ? "replace" : "overwrite"} it (only a ${what} with nothing else in it can be replaced: choose another directory, or move those entries yourself)`,
  );
}

/** Throws when `dir` exists and is not empty, unless `replace` and it is one of ours; call it before long work. */
export async function assertWritableDir(dir: string, o: WritableDirOptions): Promise<void> {
  checkWritable(dir, o);
}

/**
 * Empties and removes a directory of ours by the names its writer uses: regular files that
 * `contents` lists (`last`, the manifest, after the others, so an interrupted removal leaves a
 * directory still recognisably ours), the listed subdirectories, then `dir` itself. What badexpert
 * did not write is noted in `left` and stays, and so does `dir` then.
 */
function removeByNames(dir: string, contents: DirContents, prefix: string, left: Strangers, last?: string): void {
  const names = readdirSync(dir).sort((a, b) => Number(a === last) - Number(b === last));
  for (const name of names) {
    const path = join(dir, name);
    const st = lstatOrNull(path);
    if (st === null) continue;
    const sub = subdir(contents, name);
    if (st.isDirectory() && sub !== undefined) removeByNames(path, sub, `${prefix}${name}/`, left, undefined);
    else if (st.isFile() && listed(contents, name)) unlinkSync(path);
    else note(left, `${prefix}${name}${st.isDirectory() ? "/" : ""}`);
  }
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOTEMPTY" && (e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
  }
}

/** Removes a directory of ours, file by file; throws, naming them, when it holds anything else (which stays). */
function removeOwnedSync(dir: string, kinds: readonly OwnedDirKind[]): void {
  const names = listDir(dir, dir);
  if (names === null) return;
  if (names.length === 0) {
    rmdirSync(dir);
    return;
  }
  const v = judge(dir, names, kinds);
  if (!v.ours) throw new Error(`${dir} ${v.reason}; it was left in place`);
  const left: Strangers = { count: 0, shown: [] };
  removeByNames(dir, { ...v.kind, files: [v.kind.manifest, ...v.kind.files] }, "", left, v.kind.manifest);
  if (left.count > 0)
    throw new Error(
      `${dir} held ${entries(left.count)} badexpert did not write (${listing(left)}); they were left in place`,
    );
}

/** Removes a directory one of our writers made (e.g. a bundle a job has finished with); refuses, keeping everything, anything else. */
export async function removeOwnedDir(dir: string, kinds: readonly OwnedDirKind[]): Promise<void> {
  removeOwnedSync(dir, kinds);
}

/**
 * Directories of this process that a signal must remove: its temporary ones (null: made afresh by
 * this module, removed whole) and, while it is being removed, the replaced one (removed by its
 * writer's file names only).
 */
const live = new Map<string, readonly OwnedDirKind[] | null>();
const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * The mark of a temporary directory this module made: written right after the exclusive mkdir,
 * removed just before the directory is renamed into place. Only a directory that carries it is
 * ever removed whole; one without it (someone's, or ours after a SIGKILL at the last instant) stays.
 */
const TMP_MARK = ".badexpert-tmp";

function carriesTmpMark(dir: string): boolean {
  return lstatOrNull(join(dir, TMP_MARK))?.isFile() === true;
}

/** Removes a marked temporary directory synchronously, listing it afresh on each of a few tries; gives up silently. */
function removeNow(dir: string): void {
  if (!carriesTmpMark(dir)) return;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      rmSync(dir, { recursive: true, force: true });
      return;
    } catch {
      Atomics.wait(pause, 0, 0, 20);
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  // Writes still running on libuv's pool may add a file while the directory is being removed
  // (ENOTEMPTY): retry a few times, and never let a failed removal keep the process alive — the
  // next write removes what is left, as after SIGKILL.
  for (const [dir, kinds] of live) {
    if (kinds === null) removeNow(dir);
    else {
      try {
        removeOwnedSync(dir, kinds);
      } catch {
        // Not removable now: the next write puts it back or removes it, as after SIGKILL.
      }
    }
  }
  live.clear();
  // Exit now, with the shell's status for death by this signal (130 for SIGINT, 143 for SIGTERM):
  // re-raising the signal would let pending writes run on into the removed directory first.
  process.exit(128 + (constants.signals[signal] ?? 15));
}

function track(dir: string, kinds: readonly OwnedDirKind[] | null = null): void {
  if (live.size === 0) for (const s of SIGNALS) process.on(s, onSignal);
  live.set(dir, kinds);
}

function untrack(dir: string): void {
  live.delete(dir);
  if (live.size === 0) for (const s of SIGNALS) process.removeListener(s, onSignal);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes temporary siblings left by dead processes; puts back an old directory a killed swap had
 * moved aside. A temporary directory is one this module created afresh (mkdir fails on an existing
 * one) and only its writer filled, so it is removed whole; an old one is the user's replaced
 * directory and is removed by its writer's file names only.
 */
async function cleanStale(parent: string, base: string, dest: string, kinds: readonly OwnedDirKind[]): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  const pattern = new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(tmp|old)-(\\d+)-[0-9a-f]+$`);
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m || alive(Number(m[2]))) continue;
    const path = join(parent, name);
    if (m[1] === "tmp") removeNow(path);
    else if (lstatOrNull(dest) === null) renameSync(path, dest);
    else {
      try {
        removeOwnedSync(path, kinds);
      } catch {
        // Not ours after all, or not removable: it stays, hidden, as it is.
      }
    }
  }
}

/**
 * Creates a fresh temporary sibling of `dest`, lets `fill` write into it, and renames it to
 * `dest` as the last step (moving an existing `dest` aside first, after checking again that it is
 * ours to replace, and removing it afterwards by its writer's file names).
 */
export async function writeDirAtomically(
  dest: string,
  fill: (dir: string) => Promise<void>,
  o: AtomicDirOptions,
): Promise<void> {
  const parent = dirname(dest);
  const base = basename(dest);
  await mkdir(parent, { recursive: true });
  await cleanStale(parent, base, dest, o.kinds);
  checkWritable(dest, o);
  const tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const tmp = join(parent, `.${base}.tmp-${tag}`);
  try {
    // Exclusive: mkdir fails on an existing path, so what is removed below is only ever ours.
    await mkdir(tmp);
    track(tmp);
    await writeFile(join(tmp, TMP_MARK), `${process.pid}\n`);
    for (const name of o.carry ?? []) {
      await copyFile(join(dest, name), join(tmp, name)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      });
    }
    await fill(tmp);
    // From the check to the removal of the old directory, everything is synchronous: nothing of
    // this process (a signal handler, another write) runs in between.
    checkWritable(dest, o);
    const old = join(parent, `.${base}.old-${tag}`);
    let moved = false;
    try {
      renameSync(dest, old);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    // The mark goes last, in the same synchronous run as the rename, so dest never holds it.
    unlinkSync(join(tmp, TMP_MARK));
    try {
      renameSync(tmp, dest);
    } catch (e) {
      writeFileSync(join(tmp, TMP_MARK), `${process.pid}\n`);
      if (moved) renameSync(old, dest);
      throw e;
    }
    // The replaced directory is tracked before the temporary one is untracked: with no handler
    // installed, even for an instant, SIGTERM would end the process by its default action in the
    // middle of the removal and leave the old directory behind.
    if (moved) track(old, o.kinds);
    untrack(tmp);
    if (moved) {
      try {
        removeOwnedSync(old, o.kinds);
      } catch (e) {
        throw new Error(`${dest} was written, but the directory it replaced was not removed: ${(e as Error).message}`, {
          cause: e,
        });
      } finally {
        untrack(old);
      }
    }
  } catch (e) {
    if (live.has(tmp)) {
      removeNow(tmp);
      untrack(tmp);
    }
    throw e;
  }
}
