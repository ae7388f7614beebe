// The Open Inference Protocol's gRPC service (GRPCInferenceService, grpc_predict_v2.proto) on its
// own port, in the server's process: ModelInfer goes through the same inference path as HTTP's
// /v2 infer (so the same batcher, workers, limits, metrics and audit log), the bearer token is
// read from the `authorization` metadata, and errors are gRPC status codes with the message
// /v2 would give. Liveness and readiness answer without a token, as the HTTP probes do.
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  loadPackageDefinition,
  Metadata,
  Server,
  ServerCredentials,
  status,
  type GrpcObject,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { bearerCheck } from "../auth.js";
import { ServeError } from "../errors.js";
import type { InferenceCore, RequestContext } from "./core.js";
import { infer, type InferRequest } from "./infer.js";
import { EXTENSIONS, modelMetadata, resolveModel } from "./models.js";
import { rawBytes, type InputTensor, type Params, type TensorData } from "./tensor.js";
import { packageVersion as serverVersion } from "../../util/package-version.js";

// From dist/src/serve/v2/ to the package's proto/ folder (packed with it: package.json "files").
const PROTO = fileURLToPath(new URL("../../../../proto/grpc_predict_v2.proto", import.meta.url));
const REQUEST_ID = /^[\w.-]{1,64}$/;

interface WireParameter {
  parameter_choice?: "bool_param" | "int64_param" | "string_param";
  bool_param?: boolean;
  int64_param?: number;
  string_param?: string;
}
type WireParams = Record<string, WireParameter>;
interface WireContents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: number[];
  uint_contents: number[];
  uint64_contents: number[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}
interface WireInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: WireParams;
  inputs: { name: string; datatype: string; shape: number[]; parameters: WireParams; contents: WireContents | null }[];
  outputs: { name: string; parameters: WireParams }[];
  raw_input_contents: Buffer[];
}

/** gRPC's status for each HTTP status the inference path answers with. */
const GRPC_STATUS: Record<number, status> = {
  400: status.INVALID_ARGUMENT,
  401: status.UNAUTHENTICATED,
  404: status.NOT_FOUND,
  413: status.RESOURCE_EXHAUSTED,
  415: status.INVALID_ARGUMENT,
  503: status.UNAVAILABLE,
  504: status.DEADLINE_EXCEEDED,
};

function params(p: WireParams | undefined): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(p ?? {})) {
    const choice = v.parameter_choice;
    if (choice === "bool_param") out[k] = v.bool_param === true;
    else if (choice === "int64_param") out[k] = Number(v.int64_param ?? 0);
    else if (choice === "string_param") out[k] = v.string_param ?? "";
  }
  return out;
}

/** The typed contents field that holds a datatype's elements. */
function contentsOf(datatype: string, c: WireContents | null): readonly number[] | readonly Uint8Array[] {
  if (c === null) return [];
  switch (datatype) {
    case "UINT8":
    case "UINT16":
    case "UINT32":
      return c.uint_contents;
    case "INT8":
    case "INT16":
    case "INT32":
      return c.int_contents;
    case "INT64":
      return c.int64_contents;
    case "UINT64":
      return c.uint64_contents;
    case "FP32":
      return c.fp32_contents;
    case "FP64":
      return c.fp64_contents;
    case "BYTES":
      return c.bytes_contents;
    default:
      return [];
  }
}

function inferRequestOf(m: WireInferRequest): InferRequest {
  const raw = m.raw_input_contents;
  if (raw.length > 0 && raw.length !== m.inputs.length)
    throw new ServeError(
      "E_USAGE",
      "bad_tensor",
      `raw_input_contents has ${raw.length} entries for ${m.inputs.length} inputs (one per input, in order)`,
    );
  const inputs: InputTensor[] = m.inputs.map((t, i) => {
    let data: TensorData;
    if (raw.length > 0) {
      if (t.contents !== null && contentsOf(t.datatype, t.contents).length > 0)
        throw new ServeError(
          "E_USAGE",
          "bad_tensor",
          `input ${JSON.stringify(t.name)} has both contents and raw_input_contents`,
        );
      data = { kind: "raw", bytes: raw[i] as Buffer };
    } else {
      data = { kind: "list", values: contentsOf(t.datatype, t.contents) };
    }
    return { name: t.name, datatype: t.datatype, shape: t.shape.map(Number), parameters: params(t.parameters), data };
  });
  return {
    id: m.id,
    parameters: params(m.parameters),
    inputs,
    outputs: m.outputs.map((o) => ({ name: o.name, parameters: params(o.parameters) })),
  };
}

export class GrpcInferenceServer {
  readonly #server: Server;
  readonly #core: InferenceCore;
  readonly #check: ((header: string | undefined) => string | null) | null;
  readonly port: number;

  private constructor(server: Server, core: InferenceCore, port: number) {
    this.#server = server;
    this.#core = core;
    this.port = port;
    this.#check = core.options.token === null ? null : bearerCheck(core.options.token);
  }

