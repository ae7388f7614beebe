// The installed package's version, read from its package.json the first time it is asked for
// (the file sits three folders above dist/src/util/, in a clone and in an installed package alike).
import { fileURLToPath } from "node:url";
import { readRegularFileSync } from "./read-regular-file.js";

const PACKAGE_JSON = fileURLToPath(new URL("../../../package.json", import.meta.url));

let cached: string | undefined;

/** The `version` field of badexpert's package.json (the CLI's --version, the service's metadata). */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  const text = readRegularFileSync(PACKAGE_JSON, { maxBytes: 1 << 20, what: "package.json" }).toString("utf8");
  const version = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== "string" || version === "") throw new Error(`${PACKAGE_JSON}: expected a "version" string`);
  cached = version;
  return version;
}
