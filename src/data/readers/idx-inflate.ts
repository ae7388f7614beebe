// Inflating a gzipped IDX file with its memory bounded by the shape its header declares: the
// header is read from the first inflated bytes, and inflating stops as soon as the output would
// outgrow header + declared data (or MAX_IDX_BYTES). A 1.2 MB gzip bomb used to reach 2.7 GB.
import { createGunzip } from "node:zlib";
import { DatasetFormatError, errorMessage } from "../errors.js";

/** 1 GiB: larger than any IDX dataset in use (EMNIST ByClass is 0.64 GB) and far below Node's buffer limit. */
export const MAX_IDX_BYTES = 2 ** 30;

/** Header + data bytes an IDX header declares, or undefined while fewer than the header's bytes are known. */
export function declaredIdxBytes(head: Uint8Array): number | undefined {
  if (head.length < 4) return undefined;
  const ndims = head[3] ?? 0;
  const headerBytes = 4 + 4 * ndims;
  if (head.length < headerBytes) return undefined;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  let n = 1;
  for (let i = 0; i < ndims; i++) n *= view.getUint32(4 + 4 * i);
  return headerBytes + n;
}

export async function inflateIdx(
  raw: Uint8Array,
  file: string,
  reader = "idx",
  maxBytes = MAX_IDX_BYTES,
): Promise<Uint8Array> {
  const fail = (problem: string, cause?: unknown): never => {
    throw new DatasetFormatError(reader, file, problem, cause === undefined ? undefined : { cause });
  };
  const gunzip = createGunzip();
  const chunks: Buffer[] = [];
  let total = 0;
  let limit: number | undefined;
  const consumed = (async () => {
    for await (const c of gunzip) {
      const chunk = c as Buffer;
      chunks.push(chunk);
      total += chunk.length;
      if (limit === undefined) {
        const declared = declaredIdxBytes(chunks.length === 1 ? chunk : Buffer.concat(chunks));
        if (declared !== undefined) {
          if (declared > maxBytes) fail(`header declares ${declared} bytes, more than the limit of ${maxBytes}`);
          limit = declared;
        }
      }
      if (total > (limit ?? maxBytes)) {
        fail(
          `inflates to more than the ${limit ?? maxBytes} bytes ${limit !== undefined ? "its header declares" : "allowed"}; refusing (a corrupt file or a gzip bomb)`,
        );
      }
    }
  })();
  consumed.catch(() => undefined);
  gunzip.end(raw);
  try {
    await consumed;
  } catch (e) {
    gunzip.destroy();
    if (e instanceof DatasetFormatError) throw e;
    fail(`gzip data is corrupt or truncated (${errorMessage(e)})`, e);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, total);
}
