// Module mechanics: registration, PyTorch state-dict keys, iteration order, modes, gradients,
// printing and memory ownership.
import { test } from "node:test";
import assert from "node:assert/strict";

import { type Tensor, F, cudaAvailable, memory, ones, randn, tensor, tidy, zeros } from "../../src/engine/index.js";
import * as nn from "../../src/nn/index.js";
import { noLeaks, take } from "./helpers.js";

/** A ResNet-like block, to check nested dotted keys. */
class Block extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  constructor(channels: number) {
    super();
    this.conv1 = this.registerModule("conv1", new nn.Conv2d(channels, channels, 3, { padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new nn.BatchNorm2d(channels));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.bn1.forward(this.conv1.forward(x)));
  }
}

class WithBuffers extends nn.Module {
  constructor() {
    super();
    this.registerParameter("scale", ones([2]));
    this.registerBuffer("kept", zeros([2]));
    this.registerBuffer("scratch", zeros([3]), { persistent: false });
    this.registerBuffer("absent", null);
  }
  forward(x: Tensor): Tensor {
    return x.mul(this.requireParameter("scale"));
  }
}

void test("state-dict keys of Conv2d+BatchNorm2d+ReLU+Linear are PyTorch's", () => {
  noLeaks(() => {
    const model = new nn.Sequential(
      new nn.Conv2d(3, 4, 3),
      new nn.BatchNorm2d(4),
      new nn.ReLU(),
      new nn.Flatten(),
      new nn.Linear(4, 2),
    );
    assert.deepEqual(
      [...model.stateDict().keys()],
      [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "4.weight",
        "4.bias",
      ],
    );
    const sd = model.stateDict();
    assert.deepEqual(sd.get("0.weight")?.shape, [4, 3, 3, 3]);
    assert.deepEqual(sd.get("1.num_batches_tracked")?.shape, []);
    assert.equal(sd.get("1.num_batches_tracked")?.dtype, "int64");
    assert.deepEqual(sd.get("4.weight")?.shape, [2, 4]);
    model.dispose();
  });
});

void test("nested modules give layer1.0.conv1.weight-style keys", () => {
  noLeaks(() => {
    const net = new (class Net extends nn.Module {
      constructor() {
        super();
        this.registerModule("layer1", new nn.Sequential(new Block(2), new Block(2)));
        this.registerModule("fc", new nn.Linear(2, 3, { bias: false }));
      }
      forward(x: Tensor): Tensor {
        return x.alias();
      }
    })();
    assert.deepEqual(
      [...net.stateDict().keys()],
      [
        "layer1.0.conv1.weight",
        "layer1.0.bn1.weight",
        "layer1.0.bn1.bias",
        "layer1.0.bn1.running_mean",
        "layer1.0.bn1.running_var",
        "layer1.0.bn1.num_batches_tracked",
        "layer1.1.conv1.weight",
        "layer1.1.bn1.weight",
        "layer1.1.bn1.bias",
        "layer1.1.bn1.running_mean",
        "layer1.1.bn1.running_var",
        "layer1.1.bn1.num_batches_tracked",
        "fc.weight",
      ],
    );
    assert.deepEqual(
      net.namedModules().map(([n]) => n),
      ["", "layer1", "layer1.0", "layer1.0.conv1", "layer1.0.bn1", "layer1.1", "layer1.1.conv1", "layer1.1.bn1", "fc"],
    );
    assert.deepEqual(
      net.namedParameters().map(([n]) => n),
      [
        "layer1.0.conv1.weight",
        "layer1.0.bn1.weight",
        "layer1.0.bn1.bias",
        "layer1.1.conv1.weight",
        "layer1.1.bn1.weight",
        "layer1.1.bn1.bias",
        "fc.weight",
      ],
    );
    assert.deepEqual(net.namedParameters("", false), []);
    assert.deepEqual(
      net.namedChildren().map(([n]) => n),
      ["layer1", "fc"],
    );
    net.dispose();
  });
});

void test("non-persistent buffers stay out of the state dict; absent entries are skipped", () => {
  noLeaks(() => {
    const m = new WithBuffers();
    assert.deepEqual([...m.stateDict().keys()], ["scale", "kept"]);
    assert.deepEqual(
      m.namedBuffers().map(([n]) => n),
      ["kept", "scratch"],
    );
    assert.equal(m.getBuffer("absent"), null);
    assert.equal(m.parameters()[0]?.requiresGrad, true);
    assert.equal(m.buffers()[0]?.requiresGrad, false);
    m.dispose();
  });
});

void test("stateDict values are the module's own tensors", () => {
  noLeaks(() => {
    const lin = new nn.Linear(2, 2);
    assert.equal(lin.stateDict().get("weight"), lin.weight);
    lin.dispose();
  });
});

