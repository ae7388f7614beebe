// The architectures the toolkit knows by name: a data table that the CLI, the defense and the
// benchmark harness read. createModel() is the one entry point that builds a model from a name
// and options, validating the options against the architecture first.
import type { Module } from "../nn/index.js";
import { CompactCNN, COMPACT_CNN_MIN_IMAGE_SIZE } from "./compact-cnn.js";
import { MobileNetV2 } from "./mobilenetv2.js";
import { checkMinImageSize, imageSizePair, type ImageSizeOption } from "./options.js";
import { positiveInt } from "../nn/options.js";
import { PreActResNet18 } from "./preact-resnet.js";
import { ResNet18, ResNet20 } from "./resnet.js";
import { VGG16BN, VGG_MIN_IMAGE_SIZE } from "./vgg.js";
import { VisionTransformer } from "./vit.js";
import { BadExpertError } from "../util/errors.js";

export interface ModelOptions {
  numClasses: number;
  inChannels: number;
  /** A side length or [height, width]. Models with global pooling accept other sizes at run time too. */
  imageSize: ImageSizeOption;
}

/** The BaDExpert paper's per-dataset hyperparameters for this architecture (where it reports them). */
export interface PaperSettings {
  /** Adam learning rate for the backdoor expert (1 epoch on deliberately wrong labels), by dataset name. */
  unlearnLr: Readonly<Record<string, number>>;
  /** Clean finetuning (SGD, Nesterov, MultiStepLR [2, 4, 6, 8]): learning rate and gamma, by dataset name. */
  finetune: Readonly<Record<string, { lr: number; gamma: number }>>;
  notes: string;
}

export interface ModelInfo {
  name: string;
  description: string;
  /** Which PyTorch definition the state-dict keys follow, so checkpoints interchange. */
  keyLayout: string;
  /** Dataset names (see src/data/registry.ts) the architecture suits; the first one gives the defaults. */
  datasets: readonly string[];
  defaults: Readonly<ModelOptions>;
  /** Smallest side length the architecture accepts, and why. */
  minImageSize: number;
  minImageSizeReason: string;
  /** Each side must be a multiple of this (1 where any size works). */
  imageSizeMultiple: number;
  /** Whether the model only accepts inputs of the imageSize it was built for. */
  fixedImageSize: boolean;
  /** Undefined where the paper did not use the architecture. */
  paper?: PaperSettings;
  /** Builds the model from validated options (createModel validates; call that instead). */
  create(opts: Readonly<ModelOptions>): Module;
}

const CIFAR: Readonly<ModelOptions> = { numClasses: 10, inChannels: 3, imageSize: 32 };
const FASHION_MNIST: Readonly<ModelOptions> = { numClasses: 10, inChannels: 1, imageSize: 28 };

/** What the CNNs for CIFAR-sized images share: the datasets, and any input size from their smallest. */
const CIFAR_CNN: Pick<ModelInfo, "datasets" | "defaults" | "imageSizeMultiple" | "fixedImageSize"> = {
  datasets: ["cifar10", "gtsrb", "cifar10-folder", "image-folder"],
  defaults: CIFAR,
  imageSizeMultiple: 1,
  fixedImageSize: false,
};

// Three stride-2 stages take 8x8 to 1x1; smaller inputs would leave the last stage convolving padding.
const THREE_STRIDES = "three stride-2 stages";

// GTSRB settings are the paper's for its default ResNet-18; it reports them per dataset, not per model.
const GTSRB_RESNET = { unlearnLr: 2.5e-5, finetune: { lr: 0.05, gamma: 0.2 } };

