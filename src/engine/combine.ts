// Ops over several tensors: concatenation, stacking, selection by condition.
import { native } from "./native.js";
import { Tensor, formatShape, type TensorOrScalar } from "./tensor.js";

function checkList(op: string, ts: Tensor[]): void {
  if (ts.length === 0) throw new RangeError(`${op}: expected at least one tensor, got an empty list`);
}

/** Joins tensors along an existing dimension. */
export function cat(ts: Tensor[], dim = 0): Tensor {
  checkList("cat", ts);
  const first = ts[0] as Tensor;
  const r = first.rank;
  for (const [i, t] of ts.entries()) {
    const s = t.shape;
    if (s.length !== r || s.some((d, k) => k !== (dim < 0 ? r + dim : dim) && d !== first.shape[k])) {
      throw new RangeError(
        `cat: tensor ${i} has shape ${formatShape(s)}, incompatible with ${formatShape(first.shape)} along dim ${dim}`,
      );
    }
  }
  return new Tensor(
    native.cat(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}

/** Joins equally shaped tensors along a new dimension. */
export function stack(ts: Tensor[], dim = 0): Tensor {
  checkList("stack", ts);
  const s0 = (ts[0] as Tensor).shape;
  for (const [i, t] of ts.entries()) {
    const s = t.shape;
    if (s.length !== s0.length || s.some((d, k) => d !== s0[k])) {
      throw new RangeError(`stack: tensor ${i} has shape ${formatShape(s)}, expected ${formatShape(s0)}`);
    }
  }
  return new Tensor(
    native.stack(
      ts.map((t) => t.handle),
      dim,
    ),
  );
}

/** Elementwise `cond ? a : b` with broadcasting. */
export function where(cond: Tensor, a: TensorOrScalar, b: TensorOrScalar): Tensor {
  if (cond.dtype !== "bool") throw new TypeError(`where: cond must be a bool tensor, got ${cond.dtype}`);
  const op = (x: TensorOrScalar) => (x instanceof Tensor ? x.handle : x);
  return new Tensor(native.where(cond.handle, op(a), op(b)));
}
