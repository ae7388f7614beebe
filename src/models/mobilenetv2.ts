// MobileNetV2 for small images (Sandler et al. 2018, "Inverted Residuals and Linear
// Bottlenecks"), the CIFAR variant: the stem and the second stage use stride 1 instead of 2, so
// a 32x32 input is downsampled only three times (to 4x4) before global average pooling.
//
// State-dict keys follow the pytorch-cifar MobileNetV2 layout:
//   conv1, bn1 (3x3 stem, 32 channels),
//   layers.{0..16}.{conv1, bn1, conv2, bn2, conv3, bn3} (expand 1x1, depthwise 3x3, project 1x1;
//     no conv biases), plus layers.N.shortcut.{0,1} (1x1 conv + BN) on the stride-1 blocks whose
//     channel count changes (blocks 0, 1, 10 and 16),
//   conv2, bn2 (1x1 to 1280 channels), linear.
// As in that reference the activations are plain ReLU (the paper uses ReLU6), stride-2 blocks
// have no residual connection, and stride-1 blocks with equal channels add the identity.
import { F, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, Conv2d, Linear, Module, ModuleList, Sequential } from "../nn/index.js";
import { positiveInt } from "../nn/options.js";

/** [expansion, outChannels, blocks, stride of the first block] per stage (stride 1 in stage 2 for CIFAR). */
export const MOBILENETV2_CIFAR_CFG: readonly (readonly [number, number, number, number])[] = [
  [1, 16, 1, 1],
  [6, 24, 2, 1],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];

/** Expand (1x1) - depthwise (3x3, groups = channels) - linear projection (1x1). */
export class InvertedResidual extends Module {
  readonly stride: number;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  /** Projection for stride-1 blocks that change the channel count; empty (identity) otherwise. */
  readonly shortcut: Sequential;

  constructor(inPlanes: number, outPlanes: number, expansion: number, stride: number) {
    super();
    this.stride = stride;
    const planes = expansion * inPlanes;
    this.conv1 = this.registerModule("conv1", new Conv2d(inPlanes, planes, 1, { bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(planes));
    this.conv2 = this.registerModule(
      "conv2",
      new Conv2d(planes, planes, 3, { stride, padding: 1, groups: planes, bias: false }),
    );
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(planes));
    this.conv3 = this.registerModule("conv3", new Conv2d(planes, outPlanes, 1, { bias: false }));
    this.bn3 = this.registerModule("bn3", new BatchNorm2d(outPlanes));
    const projection = stride === 1 && inPlanes !== outPlanes;
    this.shortcut = this.registerModule(
      "shortcut",
      projection
        ? new Sequential(new Conv2d(inPlanes, outPlanes, 1, { bias: false }), new BatchNorm2d(outPlanes))
        : new Sequential(),
    );
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const expanded = this.bn1.forward(this.conv1.forward(x)).relu();
      const filtered = this.bn2.forward(this.conv2.forward(expanded)).relu();
      // No activation after the projection: the "linear bottleneck" of the paper.
      const out = this.bn3.forward(this.conv3.forward(filtered));
      // A stride-2 block changes the resolution, so there is nothing to add.
      return this.stride === 1 ? out.add(this.shortcut.forward(x)) : out;
    });
  }
}

export interface MobileNetV2Options {
  /** Default 10. */
  numClasses?: number;
  /** Default 3. */
  inChannels?: number;
}

export class MobileNetV2 extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layers: ModuleList<InvertedResidual>;
  readonly conv2: Conv2d;
  readonly bn2: BatchNorm2d;
  readonly linear: Linear;

  constructor(opts: MobileNetV2Options = {}) {
    super();
    const numClasses = positiveInt("MobileNetV2", "numClasses", opts.numClasses ?? 10);
    const inChannels = positiveInt("MobileNetV2", "inChannels", opts.inChannels ?? 3);
    this.conv1 = this.registerModule("conv1", new Conv2d(inChannels, 32, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(32));
    const blocks: InvertedResidual[] = [];
    let inPlanes = 32;
    for (const [expansion, outPlanes, count, stride] of MOBILENETV2_CIFAR_CFG) {
      for (let i = 0; i < count; i++) {
        blocks.push(new InvertedResidual(inPlanes, outPlanes, expansion, i === 0 ? stride : 1));
        inPlanes = outPlanes;
      }
    }
    // The reference holds the blocks in one flat Sequential: keys read layers.0 ... layers.16.
    this.layers = this.registerModule("layers", new ModuleList(blocks));
    this.conv2 = this.registerModule("conv2", new Conv2d(320, 1280, 1, { bias: false }));
    this.bn2 = this.registerModule("bn2", new BatchNorm2d(1280));
    this.linear = this.registerModule("linear", new Linear(1280, numClasses));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out = this.bn1.forward(this.conv1.forward(x)).relu();
      for (const block of this.layers) out = block.forward(out);
      out = this.bn2.forward(this.conv2.forward(out)).relu();
      // Global average pooling: the reference's avg_pool2d(4) at 32x32, for any input size.
      return this.linear.forward(F.adaptiveAvgPool2d(out, 1).flatten(1));
    });
  }
}
