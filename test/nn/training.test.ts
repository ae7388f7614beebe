// End to end: a few manual SGD steps on small models reduce the loss, with intermediates freed.
import { test } from "node:test";
import assert from "node:assert/strict";

import { type Tensor, F, manualSeed, memory, noGrad, rand, randint, randn, tidy } from "../../src/engine/index.js";
import * as nn from "../../src/nn/index.js";
import { noLeaks } from "./helpers.js";

/** p <- p - lr * grad, then clear the gradient (what the optimizers in src/optim will do). */
function sgdStep(model: nn.Module, lr: number): void {
  noGrad(() => {
    for (const p of model.parameters()) {
      const g = p.grad;
      if (g === null) continue;
      tidy(() => p.sub_(g.mul(lr)));
      g.dispose();
    }
  });
  model.zeroGrad();
}

function trainSteps(model: nn.Module, steps: number, lr: number, lossOf: () => Tensor): number[] {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    losses.push(
      tidy(() => {
        const loss = lossOf();
        loss.backward();
        return loss.item();
      }),
    );
    sgdStep(model, lr);
  }
  return losses;
}

void test("an MLP fits a smooth regression target", () => {
  noLeaks(() => {
    manualSeed(0);
    const model = new nn.Sequential(new nn.Linear(2, 16), new nn.Tanh(), new nn.Linear(16, 1));
    const x = rand([64, 2]);
    const y = tidy(() => x.select(1, 0).mul(3).sub(x.select(1, 1)).unsqueeze(1));
    const losses = trainSteps(model, 60, 0.1, () => F.mseLoss(model.forward(x), y));
    const first = losses[0] ?? NaN;
    const last = losses[losses.length - 1] ?? NaN;
    assert.ok(last < 0.2 * first, `loss went from ${first} to ${last}`);
    x.dispose();
    y.dispose();
    model.dispose();
  });
});

void test("a conv net with BatchNorm and pooling lowers its cross-entropy", () => {
  noLeaks(() => {
    manualSeed(1);
    const model = new nn.Sequential(
      new nn.Conv2d(1, 4, 3, { padding: 1 }),
      new nn.BatchNorm2d(4),
      new nn.ReLU(),
      new nn.MaxPool2d(2),
      new nn.Flatten(),
      new nn.Linear(4 * 4 * 4, 3),
    );
    const x = randn([12, 1, 8, 8]);
    const labels = randint(0, 3, [12]);
    const tensorsBefore = memory().numTensors;
    const losses = trainSteps(model, 15, 0.1, () => F.crossEntropy(model.forward(x), labels));
    assert.equal(memory().numTensors, tensorsBefore, "training steps leave no tensors behind");
    const first = losses[0] ?? NaN;
    const last = losses[losses.length - 1] ?? NaN;
    assert.ok(last < 0.5 * first, `loss went from ${first} to ${last}`);
    const bn = model.at(1);
    assert.ok(bn instanceof nn.BatchNorm2d);
    assert.equal(bn.numBatchesTracked?.item(), 15);
    x.dispose();
    labels.dispose();
    model.dispose();
  });
});

void test("a frozen layer keeps its weights while the rest trains", () => {
  noLeaks(() => {
    manualSeed(2);
    const frozen = new nn.Linear(3, 3);
    const head = new nn.Linear(3, 1);
    const model = new nn.Sequential(frozen, new nn.ReLU(), head);
    frozen.requiresGrad_(false);
    const before = frozen.weight.toArray();
    const headBefore = head.weight.toArray();
    const x = randn([8, 3]);
    const y = randn([8, 1]);
    trainSteps(model, 3, 0.1, () => F.mseLoss(model.forward(x), y));
    assert.deepEqual(frozen.weight.toArray(), before);
    assert.notDeepEqual(head.weight.toArray(), headBefore);
    x.dispose();
    y.dispose();
    model.dispose();
  });
});
