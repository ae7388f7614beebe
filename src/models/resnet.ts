// ResNet-18 for small images (the CIFAR variant used by the BaDExpert paper and the usual
// PyTorch CIFAR code): 3x3 stem with stride 1, no max-pool, four stages of two BasicBlocks,
// global average pooling and a linear head. State-dict keys match that PyTorch definition:
// conv1, bn1, layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, linear.
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
      projection ? new Sequential(new Conv2d(inPlanes, planes, 1, { stride, bias: false }), new BatchNorm2d(planes)) : new Sequential(),
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

export class ResNet18 extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly layers: Sequential[];
  readonly linear: Linear;

  constructor(opts: ResNetOptions = {}) {
    super();
    const numClasses = opts.numClasses ?? 10;
    const inChannels = opts.inChannels ?? 3;
    this.conv1 = this.registerModule("conv1", new Conv2d(inChannels, 64, 3, { stride: 1, padding: 1, bias: false }));
    this.bn1 = this.registerModule("bn1", new BatchNorm2d(64));
    let inPlanes = 64;
    this.layers = [
      [64, 1],
      [128, 2],
      [256, 2],
      [512, 2],
    ].map(([planes, stride], i) => {
      const p = planes as number;
      const stage = new Sequential(new BasicBlock(inPlanes, p, stride), new BasicBlock(p, p, 1));
      inPlanes = p;
      return this.registerModule(`layer${i + 1}`, stage);
    });
    this.linear = this.registerModule("linear", new Linear(512, numClasses));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out = this.bn1.forward(this.conv1.forward(x)).relu();
      for (const stage of this.layers) out = stage.forward(out);
      return this.linear.forward(F.adaptiveAvgPool2d(out, 1).flatten(1));
    });
  }
}
