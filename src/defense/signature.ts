// Ed25519 signatures for bundles shipped between machines. The signature covers the exact bytes
// of detector.json, which holds the SHA-256 of every weight file and of every other field, so one
// signature pins the whole bundle. node:crypto does the cryptography; keys are PEM files (PKCS#8
// private, SPKI public) that `badexpert keygen` writes.
//
// Where the public key comes from when a bundle is loaded (resolveVerifyKey), first found wins:
// the caller's option (--verify-key), the environment variable BADEXPERT_VERIFY_KEY (a PEM path),
// then the default location $XDG_CONFIG_HOME/badexpert/badexpert-signing.pub
// (~/.config/badexpert/... when XDG_CONFIG_HOME is unset). A key named by the option or the
// variable is a demand: an unsigned bundle is refused. A key found at the default location
// verifies every signed bundle; an unsigned one loads with a warning (refused under
// requireSignature).
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { FileReadError, readRegularTextFile } from "../util/read-regular-file.js";
import { BadExpertError } from "../util/errors.js";

export const SIGNATURE_FILE = "detector.json.sig";
export const PRIVATE_KEY_FILE = "badexpert-signing.key";
export const PUBLIC_KEY_FILE = "badexpert-signing.pub";
/** The environment variable that names the public key (PEM) bundles are verified with. */
export const VERIFY_KEY_ENV = "BADEXPERT_VERIFY_KEY";
/** A PEM key is a few hundred bytes; a larger "key" is not one. */
const MAX_PEM_BYTES = 64 * 1024;
/** The signature file holds 88 base64 characters and a newline. */
export const MAX_SIGNATURE_BYTES = 4 * 1024;

/** A key given as a KeyObject, or as the path of a PEM file. */
export type KeyInput = KeyObject | string;

async function pemOf(path: string, what: string): Promise<string> {
  try {
    return await readRegularTextFile(path, { maxBytes: MAX_PEM_BYTES, what: `${what} (PEM)` });
  } catch (e) {
    const why = e instanceof FileReadError ? e.problem : ((e as NodeJS.ErrnoException).code ?? (e as Error).message);
    throw new BadExpertError("E_KEY", `${what} ${path}: cannot read (${why})`, { cause: e });
  }
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== "ed25519")
    throw new BadExpertError(
      "E_KEY",
      `${what}: expected an Ed25519 key, got ${key.asymmetricKeyType ?? "a symmetric key"}`,
    );
  return key;
}

export async function signingKey(k: KeyInput): Promise<KeyObject> {
  if (typeof k !== "string") return requireEd25519(k, "signing key");
  const pem = await pemOf(k, "signing key");
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    throw new BadExpertError("E_KEY", `signing key ${k}: not a PEM private key (${(e as Error).message})`, {
      cause: e,
    });
  }
  return requireEd25519(key, `signing key ${k}`);
}

export async function verifyingKey(k: KeyInput): Promise<KeyObject> {
  if (typeof k !== "string") return requireEd25519(k.type === "private" ? createPublicKey(k) : k, "verification key");
  const pem = await pemOf(k, "verification key");
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (e) {
    throw new BadExpertError("E_KEY", `verification key ${k}: not a PEM public key (${(e as Error).message})`, {
      cause: e,
    });
  }
  return requireEd25519(key, `verification key ${k}`);
}

/** The signature file's text: base64 of the 64-byte Ed25519 signature. */
export function signBytes(bytes: Uint8Array, key: KeyObject): string {
  return `${sign(null, bytes, key).toString("base64")}\n`;
}

/** Throws, naming the bundle, unless `signatureText` is a valid signature of `bytes` by `key`. */
export function verifyBytes(bytes: Uint8Array, signatureText: string, key: KeyObject, where: string): void {
  const text = signatureText.trim();
  const sig = Buffer.from(text, "base64");
  if (sig.length !== 64 || sig.toString("base64") !== text)
    throw new BadExpertError("E_BUNDLE_INTEGRITY", `${where}: the signature file is not a base64 Ed25519 signature`);
  if (!verify(null, bytes, key, sig)) {
    throw new BadExpertError(
      "E_BUNDLE_INTEGRITY",
      `${where}: the signature does not match: the bundle was changed after it was signed, or signed with another key`,
    );
  }
}

/** Writes a new key pair into `dir` (private key readable by the owner only); returns their paths. */
export async function writeKeyPair(dir: string): Promise<{ privateKey: string; publicKey: string }> {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const priv = join(dir, PRIVATE_KEY_FILE);
  const pub = join(dir, PUBLIC_KEY_FILE);
  // "wx": never overwrite an existing key, which may be the only copy.
  await writeFile(priv, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600, flag: "wx" });
  await writeFile(pub, publicKey.export({ type: "spki", format: "pem" }), { flag: "wx" });
  return { privateKey: priv, publicKey: pub };
}

/** Where a verification key came from: it decides whether an unsigned bundle is refused. */
export type KeySource = "option" | "environment" | "default location";

export interface ResolvedVerifyKey {
  key: KeyObject;
  source: KeySource;
  /** The PEM file, when the key was read from one. */
  path: string | null;
}

/** The variables key lookup reads (process.env by default; tests pass their own). */
export type KeyEnvironment = Readonly<Record<string, string | undefined>>;

/** The default location of the verification key: $XDG_CONFIG_HOME/badexpert/badexpert-signing.pub, or ~/.config/badexpert/... */
export function defaultVerifyKeyPath(env: KeyEnvironment = process.env): string {
  const config =
    env.XDG_CONFIG_HOME !== undefined && env.XDG_CONFIG_HOME !== ""
      ? env.XDG_CONFIG_HOME
      : join(env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir(), ".config");
  return join(config, "badexpert", PUBLIC_KEY_FILE);
}

/**
 * The key bundles are verified with: `explicit` (the caller's option), else BADEXPERT_VERIFY_KEY,
 * else the default location when a file is there; null when none is known. A key that is named
 * but cannot be read or is not an Ed25519 public key throws (never a silent fallback to no key).
 */
export async function resolveVerifyKey(
  explicit: KeyInput | undefined,
  env: KeyEnvironment = process.env,
): Promise<ResolvedVerifyKey | null> {
  if (explicit !== undefined)
    return {
      key: await verifyingKey(explicit),
      source: "option",
      path: typeof explicit === "string" ? explicit : null,
    };
  const fromEnv = env[VERIFY_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "") {
    try {
      return { key: await verifyingKey(fromEnv), source: "environment", path: fromEnv };
    } catch (e) {
      throw new BadExpertError("E_KEY", `${VERIFY_KEY_ENV}: ${(e as Error).message}`, { cause: e });
    }
  }
  const path = defaultVerifyKeyPath(env);
  try {
    return { key: await verifyingKey(path), source: "default location", path };
  } catch (e) {
    // No file there is the usual case: no key is known. Anything else (unreadable, not a key) is an error.
    const cause = (e as Error).cause;
    if (cause instanceof FileReadError && (cause.reason === "ENOENT" || cause.reason === "ENOTDIR")) return null;
    throw e;
  }
}
