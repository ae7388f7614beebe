// Adam, AdamW and AMSGrad against a reference recurrence written here in plain JS.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Adam, AdamW, type AdamHyper } from "../../src/optim/index.js";
import { tensor } from "../../src/engine/index.js";
import { assertClose, free, noLeaks, param, setGrad } from "./helpers.js";

const P0 = [1, -2, 0.5];
// Large first gradients then small ones, so that AMSGrad's running maximum matters.
const GRADS = [
  [3, -1, 2],
  [0.1, 0.25, -0.5],
  [-0.2, 0.05, 0.1],
  [0.05, -0.1, 0.02],
];

/** Adam in doubles; `decoupled` selects AdamW's decay. */
function reference(h: AdamHyper, decoupled: boolean, steps: number): number[] {
  const [b1, b2] = h.betas;
  return P0.map((p0, i) => {
    let p = p0;
    let m = 0;
    let v = 0;
    let vmax = 0;
    for (let t = 1; t <= steps; t++) {
      let g = GRADS[t - 1]?.[i] ?? 0;
      if (decoupled) p *= 1 - h.lr * h.weightDecay;
      else g += h.weightDecay * p;
      m = b1 * m + (1 - b1) * g;
      v = b2 * v + (1 - b2) * g * g;
      vmax = Math.max(vmax, v);
      const vhat = h.amsgrad ? vmax : v;
      const bc1 = 1 - b1 ** t;
      const bc2 = 1 - b2 ** t;
      p -= (h.lr / bc1) * (m / (Math.sqrt(vhat) / Math.sqrt(bc2) + h.eps));
    }
    return p;
  });
}

function run(kind: "adam" | "adamw", h: AdamHyper, steps: number): number[] {
  const p = param(P0);
  const opt = kind === "adam" ? new Adam([p], h) : new AdamW([p], h);
  for (let t = 0; t < steps; t++) {
    setGrad(p, GRADS[t] ?? []);
    opt.step();
  }
  const out = p.toArray();
  opt.dispose();
  free(p);
  return out;
}

const base: AdamHyper = { lr: 0.01, betas: [0.8, 0.9], eps: 1e-8, weightDecay: 0, amsgrad: false };

void test("Adam, 3 steps with bias correction", () => {
  noLeaks(() => {
    assertClose(run("adam", base, 3), reference(base, false, 3));
    // The first bias-corrected step moves each element by lr * sign(g) (up to eps).
    assertClose(
      run("adam", base, 1),
      P0.map((p, i) => p - 0.01 * Math.sign(GRADS[0]?.[i] ?? 0)),
      1e-9,
    );
  });
});

void test("Adam's weight decay is L2 (added to the gradient)", () => {
  noLeaks(() => {
    const h = { ...base, weightDecay: 0.1 };
    assertClose(run("adam", h, 3), reference(h, false, 3));
  });
});

void test("AdamW decays the parameter directly: p *= 1 - lr * weightDecay", () => {
  noLeaks(() => {
    const h = { ...base, lr: 0.05, weightDecay: 0.5 };
    const got = run("adamw", h, 3);
    assertClose(got, reference(h, true, 3));
    const coupled = reference(h, false, 3);
    assert.ok(
      got.some((v, i) => Math.abs(v - (coupled[i] ?? 0)) > 1e-4),
      "AdamW must differ from Adam with the same weightDecay",
    );
  });
});

void test("AdamW's default weight decay is 1e-2; Adam's is 0", () => {
  noLeaks(() => {
    const p = param([1]);
    const w = new AdamW([p]);
    const a = new Adam([p]);
    assert.equal(w.paramGroups[0]?.weightDecay, 1e-2);
    assert.equal(a.paramGroups[0]?.weightDecay, 0);
    assert.equal(a.paramGroups[0]?.lr, 1e-3);
    assert.deepEqual(a.paramGroups[0]?.betas, [0.9, 0.999]);
    assert.equal(a.paramGroups[0]?.eps, 1e-8);
    w.dispose();
    a.dispose();
    free(p);
  });
});

void test("AMSGrad uses the running maximum of the second moment", () => {
  noLeaks(() => {
    for (const kind of ["adam", "adamw"] as const) {
      const h = { ...base, amsgrad: true, weightDecay: kind === "adamw" ? 0.1 : 0 };
      const got = run(kind, h, 4);
      assertClose(got, reference(h, kind === "adamw", 4));
      const plain = reference({ ...h, amsgrad: false }, kind === "adamw", 4);
      assert.ok(
        got.some((v, i) => Math.abs(v - (plain[i] ?? 0)) > 1e-5),
        "amsgrad must change the result on decreasing gradients",
      );
    }
  });
});

void test("per-parameter state: step count and moments", () => {
  noLeaks(() => {
    const p = param([1, 2]);
    const opt = new Adam([p], { betas: [0.5, 0.75], amsgrad: true });
    setGrad(p, [2, -4]);
    opt.step();
    setGrad(p, [1, 0]);
    opt.step();
    const s = opt.stateOf(p);
    assert.equal(s?.step, 2);
    assertClose(s?.expAvg.toArray() ?? [], [0.5 * (0.5 * 2) + 0.5 * 1, 0.5 * (0.5 * -4)]);
    assertClose(s?.expAvgSq.toArray() ?? [], [0.75 * 0.25 * 4 + 0.25 * 1, 0.75 * 0.25 * 16]);
    assertClose(s?.maxExpAvgSq?.toArray() ?? [], [1.0, 4]);
    opt.dispose();
    free(p);
  });
});

void test("float32 parameters follow the same math (to float32 precision)", () => {
  noLeaks(() => {
    const p = tensor(P0, { requiresGrad: true });
    const opt = new Adam([p], base);
    for (let t = 0; t < 3; t++) {
      setGrad(p, GRADS[t] ?? []);
      opt.step();
    }
    assert.equal(opt.stateOf(p)?.expAvg.dtype, "float32");
    assertClose(p.toArray(), reference(base, false, 3), 1e-6);
    opt.dispose();
    free(p);
  });
});

void test("invalid arguments give errors that name them", () => {
  noLeaks(() => {
    const p = param([1]);
    assert.throws(() => new Adam([p], { betas: [1, 0.999] }), /Adam: betas\[0\] must be in \[0, 1\), got 1/);
    assert.throws(() => new Adam([p], { betas: [0.9, -0.1] }), /betas\[1\] must be in \[0, 1\)/);
    assert.throws(() => new AdamW([p], { eps: -1 }), /AdamW: eps must be >= 0/);
    assert.throws(() => new AdamW([p], { lr: -0.1 }), /AdamW: lr must be in \[0, 1000000\], got -0.1/);
    assert.throws(() => new Adam([p], { weightDecay: -1 }), /weightDecay must be >= 0/);
    free(p);
  });
});
