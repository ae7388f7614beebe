// Optional bearer-token authentication. Tokens are compared as SHA-256 digests with
// timingSafeEqual, so neither the comparison time nor the length reveals the token.
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();

/** Returns a checker: null when the Authorization header carries the token, else what is wrong. */
export function bearerCheck(token: string): (header: string | undefined) => string | null {
  const want = digest(token);
  return (header) => {
    if (!header) return "missing Authorization header (expected: Authorization: Bearer <token>)";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) return "the Authorization header is not of the form 'Bearer <token>'";
    return timingSafeEqual(digest(m[1] as string), want) ? null : "wrong bearer token";
  };
}
