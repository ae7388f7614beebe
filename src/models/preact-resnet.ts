// Pre-activation ResNet-18 for small images (He et al. 2016, "Identity Mappings in Deep Residual
// Networks"), the CIFAR variant common in backdoor research: a 3x3 stem with stride 1, four
// stages of two pre-activation blocks, then BN-ReLU, global average pooling and a linear head.
//
// State-dict keys follow the pytorch-cifar PreActResNet18 layout, extended with the final `bn`
// that the adversarial-training and backdoor codebases add (Rice et al.'s PreActResNet18):
//   conv1.weight,
//   layer{1..4}.{0,1}.{bn1, conv1, bn2, conv2} and, where the shape changes, .shortcut.0.weight,
//   bn.{weight, bias, running_mean, running_var, num_batches_tracked},
//   linear.{weight, bias}.
// `finalNorm: false` drops `bn` (and its ReLU), which gives the plain pytorch-cifar /
// BackdoorBench layout, so checkpoints of either kind load.
import { F, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, Conv2d, Linear, Module, Sequential } from "../nn/index.js";
import { positiveInt } from "../nn/options.js";

/** bn1-relu-conv1-bn2-relu-conv2, added to the (projected) input. */
export class PreActBlock extends Module {
  readonly bn1: BatchNorm2d;
  readonly conv1: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv2: Conv2d;
  /** A 1x1 convolution (no BN) where the shape changes, else null (identity). */
  readonly shortcut: Sequential | null;

  constructor(inPlanes: number, planes: number, stride = 1) {
    super();
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(inPlanes));
    this.conv1 = this.registerModule("conv1", new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(planes));
    this.conv2 = this.registerModule("conv2", new Conv2d(planes, planes, 3, { stride: 1, padding: 1, bias: false }));
    // Unlike the post-activation block, the identity case registers nothing: the reference has no
    // `shortcut` attribute there, and an empty Sequential would not change the keys anyway.
    const projection = stride !== 1 || inPlanes !== planes;
    this.shortcut = projection
      ? this.registerModule("shortcut", new Sequential(new Conv2d(inPlanes, planes, 1, { stride, bias: false })))
      : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const pre = this.bn1.forward(x).relu();
      // The projection sees the pre-activated input, the identity the raw one (as in the paper).
      const skip = this.shortcut === null ? x : this.shortcut.forward(pre);
      const out = this.conv2.forward(this.bn2.forward(this.conv1.forward(pre)).relu());
      return out.add(skip);
    });
  }
}

export interface PreActResNetOptions {
  /** Default 10. */
  numClasses?: number;
  /** Default 3. */
  inChannels?: number;
  /** BN + ReLU after the last stage (`bn` in the state dict). Default true. */
  finalNorm?: boolean;
}

export class PreActResNet18 extends Module {
  readonly conv1: Conv2d;
  readonly layers: Sequential[];
  readonly bn: BatchNorm2d | null;
  readonly linear: Linear;

  constructor(opts: PreActResNetOptions = {}) {
    super();
    const numClasses = positiveInt("PreActResNet18", "numClasses", opts.numClasses ?? 10);
    const inChannels = positiveInt("PreActResNet18", "inChannels", opts.inChannels ?? 3);
    this.conv1 = this.registerModule("conv1", new Conv2d(inChannels, 64, 3, { stride: 1, padding: 1, bias: false }));
    const stages: [planes: number, stride: number][] = [
      [64, 1],
      [128, 2],
      [256, 2],
      [512, 2],
    ];
    let inPlanes = 64;
    this.layers = stages.map(([planes, stride], i) => {
      const stage = new Sequential(new PreActBlock(inPlanes, planes, stride), new PreActBlock(planes, planes, 1));
      inPlanes = planes;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.bn = (opts.finalNorm ?? true) ? this.registerModule("bn", new BatchNorm2d(512)) : null;
    this.linear = this.registerModule("linear", new Linear(512, numClasses));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out = this.conv1.forward(x);
      for (const stage of this.layers) out = stage.forward(out);
      // Blocks end with an addition, not an activation: without the final BN-ReLU the head
      // sees un-normalised sums (the plain pytorch-cifar variant accepts that).
      if (this.bn !== null) out = this.bn.forward(out).relu();
      return this.linear.forward(F.adaptiveAvgPool2d(out, 1).flatten(1));
    });
  }
}
