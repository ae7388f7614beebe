// Clients of the Open Inference Protocol for the service tests, written from the protocol, not
// from the server's code: JSON and binary-extension requests over fetch, and a @grpc/grpc-js
// client built from the protocol's GRPCInferenceService definition.
import { fileURLToPath } from "node:url";
import { credentials, loadPackageDefinition, Metadata, type Client, type ServiceError } from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";

export interface V2Output {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, unknown>;
  data?: unknown[];
}

export interface V2Answer {
  status: number;
  headers: Headers;
  /** The JSON part (or the {"error"} body). */
  body: { model_name?: string; model_version?: string; id?: string; outputs?: V2Output[]; error?: string };
  /** Each output's values, from JSON data or decoded from its binary bytes. */
  values: Record<string, unknown[]>;
}

/** Decodes one output's raw bytes (little-endian; BYTES length-prefixed). */
export function decodeRaw(datatype: string, b: Uint8Array): unknown[] {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: unknown[] = [];
  if (datatype === "FP64") for (let i = 0; i < b.length; i += 8) out.push(v.getFloat64(i, true));
  else if (datatype === "INT64") for (let i = 0; i < b.length; i += 8) out.push(Number(v.getBigInt64(i, true)));
  else if (datatype === "BOOL") for (const x of b) out.push(x === 1);
  else if (datatype === "BYTES") {
    for (let i = 0; i < b.length;) {
      const n = v.getUint32(i, true);
      out.push(Buffer.from(b.subarray(i + 4, i + 4 + n)).toString("utf8"));
      i += 4 + n;
    }
  } else throw new Error(`decodeRaw: ${datatype}`);
  return out;
}

async function answer(r: Response): Promise<V2Answer> {
  const buf = Buffer.from(await r.arrayBuffer());
  const h = r.headers.get("inference-header-content-length");
  const jsonLength = h === null ? buf.length : Number(h);
  const body = JSON.parse(buf.subarray(0, jsonLength).toString("utf8")) as V2Answer["body"];
  const values: Record<string, unknown[]> = {};
  let at = jsonLength;
  for (const o of body.outputs ?? []) {
    const size = o.parameters?.binary_data_size;
    if (typeof size === "number") {
      values[o.name] = decodeRaw(o.datatype, buf.subarray(at, at + size));
      at += size;
    } else {
      values[o.name] = o.data ?? [];
    }
  }
  if (at !== buf.length) throw new Error(`the answer has ${buf.length - at} bytes that no output claims`);
  return { status: r.status, headers: r.headers, body, values };
}

/** POST a JSON inference request. */
export async function inferJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<V2Answer> {
  return answer(
    await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    }),
  );
}

/** POST with the binary extension: the JSON header, then each tensor's bytes in input order. */
export async function inferBinary(
  url: string,
  header: unknown,
  tensors: Uint8Array[],
  headers: Record<string, string> = {},
): Promise<V2Answer> {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const body = Buffer.concat([json, ...tensors]);
  return answer(
    await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/octet-stream",
        "inference-header-content-length": String(json.length),
        ...headers,
      },
      body,
    }),
  );
}

/** BYTES elements in the raw layout: a 4-byte little-endian length, then the bytes, for each. */
export function bytesTensor(elements: Uint8Array[]): Uint8Array {
  const out = Buffer.alloc(elements.reduce((n, e) => n + 4 + e.length, 0));
  let at = 0;
  for (const e of elements) {
    out.writeUInt32LE(e.length, at);
    out.set(e, at + 4);
    at += 4 + e.length;
  }
  return out;
}

export const fp32Bytes = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** uint8 NHWC pixels to float32 NCHW (pixel / 255), as PyTorch's ToTensor lays them out. */
export function toNchw(pixels: Uint8Array, n: number, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(n * c * h * w);
  for (let k = 0; k < n; k++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let ch = 0; ch < c; ch++)
          out[((k * c + ch) * h + y) * w + x] = (pixels[((k * h + y) * w + x) * c + ch] as number) / 255;
  return out;
}

// ---- gRPC

const PROTO = fileURLToPath(new URL("../../../proto/grpc_predict_v2.proto", import.meta.url));

type Call = (req: unknown, md: Metadata, cb: (e: ServiceError | null, res: unknown) => void) => void;

export class GrpcClient {
  readonly #c: Client & Record<string, Call>;
  readonly #token: string | null;

  constructor(address: string, token: string | null = null) {
    const def = loadSync(PROTO, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    const pkg = loadPackageDefinition(def) as unknown as {
      inference: {
        GRPCInferenceService: new (
          a: string,
          c: ReturnType<typeof credentials.createInsecure>,
        ) => Client & Record<string, Call>;
      };
    };
    this.#c = new pkg.inference.GRPCInferenceService(address, credentials.createInsecure());
    this.#token = token;
  }

  /** Calls one RPC; resolves with the response, or rejects with the gRPC error (code, details). */
  call<T = Record<string, unknown>>(method: string, req: unknown, o: { token?: string | null } = {}): Promise<T> {
    const md = new Metadata();
    const token = o.token === undefined ? this.#token : o.token;
    if (token !== null) md.set("authorization", `Bearer ${token}`);
    return new Promise((resolve, reject) => {
      const fn = this.#c[method] as Call;
      fn.call(this.#c, req, md, (e, res) => (e ? reject(e) : resolve(res as T)));
    });
  }

  close(): void {
    this.#c.close();
  }
}

export interface GrpcInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[] }[];
  raw_output_contents: Buffer[];
}

/** Each output's values of a ModelInfer response. */
export function grpcValues(r: GrpcInferResponse): Record<string, unknown[]> {
  return Object.fromEntries(
    r.outputs.map((o, i) => [o.name, decodeRaw(o.datatype, r.raw_output_contents[i] as Buffer)]),
  );
}
