// ResNets for small images: ResNet-18 (the CIFAR variant used by the BaDExpert paper and the
// usual PyTorch CIFAR code) and He et al.'s ResNet-20. 3x3 stem with stride 1, no max-pool,
// stages of BasicBlocks, global average pooling and a linear head. State-dict keys match the
// pytorch-cifar definition: conv1, bn1, layer{1..N}.{i}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, linear.
import { F, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, Conv2d, Linear, Module, Sequential } from "../nn/index.js";

export class BasicBlock extends Module {
  static readonly expansion = 1;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly shortcut: Sequential;

  constructor(inPlanes: number, planes: number, stride = 1) {
    super();
    this.conv1 = this.registerModule("conv1", new Conv2d(inPlanes, planes, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(planes));
    this.conv2 = this.registerModule("conv2", new Conv2d(planes, planes, 3, { stride: 1, padding: 1, bias: false }));
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(planes));
    // A projection only where the shape changes; otherwise the (empty) Sequential is identity.
    const projection = stride !== 1 || inPlanes !== planes;
    this.shortcut = this.registerModule(
      "shortcut",
      projection
        ? new Sequential(new Conv2d(inPlanes, planes, 1, { stride, bias: false }), new BatchNorm2d(planes))
        : new Sequential(),
    );
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = this.bn2.forward(this.conv2.forward(this.bn1.forward(this.conv1.forward(x)).relu()));
      return out.add(this.shortcut.forward(x)).relu();
    });
  }
}

export interface ResNetOptions {
  numClasses?: number;
  inChannels?: number;
}

/** One stage of BasicBlocks: its width, how many blocks, and the first block's stride. */
export interface ResNetStage {
  planes: number;
  blocks: number;
  stride: number;
}

/**
 * The CIFAR-style ResNet both zoo ResNets share: a 3x3 stride-1 stem (conv1, bn1), stages of
 * BasicBlocks (layer1..N), global average pooling and a linear head.
 */
export class CifarResNet extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layers: Sequential[];
  readonly linear: Linear;

  constructor(stem: number, stages: readonly ResNetStage[], opts: ResNetOptions) {
    super();
    const numClasses = opts.numClasses ?? 10;
    const inChannels = opts.inChannels ?? 3;
    this.conv1 = this.registerModule("conv1", new Conv2d(inChannels, stem, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(stem));
    let inPlanes = stem;
    this.layers = stages.map(({ planes, blocks, stride }, i) => {
      const stage = new Sequential(
        ...Array.from(
          { length: blocks },
          (_, b) => new BasicBlock(b === 0 ? inPlanes : planes, planes, b === 0 ? stride : 1),
        ),
      );
      inPlanes = planes;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.linear = this.registerModule("linear", new Linear(inPlanes, numClasses));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out = this.bn1.forward(this.conv1.forward(x)).relu();
      for (const stage of this.layers) out = stage.forward(out);
      return this.linear.forward(F.adaptiveAvgPool2d(out, 1).flatten(1));
    });
  }
}

/** Stages of `blocks` blocks at these widths; every stage after the first halves the resolution. */
function stages(widths: readonly number[], blocks: number): ResNetStage[] {
  return widths.map((planes, i) => ({ planes, blocks, stride: i === 0 ? 1 : 2 }));
}

/** ResNet-18: 64-wide stem, four stages of two blocks (64, 128, 256, 512). */
export class ResNet18 extends CifarResNet {
  constructor(opts: ResNetOptions = {}) {
    super(64, stages([64, 128, 256, 512], 2), opts);
  }
}

/**
 * ResNet-20, He et al.'s CIFAR ResNet (6n+2 layers, n = 3): 16-wide stem, three stages of three
 * blocks (16, 32, 64), 0.27M parameters. The two width changes use the 1x1 conv + BN projection
 * (the paper's option B; its CIFAR runs used zero-padding, option A, which has no weights).
 */
export class ResNet20 extends CifarResNet {
  constructor(opts: ResNetOptions = {}) {
    super(16, stages([16, 32, 64], 3), opts);
  }
}
