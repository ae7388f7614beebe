// Scoped memory for native tensors (the tf.js model): every tensor made inside `tidy(fn)` is
// disposed when fn returns, except what fn returns and what was `keep()`-ed. Tensors made
// outside any scope live until `dispose()` (a GC finaliser in the addon is only a safety net).

/** What a scope tracks: anything with an explicit dispose (tensors). */
export interface Trackable {
  dispose(): void;
  readonly isDisposed: boolean;
}

const scopes: Set<Trackable>[] = [];
let live = 0;

/** Called by every tensor constructor. */
export function track(t: Trackable): void {
  live++;
  scopes[scopes.length - 1]?.add(t);
}

/** Called by Tensor.dispose(). */
export function untrack(t: Trackable): void {
  live--;
  for (let i = scopes.length - 1; i >= 0; i--) {
    if (scopes[i]?.delete(t)) return;
  }
}

/** Removes `t` from every enclosing scope so that it outlives them. */
export function keep<T extends Trackable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** Disposes every tensor found in `x` (a tensor, an array, a Map or a plain object of them). */
export function dispose(x: unknown): void {
  walk(x, (t) => t.dispose(), new Set());
}

export interface MemoryInfo {
  /** Tensors created and not yet disposed (JS view). */
  numTensors: number;
  /** Native handles still alive (includes ones only the GC can reclaim). */
  numHandles: number;
  /** Depth of nested tidy scopes. */
  scopeDepth: number;
}

export function liveTensorCount(): number {
  return live;
}

export function scopeDepth(): number {
  return scopes.length;
}

/**
 * Runs `fn` in a new scope. Returned tensors (also inside arrays, Maps and plain objects)
 * move to the enclosing scope; everything else made in the scope is disposed, even on throw.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Trackable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) {
      throw new TypeError("tidy: fn must be synchronous (it returned a Promise); use explicit dispose() in async code");
    }
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  const survivors = new Set<Trackable>();
  walk(
    result,
    (t) => {
      if (scope.has(t)) survivors.add(t);
    },
    new Set(),
  );
  for (const t of scope) if (!survivors.has(t)) t.dispose();
  const parent = scopes[scopes.length - 1];
  if (parent) for (const t of survivors) parent.add(t);
  return result;
}

function isTrackable(x: object): x is Trackable {
  return "dispose" in x && "isDisposed" in x && typeof (x as { dispose: unknown }).dispose === "function";
}

function walk(x: unknown, visit: (t: Trackable) => void, seen: Set<object>): void {
  if (x === null || typeof x !== "object" || seen.has(x)) return;
  seen.add(x);
  if (isTrackable(x) && !(x instanceof Map) && !Array.isArray(x) && isTensorLike(x)) {
    visit(x);
    return;
  }
  if (Array.isArray(x)) for (const v of x) walk(v, visit, seen);
  else if (x instanceof Map) for (const v of x.values()) walk(v, visit, seen);
  else if (Object.getPrototypeOf(x) === Object.prototype) for (const v of Object.values(x)) walk(v, visit, seen);
}

// Tensors carry this marker so that walking a result never descends into them (or into
// modules, which also have dispose()).
export const TENSOR_MARK: unique symbol = Symbol("badexpert.tensor");
function isTensorLike(x: object): boolean {
  return TENSOR_MARK in x;
}
