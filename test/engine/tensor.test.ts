// Creation, export, dtypes, forward values against hand-computed cases, and error messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  tensor,
  zeros,
  ones,
  full,
  arange,
  linspace,
  eye,
  rand,
  randn,
  randint,
  randperm,
  fromBytes,
  manualSeed,
  cat,
  stack,
  where,
  F,
  tidy,
  cudaAvailable,
  empty,
  type Tensor,
} from "../../src/engine/index.js";
import { close } from "../helpers/gradcheck.js";
import { noLeaks } from "../helpers/memory.js";

test("typed arrays of every supported dtype round-trip exactly", () =>
  noLeaks(() =>
    tidy(() => {
      const f32 = tensor(new Float32Array([1.5, -2.25, 3e-8]), { shape: [3] });
      assert.equal(f32.dtype, "float32");
      assert.deepEqual(f32.toArray(), Array.from(new Float32Array([1.5, -2.25, 3e-8])));
      const f64 = tensor(new Float64Array([Math.PI, -1e300]));
      assert.deepEqual(f64.toArray(), [Math.PI, -1e300]);
      const i64 = tensor(new BigInt64Array([9007199254740993n, -5n]));
      assert.equal(i64.dtype, "int64");
      assert.deepEqual(Array.from(i64.data() as BigInt64Array), [9007199254740993n, -5n]);
      const i32 = tensor(new Int32Array([-2147483648, 7]));
      assert.deepEqual(i32.toArray(), [-2147483648, 7]);
      const u8 = tensor(new Uint8Array([0, 255, 128]), { shape: [1, 3] });
      assert.equal(u8.dtype, "uint8");
      assert.deepEqual(u8.shape, [1, 3]);
      assert.deepEqual(u8.toArray(), [0, 255, 128]);
      const b = tensor([true, false, true]);
      assert.equal(b.dtype, "bool");
      assert.deepEqual(b.toArray(), [1, 0, 1]);
      const fromU8AsBool = tensor(new Uint8Array([1, 0]), { dtype: "bool" });
      assert.equal(fromU8AsBool.dtype, "bool");
      const half = tensor([1, 0.5, 65504], { dtype: "float16" });
      assert.equal(half.dtype, "float16");
      assert.deepEqual(half.toArray(), [1, 0.5, 65504]);
      const nested = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      assert.deepEqual(nested.shape, [2, 3]);
      assert.equal(nested.dtype, "float32");
      assert.deepEqual(nested.toArray(), [1, 2, 3, 4, 5, 6]);
      const raw = fromBytes(new Uint8Array(new Float32Array([2, 4]).buffer), "float32", [2]);
      assert.deepEqual(raw.toArray(), [2, 4]);
      const asInt = tensor([1.9, -1.9], { dtype: "int64" });
      assert.deepEqual(asInt.toArray(), [1, -1]);
    }),
  ));

