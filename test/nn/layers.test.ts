// Layer forward passes against values worked out by hand, argument validation and printing.
import { test } from "node:test";
import assert from "node:assert/strict";

import { type Tensor, arange, ones, tensor, tidy, zeros } from "../../src/engine/index.js";
import * as nn from "../../src/nn/index.js";
import { assertClose, assign, noLeaks, take } from "./helpers.js";

function req(t: Tensor | null): Tensor {
  assert.ok(t !== null, "expected a tensor");
  return t;
}

void test("Conv2d 1x1 with set weights mixes channels per pixel", () => {
  noLeaks(() => {
    const conv = new nn.Conv2d(2, 1, 1);
    assign(conv.weight, [2, -1]);
    assign(req(conv.bias), [0.5]);
    // channel 0 = [1, 2, 3, 4], channel 1 = [10, 20, 30, 40] on a 2x2 image
    const x = tensor([
      [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [10, 20],
          [30, 40],
        ],
      ],
    ]);
    const y = conv.forward(x);
    assert.deepEqual(y.shape, [1, 1, 2, 2]);
    assert.deepEqual(take(y), [2 * 1 - 10 + 0.5, 2 * 2 - 20 + 0.5, 2 * 3 - 30 + 0.5, 2 * 4 - 40 + 0.5]);
    x.dispose();
    conv.dispose();
  });
});

void test("Conv2d 3x3 with padding 1 counts in-bounds neighbours", () => {
  noLeaks(() => {
    const conv = new nn.Conv2d(1, 1, 3, { padding: 1, bias: false });
    assign(conv.weight, new Array<number>(9).fill(1));
    const x = ones([1, 1, 3, 3]);
    assert.deepEqual(take(conv.forward(x)), [4, 6, 4, 6, 9, 6, 4, 6, 4]);
    x.dispose();
    conv.dispose();
  });
});

void test("Conv2d stride and groups", () => {
  noLeaks(() => {
    const strided = new nn.Conv2d(1, 1, 2, { stride: 2, bias: false });
    assign(strided.weight, [1, 1, 1, 1]);
    const x = tidy(() => arange(1, 17, 1, { dtype: "float32" }).reshape([1, 1, 4, 4]));
    // 2x2 block sums of 1..16 laid out in rows of 4
    assert.deepEqual(take(strided.forward(x)), [1 + 2 + 5 + 6, 3 + 4 + 7 + 8, 9 + 10 + 13 + 14, 11 + 12 + 15 + 16]);

    const grouped = new nn.Conv2d(2, 2, 1, { groups: 2, bias: false });
    assert.deepEqual(grouped.weight.shape, [2, 1, 1, 1]);
    assign(grouped.weight, [3, -1]);
    const xg = tensor([[[[1]], [[5]]]]);
    assert.deepEqual(take(grouped.forward(xg)), [3, -5], "each output sees only its own group's channel");
    x.dispose();
    xg.dispose();
    strided.dispose();
    grouped.dispose();
  });
});

void test("Conv2d padding='same' with an even kernel pads bottom/right, as PyTorch", () => {
  noLeaks(() => {
    const conv = new nn.Conv2d(1, 1, 2, { padding: "same", bias: false });
    assign(conv.weight, [1, 1, 1, 1]);
    const x = tensor([
      [
        [
          [1, 2, 3],
          [4, 5, 6],
          [7, 8, 9],
        ],
      ],
    ]);
    const y = conv.forward(x);
    assert.deepEqual(y.shape, [1, 1, 3, 3]);
    assert.deepEqual(take(y), [12, 16, 9, 24, 28, 15, 15, 17, 9]);
    const odd = new nn.Conv2d(1, 1, 3, { padding: "same" });
    const yo = odd.forward(x);
    assert.deepEqual(yo.shape, [1, 1, 3, 3]);
    yo.dispose();
    x.dispose();
    conv.dispose();
    odd.dispose();
  });
});

