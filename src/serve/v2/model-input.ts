// The "image" input of an inference request, turned into what the scoring path takes: uint8
// NHWC pixels at the bundle's size (the batcher's format), or encoded image files that go through
// the same probe, pixel budget and decoder as /v1's uploads. Three forms are accepted:
//   UINT8 [N, H, W, C]  pixels, as the model's metadata advertises;
//   FP32  [N, C, H, W]  pixel / 255 in [0, 1] (PyTorch's ToTensor layout), rounded to the nearest
//                       uint8 level: the detector scores 8-bit images, as /v1 and `scan` do;
//   BYTES [N] or [N, 1] encoded images (PNG, JPEG, ...): raw bytes with the binary extension or
//                       gRPC, base64 strings in JSON with parameters.content_type "base64".
// A FP32 image holding NaN or an infinity is not refused as a request error: it is unscorable,
// and answered as such in its own row (flagged by the detector model, refused by the filtered
// one), as an input whose score is not finite is.
import type { ModelInput } from "../decode.js";
import { fromBase64 } from "../inputs.js";
import { ServeError } from "../errors.js";
import { bad, checkRawSize, elementCount, flattenJson, splitBytesElements, type InputTensor } from "./tensor.js";
import { INPUT_NAME } from "./models.js";

/** One image given as a tensor: its pixels, or why it cannot be scored (with its raw elements, for the audit log). */
export type PixelItem = { pixels: Uint8Array } | { unscorable: string; raw: Uint8Array };

export type ModelImages =
  { kind: "pixels"; items: PixelItem[] } | { kind: "encoded"; images: { name: string; data: Uint8Array }[] };

/** The shapes each accepted datatype takes, for messages. */
export function acceptedForms(m: ModelInput): string {
  const { height: h, width: w, channels: c } = m;
  return `UINT8 [-1, ${h}, ${w}, ${c}] (NHWC pixels), FP32 [-1, ${c}, ${h}, ${w}] (NCHW, pixel / 255 in [0, 1]) or BYTES [-1] (encoded images)`;
}

function batchOf(shape: number[], want: number[], what: string, form: string, maxImages: number): number {
  const n = shape[0] as number;
  const fits = shape.length === want.length + 1 && shape.slice(1).every((d, i) => d === want[i]);
  if (!fits)
    throw bad(`${what}: shape [${shape.join(", ")}] does not fit the bundle: ${form} takes [-1, ${want.join(", ")}]`);
  if (n === 0)
    throw new ServeError("E_USAGE", "no_images", `${what}: the batch dimension is 0: the request holds no images`);
  if (n > maxImages)
    throw new ServeError(
      "E_INPUT_TOO_LARGE",
      "too_many_images",
      `${what}: ${n} images; at most ${maxImages} per request (--max-images-per-request)`,
    );
  return n;
}

function uint8Pixels(t: InputTensor, m: ModelInput, maxImages: number): PixelItem[] {
  const what = `input ${JSON.stringify(t.name)}`;
  const n = batchOf(t.shape, [m.height, m.width, m.channels], what, "UINT8 (NHWC)", maxImages);
  const per = m.height * m.width * m.channels;
  let all: Uint8Array;
  if (t.data.kind === "raw") {
    checkRawSize(t.data.bytes, n * per, 1, "UINT8", what);
    all = t.data.bytes;
  } else {
    const values = t.data.kind === "json" ? flattenJson(t.data.values, t.shape.length, n * per, what) : t.data.values;
    if (values.length !== n * per) throw bad(`${what}: ${values.length} UINT8 elements, its shape needs ${n * per}`);
    all = new Uint8Array(n * per);
    for (let i = 0; i < all.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 255)
        throw bad(`${what}: element ${i} is ${String(v).slice(0, 40)}; UINT8 elements are integers in 0..255`);
      all[i] = v;
    }
  }
  return Array.from({ length: n }, (_, k) => ({ pixels: all.subarray(k * per, (k + 1) * per) }));
}

