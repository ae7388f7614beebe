// Writing a directory (a detector bundle, a checkpoint) all at once: the files go into a fresh
// hidden sibling directory, and only when every one is complete is it renamed into place. A
// crash, an error or a signal at any point leaves either the old directory or the new one under
// the real name, never a mix that loads as valid. Temporary directories are removed on error and
// on SIGINT/SIGTERM; ones left by a killed process (SIGKILL) are removed by the next write.
import { randomBytes } from "node:crypto";
import { constants } from "node:os";
import { renameSync, rmSync } from "node:fs";
import { copyFile, mkdir, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export interface AtomicDirOptions {
  /** Replace an existing non-empty directory (otherwise refused). */
  replace?: boolean;
  /** Files copied from the existing directory into the new one before `fill` runs. */
  carry?: readonly string[];
  /** How to tell the user to allow replacing, in the refusal message (default: "replace: true"). */
  forceHint?: string;
}

/** Temporary directories of this process that a signal must remove. */
const live = new Set<string>();
const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/** Removes `dir` synchronously, listing it afresh on each of a few tries; gives up silently. */
function removeNow(dir: string): void {
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
  for (const dir of live) removeNow(dir);
  live.clear();
  // Exit now, with the shell's status for death by this signal (130 for SIGINT, 143 for SIGTERM):
  // re-raising the signal would let pending writes run on into the removed directory first.
  process.exit(128 + (constants.signals[signal] ?? 15));
}

function track(dir: string): void {
  if (live.size === 0) for (const s of SIGNALS) process.on(s, onSignal);
  live.add(dir);
}

function untrack(dir: string): void {
  live.delete(dir);
  if (live.size === 0) for (const s of SIGNALS) process.removeListener(s, onSignal);
}

async function entries(dir: string): Promise<string[] | null> {
  let s;
  try {
    s = await stat(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new Error(`${dir}: cannot inspect (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  if (!s.isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  return readdir(dir);
}

/** Throws when `dir` exists and is not an empty directory, unless `replace`; call it before long work. */
export async function assertWritableDir(dir: string, o: { replace?: boolean; forceHint?: string } = {}): Promise<void> {
  const names = await entries(dir);
  if (names !== null && names.length > 0 && o.replace !== true) {
    throw new Error(`${dir} already exists and is not empty (${names.length} entries); refusing to overwrite it (${o.forceHint ?? "replace: true"} replaces it)`);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Removes temporary siblings left by dead processes; puts back an old directory a killed swap had moved aside. */
async function cleanStale(parent: string, base: string, dest: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(parent);
  } catch {
    return;
  }
  const pattern = new RegExp(`^\\.${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\.(tmp|old)-(\\d+)-[0-9a-f]+$`);
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m || alive(Number(m[2]))) continue;
    const path = join(parent, name);
    if (m[1] === "old" && (await entries(dest).catch(() => [])) === null) await rename(path, dest);
    else await rm(path, { recursive: true, force: true });
  }
}

/**
 * Creates a fresh temporary sibling of `dest`, lets `fill` write into it, and renames it to
 * `dest` as the last step (moving an existing `dest` aside first and deleting it afterwards).
 */
export async function writeDirAtomically(dest: string, fill: (dir: string) => Promise<void>, o: AtomicDirOptions = {}): Promise<void> {
  const parent = dirname(dest);
  const base = basename(dest);
  await mkdir(parent, { recursive: true });
  await cleanStale(parent, base, dest);
  await assertWritableDir(dest, o);
  const tag = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const tmp = join(parent, `.${base}.tmp-${tag}`);
  track(tmp);
  try {
    await mkdir(tmp);
    for (const name of o.carry ?? []) {
      await copyFile(join(dest, name), join(tmp, name)).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== "ENOENT") throw e;
      });
    }
    await fill(tmp);
    // Synchronous renames: no signal handler (they run on the event loop) can fire in between.
    const old = join(parent, `.${base}.old-${tag}`);
    let moved = false;
    try {
      renameSync(dest, old);
      moved = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    try {
      renameSync(tmp, dest);
    } catch (e) {
      if (moved) renameSync(old, dest);
      throw e;
    }
    // The old directory is now the one a signal must remove (track before untrack, so the
    // handler stays installed throughout).
    if (moved) track(old);
    untrack(tmp);
    if (moved) {
      try {
        await rm(old, { recursive: true, force: true });
      } finally {
        untrack(old);
      }
    }
  } catch (e) {
    untrack(tmp);
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
