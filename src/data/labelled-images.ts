// What both forms of a user's triggered set (readers/triggered-folder.ts, readers/triggered-npz.ts)
// read to, in a module of their own: the readers and triggered-set.ts, which calls them, both use it.

/** What both forms read to: uint8 NHWC images with their labels. */
export interface LabelledImages {
  /** count*height*width*channels bytes, NHWC. */
  images: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: number;
  labels: Int32Array;
  /** null where the set does not record its targets. */
  targets: Int32Array | null;
}