void test("Conv2d validates its arguments with named, valued messages", () => {
  noLeaks(() => {
    assert.throws(() => new nn.Conv2d(3, 4, 3, { groups: 2 }), {
      message: "Conv2d: inChannels (3) must be divisible by groups (2)",
    });
    assert.throws(() => new nn.Conv2d(4, 3, 3, { groups: 2 }), {
      message: "Conv2d: outChannels (3) must be divisible by groups (2)",
    });
    assert.throws(() => new nn.Conv2d(0, 3, 3), { message: "Conv2d: inChannels must be a positive integer, got 0" });
    assert.throws(() => new nn.Conv2d(3, 3, [3, 0]), {
      message: "Conv2d: kernelSize must be a positive integer or a pair of them, got [3,0]",
    });
    assert.throws(() => new nn.Conv2d(3, 3, 3, { padding: -1 }), /Conv2d: padding must be a non-negative integer/);
    assert.throws(() => new nn.Conv2d(3, 3, 3, { stride: 2, padding: "same" }), {
      message: "Conv2d: padding='same' needs stride 1, got stride (2, 2)",
    });
  });
});

void test("Conv2d extraRepr matches PyTorch", () => {
  noLeaks(() => {
    const cases: [nn.Conv2d, string][] = [
      [
        new nn.Conv2d(3, 64, 3, { padding: 1, bias: false }),
        "Conv2d(3, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)",
      ],
      [new nn.Conv2d(3, 8, [1, 3]), "Conv2d(3, 8, kernel_size=(1, 3), stride=(1, 1))"],
      [
        new nn.Conv2d(4, 4, 3, { stride: 2, dilation: 2, groups: 4 }),
        "Conv2d(4, 4, kernel_size=(3, 3), stride=(2, 2), dilation=(2, 2), groups=4)",
      ],
      [new nn.Conv2d(1, 1, 3, { padding: "same" }), "Conv2d(1, 1, kernel_size=(3, 3), stride=(1, 1), padding=same)"],
    ];
    for (const [m, expected] of cases) {
      assert.equal(m.toString(), expected);
      m.dispose();
    }
  });
});

void test("Linear with set weights computes x W^T + b", () => {
  noLeaks(() => {
    const lin = new nn.Linear(2, 3);
    assign(lin.weight, [1, 2, 3, 4, -1, 0]);
    assign(req(lin.bias), [0.5, 0, -1]);
    const x = tensor([
      [1, 1],
      [2, -1],
    ]);
    assert.deepEqual(take(lin.forward(x)), [3.5, 7, -2, 0.5, 2, -3]);
    const noBias = new nn.Linear(2, 1, { bias: false });
    assert.equal(noBias.bias, null);
    assert.deepEqual([...noBias.stateDict().keys()], ["weight"]);
    assert.equal(noBias.toString(), "Linear(in_features=2, out_features=1, bias=False)");
    const wrong = ones([1, 3]);
    assert.throws(() => lin.forward(wrong), /linear: input's last dimension is 3/);
    wrong.dispose();
    x.dispose();
    lin.dispose();
    noBias.dispose();
  });
});

// Batch [2, 2, 1, 2]: channel 0 holds {1, 2, 3, 4}, channel 1 holds {0, 4, 2, 2}.
const BN_INPUT = [
  [[[1, 2]], [[0, 4]]],
  [[[3, 4]], [[2, 2]]],
];

void test("BatchNorm2d training: batch statistics, running stats with momentum 0.1 and unbiased variance", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm2d(2);
    assign(req(bn.weight), [2, 0.5]);
    assign(req(bn.bias), [1, -1]);
    const x = tensor(BN_INPUT);
    const y = take(bn.forward(x));

    // channel 0: mean 2.5, biased variance (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, unbiased 5/3
    // channel 1: mean 2, biased variance (4 + 4 + 0 + 0) / 4 = 2, unbiased 8/3
    const eps = 1e-5;
    const n0 = (v: number): number => ((v - 2.5) / Math.sqrt(1.25 + eps)) * 2 + 1;
    const n1 = (v: number): number => ((v - 2) / Math.sqrt(2 + eps)) * 0.5 - 1;
    assertClose(y, [n0(1), n0(2), n1(0), n1(4), n0(3), n0(4), n1(2), n1(2)], 1e-5, "output");
    assertClose(req(bn.runningMean).toArray(), [0.1 * 2.5, 0.1 * 2], 1e-6, "running_mean");
    assertClose(req(bn.runningVar).toArray(), [0.9 + 0.1 * (5 / 3), 0.9 + 0.1 * (8 / 3)], 1e-6, "running_var");
    assert.equal(req(bn.numBatchesTracked).item(), 1);

    // A second step blends again: 0.9 * 0.25 + 0.1 * 2.5 = 0.475.
    take(bn.forward(x));
    assertClose(req(bn.runningMean).toArray(), [0.475, 0.38], 1e-6, "running_mean after two steps");
    assert.equal(req(bn.numBatchesTracked).item(), 2);
    x.dispose();
    bn.dispose();
  });
});

