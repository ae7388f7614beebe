// Argument checks shared by the layers. Every message names the layer, the argument, what was
// expected and what was given, because a layer is usually built far from where it fails.

export type IntPair = number | readonly [number, number];

export function positiveInt(layer: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1)
    throw new RangeError(`${layer}: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

export function nonNegativeInt(layer: string, name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0)
    throw new RangeError(`${layer}: ${name} must be a non-negative integer, got ${String(v)}`);
  return v;
}

/** Expands an int or a pair of ints into a pair, each at least `min`; `pairWords` names the pair in the message. */
export function intPair(
  layer: string,
  name: string,
  v: IntPair,
  min: number,
  pairWords = "a pair of them",
): [number, number] {
  const p: readonly number[] = typeof v === "number" ? [v, v] : v;
  const [h, w] = p;
  if (
    p.length !== 2 ||
    h === undefined ||
    w === undefined ||
    !Number.isInteger(h) ||
    !Number.isInteger(w) ||
    h < min ||
    w < min
  ) {
    const what = min === 0 ? "a non-negative integer" : min === 1 ? "a positive integer" : `an integer >= ${min}`;
    throw new RangeError(`${layer}: ${name} must be ${what} or ${pairWords}, got ${JSON.stringify(v)}`);
  }
  return [h, w];
}

export function positiveNumber(layer: string, name: string, v: number): number {
  if (!(Number.isFinite(v) && v > 0))
    throw new RangeError(`${layer}: ${name} must be a positive number, got ${String(v)}`);
  return v;
}

export function probability(layer: string, name: string, v: number): number {
  if (!(v >= 0 && v <= 1)) throw new RangeError(`${layer}: ${name} must be a probability in [0, 1], got ${String(v)}`);
  return v;
}

export function oneOf<T extends string>(layer: string, name: string, v: T, allowed: readonly T[]): T {
  if (!allowed.includes(v)) {
    throw new RangeError(
      `${layer}: ${name} must be one of ${allowed.map((a) => `'${a}'`).join(", ")}, got ${JSON.stringify(v)}`,
    );
  }
  return v;
}
