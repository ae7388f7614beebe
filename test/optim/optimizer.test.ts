// The Optimizer base: parameter groups, skipped parameters, zeroGrad, checkpoints, disposal,
// and that no tensor handle leaks from a step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { dispose, memory, tensor, tidy, type Tensor } from "../../src/engine/index.js";
import {
  Adam,
  AdamW,
  SGD,
  type AdamHyper,
  type BaseHyper,
  type Optimizer,
  type OptimizerStateDict,
  type ParamState,
} from "../../src/optim/index.js";
import { assertClose, free, noLeaks, param, setGrad } from "./helpers.js";

void test("param groups: per-group lr overrides the default, other defaults are inherited", () => {
  noLeaks(() => {
    const a = param([1, 1]);
    const b = param([1, 1]);
    const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
    assert.equal(opt.paramGroups[0]?.lr, 0.1);
    assert.equal(opt.paramGroups[1]?.lr, 0.5);
    assert.equal(opt.paramGroups[1]?.momentum, 0.9);
    setGrad(a, [1, -2]);
    setGrad(b, [1, -2]);
    opt.step();
    assertClose(a.toArray(), [0.9, 1.2]);
    assertClose(b.toArray(), [0.5, 2]);
    opt.dispose();
    free(a, b);
  });
});

void test("addParamGroup adds parameters with their own options", () => {
  noLeaks(() => {
    const a = param([1]);
    const b = param([1]);
    const opt = new SGD([a], { lr: 0.1 });
    opt.addParamGroup({ params: [b], lr: 1 });
    setGrad(a, [1]);
    setGrad(b, [1]);
    opt.step();
    assertClose([...a.toArray(), ...b.toArray()], [0.9, 0]);
    assert.throws(
      () => opt.addParamGroup({ params: [a] }),
      /param group 2: params\[0\] already belongs to this optimizer/,
    );
    opt.dispose();
    free(a, b);
  });
});

void test("a parameter with a null grad is untouched and gets no state", () => {
  noLeaks(() => {
    const p = param([1, 2]);
    const q = param([3, 4]);
    const opt = new Adam([p, q], { lr: 0.1, weightDecay: 0.1 });
    setGrad(p, [1, 1]);
    opt.step();
    assert.deepEqual(q.toArray(), [3, 4]);
    assert.equal(opt.stateOf(q), undefined);
    assert.equal(opt.stateOf(p)?.step, 1);
    assert.notDeepEqual(p.toArray(), [1, 2]);
    opt.dispose();
    free(p, q);
  });
});

void test("zeroGrad sets every gradient to null", () => {
  noLeaks(() => {
    const p = param([1, 2]);
    const q = param([3]);
    const opt = new SGD([{ params: [p] }, { params: [q] }], { lr: 0.1 });
    setGrad(p, [1, 1]);
    setGrad(q, [1]);
    opt.zeroGrad();
    assert.equal(p.grad, null);
    assert.equal(q.grad, null);
    // A step after zeroGrad changes nothing.
    opt.step();
    assert.deepEqual(p.toArray(), [1, 2]);
    opt.dispose();
    free(p, q);
  });
});

void test("gradients from backward drive the update", () => {
  noLeaks(() => {
    const p = param([1, -1]);
    const opt = new SGD([p], { lr: 0.25 });
    tidy(() => p.mul(p).sum().backward()); // grad = 2p
    opt.step();
    assertClose(p.toArray(), [0.5, -0.5]);
    opt.dispose();
    free(p);
  });
});

void test("bad parameters and options are rejected with clear messages", () => {
  noLeaks(() => {
    const p = param([1]);
    const ints = tensor([1, 2], { dtype: "int64" });
    const nonLeaf = p.mul(2);
    assert.throws(() => new SGD([], { lr: 0.1 }), /SGD: expected a non-empty array/);
    assert.throws(() => new SGD([ints], { lr: 0.1 }), /params\[0\] must be floating-point to be optimized, got int64/);
    assert.throws(() => new SGD([nonLeaf], { lr: 0.1 }), /params\[0\] is not a leaf tensor/);
    assert.throws(() => new SGD([p, p], { lr: 0.1 }), /params\[1\] already belongs/);
    const typo = { params: [p], learningRate: 0.1 };
    assert.throws(() => new SGD([typo], { lr: 0.1 }), /SGD param group 0: unknown option "learningRate"/);
    free(p, ints, nonLeaf);
  });
});

const GRADS = [
  [0.5, -1, 2],
  [1, 0.25, -0.5],
  [-2, 1, 0.1],
  [0.3, 0.3, -0.7],
  [1.5, -0.2, 0.4],
];