void test("BatchNorm2d eval uses the running statistics and changes nothing", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm2d(2);
    assign(req(bn.runningMean), [1, -2]);
    assign(req(bn.runningVar), [4, 0.25]);
    assign(req(bn.weight), [3, 1]);
    assign(req(bn.bias), [0, 10]);
    bn.eval();
    const x = tensor(BN_INPUT);
    const eps = 1e-5;
    const e0 = (v: number): number => ((v - 1) / Math.sqrt(4 + eps)) * 3;
    const e1 = (v: number): number => (v + 2) / Math.sqrt(0.25 + eps) + 10;
    assertClose(take(bn.forward(x)), [e0(1), e0(2), e1(0), e1(4), e0(3), e0(4), e1(2), e1(2)], 1e-5);
    assert.deepEqual(req(bn.runningMean).toArray(), [1, -2]);
    assert.equal(req(bn.numBatchesTracked).item(), 0);
    x.dispose();
    bn.dispose();
  });
});

void test("BatchNorm2d with momentum null keeps a cumulative average", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm2d(1, { momentum: null, affine: false });
    assert.deepEqual([...bn.stateDict().keys()], ["running_mean", "running_var", "num_batches_tracked"]);
    const a = tensor([[[[1, 3]]], [[[5, 7]]]]); // mean 4, unbiased variance 20/3
    const b = tensor([[[[0, 0]]], [[[2, 2]]]]); // mean 1, unbiased variance 4/3
    take(bn.forward(a));
    assertClose(req(bn.runningMean).toArray(), [4], 1e-6);
    assertClose(req(bn.runningVar).toArray(), [20 / 3], 1e-6);
    take(bn.forward(b));
    assertClose(req(bn.runningMean).toArray(), [2.5], 1e-6);
    assertClose(req(bn.runningVar).toArray(), [(20 / 3 + 4 / 3) / 2], 1e-6);
    a.dispose();
    b.dispose();
    bn.dispose();
  });
});

void test("BatchNorm2d without running stats normalises with batch statistics in eval too", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm2d(2, { trackRunningStats: false });
    assert.deepEqual([...bn.stateDict().keys()], ["weight", "bias"]);
    bn.eval();
    const x = tensor(BN_INPUT);
    const y = take(bn.forward(x));
    assertClose([y[0] ?? NaN], [(1 - 2.5) / Math.sqrt(1.25 + 1e-5)], 1e-5);
    x.dispose();
    bn.dispose();
  });
});

