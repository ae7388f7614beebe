// Finding NaN and ±Infinity in stored float tensors. One non-finite weight makes every score NaN,
// and a NaN score compares false with any threshold, so a detector with such weights would pass
// every input: bundles and checkpoints refuse them at load time.
//
// The check reads the exponent bits straight from the little-endian bytes (all ones = Inf or
// NaN), so it needs no aligned copy, works on any host byte order and costs one pass.
import { printable } from "../util/printable.js";
import type { RawTensor } from "./safetensors.js";
import { BadExpertError } from "../util/errors.js";

/** Byte offset of the exponent's high byte within an element, and the masks that mean "all ones". */
const EXPONENT: Readonly<
  Partial<Record<RawTensor["dtype"], { size: number; hi: number; hiMask: number; lo: number; loMask: number }>>
> = {
  // float64: sign(1) exponent(11): byte 7 low 7 bits, byte 6 high 4 bits.
  F64: { size: 8, hi: 7, hiMask: 0x7f, lo: 6, loMask: 0xf0 },
  // float32: exponent(8): byte 3 low 7 bits, byte 2 high bit.
  F32: { size: 4, hi: 3, hiMask: 0x7f, lo: 2, loMask: 0x80 },
  // bfloat16 is the top half of a float32.
  BF16: { size: 2, hi: 1, hiMask: 0x7f, lo: 0, loMask: 0x80 },
  // float16: exponent(5) in byte 1, bits 2..6.
  F16: { size: 2, hi: 1, hiMask: 0x7c, lo: 1, loMask: 0x7c },
};

/** How many elements of `t` are NaN or ±Infinity, and the index of the first (-1 when none). Integer tensors have none. */
export function countNonFinite(t: RawTensor): { count: number; first: number } {
  const e = EXPONENT[t.dtype];
  if (e === undefined) return { count: 0, first: -1 };
  const d = t.data;
  let count = 0;
  let first = -1;
  for (let at = 0, i = 0; at + e.size <= d.length; at += e.size, i++) {
    if (((d[at + e.hi] as number) & e.hiMask) === e.hiMask && ((d[at + e.lo] as number) & e.loMask) === e.loMask) {
      if (first < 0) first = i;
      count++;
    }
  }
  return { count, first };
}

/** Throws, naming the file and the tensor, when any float tensor holds NaN or ±Infinity. */
export function assertFiniteTensors(tensors: Map<string, RawTensor>, source: string): void {
  for (const [name, t] of tensors) {
    const { count, first } = countNonFinite(t);
    if (count > 0) {
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `${source}: tensor ${printable(name)} holds ${count} non-finite value(s) (NaN or ±Infinity; first at element ${first}); refusing weights that would make every score invalid`,
      );
    }
  }
}
