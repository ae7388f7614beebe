// A minimal zip archive reader over an in-memory file: the central directory (ZIP64 included,
// as PyTorch writes it for large files), stored and deflated entries. It only reads bytes; it
// never extracts to disk, so entry names cannot escape anywhere.
//
// The file is untrusted, so every size it states is checked before it is used: an entry inflates
// into a buffer of exactly the size the directory declares and inflation stops the moment the
// stream would write past it (a 2 MB entry declaring 4 KB cannot take 2 GB on its way to being
// refused), all inflated entries together stay under a per-archive limit, and anything two
// readers could read differently (duplicate names, a local header naming another file,
// encrypted entries) is refused rather than guessed at.
import { inflateRawSync } from "node:zlib";
import { constants as bufferConstants } from "node:buffer";
import { printable } from "../util/printable.js";
import { BadExpertError, type ErrorCode } from "../util/errors.js";

export interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** A zip archive that is malformed, ambiguous, or beyond a limit: E_MODEL_FORMAT, or the code its reader gives (E_DATA for a dataset's .npz). */
export class ZipError extends BadExpertError {
  override name = "ZipError";
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(options?.code ?? "E_MODEL_FORMAT", message, options);
  }
}

export interface ZipLimits {
  /** Bytes that all deflated entries of the archive may inflate to, together. */
  maxInflatedBytes: number;
}

export interface ZipOptions extends Partial<ZipLimits> {
  /** The code of the archive's errors (default E_MODEL_FORMAT). */
  code?: ErrorCode;
}

/** 4 GiB: far above any classifier's weights, and a bound on what one archive can cost. */
export const DEFAULT_MAX_INFLATED_BYTES = 4 * 1024 ** 3;

/** More entries than any model archive holds (and below V8's Map limit of 2^24). */
const MAX_ENTRIES = 1_000_000;
const CENTRAL_HEADER_BYTES = 46;

const EOCD_SIG = 0x06054b50;
const EOCD64_LOCATOR_SIG = 0x07064b50;
const EOCD64_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
const STORED = 0;
const DEFLATED = 8;
const ENCRYPTED_FLAG = 1;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

export class ZipArchive {
  readonly entries: Map<string, ZipEntry>;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #source: string;
  readonly #maxInflated: number;
  readonly #code: ErrorCode;
  /** Inflated entries, kept so that storages shared by several tensors are inflated once. */
  readonly #inflated = new Map<string, Uint8Array>();
  #inflatedBytes = 0;