void test("registration rejects bad and clashing names", () => {
  noLeaks(() => {
    const m = new WithBuffers();
    const t = zeros([1]);
    assert.throws(() => m.registerBuffer("scale", t), {
      message: 'WithBuffers: name "scale" is already used by a parameter',
    });
    assert.throws(() => m.registerParameter("kept", t), {
      message: 'WithBuffers: name "kept" is already used by a buffer',
    });
    assert.throws(() => m.registerModule("a.b", new nn.ReLU()), {
      message: 'WithBuffers: name "a.b" must not contain "."',
    });
    assert.throws(() => m.registerParameter("", t), /must not be empty/);
    const derived = tidy(() => zeros([1], { requiresGrad: true }).mul(2));
    assert.throws(() => m.registerParameter("w", derived), /must be a leaf tensor/);
    assert.throws(() => m.getParameter("nope"), { message: "WithBuffers has no parameter 'nope'" });
    derived.dispose();
    t.dispose();
    m.dispose();
  });
});

void test("registering a parameter keeps it alive past the enclosing tidy", () => {
  const before = memory().numTensors;
  const lin = tidy(() => new nn.Linear(3, 2));
  assert.equal(memory().numTensors, before + 2);
  assert.deepEqual(lin.weight.shape, [2, 3]);
  lin.dispose();
  assert.equal(memory().numTensors, before);
  assert.ok(lin.weight.isDisposed);
});

void test("a parameter shared by two modules is listed and counted once", () => {
  noLeaks(() => {
    const a = new nn.Linear(2, 2, { bias: false });
    const b = new nn.Linear(2, 2, { bias: false });
    b.weight.dispose();
    b.registerParameter("weight", a.weight);
    const seq = new nn.Sequential(a, b);
    assert.deepEqual(
      seq.namedParameters().map(([n]) => n),
      ["0.weight"],
    );
    assert.equal(seq.numParameters(), 4);
    assert.deepEqual([...seq.stateDict().keys()], ["0.weight", "1.weight"]);
    seq.dispose();
  });
});

void test("numParameters counts elements, optionally only trainable ones", () => {
  noLeaks(() => {
    const conv = new nn.Conv2d(3, 4, 3);
    assert.equal(conv.numParameters(), 4 * 3 * 3 * 3 + 4);
    const model = new nn.Sequential(conv, new nn.BatchNorm2d(4), new nn.Linear(4, 2, { bias: false }));
    assert.equal(model.numParameters(), 112 + 8 + 8);
    conv.requiresGrad_(false);
    assert.equal(model.numParameters({ trainableOnly: true }), 16);
    model.dispose();
  });
});

void test("train() and eval() propagate to every descendant", () => {
  noLeaks(() => {
    const inner = new nn.Sequential(new nn.Dropout(0.5), new nn.BatchNorm2d(2));
    const model = new nn.Sequential(new nn.Linear(2, 2), inner);
    assert.ok(model.modules().every((m) => m.training));
    assert.equal(model.eval(), model);
    assert.ok(model.modules().every((m) => !m.training));
    model.train();
    assert.ok(model.modules().every((m) => m.training));
    inner.train(false);
    assert.deepEqual(
      model.modules().map((m) => m.training),
      [true, true, false, false, false],
    );
    model.dispose();
  });
});

void test("Dropout is the identity in eval mode and drops with scaling in train mode", () => {
  noLeaks(() => {
    const drop = new nn.Dropout(0.5);
    const x = ones([4000]);
    drop.eval();
    assert.ok(take(drop.forward(x)).every((v) => v === 1));
    drop.train();
    const y = take(drop.forward(x));
    assert.ok(
      y.every((v) => v === 0 || v === 2),
      "kept elements are scaled by 1/(1-p)",
    );
    const zeroFraction = y.filter((v) => v === 0).length / y.length;
    assert.ok(Math.abs(zeroFraction - 0.5) < 0.05, `zero fraction ${zeroFraction}`);
    x.dispose();
  });
});

void test("zeroGrad clears gradients after a backward pass", () => {
  noLeaks(() => {
    const model = new nn.Sequential(new nn.Linear(3, 4), new nn.ReLU(), new nn.Linear(4, 1));
    const x = randn([5, 3]);
    tidy(() => model.forward(x).sum().backward());
    const grads = model.parameters().map((p) => p.grad);
    assert.ok(grads.every((g) => g !== null));
    for (const g of grads) g?.dispose();
    model.zeroGrad();
    assert.ok(model.parameters().every((p) => p.grad === null));
    x.dispose();
    model.dispose();
  });
});

void test("toString prints the tree as PyTorch does", () => {
  noLeaks(() => {
    const model = new nn.Sequential(
      new nn.Conv2d(3, 64, 3, { padding: 1, bias: false }),
      new nn.BatchNorm2d(64),
      new nn.ReLU(),
      new nn.Sequential(new nn.AdaptiveAvgPool2d([1, 1]), new nn.Flatten()),
      new nn.Linear(64, 10),
    );
    assert.equal(
      model.toString(),
      [
        "Sequential(",
        "  (0): Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)",
        "  (1): BatchNorm2d(64, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)",
        "  (2): ReLU()",
        "  (3): Sequential(",
        "    (0): AdaptiveAvgPool2d(output_size=(1, 1))",
        "    (1): Flatten(start_dim=1, end_dim=-1)",
        "  )",
        "  (4): Linear(in_features=64, out_features=10, bias=True)",
        ")",
      ].join("\n"),
    );
    model.dispose();
  });
});