test("constants, ranges and conversions", () =>
  noLeaks(() =>
    tidy(() => {
      assert.deepEqual(zeros([2, 2]).toArray(), [0, 0, 0, 0]);
      assert.deepEqual(ones([3], { dtype: "int32" }).toArray(), [1, 1, 1]);
      assert.deepEqual(full([2], 7.5).toArray(), [7.5, 7.5]);
      const a = arange(5);
      assert.equal(a.dtype, "int64");
      assert.deepEqual(a.toArray(), [0, 1, 2, 3, 4]);
      assert.deepEqual(arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
      assert.deepEqual(linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
      assert.deepEqual(eye(2).toArray(), [1, 0, 0, 1]);
      assert.equal(tensor([1.7]).to({ dtype: "int32" }).item(), 1);
      assert.equal(tensor([3]).item(), 3);
      assert.equal(full([], 2).rank, 0);
    }),
  ));

test("same seed gives the same random tensors; ranges are respected", () =>
  noLeaks(() =>
    tidy(() => {
      manualSeed(42);
      const a = [rand([5]).toArray(), randn([5]).toArray(), randint(3, 9, [50]).toArray(), randperm(10).toArray()];
      manualSeed(42);
      const b = [rand([5]).toArray(), randn([5]).toArray(), randint(3, 9, [50]).toArray(), randperm(10).toArray()];
      assert.deepEqual(a, b);
      manualSeed(43);
      assert.notDeepEqual(rand([5]).toArray(), a[0]);
      const ri = a[2] as number[];
      assert.ok(ri.every((v) => v >= 3 && v < 9 && Number.isInteger(v)));
      assert.deepEqual(
        [...(a[3] as number[])].sort((x, y) => x - y),
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      assert.ok((a[0] as number[]).every((v) => v >= 0 && v < 1));
    }),
  ));

test("arithmetic, broadcasting and comparisons give hand-computed values", () =>
  noLeaks(() =>
    tidy(() => {
      const a = tensor([
        [1, 2, 3],
        [4, 5, 6],
      ]);
      const b = tensor([10, 20, 30]);
      assert.deepEqual(a.add(b).toArray(), [11, 22, 33, 14, 25, 36]);
      assert.deepEqual(a.add(b, 0.5).toArray(), [6, 12, 18, 9, 15, 21]);
      assert.deepEqual(a.sub(1).toArray(), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(a.rsub(10).toArray(), [9, 8, 7, 6, 5, 4]);
      assert.deepEqual(a.mul(b).toArray(), [10, 40, 90, 40, 100, 180]);
      assert.deepEqual(a.div(2).toArray(), [0.5, 1, 1.5, 2, 2.5, 3]);
      assert.deepEqual(a.pow(2).toArray(), [1, 4, 9, 16, 25, 36]);
      assert.deepEqual(a.gt(3).toArray(), [0, 0, 0, 1, 1, 1]);
      assert.equal(a.gt(3).dtype, "bool");
      assert.deepEqual(a.eq(tensor([1, 0, 3])).toArray(), [1, 0, 1, 0, 0, 0]);
      assert.deepEqual(a.clamp(2, 5).toArray(), [2, 2, 3, 4, 5, 5]);
      assert.deepEqual(a.matmul(tensor([[1], [0], [-1]])).toArray(), [-2, -2]);
      assert.deepEqual(where(a.gt(2), a, 0).toArray(), [0, 0, 3, 4, 5, 6]);
      assert.deepEqual(tensor([-1, 2]).relu().toArray(), [0, 2]);
      assert.deepEqual(tensor([-1, 7]).relu6().toArray(), [0, 6]);
      close(tensor([0]).sigmoid().toArray(), [0.5]);
      close(tensor([1, 2, 3]).softmax(0).toArray(), [0.09003057, 0.24472847, 0.66524096]);
      close(tensor([1]).gelu().toArray(), [0.8413447]);
      assert.deepEqual(arange(7).remainder(3).toArray(), [0, 1, 2, 0, 1, 2, 0]);
      assert.deepEqual(arange(7).floorDivide(3).toArray(), [0, 0, 0, 1, 1, 1, 2]);
    }),
  ));

test("reductions, argmax and top-k", () =>
  noLeaks(() =>
    tidy(() => {
      const a = tensor([
        [3, 1, 2],
        [0, 5, 4],
      ]);
      assert.equal(a.sum().item(), 15);
      assert.deepEqual(a.sum(0).toArray(), [3, 6, 6]);
      assert.deepEqual(a.sum(1, true).shape, [2, 1]);
      assert.deepEqual(a.mean(1).toArray(), [2, 3]);
      assert.equal(a.max().item(), 5);
      assert.deepEqual(a.min(1).toArray(), [1, 0]);
      assert.deepEqual(a.argmax(1).toArray(), [0, 1]);
      assert.equal(a.argmax().item(), 4);
      const [v, i] = a.maxAlong(0);
      assert.deepEqual(v.toArray(), [3, 5, 4]);
      assert.deepEqual(i.toArray(), [0, 1, 1]);
      const [tv, ti] = a.topk(2, { dim: 1 });
      assert.deepEqual(tv.toArray(), [3, 2, 5, 4]);
      assert.deepEqual(ti.toArray(), [0, 2, 1, 2]);
      const [sv] = tensor([3, 1, 2]).sort(0, true);
      assert.deepEqual(sv.toArray(), [3, 2, 1]);
      close(tensor([1, 2, 3, 4]).var().toArray(), [1.6666667]);
      close(tensor([1, 2, 3, 4]).var(null, { unbiased: false }).toArray(), [1.25]);
      close(tensor([3, 4]).norm().toArray(), [5]);
      assert.equal(tensor([true, true]).all().item(), 1);
      assert.equal(tensor([false, false]).any().item(), 0);
    }),
  ));

test("shape and indexing ops give hand-computed values", () =>
  noLeaks(() =>
    tidy(() => {
      const a = arange(6).reshape([2, 3]);
      assert.deepEqual(a.transpose(0, 1).toArray(), [0, 3, 1, 4, 2, 5]);
      assert.deepEqual(a.T.shape, [3, 2]);
      assert.deepEqual(a.permute([1, 0]).contiguous().toArray(), [0, 3, 1, 4, 2, 5]);
      assert.deepEqual(a.reshape([-1]).shape, [6]);
      assert.deepEqual(a.unsqueeze(0).shape, [1, 2, 3]);
      assert.deepEqual(a.unsqueeze(0).squeeze(0).shape, [2, 3]);
      assert.deepEqual(a.flatten().toArray(), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(a.slice(1, 1).toArray(), [1, 2, 4, 5]);
      assert.deepEqual(a.slice(1, 0, 3, 2).toArray(), [0, 2, 3, 5]);
      assert.deepEqual(a.slice(0, -1).toArray(), [3, 4, 5]);
      assert.deepEqual(a.select(0, 1).toArray(), [3, 4, 5]);
      assert.deepEqual(a.indexSelect(1, tensor(new BigInt64Array([2n, 0n]))).toArray(), [2, 0, 5, 3]);
      assert.deepEqual(
        a.gather(1, tensor(new BigInt64Array([1n, 1n, 0n, 2n]), { shape: [2, 2] })).toArray(),
        [1, 1, 3, 5],
      );
      assert.deepEqual(
        zeros([2, 3])
          .scatter(1, tensor(new BigInt64Array([2n, 0n]), { shape: [2, 1] }), 1)
          .toArray(),
        [0, 0, 1, 1, 0, 0],
      );
      assert.deepEqual(
        zeros([3])
          .scatterAdd(0, tensor(new BigInt64Array([0n, 0n, 2n])), tensor([1, 2, 3]))
          .toArray(),
        [3, 0, 3],
      );
      assert.deepEqual(cat([a, a], 0).shape, [4, 3]);
      assert.deepEqual(stack([a, a], 1).shape, [2, 2, 3]);
      assert.deepEqual(tensor([1, 2]).pad([1, 2], "constant", 9).toArray(), [9, 1, 2, 9, 9]);
      assert.deepEqual(
        tensor([[[1, 2, 3]]])
          .pad([2, 0], "reflect")
          .toArray(),
        [3, 2, 1, 2, 3],
      );
      assert.deepEqual(a.flip([1]).toArray(), [2, 1, 0, 5, 4, 3]);
      assert.deepEqual(a.roll([1], [1]).toArray(), [2, 0, 1, 5, 3, 4]);
      assert.deepEqual(arange(3).oneHot(3).toArray(), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
      assert.deepEqual(a.maskedFill(a.lt(2), -1).toArray(), [-1, -1, 2, 3, 4, 5]);
      assert.deepEqual(a.maskedSelect(a.gt(3)).toArray(), [4, 5]);
      assert.deepEqual(a.expand([2, 2, 3]).shape, [2, 2, 3]);
      assert.deepEqual(tensor([1, 2]).repeat([2]).toArray(), [1, 2, 1, 2]);
      assert.deepEqual(
        arange(5)
          .split(2)
          .map((t) => t.toArray()),
        [[0, 1], [2, 3], [4]],
      );
      assert.deepEqual(
        a.indexCopy(0, tensor(new BigInt64Array([1n])), tensor([[9, 9, 9]], { dtype: "int64" })).toArray(),
        [0, 1, 2, 9, 9, 9],
      );
    }),
  ));

test("nn functionals give hand-computed values", () =>
  noLeaks(() =>
    tidy(() => {
      // 3x3 input, 2x2 kernel of ones: each output is the sum of a 2x2 window.
      const x = arange(9, undefined, 1, { dtype: "float32" }).reshape([1, 1, 3, 3]);
      assert.deepEqual(F.conv2d(x, ones([1, 1, 2, 2]), tensor([1])).toArray(), [9, 13, 21, 25]);
      assert.deepEqual(F.conv2d(x, ones([1, 1, 1, 1]), null, { stride: 2 }).toArray(), [0, 2, 6, 8]);
      assert.deepEqual(F.maxPool2d(x, 2, { stride: 1 }).toArray(), [4, 5, 7, 8]);
      assert.deepEqual(F.avgPool2d(x, 2, { stride: 1 }).toArray(), [2, 3, 5, 6]);
      assert.deepEqual(F.adaptiveAvgPool2d(x, 1).toArray(), [4]);
      assert.deepEqual(F.interpolate(tensor([[[[1, 2]]]]), [1, 4], "nearest").toArray(), [1, 1, 2, 2]);
      close(F.interpolate(tensor([[[[0, 1]]]]), [1, 3], "bilinear", true).toArray(), [0, 0.5, 1]);
      assert.deepEqual(
        F.linear(
          tensor([[1, 2]]),
          tensor([
            [1, 1],
            [2, -1],
          ]),
          tensor([0.5, 0]),
        ).toArray(),
        [3.5, 0],
      );
      // Batch norm in training mode: per-channel batch statistics (biased variance) normalise.
      const bn = F.batchNorm(tensor([[[[1]]], [[[3]]]]), { training: true, eps: 0 });
      close(bn.toArray(), [-1, 1]);
      close(F.layerNorm(tensor([[1, 3]]), [2], null, null, 0).toArray(), [-1, 1]);
      // Cross-entropy of uniform logits over 4 classes is log 4; soft targets equal hard ones here.
      close([F.crossEntropy(zeros([2, 4]), tensor(new BigInt64Array([1n, 3n]))).item()], [Math.log(4)]);
      close([F.crossEntropy(tensor([[2, 0]]), tensor([[1, 0]])).item()], [Math.log(1 + Math.exp(-2))]);
      close([F.mseLoss(tensor([1, 2]), tensor([0, 0])).item()], [2.5]);
      // Identity grid: grid-sample with align_corners returns the input.
      const theta = tensor([
        [
          [1, 0, 0],
          [0, 1, 0],
        ],
      ]);
      const grid = F.affineGrid(theta, [1, 1, 3, 3], true);
      close(F.gridSample(x, grid, { alignCorners: true }).toArray(), x.toArray());
      assert.deepEqual(F.dropout(ones([4]), 0.5, false).toArray(), [1, 1, 1, 1]);
      const d = F.dropout(ones([1000]), 0.5, true).toArray();
      assert.ok(
        d.every((v) => v === 0 || v === 2),
        "dropout scales kept values by 1/(1-p)",
      );
    }),
  ));

test("in-place updates change the tensor itself", () =>
  noLeaks(() =>
    tidy(() => {
      const p = tensor([1, 2, 3]);
      p.add_(tensor([1, 1, 1]), -0.5).mul_(2);
      assert.deepEqual(p.toArray(), [1, 3, 5]);
      p.addcmul_(tensor([1, 2, 3]), tensor([2, 2, 2]), 0.5);
      assert.deepEqual(p.toArray(), [2, 5, 8]);
      p.addcdiv_(tensor([4, 4, 4]), tensor([2, 4, 8]), 1);
      assert.deepEqual(p.toArray(), [4, 6, 8.5]);
      p.lerp_(zeros([3]), 0.5);
      assert.deepEqual(p.toArray(), [2, 3, 4.25]);
      p.maximum_(tensor([3, 0, 5]));
      assert.deepEqual(p.toArray(), [3, 3, 5]);
      p.clamp_(null, 4).sub_(1);
      assert.deepEqual(p.toArray(), [2, 2, 3]);
      p.copy_(tensor([7, 8, 9])).div_(tensor([7, 4, 3]));
      assert.deepEqual(p.toArray(), [1, 2, 3]);
      p.zero_();
      assert.deepEqual(p.toArray(), [0, 0, 0]);
      p.fill_(1.5);
      assert.deepEqual(p.toArray(), [1.5, 1.5, 1.5]);
      manualSeed(1);
      const u = zeros([1000]).uniform_(-2, -1).toArray();
      assert.ok(u.every((v) => v >= -2 && v <= -1));
    }),
  ));

test("bad arguments give errors naming the op, the expected and the actual", () =>
  noLeaks(() =>
    tidy(() => {
      const a = zeros([2, 3]);
      assert.throws(() => a.reshape([4, 2]), /reshape: cannot view shape \[2, 3\] \(6 elements\) as \[4, 2\]/);
      assert.throws(() => a.matmul(zeros([2, 2])), /matmul: .*2x3 and 2x2/);
      assert.throws(() => a.softmax(2), /softmax: dim must be an integer in \[-2, 1\] for shape \[2, 3\], got 2/);
      assert.throws(() => a.select(0, 5), /select: index 5 out of range for dim 0 of size 2/);
      assert.throws(() => a.indexSelect(0, tensor([0])), /indexSelect: index must be an int64 tensor, got float32/);
      assert.throws(
        () => F.conv2d(zeros([1, 3, 4, 4]), zeros([2, 4, 3, 3]), null),
        /conv2d: input has 3 channels .* expects 4/,
      );
      assert.throws(
        () => F.conv2d(zeros([3, 4, 4]), zeros([2, 3, 3, 3]), null),
        /conv2d: expected a 4-D input \[N, C, H, W\], got shape \[3, 4, 4\]/,
      );
      assert.throws(
        () => F.linear(zeros([2, 5]), zeros([3, 4])),
        /linear: input's last dimension is 5 .* expects 4 features/,
      );
      assert.throws(
        () => F.crossEntropy(zeros([2, 3]), tensor(new BigInt64Array([1n]))),
        /crossEntropy: class-index target shape \[1\]/,
      );
      assert.throws(
        () => F.crossEntropy(zeros([2, 3]), tensor(new BigInt64Array([1n, 7n]))),
        /crossEntropy: .*out of bounds/i,
      );
      assert.throws(
        () => tensor(new Float32Array(5), { shape: [2, 2] }),
        /tensor: shape \[2, 2\] needs 4 elements, the array has 5/,
      );
      assert.throws(() => tensor([[1, 2], [3]]), /ragged/);
      assert.throws(() => zeros([2, -1]), /zeros: shape must be an array of non-negative integers/);
      assert.throws(
        () => cat([zeros([2, 3]), zeros([2, 4])], 0),
        /cat: tensor 1 has shape \[2, 4\], incompatible with \[2, 3\]/,
      );
      assert.throws(() => zeros([2], { device: "gpu" }), /device: expected "cpu", "cuda" or "cuda:N", got "gpu"/);
      assert.throws(() => tensor([1], { dtype: "float8" as never }), /tensor: dtype: expected one of/);
      assert.throws(
        () => a.backward(),
        /backward: a gradient argument is needed for a non-scalar output of shape \[2, 3\]/,
      );
      assert.throws(
        () => tensor([1, 2], { dtype: "int64" }).requiresGrad_(),
        /only floating-point tensors can require gradients, got int64/,
      );
      assert.throws(() => a.item(), /item: expected a tensor with one element, got shape \[2, 3\]/);
      assert.throws(() => randint(5, 5, [2]), /randint: high \(5\) must be greater than low \(5\)/);
    }),
  ));

test("CUDA requests on a build or machine without CUDA give one clear error", () => {
  if (cudaAvailable()) return; // covered by the GPU path instead
  assert.throws(() => zeros([2], { device: "cuda" }), /CUDA is not available .*BADEXPERT_LIBTORCH/);
  const t = zeros([2]);
  assert.throws(() => t.to({ device: "cuda:0" }), /CUDA|cuda/);
  t.dispose();
});

test("a disposed tensor cannot be used", () => {
  const t: Tensor = ones([2]);
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.throws(() => t.add(1), /tensor was disposed/);
  assert.throws(() => t.shape, /tensor was disposed/);
  t.dispose(); // disposing twice is harmless
});

test("integer tensors take integer scalars in place; erfinv inverts erf", () =>
  noLeaks(() =>
    tidy(() => {
      const counter = tensor([5], { dtype: "int64" });
      counter.add_(1);
      counter.add_(tensor([2], { dtype: "int64" }), 3);
      assert.equal(counter.dtype, "int64");
      assert.deepEqual(counter.toArray(), [12]);
      assert.equal(tensor([1, 2], { dtype: "int64" }).mul(2).dtype, "int64");
      assert.equal(tensor([1, 2], { dtype: "int64" }).add(0.5).dtype, "float32");
      close(tensor([-0.9, 0, 0.5], { dtype: "float64" }).erfinv().erf().toArray(), [-0.9, 0, 0.5], 1e-12);
      assert.deepEqual(empty([2, 3]).shape, [2, 3]);
    }),
  ));
