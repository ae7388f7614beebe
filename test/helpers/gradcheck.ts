// Finite-difference gradient checking in float64: the analytic gradient libtorch computes
// for sum(w * f(inputs)) must match central differences for every input element.
import assert from "node:assert/strict";
import { Tensor, tensor, tidy, gradients, noGrad, randn, manualSeed } from "../../src/engine/index.js";

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** Called before every evaluation of f (e.g. to reseed random ops such as dropout). */
  before?: () => void;
}

export function gradcheck(
  name: string,
  f: (xs: Tensor[]) => Tensor,
  inputs: number[][],
  shapes: number[][],
  o: GradcheckOptions = {},
): void {
  const eps = o.eps ?? 1e-6;
  const atol = o.atol ?? 1e-5;
  const rtol = o.rtol ?? 1e-4;
  tidy(() => {
    const xs = inputs.map((v, i) => tensor(Float64Array.from(v), { shape: shapes[i] as number[] }).requiresGrad_(true));
    o.before?.();
    const out0 = f(xs);
    manualSeed(1234);
    const w = randn(out0.shape, { dtype: "float64" });
    const loss = out0.mul(w).sum();
    const analytic = gradients([loss], xs).map((g, i) =>
      g === null ? new Array<number>((inputs[i] as number[]).length).fill(0) : g.toArray(),
    );
    const value = (vals: number[][]): number =>
      tidy(() =>
        noGrad(() => {
          const ts = vals.map((v, i) => tensor(Float64Array.from(v), { shape: shapes[i] as number[] }));
          o.before?.();
          return f(ts).mul(w).sum().item();
        }),
      );
    for (let i = 0; i < inputs.length; i++) {
      const base = inputs[i] as number[];
      for (let k = 0; k < base.length; k++) {
        const plus = inputs.map((v) => v.slice());
        const minus = inputs.map((v) => v.slice());
        (plus[i] as number[])[k] = (base[k] as number) + eps;
        (minus[i] as number[])[k] = (base[k] as number) - eps;
        const numeric = (value(plus) - value(minus)) / (2 * eps);
        const a = (analytic[i] as number[])[k] as number;
        const tol = atol + rtol * Math.abs(numeric);
        assert.ok(
          Math.abs(a - numeric) <= tol,
          `${name}: d/d input${i}[${k}]: analytic ${a} vs numeric ${numeric} (tolerance ${tol})`,
        );
      }
    }
  });
}

/** Deterministic pseudo-random values in [-1, 1] (no dependence on libtorch's RNG). */
export function values(n: number, seed = 1): number[] {
  let s = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out.push((s / 0xffffffff) * 2 - 1);
  }
  return out;
}

export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5, what = "values"): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: got ${a}, expected ${e}`);
  }
}
