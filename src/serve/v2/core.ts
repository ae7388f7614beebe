// What the Open Inference Protocol's front ends (HTTP routes, gRPC service) need of the server:
// its one scoring path (decoding under the pixel budget, the batcher and workers, metrics, the
// flagged-rate window, the audit log, the dashboard's feed), its state and its options. The
// server provides it; nothing here scores on its own.
import type { FastifyBaseLogger } from "fastify";
import type { ServedInfo } from "../../workers/served-info.js";
import type { ServeOptions } from "../options.js";
import type { ServeMetrics } from "../metrics.js";
import type { ScoringEngine } from "../../workers/protocol.js";
import type { DetectionRecord } from "../records.js";

/** Who asked: the id that the logs and the audit log carry, the client's address, a logger bound to the request. */
export interface RequestContext {
  id: string;
  client: string;
  log: FastifyBaseLogger;
}

/** The bytes saved in the audit log's image directory for a flagged input. */
export type OriginalOf = (index: number) => Uint8Array | Promise<Uint8Array>;

export interface InferenceCore {
  readonly info: ServedInfo;
  readonly engine: ScoringEngine;
  readonly options: ServeOptions;
  readonly metrics: ServeMetrics;
  /** The service's logger (gRPC calls log through a child of it). */
  readonly log: FastifyBaseLogger;
  /** Every worker holds the verified bundle and the server is not draining. */
  ready(): boolean;
  /** The server takes scoring requests (false from the start of a shutdown). */
  accepting(): boolean;
  /** Probes and decodes encoded images under the request and in-flight pixel limits: one buffer per frame. */
  decode(ctx: RequestContext, images: readonly { name: string; data: Uint8Array }[]): Promise<Uint8Array[][]>;
  /** Scores decoded images (one entry per image, one buffer per frame) and records them: metrics, window, audit, feed. */
  score(
    ctx: RequestContext,
    route: string,
    frames: readonly Uint8Array[][],
    original: OriginalOf,
  ): Promise<DetectionRecord[]>;
  /** Records an input that could not be scored at all (counted as refused, logged, audited). */
  unscorable(ctx: RequestContext, route: string, index: number, reason: string, original: Uint8Array): Promise<void>;
}
