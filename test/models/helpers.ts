// Shared checks for the model zoo: reference key lists built from small pieces, a few SGD steps
// on a fixed batch, deterministic evaluation without leaks, and state-dict round trips.
import assert from "node:assert/strict";
import { F, manualSeed, memory, randint, randn, tidy } from "../../src/engine/index.js";
import type { Module } from "../../src/nn/index.js";
import { SGD } from "../../src/optim/index.js";
import { noLeaks } from "../helpers/memory.js";

// ---- reference key lists (PyTorch's state_dict order: parameters, then buffers) ----

export function bnKeys(prefix: string): string[] {
  return ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"].map((k) => `${prefix}.${k}`);
}

export function weightKeys(prefix: string, bias: boolean): string[] {
  return bias ? [`${prefix}.weight`, `${prefix}.bias`] : [`${prefix}.weight`];
}

/** Asserts the exact, ordered key list, naming the first difference (a 100-line diff is unreadable). */
export function assertKeys(model: Module, expected: readonly string[]): void {
  const actual = [...model.stateDict().keys()];
  const firstDiff = actual.findIndex((k, i) => k !== expected[i]);
  assert.equal(
    firstDiff === -1 && actual.length === expected.length,
    true,
    `state-dict keys differ: ${actual.length} keys vs ${expected.length} expected; ` +
      (firstDiff === -1
        ? "one list is a prefix of the other"
        : `first difference at ${firstDiff}: got '${actual[firstDiff]}', expected '${expected[firstDiff]}'`),
  );
  assert.deepEqual(actual, expected);
}

export function shapeOf(model: Module, key: string): number[] {
  const t = model.stateDict().get(key);
  assert.ok(t !== undefined, `no state-dict entry '${key}'`);
  return t.shape;
}

// ---- behaviour ----

/** Logits' shape for a random batch, freeing everything it made. */
export function outputShape(model: Module, inputShape: number[]): number[] {
  return tidy(() => model.forward(randn(inputShape)).shape);
}

/**
 * Losses of `steps` plain SGD steps on one fixed random batch, in training mode, then the loss
 * after the last step. The optimizer and the batch are freed.
 */
export function lossesOnFixedBatch(
  model: Module,
  inputShape: number[],
  numClasses: number,
  steps: number,
  lr: number,
  momentum = 0,
): number[] {
  const x = randn(inputShape);
  const y = randint(0, numClasses, [inputShape[0] ?? 1]);
  const opt = new SGD(model.parameters(), { lr, momentum });
  const losses: number[] = [];
  try {
    model.train();
    for (let i = 0; i <= steps; i++) {
      losses.push(
        tidy(() => {
          const loss = F.crossEntropy(model.forward(x), y);
          if (i < steps) {
            opt.zeroGrad();
            loss.backward();
            opt.step();
          }
          return loss.item();
        }),
      );
    }
  } finally {
    opt.zeroGrad();
    opt.dispose();
    x.dispose();
    y.dispose();
  }
  return losses;
}

/** Asserts that training lowers the loss on the fixed batch to below `factor` of its start. */
export function assertLearns(
  model: Module,
  inputShape: number[],
  numClasses: number,
  o: { steps: number; lr: number; factor: number },
): void {
  noLeaks(() => {
    const losses = lossesOnFixedBatch(model, inputShape, numClasses, o.steps, o.lr);
    const first = losses[0] ?? NaN;
    const last = losses[losses.length - 1] ?? NaN;
    assert.ok(Number.isFinite(first) && Number.isFinite(last), `losses not finite: ${losses.join(", ")}`);
    assert.ok(
      last < o.factor * first,
      `loss should fall below ${o.factor} x ${first.toFixed(4)}; losses: ${losses.map((l) => l.toFixed(4)).join(", ")}`,
    );
  });
}

/**
 * A forward outside any tidy leaves exactly one new live tensor, its output (in training mode
 * too, where the autograd graph keeps the intermediates' storage but not their handles); in
 * evaluation mode two forwards give identical logits.
 */
export function assertDeterministicEval(model: Module, inputShape: number[]): void {
  const x = randn(inputShape);
  try {
    noLeaks(() => {
      for (const training of [true, false]) {
        model.train(training);
        const before = memory().numTensors;
        const a = model.forward(x);
        assert.equal(
          memory().numTensors,
          before + 1,
          `forward (training=${training}) left ${memory().numTensors - before - 1} intermediate(s) alive`,
        );
        const b = model.forward(x);
        try {
          if (!training) {
            const values = a.toArray();
            assert.ok(values.every(Number.isFinite), "eval logits are not finite");
            assert.deepEqual(b.toArray(), values);
          }
        } finally {
          a.dispose();
          b.dispose();
        }
      }
    });
  } finally {
    x.dispose();
    model.train();
  }
}

/**
 * A model with seed 1, after one training-mode forward (so BatchNorm's running statistics move
 * away from their defaults), is copied through stateDict() into a fresh model with seed 2; the
 * copy then gives exactly the same evaluation logits, which it did not before.
 */
export function assertStateDictRoundTrip(make: () => Module, inputShape: number[]): void {
  noLeaks(() => {
    manualSeed(1);
    const a = make();
    manualSeed(2);
    const b = make();
    const x = randn(inputShape);
    try {
      tidy(() => {
        a.forward(x);
      });
      a.eval();
      b.eval();
      const expected = tidy(() => a.forward(x).toArray());
      assert.notDeepEqual(
        tidy(() => b.forward(x).toArray()),
        expected,
        "two seeds gave the same model: the round trip would prove nothing",
      );
      const result = b.loadStateDict(a.stateDict());
      assert.deepEqual(result, { missingKeys: [], unexpectedKeys: [] });
      assert.deepEqual(
        tidy(() => b.forward(x).toArray()),
        expected,
      );
    } finally {
      x.dispose();
      a.dispose();
      b.dispose();
    }
  });
}
