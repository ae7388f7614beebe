// The record the service answers for each image: a leaf module, so the protocol routes (v1, v2)
// and the server share it without importing one another.
import type { ScoredInput } from "./batcher.js";

export interface DetectionRecord extends ScoredInput {
  /** The predicted class's name, as the library's and scan's records name it. */
  predClass: string;
  /** The same name under the field the service's API documents (README, OpenAPI). */
  class: string;
  /**
   * With --frames all, for an image of several frames: how many were scored, and which one the
   * record reports (the highest score, or one without a valid score); the image is flagged when
   * any frame is.
   */
  frames?: number;
  frame?: number;
}