void test("BatchNorm2d validates arguments and input rank; prints like PyTorch", () => {
  noLeaks(() => {
    assert.throws(() => new nn.BatchNorm2d(0), {
      message: "BatchNorm2d: numFeatures must be a positive integer, got 0",
    });
    assert.throws(() => new nn.BatchNorm2d(2, { momentum: 1.5 }), {
      message: "BatchNorm2d: momentum must be in [0, 1] or null, got 1.5",
    });
    assert.throws(() => new nn.BatchNorm2d(2, { eps: 0 }), {
      message: "BatchNorm2d: eps must be a positive number, got 0",
    });
    const bn = new nn.BatchNorm2d(2, { eps: 1e-3, affine: false });
    assert.equal(bn.toString(), "BatchNorm2d(2, eps=0.001, momentum=0.1, affine=False, track_running_stats=True)");
    const x3 = zeros([2, 2, 3]);
    assert.throws(() => bn.forward(x3), {
      message: "BatchNorm2d: expected a 4-D input [N, C, H, W], got shape [2, 2, 3]",
    });
    const wrongC = zeros([2, 3, 1, 1]);
    assert.throws(() => bn.forward(wrongC), /3 channels/);
    x3.dispose();
    wrongC.dispose();
    bn.dispose();
  });
});

void test("BatchNorm1d normalises features of [N, C]", () => {
  noLeaks(() => {
    const bn = new nn.BatchNorm1d(1);
    const x = tensor([[1], [3]]);
    assertClose(take(bn.forward(x)), [-1 / Math.sqrt(1 + 1e-5), 1 / Math.sqrt(1 + 1e-5)], 1e-6);
    x.dispose();
    bn.dispose();
  });
});

void test("LayerNorm normalises the trailing dimensions and applies the affine map", () => {
  noLeaks(() => {
    const ln = new nn.LayerNorm(4);
    assert.deepEqual(req(ln.weight).toArray(), [1, 1, 1, 1]);
    assign(req(ln.weight), [1, 2, 1, 1]);
    assign(req(ln.bias), [0, 0, 1, 0]);
    const x = tensor([
      [1, 2, 3, 4],
      [2, 2, 2, 2],
    ]);
    const s = Math.sqrt(1.25 + 1e-5); // row 0: mean 2.5, biased variance 1.25
    assertClose(take(ln.forward(x)), [-1.5 / s, (-0.5 / s) * 2, 0.5 / s + 1, 1.5 / s, 0, 0, 1, 0], 1e-5);
    assert.equal(ln.toString(), "LayerNorm((4,), eps=1e-05, elementwise_affine=True)");

    const ln2 = new nn.LayerNorm([2, 2], { elementwiseAffine: false, eps: 1e-6 });
    assert.deepEqual([...ln2.stateDict().keys()], []);
    const x2 = tensor([
      [
        [0, 2],
        [4, 6],
      ],
    ]); // mean 3, biased variance 5
    assertClose(
      take(ln2.forward(x2)),
      [-3, -1, 1, 3].map((v) => v / Math.sqrt(5 + 1e-6)),
      1e-5,
    );
    assert.equal(ln2.toString(), "LayerNorm((2, 2), eps=1e-06, elementwise_affine=False)");

    const noBias = new nn.LayerNorm(3, { bias: false });
    assert.deepEqual([...noBias.stateDict().keys()], ["weight"]);
    assert.throws(() => new nn.LayerNorm([]), /at least one dimension/);
    x.dispose();
    x2.dispose();
    ln.dispose();
    ln2.dispose();
    noBias.dispose();
  });
});

void test("activations compute their functions", () => {
  noLeaks(() => {
    const x = tensor([-2, -0.5, 0, 1, 7]);
    assert.deepEqual(take(new nn.ReLU().forward(x)), [0, 0, 0, 1, 7]);
    assert.deepEqual(take(new nn.ReLU6().forward(x)), [0, 0, 0, 1, 6]);
    assertClose(
      take(new nn.Sigmoid().forward(x)),
      [-2, -0.5, 0, 1, 7].map((v) => 1 / (1 + Math.exp(-v))),
      1e-6,
    );
    assertClose(
      take(new nn.Tanh().forward(x)),
      [-2, -0.5, 0, 1, 7].map((v) => Math.tanh(v)),
      1e-6,
    );
    // GELU(1) = Phi(1) = 0.841344746; the tanh form gives 0.841191990.
    const one = tensor([1]);
    assertClose(take(new nn.GELU().forward(one)), [0.841344746], 1e-6);
    assertClose(take(new nn.GELU({ approximate: "tanh" }).forward(one)), [0.84119199], 1e-6);
    assert.equal(new nn.GELU({ approximate: "tanh" }).toString(), "GELU(approximate='tanh')");
    // As an untyped (JavaScript) caller could pass it.
    assert.throws(
      () => Reflect.construct(nn.GELU, [{ approximate: "fast" }]),
      /GELU: approximate must be one of 'none', 'tanh'/,
    );
    one.dispose();
    x.dispose();
  });
});

