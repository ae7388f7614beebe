// Python-style formatting for extraRepr(), so that printed models read exactly like PyTorch's
// (`kernel_size=(3, 3)`, `eps=1e-05`, `bias=False`) and can be compared line by line.

export function pyBool(b: boolean): string {
  return b ? "True" : "False";
}

/** A float as Python's repr() writes it: `1.0`, `0.1`, `1e-05`, `1e+20`. */
export function pyFloat(x: number | null): string {
  if (x === null) return "None";
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() with no argument gives the shortest round-tripping digits, as Python does.
  const [mantissa = "", expText = "0"] = x.toExponential().split("e");
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const sign = exp < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, "0")}`;
  }
  const s = String(x);
  return Number.isInteger(x) ? `${s}.0` : s;
}

/** A tuple as Python writes it: `(3, 3)`, `(4,)`. */
export function pyTuple(xs: readonly number[]): string {
  return xs.length === 1 ? `(${xs[0]},)` : `(${xs.join(", ")})`;
}

/** An int or a tuple of ints, kept in the form the user gave. */
export function pyIntOrTuple(x: number | readonly number[]): string {
  return typeof x === "number" ? String(x) : pyTuple(x);
}

/** A string as Python's repr() quotes it. */
export function pyStr(s: string): string {
  return `'${s}'`;
}
