// One PNG chunk (length, type, body, CRC) for tests and benchmarks that build PNG files byte by
// byte: hostile headers, huge declared sizes, animation chunks no encoder here writes.
import { crc32 } from "node:zlib";

export function pngChunk(type: string, body: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + body.length);
  out.writeUInt32BE(body.length, 0);
  out.write(type, 4, "latin1");
  out.set(body, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + body.length)), 8 + body.length);
  return out;
}