  /** Starts the service on host:port (0: a free port); rejects naming the address and the reason. */
  static async start(core: InferenceCore, host: string, port: number): Promise<GrpcInferenceServer> {
    const def = loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(def) as GrpcObject & {
      inference: { GRPCInferenceService: { service: ServiceDefinition } };
    };
    const server = new Server({ "grpc.max_receive_message_length": core.options.maxBodyBytes });
    const at = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(at, ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(new Error(`serve: cannot listen for gRPC on ${at}: ${e.message}`, { cause: e })) : resolve(p),
      ),
    );
    const g = new GrpcInferenceServer(server, core, bound);
    server.addService(pkg.inference.GRPCInferenceService.service, g.#implementation());
    return g;
  }

  /**
   * Stops taking calls (clients get GOAWAY and go elsewhere) and waits for those in flight;
   * resolves true when they are done, false at `deadline` (performance.now() time) if not.
   */
  drain(deadline: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Cancels every call still open (after the grace period). */
  forceClose(): void {
    this.#server.forceShutdown();
  }

  #implementation(): UntypedServiceImplementation {
    const core = this.#core;
    const unary =
      <Req, Res>(method: string, isPublic: boolean, answer: (req: Req, ctx: RequestContext) => Res | Promise<Res>) =>
      (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
        const start = performance.now();
        const given = call.metadata.get("x-request-id")[0];
        const id = typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
        const ctx: RequestContext = { id, client: call.getPeer(), log: core.log.child({ reqId: id, grpc: method }) };
        const md = new Metadata();
        md.set("x-request-id", id);
        call.sendMetadata(md);
        const done = (code: status, e: ServeError | null, res: Res | null): void => {
          core.metrics.grpcRequests.inc({ method, code: status[code] });
          core.metrics.grpcLatency.observe({ method }, (performance.now() - start) / 1000);
          if (method === "ModelInfer")
            core.metrics.inferenceRequests.inc({
              protocol: "v2-grpc",
              model: modelLabel(core, (call.request as { model_name?: string }).model_name),
              status: String(e?.statusCode ?? 200),
            });
          if (e === null) callback(null, res);
          else callback({ code, details: e.message }, null);
        };
        Promise.resolve()
          .then(() => {
            if (!isPublic && this.#check !== null) {
              const auth = call.metadata.get("authorization")[0];
              const problem = this.#check(typeof auth === "string" ? auth : undefined);
              if (problem) throw new ServeError("E_UNAUTHORIZED", "unauthorized", problem);
            }
            return answer(call.request, ctx);
          })
          .then(
            (res) => done(status.OK, null, res),
            (err: unknown) => {
              if (err instanceof ServeError) {
                if (err.statusCode >= 500) {
                  core.metrics.refused.inc({ reason: err.code });
                  ctx.log.warn(
                    { event: "refused", code: err.code, err: err.message },
                    "request refused without a score",
                  );
                } else {
                  ctx.log.info({ event: "bad_request", code: err.code, err: err.message }, "bad request");
                }
                done(GRPC_STATUS[err.statusCode] ?? status.UNKNOWN, err, null);
                return;
              }
              ctx.log.error({ err }, "internal error");
              done(
                status.INTERNAL,
                new ServeError("E_INTERNAL", "internal", "internal error (logged with request id)"),
                null,
              );
            },
          );
      };
    const name = (): string => core.options.modelName;
    return {
      ServerLive: unary("ServerLive", true, () => ({ live: true })),
      ServerReady: unary("ServerReady", true, () => ({ ready: core.ready() })),
      ModelReady: unary("ModelReady", true, (r: { name: string; version: string }) => {
        resolveModel(name(), r.name, r.version);
        return { ready: core.ready() };
      }),
      ServerMetadata: unary("ServerMetadata", false, () => ({
        name: "badexpert",
        version: serverVersion(),
        extensions: EXTENSIONS,
      })),
      ModelMetadata: unary("ModelMetadata", false, (r: { name: string; version: string }) =>
        modelMetadata(resolveModel(name(), r.name, r.version), core.info, core.engine),
      ),
      ModelInfer: unary("ModelInfer", false, async (r: WireInferRequest, ctx) => {
        const model = resolveModel(name(), r.model_name, r.model_version);
        const a = await infer(core, ctx, `grpc:ModelInfer/${model.name}`, model, inferRequestOf(r));
        return {
          model_name: a.model_name,
          model_version: a.model_version,
          id: a.id ?? "",
          parameters: {},
          outputs: a.outputs.map(({ tensor: t }) => ({
            name: t.name,
            datatype: t.datatype,
            shape: t.shape,
            parameters: {},
          })),
          raw_output_contents: a.outputs.map(({ tensor: t }) => Buffer.from(rawBytes(t))),
        };
      }),
    };
  }
}

/** The model label of the inference counter: a served model's name, or "unknown" (a client's typo must not make a label). */
export function modelLabel(core: Pick<InferenceCore, "options">, name: string | undefined): string {
  const n = core.options.modelName;
  return name === n || name === `${n}-filtered` ? name : "unknown";
}
