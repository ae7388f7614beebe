// What `scan` needs of a bundle and what it prints per input, in a module of their own: scan.ts
// and the baseline's scan model (scan-baseline.ts) both read them, and neither imports the other
// for them.
import type { DecodeOutcome, Detection, FrameOptions } from "../../api/detector.js";
import type { Tensor } from "../../engine/index.js";

/** One scored input; a baseline detector has no expert/auxiliary confidences. */
export type ScanRecord = Omit<Detection, "expertConfidence" | "auxiliaryConfidence" | "threshold"> & Partial<Pick<Detection, "expertConfidence" | "auxiliaryConfidence">>;

/** What scan needs of a bundle, BaDExpert's or a baseline's (scan-baseline.ts). */
export interface ScanModel {
  imageSize: [number, number];
  channels: number;
  decodeEach(files: readonly string[], firstIndex: number, o: FrameOptions): Promise<DecodeOutcome[]>;
  /** Throws when a dataset's images do not fit the model. */
  checkInput(height: number, width: number, channels: number, what: string): void;
  /** Scores float [N, C, H, W] images in [0, 1]. */
  score(x: Tensor): Promise<ScanRecord[]>;
}
