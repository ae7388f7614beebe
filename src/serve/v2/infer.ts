// One inference request of the Open Inference Protocol, whichever front end it came through
// (HTTP JSON, HTTP with the binary extension, gRPC): its image input goes through the server's
// one scoring path, and the answer is the model's output tensors, one row per input image. The
// filtered model fails closed per input: a flagged or unscorable image gets pred -1 and
// refused true, never M's prediction.
import sharp from "sharp";
import { shuttingDown } from "../errors.js";
import type { DetectionRecord } from "../records.js";
import type { ModelInput } from "../decode.js";
import type { InferenceCore, RequestContext } from "./core.js";
import { MODEL_VERSION, OUTPUTS, type ServedModel } from "./models.js";
import { modelImages } from "./model-input.js";
import { bad, type InputTensor, type OutputTensor, type Params } from "./tensor.js";

export interface RequestedOutput {
  name: string;
  parameters: Params;
}

export interface InferRequest {
  id?: string;
  parameters: Params;
  inputs: InputTensor[];
  /** Absent or empty: every output of the model. */
  outputs?: RequestedOutput[];
}

export interface InferAnswer {
  model_name: string;
  model_version: string;
  id?: string;
  /** Each output, and whether the client asked for it as binary data (HTTP's binary extension). */
  outputs: { tensor: OutputTensor; binary: boolean }[];
}

export function modelInputOf(core: Pick<InferenceCore, "info">): ModelInput {
  const p = core.info.preprocessing;
  return { height: p.imageSize[0], width: p.imageSize[1], channels: p.channels === 1 ? 1 : 3 };
}

function boolParam(p: Params, key: string, what: string): boolean | undefined {
  const v = p[key];
  if (v === undefined) return undefined;
  if (typeof v !== "boolean")
    throw bad(`${what}: parameter ${key} must be a boolean, got ${JSON.stringify(v).slice(0, 40)}`);
  return v;
}

/** The outputs to answer, in the request's order (all, in the model's order, when it names none), each with its binary flag. */
function chosenOutputs(model: ServedModel, req: InferRequest): { name: string; binary: boolean }[] {
  const all = OUTPUTS[model.role].map((o) => o.name);
  const everyBinary = boolParam(req.parameters, "binary_data_output", "the request") ?? false;
  if (!req.outputs || req.outputs.length === 0) return all.map((name) => ({ name, binary: everyBinary }));
  const seen = new Set<string>();
  return req.outputs.map((o) => {
    if (!all.includes(o.name))
      throw bad(
        `model ${JSON.stringify(model.name)} has no output ${JSON.stringify(o.name.slice(0, 100))}; its outputs: ${all.join(", ")}`,
      );
    if (seen.has(o.name)) throw bad(`output ${JSON.stringify(o.name)} is requested twice`);
    seen.add(o.name);
    return {
      name: o.name,
      binary: boolParam(o.parameters, "binary_data", `output ${JSON.stringify(o.name)}`) ?? everyBinary,
    };
  });
}

function pngOf(pixels: Uint8Array, m: ModelInput): Promise<Uint8Array> {
  return sharp(pixels, { raw: { width: m.width, height: m.height, channels: m.channels } })
    .png()
    .toBuffer()
    .then((b) => new Uint8Array(b));
}

/** Scores the request's images through the server's scoring path; one record per image, in order. */
async function records(
  core: InferenceCore,
  ctx: RequestContext,
  route: string,
  req: InferRequest,
): Promise<DetectionRecord[]> {
  const m = modelInputOf(core);
  const images = modelImages(req.inputs, m, core.options.maxImagesPerRequest);
  if (images.kind === "encoded") {
    const frames = await core.decode(ctx, images.images);
    return core.score(ctx, route, frames, (i) => (images.images[i] as { data: Uint8Array }).data);
  }
  const scorable: Uint8Array[] = [];
  const where: number[] = [];
  const out: (DetectionRecord | undefined)[] = new Array<DetectionRecord | undefined>(images.items.length);
  for (const [i, item] of images.items.entries()) {
    if ("pixels" in item) {
      scorable.push(item.pixels);
      where.push(i);
      continue;
    }
    await core.unscorable(ctx, route, i, item.unscorable, item.raw);
    out[i] = {
      pred: -1,
      predClass: "",
      class: "",
      detector: core.info.detector,
      expertConfidence: null,
      auxiliaryConfidence: null,
      score: null,
      threshold: core.info.threshold,
      flagged: true,
      reason: item.unscorable,
    };
  }
  const scored = await core.score(
    ctx,
    route,
    scorable.map((p) => [p]),
    (k) => pngOf(scorable[k] as Uint8Array, m),
  );
  for (const [k, r] of scored.entries()) out[where[k] as number] = r;
  return out as DetectionRecord[];
}

function refusal(r: DetectionRecord): string {
  if (!r.flagged) return "";
  return (
    r.reason ?? `flagged as a suspected backdoor input (score ${r.score ?? "not finite"} > threshold ${r.threshold})`
  );
}

function outputTensor(name: string, rs: readonly DetectionRecord[]): OutputTensor {
  const shape = [rs.length];
  const refused = (r: DetectionRecord): boolean => r.flagged;
  switch (name) {
    case "score":
      return { name, datatype: "FP64", shape, values: rs.map((r) => r.score ?? Number.NaN) };
    case "threshold":
      return { name, datatype: "FP64", shape, values: rs.map((r) => r.threshold) };
    case "flagged":
      return { name, datatype: "BOOL", shape, values: rs.map((r) => r.flagged) };
    case "pred":
      return { name, datatype: "INT64", shape, values: rs.map((r) => r.pred) };
    case "class":
      return { name, datatype: "BYTES", shape, values: rs.map((r) => (r.pred < 0 ? "" : r.class)) };
    case "error":
      return { name, datatype: "BYTES", shape, values: rs.map((r) => r.reason ?? "") };
    // The filtered model's own: no prediction for a refused input.
    case "refused":
      return { name, datatype: "BOOL", shape, values: rs.map(refused) };
    default:
      throw new Error(`internal error: no output ${name}`);
  }
}

function filteredTensor(name: string, rs: readonly DetectionRecord[]): OutputTensor {
  const shape = [rs.length];
  switch (name) {
    case "pred":
      return { name, datatype: "INT64", shape, values: rs.map((r) => (r.flagged ? -1 : r.pred)) };
    case "class":
      return { name, datatype: "BYTES", shape, values: rs.map((r) => (r.flagged || r.pred < 0 ? "" : r.class)) };
    case "error":
      return { name, datatype: "BYTES", shape, values: rs.map(refusal) };
    default:
      return outputTensor(name, rs);
  }
}

/** Answers one inference request on `model`; throws a ServeError (4xx: the request; 503/504: not scored). */
export async function infer(
  core: InferenceCore,
  ctx: RequestContext,
  route: string,
  model: ServedModel,
  req: InferRequest,
): Promise<InferAnswer> {
  if (!core.accepting()) throw shuttingDown();
  const chosen = chosenOutputs(model, req);
  const rs = await records(core, ctx, route, req);
  const tensor = model.role === "detector" ? outputTensor : filteredTensor;
  return {
    model_name: model.name,
    model_version: MODEL_VERSION,
    ...(req.id !== undefined && req.id !== "" ? { id: req.id } : {}),
    outputs: chosen.map((o) => ({ tensor: tensor(o.name, rs), binary: o.binary })),
  };
}