type AnyOptimizer = Optimizer<BaseHyper, ParamState>;
type Make = (params: Tensor[]) => AnyOptimizer;
const makers: [string, Make][] = [
  ["SGD nesterov", (ps) => new SGD(ps, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
  ["Adam amsgrad", (ps) => new Adam(ps, { lr: 0.05, amsgrad: true, weightDecay: 0.1 })],
  ["AdamW", (ps) => new AdamW([{ params: ps.slice(0, 1) }, { params: ps.slice(1), lr: 0.2 }], { lr: 0.05 })],
];

function stepWith(opt: AnyOptimizer, ps: Tensor[], t: number): void {
  for (const p of ps) setGrad(p, GRADS[t] ?? []);
  opt.step();
}

void test("stateDict -> new optimizer -> loadStateDict continues exactly like an uninterrupted run", () => {
  for (const [name, make] of makers) {
    noLeaks(() => {
      const straight = [param([1, -2, 0.5]), param([0.1, 0.2, 0.3])];
      const first = [param([1, -2, 0.5]), param([0.1, 0.2, 0.3])];
      const optA = make(straight);
      const optB = make(first);
      for (let t = 0; t < 3; t++) {
        stepWith(optA, straight, t);
        stepWith(optB, first, t);
      }
      // Hyperparameters travel with the checkpoint.
      for (const g of optB.paramGroups) g.lr *= 0.5;
      for (const g of optA.paramGroups) g.lr *= 0.5;
      const sd = optB.stateDict();
      const resumed = first.map((p) => tidy(() => p.detach().clone().requiresGrad_(true)));
      const optC = make(resumed);
      optC.loadStateDict(sd);
      assert.deepEqual(
        optC.paramGroups.map((g) => g.lr),
        optA.paramGroups.map((g) => g.lr),
        `${name}: lr restored`,
      );
      for (let t = 3; t < 5; t++) {
        stepWith(optA, straight, t);
        stepWith(optC, resumed, t);
      }
      straight.forEach((p, i) =>
        assert.deepEqual(resumed[i]?.toArray(), p.toArray(), `${name}: param ${i} after resuming`),
      );
      dispose(sd);
      for (const o of [optA, optB, optC]) o.dispose();
      free(...straight, ...first, ...resumed);
    });
  }
});

void test("stateDict layout: state by parameter index, hyperparameters by group", () => {
  noLeaks(() => {
    const a = param([1, 2]);
    const b = param([3]);
    const opt = new SGD([{ params: [a] }, { params: [b], lr: 0.5 }], { lr: 0.1, momentum: 0.9 });
    setGrad(b, [2]);
    opt.step();
    const sd = opt.stateDict();
    assert.deepEqual(sd.paramGroups, [
      { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, params: [0] },
      { lr: 0.5, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, params: [1] },
    ]);
    assert.deepEqual(Object.keys(sd.state), ["1"]);
    const buf = sd.state[1]?.["momentumBuffer"];
    assert.ok(typeof buf === "object");
    assert.deepEqual(buf.toArray(), [2]);
    // A checkpoint is a copy: later steps do not change it.
    setGrad(b, [1]);
    opt.step();
    assert.deepEqual(buf.toArray(), [2]);
    dispose(sd);
    opt.dispose();
    free(a, b);
  });
});

void test("loadStateDict rejects mismatched checkpoints and leaves the optimizer as it was", () => {
  noLeaks(() => {
    const a = param([1, 2]);
    const b = param([3]);
    const opt = new Adam([a, b], { lr: 0.1 });
    setGrad(a, [1, 1]);
    opt.step();
    const sd = opt.stateDict();
    const one = new Adam([a], { lr: 0.1 });
    const two = new Adam([{ params: [a] }, { params: [b] }]);
    const other = param([1, 2, 3]);
    const shaped = new Adam([other, b]);
    assert.throws(
      () => one.loadStateDict(sd),
      /param group 0: the checkpoint lists 2 parameter\(s\), this optimizer has 1/,
    );
    assert.throws(() => two.loadStateDict(sd), /the checkpoint has 1 param group\(s\), this optimizer has 2/);
    assert.throws(
      () => shaped.loadStateDict(sd),
      /state of parameter 0: "expAvg" has shape \[2\] but the parameter has shape \[3\]/,
    );
    assert.equal(shaped.stateOf(other), undefined);
    const broken: OptimizerStateDict<AdamHyper> = { ...sd, state: { 0: { step: 1 } } };
    assert.throws(() => opt.loadStateDict(broken), /"expAvg" must be a tensor/);
    assert.equal(opt.stateOf(a)?.step, 1, "state survives a rejected load");
    dispose(sd);
    for (const o of [opt, one, two, shaped]) o.dispose();
    free(a, b, other);
  });
});

void test("dispose frees the state; a disposed optimizer refuses to step", () => {
  const start = memory().numTensors;
  const p = param([1, 2]);
  const opt = new Adam([p], { amsgrad: true });
  setGrad(p, [1, 1]);
  opt.step();
  assert.equal(memory().numTensors, start + 4, "param + three state tensors");
  opt.dispose();
  assert.equal(memory().numTensors, start + 1);
  assert.throws(() => opt.step(), /Adam: the optimizer was disposed/);
  free(p);
  assert.equal(memory().numTensors, start);
});

void test("no tensor or native handle leaks across 100 steps, inside and outside tidy", () => {
  for (const [name, make] of makers) {
    const ps = [param([1, -2, 0.5]), param([0.1, 0.2, 0.3])];
    const opt = make(ps);
    // The first step creates the state inside an enclosing tidy, which must not free it.
    tidy(() => stepWith(opt, ps, 0));
    const tensors = memory().numTensors;
    const handles = memory().numHandles;
    for (let i = 0; i < 100; i++) {
      if (i % 2 === 0) stepWith(opt, ps, i % 5);
      else tidy(() => stepWith(opt, ps, i % 5));
      assert.equal(memory().numTensors, tensors, `${name}: live tensors after step ${i}`);
      assert.equal(memory().numHandles, handles, `${name}: native handles after step ${i}`);
    }
    assert.ok(!hasDisposedState(opt, ps), `${name}: state tensors alive`);
    opt.dispose();
    free(...ps);
  }
});

function hasDisposedState(opt: AnyOptimizer, ps: Tensor[]): boolean {
  return ps.some((p) => Object.values(opt.stateOf(p) ?? {}).some((v) => typeof v === "object" && v.isDisposed));
}