void test("Identity returns a new handle to the same values", () => {
  noLeaks(() => {
    const x = tensor([1, 2]);
    const y = new nn.Identity().forward(x);
    assert.notEqual(y, x);
    y.dispose();
    assert.deepEqual(x.toArray(), [1, 2], "disposing the output leaves the input alive");
    x.dispose();
  });
});

void test("Flatten keeps the batch dimension by default", () => {
  noLeaks(() => {
    const x = zeros([2, 3, 4, 5]);
    assert.deepEqual(take(new nn.Flatten().forward(x)).length, 120);
    const a = new nn.Flatten().forward(x);
    assert.deepEqual(a.shape, [2, 60]);
    const b = new nn.Flatten(0, 1).forward(x);
    assert.deepEqual(b.shape, [6, 4, 5]);
    assert.throws(() => new nn.Flatten(2, 1).forward(x), /Flatten: dims 2\.\.1 are not a valid range/);
    a.dispose();
    b.dispose();
    x.dispose();
  });
});

void test("pooling layers compute max, average and adaptive average", () => {
  noLeaks(() => {
    const x = tidy(() => arange(1, 17, 1, { dtype: "float32" }).reshape([1, 1, 4, 4]));
    assert.deepEqual(take(new nn.MaxPool2d(2).forward(x)), [6, 8, 14, 16]);
    assert.deepEqual(take(new nn.AvgPool2d(2).forward(x)), [3.5, 5.5, 11.5, 13.5]);
    assert.deepEqual(take(new nn.AdaptiveAvgPool2d(1).forward(x)), [8.5]);
    assert.deepEqual(take(new nn.AdaptiveAvgPool2d([2, 1]).forward(x)), [4.5, 12.5]);
    const strided = new nn.MaxPool2d(3, { stride: 1, padding: 1 }).forward(x);
    assert.deepEqual(strided.shape, [1, 1, 4, 4]);
    assert.deepEqual(take(strided).slice(0, 4), [6, 7, 8, 8]);
    x.dispose();
  });
});

void test("pooling validates and prints like PyTorch", () => {
  assert.equal(
    new nn.MaxPool2d(2).toString(),
    "MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)",
  );
  assert.equal(
    new nn.MaxPool2d([3, 3], { stride: 2, padding: 1 }).toString(),
    "MaxPool2d(kernel_size=(3, 3), stride=2, padding=1, dilation=1, ceil_mode=False)",
  );
  assert.equal(new nn.AvgPool2d(2).toString(), "AvgPool2d(kernel_size=2, stride=2, padding=0)");
  assert.equal(new nn.AdaptiveAvgPool2d([1, 1]).toString(), "AdaptiveAvgPool2d(output_size=(1, 1))");
  assert.throws(() => new nn.MaxPool2d(2, { padding: 2 }), {
    message: "MaxPool2d: padding (2) must be at most half the kernel size (2)",
  });
  assert.throws(() => new nn.AvgPool2d(0), /AvgPool2d: kernelSize must be a positive integer/);
  assert.throws(() => new nn.AdaptiveAvgPool2d(0), /AdaptiveAvgPool2d: outputSize must be a positive integer/);
});

void test("Dropout validates p and prints like PyTorch", () => {
  assert.equal(new nn.Dropout().toString(), "Dropout(p=0.5, inplace=False)");
  assert.equal(new nn.Dropout(0.1).toString(), "Dropout(p=0.1, inplace=False)");
  assert.throws(() => new nn.Dropout(1.5), { message: "Dropout: p must be a probability in [0, 1], got 1.5" });
});
