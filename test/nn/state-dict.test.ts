// loadStateDict: round trips, one error listing every problem, non-strict loading, dtype
// conversion, and PyTorch's tolerance of checkpoints without num_batches_tracked.
import { test } from "node:test";
import assert from "node:assert/strict";

import { type Tensor, manualSeed, randn, scalar, tensor, tidy, zeros } from "../../src/engine/index.js";
import * as nn from "../../src/nn/index.js";
import { noLeaks, take } from "./helpers.js";

function makeModel(seed: number): nn.Sequential {
  manualSeed(seed);
  return new nn.Sequential(
    new nn.Conv2d(2, 3, 3, { padding: 1 }),
    new nn.BatchNorm2d(3),
    new nn.ReLU(),
    new nn.AdaptiveAvgPool2d(1),
    new nn.Flatten(),
    new nn.Linear(3, 2),
  );
}

/** Clones of every entry, as a checkpoint file would hold. */
function snapshot(m: nn.Module): Map<string, Tensor> {
  return new Map([...m.stateDict()].map(([k, t]) => [k, t.clone()]));
}

function disposeAll(sd: Map<string, Tensor>): void {
  for (const t of sd.values()) t.dispose();
}

void test("round trip: a fresh model with another seed reproduces the outputs after loading", () => {
  noLeaks(() => {
    const a = makeModel(1);
    const x = randn([4, 2, 5, 5]);
    // A training pass moves the running statistics away from their defaults, so buffers matter.
    take(a.forward(x));
    a.eval();
    const expected = take(a.forward(x));

    const b = makeModel(2).eval();
    assert.notDeepEqual(take(b.forward(x)), expected);
    const result = b.loadStateDict(a.stateDict());
    assert.deepEqual(result, { missingKeys: [], unexpectedKeys: [] });
    assert.deepEqual(take(b.forward(x)), expected);
    assert.equal(b.stateDict().get("1.num_batches_tracked")?.item(), 1);
    // Values were copied, not shared: the two models stay independent.
    assert.notEqual(b.stateDict().get("0.weight"), a.stateDict().get("0.weight"));
    assert.ok(b.parameters().every((p) => p.requiresGrad && p.isLeaf));

    x.dispose();
    a.dispose();
    b.dispose();
  });
});

void test("a plain object works as a state dict", () => {
  noLeaks(() => {
    const lin = new nn.Linear(2, 1);
    const w = tensor([[3, 4]]);
    const bias = tensor([0.5]);
    lin.loadStateDict({ weight: w, bias });
    assert.deepEqual(lin.weight.toArray(), [3, 4]);
    assert.deepEqual(lin.bias?.toArray(), [0.5]);
    w.dispose();
    bias.dispose();
    lin.dispose();
  });
});

void test("strict loading reports missing, unexpected and mis-shaped keys together, copying nothing", () => {
  noLeaks(() => {
    const model = makeModel(3);
    const source = makeModel(4);
    const sd = snapshot(source);
    source.dispose();
    sd.get("1.running_var")?.dispose();
    sd.delete("1.running_var");
    sd.get("5.bias")?.dispose();
    sd.delete("5.bias");
    sd.set("5.extra", zeros([1]));
    sd.set("head.weight", zeros([2]));
    sd.get("0.weight")?.dispose();
    sd.set("0.weight", zeros([3, 2, 5, 5]));
    const before = model.getModule("5").getParameter("weight")?.toArray();

    let error: unknown;
    try {
      model.loadStateDict(sd);
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof nn.StateDictError);
    assert.deepEqual(error.missingKeys, ["1.running_var", "5.bias"]);
    assert.deepEqual(error.unexpectedKeys, ["5.extra", "head.weight"]);
    assert.deepEqual(error.shapeMismatches, [{ key: "0.weight", expected: [3, 2, 3, 3], actual: [3, 2, 5, 5] }]);
    assert.equal(
      error.message,
      [
        "Error(s) in loading state_dict for Sequential:",
        '  Missing key(s) in state_dict: "1.running_var", "5.bias".',
        '  Unexpected key(s) in state_dict: "5.extra", "head.weight".',
        "  size mismatch for 0.weight: copying a param with shape [3, 2, 5, 5] from checkpoint, the shape in current model is [3, 2, 3, 3].",
      ].join("\n"),
    );
    assert.deepEqual(
      model.getModule("5").getParameter("weight")?.toArray(),
      before,
      "nothing is copied when loading fails",
    );

    disposeAll(sd);
    model.dispose();
  });
});