const REGISTRY: readonly ModelInfo[] = [
  {
    name: "resnet18",
    description:
      "ResNet-18 for small images (3x3 stride-1 stem, no max-pool), 11.2M parameters; the paper's default model",
    keyLayout:
      "pytorch-cifar / backdoor-toolbox utils/resnet.py ResNet18: conv1, bn1, layer1..4.{0,1}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, linear",
    ...CIFAR_CNN,
    minImageSize: 8,
    minImageSizeReason: THREE_STRIDES,
    paper: {
      unlearnLr: { cifar10: 1e-4, gtsrb: GTSRB_RESNET.unlearnLr },
      finetune: { cifar10: { lr: 0.1, gamma: 0.1 }, gtsrb: GTSRB_RESNET.finetune },
      notes:
        "Default architecture for CIFAR10 and GTSRB; ensemble score uses the triangle form with constants 2 and 0.5.",
    },
    create: (o) => new ResNet18({ numClasses: o.numClasses, inChannels: o.inChannels }),
  },
  {
    name: "preact-resnet18",
    description: "Pre-activation ResNet-18 for small images, with a final BN-ReLU before pooling, 11.2M parameters",
    keyLayout:
      "pytorch-cifar PreActResNet18 plus a final `bn` (Rice et al.'s variant): conv1, layer1..4.{0,1}.{bn1,conv1,bn2,conv2,shortcut.0}, bn, linear",
    ...CIFAR_CNN,
    minImageSize: 8,
    minImageSizeReason: THREE_STRIDES,
    create: (o) => new PreActResNet18({ numClasses: o.numClasses, inChannels: o.inChannels }),
  },
  {
    name: "vgg16-bn",
    description:
      "VGG-16 with batch norm for small images (13 convolutions, five max-pools, linear head), 14.7M parameters",
    keyLayout: "pytorch-cifar VGG('VGG16'): features.{0,1,3,4,7,...,40,41}, classifier (one Linear)",
    ...CIFAR_CNN,
    minImageSize: VGG_MIN_IMAGE_SIZE,
    minImageSizeReason: "five 2x2 max-pools",
    paper: {
      unlearnLr: { cifar10: 8e-5 },
      finetune: { cifar10: { lr: 0.2, gamma: 0.1 } },
      notes:
        "The authors' code keeps an alternative ensemble score for VGG16, -min(2.5a/b, (1-b)/(0.4-a)), commented out. " +
        "Their VGG has the three-layer head (classifier: 'mlp' in VGG16BN).",
    },
    create: (o) => new VGG16BN({ numClasses: o.numClasses, inChannels: o.inChannels }),
  },
  {
    name: "mobilenetv2",
    description:
      "MobileNetV2 for small images (stride-1 stem and second stage, 17 inverted residual blocks), 2.3M parameters",
    keyLayout:
      "pytorch-cifar MobileNetV2: conv1, bn1, layers.0..16.{conv1,bn1,conv2,bn2,conv3,bn3,shortcut.0,shortcut.1}, conv2, bn2, linear",
    ...CIFAR_CNN,
    minImageSize: 8,
    minImageSizeReason: THREE_STRIDES,
    paper: {
      unlearnLr: { cifar10: 5e-5 },
      finetune: { cifar10: { lr: 0.2, gamma: 0.1 } },
      notes:
        "The authors' code keeps an alternative ensemble score for MobileNetV2, -min(5a/b, (1-b)/(0.2-a)), commented out. " +
        "Their MobileNetV2 is a different CIFAR definition (pre/stage1..7/conv1/conv2 keys), so its checkpoints do not load here.",
    },
    create: (o) => new MobileNetV2({ numClasses: o.numClasses, inChannels: o.inChannels }),
  },
  {
    name: "vit",
    description:
      "Vision Transformer for 32x32 images: patch 4, dim 192, depth 6, 3 heads, MLP ratio 4, 2.7M parameters",
    keyLayout:
      "timm VisionTransformer: cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}, norm, head",
    datasets: ["cifar10", "gtsrb", "cifar10-folder"],
    defaults: CIFAR,
    minImageSize: 4,
    minImageSizeReason: "one 4x4 patch",
    imageSizeMultiple: 4,
    fixedImageSize: true,
    paper: {
      unlearnLr: {},
      finetune: {},
      notes:
        "The paper evaluates ViT-B/16 on ImageNet only (unlearning lr 1e-6; finetuning lr 5e-4, gamma 0.1); " +
        "this smaller ViT has no settings of its own there.",
    },
    create: (o) =>
      new VisionTransformer({ numClasses: o.numClasses, inChannels: o.inChannels, imageSize: o.imageSize }),
  },
  {
    name: "compact-cnn",
    description: "Two conv-BN-ReLU-pool stages and a 128-unit MLP head, 0.42M parameters at 28x28; fast on CPU",
    keyLayout: "this project's own: features.{0,1,4,5}, classifier.{1,4} (an nn.Sequential pair)",
    datasets: ["fashion-mnist", "mnist"],
    defaults: FASHION_MNIST,
    minImageSize: COMPACT_CNN_MIN_IMAGE_SIZE,
    minImageSizeReason: "two 2x2 max-pools",
    imageSizeMultiple: 1,
    fixedImageSize: true,
    create: (o) => new CompactCNN({ numClasses: o.numClasses, inChannels: o.inChannels, imageSize: o.imageSize }),
  },
  {
    name: "resnet20",
    description:
      "ResNet-20, He et al.'s CIFAR ResNet (three stages of three BasicBlocks, 16/32/64 wide), 0.27M parameters; trains on CPU",
    keyLayout:
      "pytorch-cifar style, like resnet18 with three stages: conv1, bn1, layer1..3.{0,1,2}.{conv1,bn1,conv2,bn2,shortcut.0,shortcut.1}, linear " +
      "(1x1 conv + BN projections where the width changes, He et al.'s option B)",
    ...CIFAR_CNN,
    minImageSize: 4,
    minImageSizeReason: "two stride-2 stages",
    create: (o) => new ResNet20({ numClasses: o.numClasses, inChannels: o.inChannels }),
  },
];

export function modelNames(): string[] {
  return REGISTRY.map((m) => m.name);
}

export function modelInfo(name: string): ModelInfo {
  const info = REGISTRY.find((m) => m.name === name);
  if (!info)
    throw new BadExpertError(
      "E_USAGE",
      `unknown model ${JSON.stringify(name)}; valid names: ${modelNames().join(", ")}`,
    );
  return info;
}

/** The options createModel would use: the given ones over the architecture's defaults, validated. */
export function resolveModelOptions(name: string, opts: Partial<ModelOptions> = {}): ModelOptions {
  const info = modelInfo(name);
  const where = `model '${name}'`;
  const numClasses = positiveInt(where, "numClasses", opts.numClasses ?? info.defaults.numClasses);
  const inChannels = positiveInt(where, "inChannels", opts.inChannels ?? info.defaults.inChannels);
  const imageSize = opts.imageSize ?? info.defaults.imageSize;
  const size = imageSizePair(where, imageSize);
  checkMinImageSize(where, size, info.minImageSize, info.minImageSizeReason);
  const m = info.imageSizeMultiple;
  if (size[0] % m !== 0 || size[1] % m !== 0) {
    throw new BadExpertError(
      "E_USAGE",
      `${where}: imageSize must be a multiple of ${m} on each side (the patch size), got ${size[0]}x${size[1]}`,
    );
  }
  return { numClasses, inChannels, imageSize };
}

/**
 * Builds the named architecture, freshly initialised (seed with manualSeed first for
 * reproducible weights). Unset options take the architecture's defaults.
 */
export function createModel(name: string, opts: Partial<ModelOptions> = {}): Module {
  const info = modelInfo(name);
  return info.create(resolveModelOptions(name, opts));
}