  constructor(bytes: Uint8Array, source = "zip", limits: ZipOptions = {}) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#source = source;
    this.#maxInflated = limits.maxInflatedBytes ?? DEFAULT_MAX_INFLATED_BYTES;
    this.#code = limits.code ?? "E_MODEL_FORMAT";
    this.entries = this.#readDirectory();
  }

  /** Bytes inflated so far (each deflated entry counted once). */
  get inflatedBytes(): number {
    return this.#inflatedBytes;
  }

  #fail(msg: string): never {
    throw new ZipError(`${this.#source}: ${msg}`, { code: this.#code });
  }

  #u16(at: number): number {
    if (at < 0 || at + 2 > this.#bytes.length)
      this.#fail(`truncated zip (read at byte ${at} of ${this.#bytes.length})`);
    return this.#view.getUint16(at, true);
  }

  #u32(at: number): number {
    if (at < 0 || at + 4 > this.#bytes.length)
      this.#fail(`truncated zip (read at byte ${at} of ${this.#bytes.length})`);
    return this.#view.getUint32(at, true);
  }

  #u64(at: number): number {
    if (at < 0 || at + 8 > this.#bytes.length)
      this.#fail(`truncated zip (read at byte ${at} of ${this.#bytes.length})`);
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
    if (count > MAX_ENTRIES) this.#fail(`the directory declares ${count} entries (more than ${MAX_ENTRIES})`);
    if (dirOffset + count * CENTRAL_HEADER_BYTES > n)
      this.#fail(`the central directory (${count} entries at byte ${dirOffset}) lies outside the ${n}-byte file`);
    const entries = new Map<string, ZipEntry>();
    let at = dirOffset;
    const decoder = new TextDecoder();
    for (let i = 0; i < count; i++) {
      if (this.#u32(at) !== CENTRAL_SIG) this.#fail(`bad central directory entry ${i} at byte ${at}`);
      const flags = this.#u16(at + 8);
      const method = this.#u16(at + 10);
      let compressedSize = this.#u32(at + 20);
      let size = this.#u32(at + 24);
      const nameLen = this.#u16(at + 28);
      const extraLen = this.#u16(at + 30);
      const commentLen = this.#u16(at + 32);
      let localHeaderOffset = this.#u32(at + 42);
      const end = at + CENTRAL_HEADER_BYTES + nameLen + extraLen;
      if (end + commentLen > n) this.#fail(`central directory entry ${i} runs past the end of the file`);
      const name = decoder.decode(this.#bytes.subarray(at + CENTRAL_HEADER_BYTES, at + CENTRAL_HEADER_BYTES + nameLen));
      // ZIP64 extra field (id 1): the 64-bit values, in this order, for each 32-bit field set to 0xffffffff.
      let e = at + CENTRAL_HEADER_BYTES + nameLen;
      while (e + 4 <= end) {
        const id = this.#u16(e);
        const len = this.#u16(e + 2);
        if (e + 4 + len > end) this.#fail(`entry ${printable(name)}: an extra field runs past its header`);
        if (id === 1) {
          let p = e + 4;
          const field = (): number => {
            if (p + 8 > e + 4 + len)
              this.#fail(`entry ${printable(name)}: the ZIP64 extra field is too short for the sizes it replaces`);
            const v = this.#u64(p);
            p += 8;
            return v;
          };
          if (size === 0xffffffff) size = field();
          if (compressedSize === 0xffffffff) compressedSize = field();
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = field();
        }
        e += 4 + len;
      }
      if (entries.has(name))
        this.#fail(`the archive holds two entries named ${printable(name)} (which one a reader takes is not defined)`);
      entries.set(name, { name, method, flags, compressedSize, size, localHeaderOffset });
      at = end + commentLen;
    }
    return entries;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /**
   * The entry's bytes (a view into the file for stored entries). `expectedSize`, when given,
   * must equal the size the directory declares, and is checked before anything is inflated.
   */
  read(name: string, expectedSize?: number): Uint8Array {
    const e = this.entries.get(name);
    const shown = printable(name);
    if (!e) this.#fail(`no entry ${shown} in the archive`);
    if (expectedSize !== undefined && e.size !== expectedSize)
      this.#fail(`entry ${shown} declares ${e.size} bytes, expected ${expectedSize}`);
    if (e.flags & ENCRYPTED_FLAG) this.#fail(`entry ${shown} is encrypted`);
    const h = e.localHeaderOffset;
    if (this.#u32(h) !== LOCAL_SIG) this.#fail(`bad local header for ${shown}`);
    // The local header's own name and extra lengths (PyTorch pads the extra field to align data).
    const localNameLen = this.#u16(h + 26);
    const start = h + 30 + localNameLen + this.#u16(h + 28);
    const localName = this.#bytes.subarray(h + 30, h + 30 + localNameLen);
    if (new TextDecoder().decode(localName) !== name) this.#fail(`the local header of ${shown} names another file`);
    if (start + e.compressedSize > this.#bytes.length)
      this.#fail(`entry ${shown} runs past the end of the file (truncated?)`);
    const raw = this.#bytes.subarray(start, start + e.compressedSize);
    if (e.method === STORED) {
      if (e.compressedSize !== e.size)
        this.#fail(`stored entry ${shown} declares ${e.size} bytes but holds ${e.compressedSize}`);
      return raw;
    }
    if (e.method === DEFLATED) return this.#inflate(e, raw, shown);
    return this.#fail(`entry ${shown} uses compression method ${e.method} (only stored and deflated are read)`);
  }

  #inflate(e: ZipEntry, raw: Uint8Array, shown: string): Uint8Array {
    const cached = this.#inflated.get(e.name);
    if (cached) return cached;
    if (this.#inflatedBytes + e.size > this.#maxInflated) {
      this.#fail(
        `entry ${shown} declares ${e.size} bytes, which would take the archive past its limit of ${this.#maxInflated} inflated bytes`,
      );
    }
    if (e.size >= bufferConstants.MAX_LENGTH)
      this.#fail(`entry ${shown} declares ${e.size} bytes, more than one buffer holds`);
    // One output chunk one byte larger than the declared size: a stream that is longer than it
    // declares fills the spare byte and is stopped there (maxOutputLength), never inflated further.
    let out: Buffer;
    try {
      out = inflateRawSync(raw, { chunkSize: Math.max(64, e.size + 1), maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ERR_BUFFER_TOO_LARGE") this.#fail(`entry ${shown} inflates past the ${e.size} bytes it declares`);
      return this.#fail(`entry ${shown} does not inflate (${code ?? "error"}: ${(err as Error).message.slice(0, 80)})`);
    }
    if (out.length !== e.size) this.#fail(`entry ${shown} inflated to ${out.length} bytes, expected ${e.size}`);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    this.#inflatedBytes += e.size;
    this.#inflated.set(e.name, bytes);
    return bytes;
  }

  /** A small text record (at most `maxBytes`, 64 KiB by default). */
  readText(name: string, maxBytes = 65536): string {
    const e = this.entries.get(name);
    if (e && e.size > maxBytes)
      this.#fail(`record ${printable(name)} is ${e.size} bytes, more than the ${maxBytes} expected`);
    return new TextDecoder().decode(this.read(name));
  }
}
