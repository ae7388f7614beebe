// The audit log's rotation by size: files never pass maxBytes, every line is whole JSON in exactly
// one file, none is lost while the files move, the oldest beyond `keep` is deleted, and nothing
// but the log's own numbered files is ever touched (a directory in the way stops rotation, loudly).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog, type AuditEntry } from "../../src/serve/audit.js";

const root = await mkdtemp(join(tmpdir(), "bx-audit-rot-"));
after(() => rm(root, { recursive: true, force: true }));

const entry = (i: number): AuditEntry => ({
  time: new Date(1_700_000_000_000 + i).toISOString(),
  requestId: `req-${i}`,
  client: "127.0.0.1",
  route: "/v1/detect",
  index: i % 3,
  pred: i % 10,
  class: "Ankle boot",
  score: 0.5 + (i % 100) / 1000,
  threshold: 0.4,
});
const png = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);

/** The log's regular files among LOG.<keep> ... LOG.1, LOG, oldest first, with their lines parsed. */
async function files(
  path: string,
  keep: number,
): Promise<{ name: string; size: number; lines: { requestId: string }[] }[]> {
  const dir = join(path, "..");
  const base = path.slice(dir.length + 1);
  const present = new Set(await readdir(dir));
  const names = [...Array.from({ length: keep }, (_, i) => `${base}.${keep - i}`), base].filter((n) => present.has(n));
  const regular = [];
  for (const n of names) if ((await stat(join(dir, n))).isFile()) regular.push(n);
  return Promise.all(
    regular.map(async (name) => {
      const text = await readFile(join(dir, name), "utf8");
      assert.ok(text.length === 0 || text.endsWith("\n"), `${name} ends with a whole line`);
      const lines = text
        .split("\n")
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as { requestId: string });
      return { name, size: (await stat(join(dir, name))).size, lines };
    }),
  );
}

test("rotation keeps every line whole and in one file, no file past maxBytes, nothing lost", async () => {
  const dir = join(root, "all");
  const path = join(dir, "audit.jsonl");
  const log = await AuditLog.open(path, join(dir, "images"), { maxBytes: 2048, keep: 500 });
  // Sequential lines, then concurrent ones whose image writes finish in any order.
  for (let i = 0; i < 600; i++) await log.record(entry(i), png);
  await Promise.all(Array.from({ length: 400 }, (_, k) => log.record(entry(600 + k), png)));
  await log.close();
  const fs = await files(path, 500);
  const all = fs.flatMap((f) => f.lines.map((l) => l.requestId));
  assert.equal(all.length, 1000, "every line is in the files");
  assert.equal(new Set(all).size, 1000, "no line twice");
  assert.deepEqual(
    all.slice(0, 600),
    Array.from({ length: 600 }, (_, i) => `req-${i}`),
    "the files hold the lines in order, oldest first",
  );
  for (const f of fs) assert.ok(f.size <= 2048, `${f.name}: ${f.size} bytes > 2048`);
  // Each rotated file was filled to within one line of the limit (a line here is about 230 bytes).
  for (const f of fs.slice(0, -1)) assert.ok(f.size > 2048 - 300, `${f.name} was rotated at ${f.size} bytes`);
  assert.equal(fs.length, log.rotations + 1);
  assert.ok(log.rotations >= 90, `${log.rotations} rotations`);
  assert.equal(log.lines, 1000);
});

test("keep: the oldest files are deleted, the rest is a contiguous tail, other files untouched", async () => {
  const dir = join(root, "keep");
  const path = join(dir, "audit.log");
  await mkdir(dir, { recursive: true });
  // Names that are not the rotation's own (or beyond keep) stay as they are.
  const others = {
    "audit.log.old": "mine",
    "audit.log.9": "not yours either",
    "audit.log.1.gz": "compressed by someone",
    "notes.txt": "hello",
  };
  for (const [n, text] of Object.entries(others)) await writeFile(join(dir, n), text);
  const log = await AuditLog.open(path, null, { maxBytes: 1024, keep: 3 });
  for (let i = 0; i < 500; i++) await log.record(entry(i), png);
  await log.close();
  const ours = await files(path, 3);
  assert.deepEqual(
    ours.map((f) => f.name),
    ["audit.log.3", "audit.log.2", "audit.log.1", "audit.log"],
  );
  const kept = ours.flatMap((f) => f.lines.map((l) => Number(l.requestId.slice(4))));
  const first = kept[0] as number;
  assert.deepEqual(
    kept,
    Array.from({ length: 500 - first }, (_, k) => first + k),
    "the kept lines are the last ones, without a gap",
  );
  assert.ok(first > 0 && kept.length >= 3 * 4, `kept ${kept.length} lines from ${first}`);
  for (const f of ours) assert.ok(f.size <= 1024);
  for (const [n, text] of Object.entries(others))
    assert.equal(await readFile(join(dir, n), "utf8"), text, `${n} untouched`);
});

test("a directory where a rotated file would go stops rotation, says so, and loses no line", async () => {
  const dir = join(root, "blocked");
  const path = join(dir, "audit.log");
  await mkdir(join(dir, "audit.log.2"), { recursive: true });
  await writeFile(join(dir, "audit.log.2", "keep-me"), "x");
  const errors: string[] = [];
  const log = await AuditLog.open(path, null, { maxBytes: 1024, keep: 3 }, (e) => errors.push(e.message));
  for (let i = 0; i < 40; i++) await log.record(entry(i), png);
  await log.close();
  assert.ok(errors.length >= 1 && errors.length <= 10, `${errors.length} reports`);
  assert.match(errors[0] as string, /audit\.log\.2 is a directory, not a file this log wrote/);
  assert.equal(await readFile(join(dir, "audit.log.2", "keep-me"), "utf8"), "x");
  const fs = await files(path, 3);
  assert.deepEqual(
    fs.flatMap((f) => f.lines.map((l) => l.requestId)),
    Array.from({ length: 40 }, (_, i) => `req-${i}`),
  );
});

test("a closed log refuses lines, and close waits for the lines being recorded", async () => {
  const path = join(root, "close", "audit.log");
  const log = await AuditLog.open(path, join(root, "close", "img"), { maxBytes: 1 << 20, keep: 1 });
  const pending = Array.from({ length: 20 }, (_, i) => log.record(entry(i), png));
  await log.close();
  await Promise.all(pending);
  assert.equal((await readFile(path, "utf8")).trim().split("\n").length, 20, "lines begun before close are written");
  await assert.rejects(log.record(entry(99), png), /is closed/);
});
