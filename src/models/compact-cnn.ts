// A compact CNN for small grey images (Fashion-MNIST, MNIST), cheap enough to train to >= 91%
// Fashion-MNIST test accuracy within minutes on a 2-core CPU. It is this project's own design,
// with no external checkpoint format to match; its keys are those of the equivalent PyTorch
// nn.Sequential pair:
//
//   features                                      classifier
//     0 Conv2d(in -> 32, 3x3, pad 1, no bias)       0 Flatten
//     1 BatchNorm2d(32)                             1 Linear(64 * floor(H/4) * floor(W/4) -> 128)
//     2 ReLU                                        2 ReLU
//     3 MaxPool2d(2)                                3 Dropout(0.3)
//     4 Conv2d(32 -> 64, 3x3, pad 1, no bias)       4 Linear(128 -> numClasses)
//     5 BatchNorm2d(64)
//     6 ReLU
//     7 MaxPool2d(2)
//
// Keys: features.0.weight, features.1.{weight, bias, running_mean, running_var,
// num_batches_tracked}, features.4.weight, features.5.*, classifier.1.{weight, bias},
// classifier.4.{weight, bias}. The convolutions have no bias because the BN right after them
// subtracts any constant. At 28x28 the model has 421,738 parameters and costs about 4.2M
// multiply-adds per image, 85% of it in the second convolution.
import { formatShape, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Module, ReLU, Sequential } from "../nn/index.js";
import { checkDropRate, checkMinImageSize, imageSizePair, type ImageSizeOption } from "./options.js";
import { positiveInt } from "../nn/options.js";

/** Two 2x2 pools: each side must survive being halved twice. */
export const COMPACT_CNN_MIN_IMAGE_SIZE = 4;

export interface CompactCnnOptions {
  /** Default 10. */
  numClasses?: number;
  /** Default 1. */
  inChannels?: number;
  /** Side length or [height, width]; the classifier's input width depends on it. Default 28. */
  imageSize?: ImageSizeOption;
  /** Dropout before the last layer while training. Default 0.3. */
  dropout?: number;
}

export class CompactCNN extends Module {
  readonly inChannels: number;
  readonly imageSize: [number, number];
  readonly features: Sequential;
  readonly classifier: Sequential;

  constructor(opts: CompactCnnOptions = {}) {
    super();
    const name = "CompactCNN";
    const numClasses = positiveInt(name, "numClasses", opts.numClasses ?? 10);
    this.inChannels = positiveInt(name, "inChannels", opts.inChannels ?? 1);
    this.imageSize = imageSizePair(name, opts.imageSize ?? 28);
    checkMinImageSize(name, this.imageSize, COMPACT_CNN_MIN_IMAGE_SIZE, "two 2x2 max-pools");
    const dropout = checkDropRate(name, "dropout", opts.dropout ?? 0.3);
    const [h, w] = this.imageSize;
    // Odd sides are floored by each pool, as in PyTorch.
    const flat = 64 * Math.floor(Math.floor(h / 2) / 2) * Math.floor(Math.floor(w / 2) / 2);

    this.features = this.registerModule(
      "features",
      new Sequential(
        new Conv2d(this.inChannels, 32, 3, { padding: 1, bias: false }),
        new BatchNorm2d(32),
        new ReLU(),
        new MaxPool2d(2),
        new Conv2d(32, 64, 3, { padding: 1, bias: false }),
        new BatchNorm2d(64),
        new ReLU(),
        new MaxPool2d(2),
      ),
    );
    this.classifier = this.registerModule(
      "classifier",
      new Sequential(
        new Flatten(),
        new Linear(flat, 128),
        new ReLU(),
        new Dropout(dropout),
        new Linear(128, numClasses),
      ),
    );
  }

  forward(x: Tensor): Tensor {
    const [h, w] = this.imageSize;
    const s = x.shape;
    // The classifier's width was fixed from imageSize: another size would fail inside Linear
    // with a message about features rather than pixels.
    if (s.length !== 4 || s[1] !== this.inChannels || s[2] !== h || s[3] !== w) {
      throw new RangeError(`CompactCNN: expected input [N, ${this.inChannels}, ${h}, ${w}], got ${formatShape(s)}`);
    }
    return tidy(() => this.classifier.forward(this.features.forward(x)));
  }
}
