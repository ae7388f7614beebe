// SGD against a reference recurrence written here in plain JS (PyTorch's documented algorithm),
// one parameter element at a time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Adam, SGD, type SgdHyper } from "../../src/optim/index.js";
import { assertClose, free, noLeaks, param, setGrad } from "./helpers.js";

const P0 = [1, -2, 0.5];
const GRADS = [
  [0.5, -1, 2],
  [1, 0.25, -0.5],
  [-2, 1, 0.1],
];

/** SGD in doubles: decay added to the gradient; the buffer starts as the first gradient. */
function reference(h: SgdHyper, steps: number): number[] {
  const p = [...P0];
  const buf: (number | undefined)[] = p.map(() => undefined);
  for (let t = 0; t < steps; t++) {
    for (let i = 0; i < p.length; i++) {
      const pi = p[i] ?? 0;
      let d = (GRADS[t]?.[i] ?? 0) + h.weightDecay * pi;
      if (h.momentum !== 0) {
        const prev = buf[i];
        const b = prev === undefined ? d : h.momentum * prev + (1 - h.dampening) * d;
        buf[i] = b;
        d = h.nesterov ? d + h.momentum * b : b;
      }
      p[i] = pi - h.lr * d;
    }
  }
  return p;
}

function run(h: SgdHyper, steps: number): number[] {
  const p = param(P0);
  const opt = new SGD([p], h);
  for (let t = 0; t < steps; t++) {
    setGrad(p, GRADS[t] ?? []);
    opt.step();
  }
  const out = p.toArray();
  opt.dispose();
  free(p);
  return out;
}

const base: SgdHyper = { lr: 0.1, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false };

void test("plain SGD: p -= lr * grad", () => {
  noLeaks(() => {
    const got = run(base, 3);
    assertClose(got, reference(base, 3));
    // Spelled out for the first element, independently of the reference function.
    assertClose([got[0] ?? NaN], [1 - 0.1 * (0.5 + 1 - 2)]);
  });
});

void test("momentum with dampening: the first step uses the raw gradient, later ones are damped", () => {
  noLeaks(() => {
    const h = { ...base, momentum: 0.9, dampening: 0.3 };
    const got = run(h, 3);
    assertClose(got, reference(h, 3));
    // After one step the buffer is g itself (no dampening), so the move is exactly lr * g.
    assertClose(
      run(h, 1),
      P0.map((p, i) => p - 0.1 * (GRADS[0]?.[i] ?? 0)),
    );
  });
});

void test("Nesterov momentum 0.9 with weight decay, 3 steps", () => {
  noLeaks(() => {
    const h = { ...base, momentum: 0.9, weightDecay: 0.01, nesterov: true };
    const got = run(h, 3);
    assertClose(got, reference(h, 3));
    // Nesterov must differ from heavy-ball momentum on the same data.
    const heavy = reference({ ...h, nesterov: false }, 3);
    assert.ok(Math.abs((got[0] ?? 0) - (heavy[0] ?? 0)) > 1e-3);
  });
});

void test("weight decay is added to the gradient", () => {
  noLeaks(() => {
    const h = { ...base, weightDecay: 0.5 };
    assertClose(
      run(h, 1),
      P0.map((p, i) => p - 0.1 * ((GRADS[0]?.[i] ?? 0) + 0.5 * p)),
    );
    assertClose(run(h, 3), reference(h, 3));
  });
});

void test("the momentum buffer is kept as state", () => {
  noLeaks(() => {
    const p = param([1]);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.5 });
    setGrad(p, [2]);
    opt.step();
    setGrad(p, [4]);
    opt.step();
    assertClose(opt.stateOf(p)?.momentumBuffer.toArray() ?? [], [0.5 * 2 + 4]);
    opt.dispose();
    free(p);
  });
});

void test("invalid arguments give errors that name them", () => {
  noLeaks(() => {
    const p = param([1]);
    assert.throws(
      () => new SGD([p], { lr: 0.1, nesterov: true }),
      /nesterov requires momentum > 0 and dampening = 0, got momentum=0/,
    );
    assert.throws(() => new SGD([p], { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }), /dampening=0.1/);
    assert.throws(() => new SGD([p], { lr: -1 }), /SGD: lr must be in \[0, 1000000\], got -1/);
    // 1e308 used to reach libtorch and fail there ("addcdiv_: value cannot be converted").
    assert.throws(() => new Adam([p], { lr: 1e308 }), /Adam: lr must be in \[0, 1000000\], got 1e\+308/);
    assert.throws(() => new SGD([p], { lr: 0.1, momentum: -0.5 }), /momentum must be >= 0/);
    assert.throws(() => new SGD([p], { lr: 0.1, weightDecay: -1 }), /weightDecay must be >= 0/);
    assert.throws(() => new SGD([p], { lr: Number.NaN }), /lr must be a finite number/);
    assert.throws(
      () => new SGD([{ params: [p], momentum: -1 }], { lr: 0.1 }),
      /SGD param group 0: momentum must be >= 0/,
    );
    free(p);
  });
});
