// The version server metadata reports: badexpert's own, from its package.json (four folders
// above dist/src/serve/v2/, in a clone and in an installed package alike).
import { fileURLToPath } from "node:url";
import { readRegularFileSync } from "../../util/read-regular-file.js";

const PACKAGE_JSON = fileURLToPath(new URL("../../../../package.json", import.meta.url));

let cached: string | undefined;

export function serverVersion(): string {
  if (cached !== undefined) return cached;
  const text = readRegularFileSync(PACKAGE_JSON, { maxBytes: 1 << 20, what: "package.json" }).toString("utf8");
  const version = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== "string" || version === "") throw new Error(`${PACKAGE_JSON}: expected a "version" string`);
  cached = version;
  return version;
}
