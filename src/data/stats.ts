// Per-channel mean and standard deviation over all pixels, in 0..1 units, as used by Normalize(mean, std).

import type { ImageDataset } from "./dataset.js";

export interface ChannelStats {
  mean: number[];
  std: number[];
}

export function channelStats(ds: Pick<ImageDataset, "images" | "channels">): ChannelStats {
  const c = ds.channels;
  const sum = new Array<number>(c).fill(0);
  const sumSq = new Array<number>(c).fill(0);
  const px = ds.images;
  // Integer sums stay exact in doubles: 2^53 / 255^2 is far beyond any dataset's pixel count.
  for (let ch = 0; ch < c; ch++) {
    let s = 0;
    let q = 0;
    for (let i = ch; i < px.length; i += c) {
      const v = px[i] ?? 0;
      s += v;
      q += v * v;
    }
    sum[ch] = s;
    sumSq[ch] = q;
  }
  const n = px.length / c;
  const mean = sum.map((s) => s / n / 255);
  const std = sumSq.map((q, ch) => Math.sqrt(Math.max(0, q / n / 65025 - (mean[ch] ?? 0) ** 2)));
  return { mean, std };
}
