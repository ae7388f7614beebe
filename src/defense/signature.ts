// Optional Ed25519 signatures for bundles shipped between machines. The signature covers the
// exact bytes of detector.json, which holds the SHA-256 of every weight file and of every other
// field, so one signature pins the whole bundle. node:crypto does the cryptography; keys are PEM
// files (PKCS#8 private, SPKI public) that `badexpert keygen` writes.
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const SIGNATURE_FILE = "detector.json.sig";
export const PRIVATE_KEY_FILE = "badexpert-signing.key";
export const PUBLIC_KEY_FILE = "badexpert-signing.pub";

/** A key given as a KeyObject, or as the path of a PEM file. */
export type KeyInput = KeyObject | string;

async function pemOf(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    throw new Error(`${what} ${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
}

function requireEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== "ed25519") throw new Error(`${what}: expected an Ed25519 key, got ${key.asymmetricKeyType ?? "a symmetric key"}`);
  return key;
}

export async function signingKey(k: KeyInput): Promise<KeyObject> {
  if (typeof k !== "string") return requireEd25519(k, "signing key");
  let key: KeyObject;
  try {
    key = createPrivateKey(await pemOf(k, "signing key"));
  } catch (e) {
    throw new Error(`signing key ${k}: not a PEM private key (${(e as Error).message})`, { cause: e });
  }
  return requireEd25519(key, `signing key ${k}`);
}

export async function verifyingKey(k: KeyInput): Promise<KeyObject> {
  if (typeof k !== "string") return requireEd25519(k.type === "private" ? createPublicKey(k) : k, "verification key");
  let key: KeyObject;
  try {
    key = createPublicKey(await pemOf(k, "verification key"));
  } catch (e) {
    throw new Error(`verification key ${k}: not a PEM public key (${(e as Error).message})`, { cause: e });
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
  if (sig.length !== 64 || sig.toString("base64") !== text) throw new Error(`${where}: the signature file is not a base64 Ed25519 signature`);
  if (!verify(null, bytes, key, sig)) {
    throw new Error(`${where}: the signature does not match: the bundle was changed after it was signed, or signed with another key`);
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