function fp32Pixels(t: InputTensor, m: ModelInput, maxImages: number): PixelItem[] {
  const what = `input ${JSON.stringify(t.name)}`;
  const { height: h, width: w, channels: c } = m;
  const n = batchOf(t.shape, [c, h, w], what, "FP32 (NCHW)", maxImages);
  const per = c * h * w;
  let at: (i: number) => unknown;
  let raw: (k: number) => Uint8Array;
  if (t.data.kind === "raw") {
    const bytes = t.data.bytes;
    checkRawSize(bytes, n * per, 4, "FP32", what);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    at = (i) => view.getFloat32(4 * i, true);
    raw = (k) => bytes.slice(4 * k * per, 4 * (k + 1) * per);
  } else {
    const values = t.data.kind === "json" ? flattenJson(t.data.values, t.shape.length, n * per, what) : t.data.values;
    if (values.length !== n * per) throw bad(`${what}: ${values.length} FP32 elements, its shape needs ${n * per}`);
    at = (i) => {
      const v = values[i];
      if (typeof v !== "number")
        throw bad(`${what}: element ${i} is ${v === null ? "null" : typeof v}; FP32 elements are numbers`);
      return Math.fround(v);
    };
    raw = (k) => {
      const out = new Uint8Array(4 * per);
      const view = new DataView(out.buffer);
      for (let i = 0; i < per; i++) view.setFloat32(4 * i, at(k * per + i) as number, true);
      return out;
    };
  }
  const items: PixelItem[] = [];
  for (let k = 0; k < n; k++) {
    const pixels = new Uint8Array(per);
    let unscorable: string | null = null;
    for (let ch = 0; ch < c && unscorable === null; ch++) {
      for (let y = 0; y < h && unscorable === null; y++) {
        for (let x = 0; x < w; x++) {
          const v = at(((k * c + ch) * h + y) * w + x) as number;
          if (!Number.isFinite(v)) {
            unscorable = `image ${k} holds ${String(v)} at [${ch}, ${y}, ${x}]: a tensor that is not finite cannot be scored`;
            break;
          }
          if (v < 0 || v > 1)
            throw bad(
              `${what}: image ${k} holds ${v} at [${ch}, ${y}, ${x}]; FP32 pixels are pixel / 255 in [0, 1] (send UINT8 for 0..255)`,
            );
          pixels[(y * w + x) * c + ch] = Math.round(v * 255);
        }
      }
    }
    items.push(unscorable === null ? { pixels } : { unscorable, raw: raw(k) });
  }
  return items;
}

function encodedImages(t: InputTensor, maxImages: number): { name: string; data: Uint8Array }[] {
  const what = `input ${JSON.stringify(t.name)}`;
  const s = t.shape;
  if (!(s.length === 1 || (s.length === 2 && s[1] === 1)))
    throw bad(`${what}: BYTES takes shape [-1] or [-1, 1] (one encoded image per element), got [${s.join(", ")}]`);
  const n = s[0] as number;
  if (n === 0)
    throw new ServeError("E_USAGE", "no_images", `${what}: the batch dimension is 0: the request holds no images`);
  if (n > maxImages)
    throw new ServeError(
      "E_INPUT_TOO_LARGE",
      "too_many_images",
      `${what}: ${n} images; at most ${maxImages} per request (--max-images-per-request)`,
    );
  const contentType = t.parameters.content_type;
  if (contentType !== undefined && contentType !== "base64")
    throw bad(
      `${what}: parameters.content_type ${JSON.stringify(String(contentType).slice(0, 40))} is not accepted; use "base64" or leave it out`,
    );
  const base64 = contentType === "base64";
  let elements: (Uint8Array | string)[];
  if (t.data.kind === "json") {
    if (!base64)
      throw bad(
        `${what}: BYTES images in JSON must be base64 strings with parameters.content_type "base64"; or send raw bytes with the binary extension`,
      );
    elements = flattenJson(t.data.values, s.length, n, what).map((v, i) => {
      if (typeof v !== "string")
        throw bad(`${what}: element ${i} is ${v === null ? "null" : typeof v}, expected a base64 string`);
      return v;
    });
  } else if (t.data.kind === "raw") {
    elements = splitBytesElements(t.data.bytes, n, what);
  } else {
    elements = t.data.values.map((v, i) => {
      if (!(v instanceof Uint8Array)) throw bad(`${what}: element ${i} is not bytes`);
      return v;
    });
    if (elements.length !== n) throw bad(`${what}: ${elements.length} BYTES elements, its shape needs ${n}`);
  }
  return elements.map((e, i) => {
    const name = `${t.name}[${i}]`;
    if (!base64) return { name, data: e as Uint8Array };
    return { name, data: fromBase64(typeof e === "string" ? e : Buffer.from(e).toString("latin1"), name) };
  });
}

/** The request's images, from its one input "image", or a 4xx ServeError naming what is wrong. */
export function modelImages(inputs: readonly InputTensor[], m: ModelInput, maxImages: number): ModelImages {
  if (inputs.length !== 1 || inputs[0]?.name !== INPUT_NAME) {
    const names = inputs.map((t) => JSON.stringify(t.name)).join(", ") || "none";
    throw bad(
      `the model takes one input, "${INPUT_NAME}" (${acceptedForms(m)}); the request has ${inputs.length} (${names})`,
    );
  }
  const t = inputs[0];
  elementCount(t.shape, `input ${JSON.stringify(t.name)}`);
  switch (t.datatype) {
    case "UINT8":
      return { kind: "pixels", items: uint8Pixels(t, m, maxImages) };
    case "FP32":
      return { kind: "pixels", items: fp32Pixels(t, m, maxImages) };
    case "BYTES":
      return { kind: "encoded", images: encodedImages(t, maxImages) };
    default:
      throw bad(
        `input "${INPUT_NAME}": datatype ${JSON.stringify(t.datatype.slice(0, 40))} is not accepted; send ${acceptedForms(m)}`,
      );
  }
}