void test("non-strict loading copies what matches and returns the rest", () => {
  noLeaks(() => {
    const model = makeModel(5);
    const source = makeModel(6);
    const sd = snapshot(source);
    sd.get("5.weight")?.dispose();
    sd.delete("5.weight");
    sd.set("aux.bias", zeros([2]));
    const keptWeight = model.getModule("5").getParameter("weight")?.toArray();

    const result = model.loadStateDict(sd, { strict: false });
    assert.deepEqual(result, { missingKeys: ["5.weight"], unexpectedKeys: ["aux.bias"] });
    assert.deepEqual(
      model.getModule("0").getParameter("weight")?.toArray(),
      source.getModule("0").getParameter("weight")?.toArray(),
    );
    assert.deepEqual(
      model.getModule("5").getParameter("bias")?.toArray(),
      source.getModule("5").getParameter("bias")?.toArray(),
    );
    assert.deepEqual(model.getModule("5").getParameter("weight")?.toArray(), keptWeight);

    disposeAll(sd);
    source.dispose();
    model.dispose();
  });
});

void test("non-strict loading still throws on shape mismatches, listing only those", () => {
  noLeaks(() => {
    const lin = new nn.Linear(3, 2);
    const w = zeros([2, 4]);
    const extra = zeros([1]);
    assert.throws(() => lin.loadStateDict({ weight: w, extra }, { strict: false }), {
      name: "StateDictError",
      message:
        "Error(s) in loading state_dict for Linear:\n" +
        "  size mismatch for weight: copying a param with shape [2, 4] from checkpoint, the shape in current model is [2, 3].",
    });
    w.dispose();
    extra.dispose();
    lin.dispose();
  });
});

void test("values are converted to the module's dtype (e.g. num_batches_tracked)", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm2d(2);
    const sd = {
      weight: tensor([2, 3], { dtype: "float64" }),
      bias: tensor([0, 1]),
      running_mean: tensor([0.5, -0.5], { dtype: "float64" }),
      running_var: tensor([4, 9]),
      num_batches_tracked: scalar(7, { dtype: "int32" }),
    };
    bn.loadStateDict(sd);
    assert.equal(bn.weight?.dtype, "float32");
    assert.deepEqual(bn.weight?.toArray(), [2, 3]);
    assert.deepEqual(bn.runningMean?.toArray(), [0.5, -0.5]);
    assert.equal(bn.numBatchesTracked?.dtype, "int64");
    assert.equal(bn.numBatchesTracked?.item(), 7);
    for (const t of Object.values(sd)) t.dispose();
    bn.dispose();
  });
});

void test("old checkpoints without num_batches_tracked load strictly, as in PyTorch", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm2d(2);
    const sd = snapshot(bn);
    sd.get("num_batches_tracked")?.dispose();
    sd.delete("num_batches_tracked");
    assert.deepEqual(bn.loadStateDict(sd), { missingKeys: [], unexpectedKeys: [] });
    disposeAll(sd);
    bn.dispose();
  });
});

void test("a non-tensor value is a clear TypeError", () => {
  noLeaks(() => {
    const lin = new nn.Linear(1, 1, { bias: false });
    // As an untyped (JavaScript) caller would pass it.
    const load = (): unknown => Reflect.apply(lin.loadStateDict, lin, [{ weight: [1] }]);
    assert.throws(load, { name: "TypeError", message: "Linear.loadStateDict: value for 'weight' is not a Tensor" });
    lin.dispose();
  });
});

void test("loading works inside tidy and leaves the source tensors to their owner", () => {
  noLeaks(() => {
    const lin = new nn.Linear(2, 2);
    tidy(() => {
      lin.loadStateDict({
        weight: tensor([
          [1, 0],
          [0, 1],
        ]),
        bias: tensor([1, 2]),
      });
    });
    const x = tensor([[5, 6]]);
    assert.deepEqual(take(lin.forward(x)), [6, 8]);
    x.dispose();
    lin.dispose();
  });
});