void test("Sequential indexing, iteration and from()", () => {
  noLeaks(() => {
    const relu = new nn.ReLU();
    const lin = new nn.Linear(2, 2);
    const seq = nn.Sequential.from([lin, relu]);
    assert.equal(seq.length, 2);
    assert.equal(seq.at(0), lin);
    assert.equal(seq.at(-1), relu);
    assert.deepEqual([...seq], [lin, relu]);
    assert.throws(() => seq.at(2), { message: "Sequential.at: index 2 out of range for 2 module(s)" });
    const empty = new nn.Sequential();
    const x = tensor([1, -2]);
    assert.deepEqual(take(empty.forward(x)), [1, -2]);
    x.dispose();
    seq.dispose();
  });
});

void test("Sequential.forward frees every intermediate activation", () => {
  const model = new nn.Sequential(
    new nn.Linear(4, 8),
    new nn.ReLU(),
    new nn.Linear(8, 8),
    new nn.Tanh(),
    new nn.Linear(8, 2),
  );
  const x = randn([3, 4]);
  const before = memory().numTensors;
  const y = model.forward(x);
  assert.equal(memory().numTensors, before + 1, "only the output survives");
  assert.deepEqual(y.shape, [3, 2]);
  y.dispose();
  x.dispose();
  model.dispose();
});

void test("ModuleList registers blocks without a forward of its own", () => {
  noLeaks(() => {
    const list = new nn.ModuleList<nn.Module>([new nn.Linear(2, 2), new nn.Linear(2, 2, { bias: false })]);
    list.append(new nn.LayerNorm(2));
    assert.equal(list.length, 3);
    assert.deepEqual([...list.stateDict().keys()], ["0.weight", "0.bias", "1.weight", "2.weight", "2.bias"]);
    const x = ones([1, 2]);
    assert.throws(() => list.forward(x), /ModuleList has no forward/);
    const y = tidy(() => {
      let h = x;
      for (const m of list) h = m.forward(h);
      return h;
    });
    assert.deepEqual(y.shape, [1, 2]);
    y.dispose();
    x.dispose();
    list.dispose();
  });
});

void test("apply visits children before the parent", () => {
  noLeaks(() => {
    const model = new nn.Sequential(new nn.Linear(2, 2), new nn.Sequential(new nn.ReLU()));
    const seen: string[] = [];
    model.apply((m) => seen.push(m.typeName));
    assert.deepEqual(seen, ["Linear", "ReLU", "Sequential", "Sequential"]);
    model.dispose();
  });
});

void test("to('cpu') keeps the model usable", () => {
  noLeaks(() => {
    const lin = new nn.Linear(2, 1);
    const x = ones([1, 2]);
    const before = take(lin.forward(x));
    lin.to("cpu");
    assert.deepEqual(take(lin.forward(x)), before);
    assert.throws(() => lin.to("tpu"), /device: expected/);
    x.dispose();
    lin.dispose();
  });
});

void test(
  "to('cuda') moves parameters and buffers and keeps them trainable",
  { skip: !cudaAvailable() && "no CUDA device" },
  () => {
    noLeaks(() => {
      const model = new nn.Sequential(
        new nn.Conv2d(1, 2, 3),
        new nn.BatchNorm2d(2),
        new nn.Flatten(),
        new nn.Linear(2, 1),
      );
      const xCpu = ones([2, 1, 3, 3]);
      const expected = take(model.eval().forward(xCpu));
      model.to("cuda");
      assert.ok(model.parameters().every((p) => p.device.startsWith("cuda") && p.requiresGrad && p.isLeaf));
      assert.ok(model.buffers().every((b) => b.device.startsWith("cuda")));
      const x = xCpu.to({ device: "cuda" });
      const y = model.forward(x);
      const yCpu = y.to({ device: "cpu" });
      const got = take(yCpu);
      for (let i = 0; i < got.length; i++) assert.ok(Math.abs((got[i] ?? 0) - (expected[i] ?? 0)) < 1e-4);
      tidy(() => F.mseLoss(y, zeros([2, 1], { device: "cuda" })).backward());
      const g = model.parameters()[0]?.grad ?? null;
      assert.ok(g !== null);
      g.dispose();
      y.dispose();
      x.dispose();
      xCpu.dispose();
      model.dispose();
    });
  },
);

void test("a module shared under two names is saved under both paths, as in PyTorch", () => {
  noLeaks(() => {
    const shared = new nn.Linear(2, 2, { bias: false });
    const model = new nn.Sequential(shared, new nn.ReLU(), shared);
    assert.deepEqual([...model.stateDict().keys()], ["0.weight", "2.weight"]);
    assert.deepEqual(
      model.namedModules().map(([n]) => n),
      ["", "0", "1"],
    );
    assert.equal(model.numParameters(), 4);
    assert.throws(() => shared.registerModule("loop", model), {
      message: "Linear: registering 'loop' would make the module its own descendant",
    });
    model.dispose();
  });
});
