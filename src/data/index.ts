// Public surface of the data module.
export * from "./dataset.js";
export { DatasetFormatError } from "./errors.js";
export { channelStats, type ChannelStats } from "./stats.js";
export { defaultCacheDir, readCache, writeCache, CACHE_FORMAT_VERSION } from "./cache.js";
export {
  decodeImage,
  decodeImageFrames,
  probeImage,
  resizeRaw,
  convertChannels,
  type FramePolicy,
  type ImageProbe,
} from "./image-decode.js";
export { ImageDecodeError, type ImageProblem } from "./image-error.js";
export { decodePnm, encodePnm, type RawImage } from "./ppm.js";
export { readIdxDataset } from "./readers/idx.js";
export { readCifar10Binary, CIFAR10_CLASSES } from "./readers/cifar10-binary.js";
export { readGtsrb, GTSRB_CLASSES } from "./readers/gtsrb.js";
export { readImageFolder } from "./readers/image-folder.js";
export {
  loadDataset,
  datasetInfo,
  datasetNames,
  datasetCacheFile,
  MNIST_CLASSES,
  FASHION_MNIST_CLASSES,
  type DatasetInfo,
  type LoadOptions,
} from "./registry.js";
