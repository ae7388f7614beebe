// VGG-16 with batch normalisation for small images (Simonyan & Zisserman 2015; BN after every
// convolution). Thirteen 3x3 convolutions in five groups, each group ended by a 2x2 max-pool,
// so a 32x32 input leaves 512 features of 1x1.
//
// State-dict keys follow the pytorch-cifar VGG('VGG16') layout: `features` is one Sequential of
// [Conv2d (with bias), BatchNorm2d, ReLU] per cfg entry and MaxPool2d per 'M', so the indices run
// features.0 (conv), features.1 (bn), features.3, features.4, features.7 (after the first pool)...
// up to features.40/41; then `classifier` is one Linear(512, numClasses).
//
// `classifier: "mlp"` swaps the head for the backdoor-toolbox / torchvision-style CIFAR head
// (Dropout, Linear(512, 512), ReLU, Dropout, Linear(512, 512), ReLU, Linear(512, numClasses):
// keys classifier.1, classifier.4, classifier.6), which is what the BaDExpert authors' toolbox
// (utils/vgg.py, vgg16_bn) trains; with it their VGG checkpoints load.
//
// Inputs larger than 32x32 leave more than 1x1 after the last pool; an adaptive average pool to
// 1x1 (no parameters, the identity at 32x32) keeps the head at 512 inputs for any size >= 32.
import { F, formatShape, tidy, type Tensor } from "../engine/index.js";
import { BatchNorm2d, Conv2d, Dropout, Linear, MaxPool2d, Module, ReLU, Sequential } from "../nn/index.js";
import { positiveInt } from "../nn/options.js";

/** Output channels per convolution; "M" is a 2x2 max-pool (configuration "D" of the paper). */
export const VGG16_CFG: readonly (number | "M")[] = [
  64,
  64,
  "M",
  128,
  128,
  "M",
  256,
  256,
  256,
  "M",
  512,
  512,
  512,
  "M",
  512,
  512,
  512,
  "M",
];

/** Five 2x2 pools halve the image five times: below 32 pixels the last pool has nothing to pool. */
export const VGG_MIN_IMAGE_SIZE = 32;

export type VggClassifier = "linear" | "mlp";

export interface VggOptions {
  /** Default 10. */
  numClasses?: number;
  /** Default 3. */
  inChannels?: number;
  /** "linear" (pytorch-cifar) or "mlp" (backdoor-toolbox). Default "linear". */
  classifier?: VggClassifier;
}

export class VGG16BN extends Module {
  readonly features: Sequential;
  readonly classifier: Module;

  constructor(opts: VggOptions = {}) {
    super();
    const numClasses = positiveInt("VGG16BN", "numClasses", opts.numClasses ?? 10);
    let channels = positiveInt("VGG16BN", "inChannels", opts.inChannels ?? 3);
    const head = opts.classifier ?? "linear";
    if (head !== "linear" && head !== "mlp") {
      throw new RangeError(`VGG16BN: classifier must be 'linear' or 'mlp', got ${JSON.stringify(head)}`);
    }

    const layers: Module[] = [];
    for (const v of VGG16_CFG) {
      if (v === "M") {
        layers.push(new MaxPool2d(2, { stride: 2 }));
      } else {
        // The conv keeps its bias even before BN: the reference does, and its checkpoints carry it.
        layers.push(new Conv2d(channels, v, 3, { padding: 1 }), new BatchNorm2d(v), new ReLU());
        channels = v;
      }
    }
    this.features = this.registerModule("features", new Sequential(...layers));
    this.classifier = this.registerModule(
      "classifier",
      head === "linear"
        ? new Linear(512, numClasses)
        : new Sequential(
            new Dropout(0.5),
            new Linear(512, 512),
            new ReLU(),
            new Dropout(0.5),
            new Linear(512, 512),
            new ReLU(),
            new Linear(512, numClasses),
          ),
    );
  }

  forward(x: Tensor): Tensor {
    // Checked here because libtorch's own complaint comes from deep inside the pools.
    const s = x.shape;
    if (s.length !== 4 || (s[2] ?? 0) < VGG_MIN_IMAGE_SIZE || (s[3] ?? 0) < VGG_MIN_IMAGE_SIZE) {
      throw new RangeError(
        `VGG16BN: expected [N, C, H, W] images of at least ${VGG_MIN_IMAGE_SIZE}x${VGG_MIN_IMAGE_SIZE} (five 2x2 max-pools), got shape ${formatShape(s)}`,
      );
    }
    return tidy(() => this.classifier.forward(F.adaptiveAvgPool2d(this.features.forward(x), 1).flatten(1)));
  }
}
