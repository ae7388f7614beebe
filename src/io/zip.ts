// A minimal zip archive reader over an in-memory file: the central directory (ZIP64 included,
// as PyTorch writes it for large files), stored and deflated entries. It only reads bytes; it
// never extracts to disk, so entry names cannot escape anywhere.
import { inflateRawSync } from "node:zlib";

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

export class ZipArchive {
  readonly entries: Map<string, ZipEntry>;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #source: string;

  constructor(bytes: Uint8Array, source = "zip") {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#source = source;
    this.entries = this.#readDirectory();
  }

  #fail(msg: string): never {
    throw new Error(`${this.#source}: ${msg}`);
  }

  #u16(at: number): number {
    if (at + 2 > this.#bytes.length) this.#fail(`truncated zip (read at byte ${at} of ${this.#bytes.length})`);
    return this.#view.getUint16(at, true);
  }

  #u32(at: number): number {
    if (at + 4 > this.#bytes.length) this.#fail(`truncated zip (read at byte ${at} of ${this.#bytes.length})`);
    return this.#view.getUint32(at, true);
  }

  #u64(at: number): number {
    if (at + 8 > this.#bytes.length) this.#fail(`truncated zip (read at byte ${at} of ${this.#bytes.length})`);
    const v = this.#view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.#fail(`zip64 field ${v} is too large`);
    return Number(v);
  }

  #readDirectory(): Map<string, ZipEntry> {
    const n = this.#bytes.length;
    // The end-of-central-directory record sits in the last 22 + (up to 65535 comment) bytes.
    let eocd = -1;
    for (let i = n - 22; i >= Math.max(0, n - 22 - 0xffff); i--) {
      if (this.#view.getUint32(i, true) === EOCD_SIG) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) this.#fail("not a zip archive (no end-of-central-directory record)");
    let count = this.#u16(eocd + 10);
    let dirOffset = this.#u32(eocd + 16);
    if (eocd >= 20 && this.#u32(eocd - 20) === EOCD64_LOCATOR_SIG) {
      const rec = this.#u64(eocd - 20 + 8);
      if (this.#u32(rec) !== EOCD64_SIG) this.#fail("bad ZIP64 end-of-central-directory record");
      count = this.#u64(rec + 32);
      dirOffset = this.#u64(rec + 48);
    }
    const entries = new Map<string, ZipEntry>();
    let at = dirOffset;
    const decoder = new TextDecoder();
    for (let i = 0; i < count; i++) {
      if (this.#u32(at) !== CENTRAL_SIG) this.#fail(`bad central directory entry ${i} at byte ${at}`);
      const method = this.#u16(at + 10);
      let compressedSize = this.#u32(at + 20);
      let size = this.#u32(at + 24);
      const nameLen = this.#u16(at + 28);
      const extraLen = this.#u16(at + 30);
      const commentLen = this.#u16(at + 32);
      let localHeaderOffset = this.#u32(at + 42);
      const name = decoder.decode(this.#bytes.subarray(at + 46, at + 46 + nameLen));
      // ZIP64 extra field (id 1): the 64-bit values, in this order, for each 32-bit field set to 0xffffffff.
      let e = at + 46 + nameLen;
      const end = e + extraLen;
      while (e + 4 <= end) {
        const id = this.#u16(e);
        const len = this.#u16(e + 2);
        if (id === 1) {
          let p = e + 4;
          if (size === 0xffffffff) {
            size = this.#u64(p);
            p += 8;
          }
          if (compressedSize === 0xffffffff) {
            compressedSize = this.#u64(p);
            p += 8;
          }
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = this.#u64(p);
        }
        e += 4 + len;
      }
      entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      at = end + commentLen;
    }
    return entries;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The entry's bytes (a view into the file for stored entries). */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) this.#fail(`no entry ${JSON.stringify(name)} in the archive`);
    const h = e.localHeaderOffset;
    if (this.#u32(h) !== LOCAL_SIG) this.#fail(`bad local header for ${JSON.stringify(name)}`);
    // The local header's own name and extra lengths (PyTorch pads the extra field to align data).
    const start = h + 30 + this.#u16(h + 26) + this.#u16(h + 28);
    if (start + e.compressedSize > this.#bytes.length) this.#fail(`entry ${JSON.stringify(name)} runs past the end of the file (truncated?)`);
    const raw = this.#bytes.subarray(start, start + e.compressedSize);
    if (e.method === STORED) return raw;
    if (e.method === DEFLATED) {
      const out = inflateRawSync(raw);
      if (out.length !== e.size) this.#fail(`entry ${JSON.stringify(name)} inflated to ${out.length} bytes, expected ${e.size}`);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    return this.#fail(`entry ${JSON.stringify(name)} uses compression method ${e.method} (only stored and deflated are read)`);
  }

  readText(name: string): string {
    return new TextDecoder().decode(this.read(name));
  }
}
