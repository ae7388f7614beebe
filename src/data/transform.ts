// Readers with a fixed native shape (IDX, CIFAR binary) decode first and honour imageSize/channels afterwards,
// through the same resize and channel rules as the image readers.

import { forEachLimit } from "./concurrency.js";
import { imageBytes, type ChannelCount, type ImageDataset, type ImageSize } from "./dataset.js";
import { convertChannels, resizeRaw } from "./image-decode.js";
import { progressReporter } from "./progress.js";

export async function reshapeDataset(
  ds: ImageDataset,
  target: { imageSize?: ImageSize; channels?: ChannelCount },
  progress = true,
): Promise<ImageDataset> {
  const size = target.imageSize ?? { height: ds.height, width: ds.width };
  const channels = target.channels ?? ds.channels;
  if (size.height === ds.height && size.width === ds.width && channels === ds.channels) return ds;
  if (channels !== 1 && channels !== 3) throw new Error(`channels must be 1 or 3, got ${channels}`);
  const inBytes = imageBytes(ds);
  const outBytes = size.height * size.width * channels;
  const images = new Uint8Array(ds.count * outBytes);
  const report = progressReporter(`resizing ${ds.name} ${ds.split}`, ds.count, progress);
  const indices = Array.from({ length: ds.count }, (_, i) => i);
  let done = 0;
  await forEachLimit(indices, 8, async (i) => {
    let img = {
      width: ds.width,
      height: ds.height,
      channels: ds.channels,
      pixels: ds.images.subarray(i * inBytes, (i + 1) * inBytes),
    };
    img = await resizeRaw(img, size, `${ds.source} image ${i}`);
    images.set(convertChannels(img, channels).pixels, i * outBytes);
    report.update(++done);
  });
  report.finish();
  return { ...ds, images, height: size.height, width: size.width, channels };
}
