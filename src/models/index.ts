// The model zoo: CIFAR-style image classifiers whose state-dict keys match the usual PyTorch
// definitions, and the registry that builds them by name.
export { ResNet18, ResNet20, CifarResNet, BasicBlock, type ResNetOptions, type ResNetStage } from "./resnet.js";
export { PreActResNet18, PreActBlock, type PreActResNetOptions } from "./preact-resnet.js";
export { VGG16BN, VGG16_CFG, VGG_MIN_IMAGE_SIZE, type VggOptions, type VggClassifier } from "./vgg.js";
export { MobileNetV2, InvertedResidual, MOBILENETV2_CIFAR_CFG, type MobileNetV2Options } from "./mobilenetv2.js";
export { VisionTransformer, PatchEmbed, Attention, Mlp, Block as VitBlock, type VitOptions } from "./vit.js";
export { CompactCNN, COMPACT_CNN_MIN_IMAGE_SIZE, type CompactCnnOptions } from "./compact-cnn.js";
export { type ImageSizeOption } from "./options.js";
export {
  createModel,
  modelInfo,
  modelNames,
  resolveModelOptions,
  type ModelInfo,
  type ModelOptions,
  type PaperSettings,
} from "./registry.js";
