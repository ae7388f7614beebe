// Argument checks shared by the optimizers and schedules. Each message names the owner
// ("SGD", "Adam param group 1", "StepLR"), the argument, what was expected and what came.

export function checkFiniteNumber(where: string, name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(`${where}: ${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}

export function checkNonNegative(where: string, name: string, value: unknown): number {
  const v = checkFiniteNumber(where, name, value);
  if (v < 0) throw new RangeError(`${where}: ${name} must be >= 0, got ${v}`);
  return v;
}

export function checkPositive(where: string, name: string, value: unknown): number {
  const v = checkFiniteNumber(where, name, value);
  if (v <= 0) throw new RangeError(`${where}: ${name} must be > 0, got ${v}`);
  return v;
}

export function checkPositiveInteger(where: string, name: string, value: unknown): number {
  const v = checkFiniteNumber(where, name, value);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${where}: ${name} must be a positive integer, got ${v}`);
  return v;
}

/** A value in [0, 1): the range of Adam's betas. */
export function checkHalfOpenUnit(where: string, name: string, value: unknown): number {
  const v = checkFiniteNumber(where, name, value);
  if (v < 0 || v >= 1) throw new RangeError(`${where}: ${name} must be in [0, 1), got ${v}`);
  return v;
}

export function checkBoolean(where: string, name: string, value: unknown): boolean {
  if (typeof value !== "boolean") throw new TypeError(`${where}: ${name} must be a boolean, got ${String(value)}`);
  return value;
}

/**
 * The largest learning rate the optimizers accept. Far above any useful rate, and small enough
 * that the update arithmetic stays finite (Adam's lr / (1 - β1^t) with lr = 1e308 overflowed to
 * Infinity, which libtorch refused as "addcdiv_: value cannot be converted").
 */
export const MAX_LEARNING_RATE = 1e6;

export function checkLearningRate(where: string, name: string, value: unknown): number {
  const v = checkFiniteNumber(where, name, value);
  if (v < 0 || v > MAX_LEARNING_RATE)
    throw new RangeError(`${where}: ${name} must be in [0, ${MAX_LEARNING_RATE}], got ${v}`);
  return v;
}
