// `scan` and `serve` as a user runs them, in their own processes (their own environment, a kill
// timer so a hang is a failure): an unsigned bundle is scanned with a warning on stderr and
// refused under --require-signature (the service does not start); a signed bundle is verified
// with the key named by BADEXPERT_VERIFY_KEY; a detector.json that is a FIFO fails at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { saveBundle } from "../../src/defense/bundle.js";
import { writeKeyPair } from "../../src/defense/signature.js";
import { quickDetector, readManifest, writeRehashed } from "../defense/quick-detector.js";

const MAIN = fileURLToPath(new URL("../../src/cli/main.js", import.meta.url));

interface Exit {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

/** Runs the CLI in a child process with `env` (no key from this machine's environment) and kills it after `limitMs`. */
function cli(args: string[], env: Record<string, string>, limitMs = 60_000): Promise<Exit> {
  const t0 = Date.now();
  const base: Record<string, string> = { PATH: process.env.PATH ?? "", BADEXPERT_THREADS: "1" };
  const child = spawn(process.execPath, [MAIN, ...args], {
    env: { ...base, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), limitMs);
  return new Promise((resolve) => {
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err, ms: Date.now() - t0 });
    });
  });
}

test("scan and serve: unsigned bundles warn or are refused, BADEXPERT_VERIFY_KEY verifies, a FIFO manifest fails at once", async () => {
  const root = await mkdtemp(join(tmpdir(), "bx-cli-trust-"));
  const det = quickDetector();
  const fifo = join(root, "fifo-bundle", "detector.json");
  const fifos = [fifo];
  try {
    const unsigned = join(root, "unsigned");
    const signed = join(root, "signed");
    const keys = join(root, "keys");
    await mkdir(keys);
    const k = await writeKeyPair(keys);
    await saveBundle(unsigned, det);
    await saveBundle(signed, det, { signKey: k.privateKey });
    const png = join(root, "image.png");
    await sharp(Buffer.alloc(28 * 28, 128), { raw: { width: 28, height: 28, channels: 1 } })
      .png()
      .toFile(png);
    const env = { HOME: join(root, "home") };

    // A detector.json that is a FIFO: refused at once.
    await mkdir(join(root, "fifo-bundle"));
    execFileSync("mkfifo", [fifo]);
    const f = await cli(["scan", "--bundle", join(root, "fifo-bundle"), png], env);
    assert.equal(f.code, 1, `exit status (null: killed after hanging) ${f.err}`);
    assert.match(f.err, /detector\.json: the manifest is not a regular file \(a device, socket or pipe\)/);

    // Unsigned: scanned, with the warning on stderr; refused under --require-signature.
    const warned = await cli(["scan", "--bundle", unsigned, png], env);
    assert.equal(warned.code, 0, warned.err);
    assert.match(
      warned.err,
      /badexpert scan: warning: bundle: .*unsigned is not signed: anyone who can write to it can change what it flags/,
    );
    assert.equal(warned.out.trim().split("\n").length, 2, "one result line and the summary");
    const refused = await cli(["scan", "--require-signature", "--bundle", unsigned, png], env);
    assert.equal(refused.code, 1, refused.err);
    assert.match(refused.err, /detector\.json\.sig not found: the bundle is not signed, and a signature is required/);
    assert.equal(refused.out, "", "nothing scanned");

    // Signed: verified with the key the environment names, silently; an edited copy is refused.
    const withKey = { ...env, BADEXPERT_VERIFY_KEY: k.publicKey };
    const good = await cli(["scan", "--require-signature", "--bundle", signed, png], withKey);
    assert.equal(good.code, 0, good.err);
    assert.doesNotMatch(good.err, /warning/);
    const unverified = await cli(["scan", "--bundle", signed, png], env);
    assert.equal(unverified.code, 0, unverified.err);
    assert.match(unverified.err, /warning: bundle: .*signed is signed but not verified: no key/);
    const m = await readManifest(signed);
    (m.classNames as string[])[3] = "edited";
    await writeRehashed(signed, m);
    const tampered = await cli(["scan", "--bundle", signed, png], withKey);
    assert.equal(tampered.code, 1, tampered.err);
    assert.match(tampered.err, /the signature does not match: the bundle was changed after it was signed/);

    // serve --require-signature on an unsigned bundle: the service refuses to start and exits 1.
    const serveArgs = [
      "--port",
      "0",
      "--workers",
      "1",
      "--threads",
      "1",
      "--engine",
      "libtorch",
      "--flagged-keep",
      "0",
      "--log-level",
      "info",
    ];
    const noStart = await cli(["serve", "--require-signature", "--bundle", unsigned, ...serveArgs], env);
    assert.equal(noStart.code, 1, noStart.err);
    assert.match(noStart.err, /the bundle is not signed, and a signature is required/);
    assert.doesNotMatch(noStart.out, /"event":"listening"/);
    // A --token-file that is a FIFO: a usage error at once, not a wait for a writer.
    const tokenFifo = join(root, "token");
    execFileSync("mkfifo", [tokenFifo]);
    fifos.push(tokenFifo);
    const token = await cli(["serve", "--bundle", unsigned, "--token-file", tokenFifo, ...serveArgs], env);
    assert.equal(token.code, 2, token.err);
    assert.match(token.err, /--token-file .*token: the token file is not a regular file/);
  } finally {
    for (const f of fifos) {
      try {
        closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // no reader waiting
      }
    }
    det.dispose();
    await rm(root, { recursive: true, force: true });
  }
});

test("serve with an unsigned bundle: a warning on stderr and in the log, and GET /v1/detector says unsigned", async () => {
  const root = await mkdtemp(join(tmpdir(), "bx-serve-trust-"));
  const det = quickDetector();
  try {
    const dir = join(root, "bundle");
    await saveBundle(dir, det);
    const child = spawn(
      process.execPath,
      [
        MAIN,
        "serve",
        "--bundle",
        dir,
        "--port",
        "0",
        "--workers",
        "1",
        "--threads",
        "1",
        "--engine",
        "libtorch",
        "--flagged-keep",
        "0",
        "--log-level",
        "info",
      ],
      {
        env: { PATH: process.env.PATH ?? "", BADEXPERT_THREADS: "1", HOME: join(root, "home") },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const logs: Record<string, unknown>[] = [];
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      const url = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout }).on("line", (line) => {
          const o = JSON.parse(line) as Record<string, unknown>;
          logs.push(o);
          if (o.event === "listening") resolve(String(o.url));
        });
        child.on("exit", (code) => reject(new Error(`serve exited with ${code} before listening: ${err}`)));
      });
      assert.match(err, /badexpert serve: warning: bundle: .*bundle is not signed/);
      const logged = logs.find((l) => l.event === "bundle_trust");
      assert.equal(logged?.level, 40, "logged at warn level");
      assert.equal(logged?.signature, "unsigned");
      const info = (await (await fetch(`${url}/v1/detector`)).json()) as {
        trust: { signature: string; key: unknown; warnings: string[] };
      };
      assert.equal(info.trust.signature, "unsigned");
      assert.equal(info.trust.key, null);
      assert.match(info.trust.warnings[0] as string, /is not signed/);
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    } finally {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  } finally {
    det.dispose();
    await rm(root, { recursive: true, force: true });
  }
});
