// What a saved model is (architecture and its options) and how its inputs are prepared, with
// the validation every manifest that carries them (checkpoint model.json, bundle detector.json)
// runs on load. These fields decide how much memory a model takes and what its scores mean, so
// a hand-edited or hostile value is refused before any model is built.
import { modelNames } from "../models/registry.js";
import { TORCHSCRIPT_ARCH } from "../models/model-source.js";
import type { FieldReader } from "../util/fields.js";

export interface ModelSpec {
  /** Zoo name, e.g. "resnet18". */
  name: string;
  numClasses: number;
  inChannels: number;
  imageSize: number;
}

export interface Preprocessing {
  /** Height and width the model takes. */
  imageSize: [number, number];
  channels: number;
  /** Per-channel mean/std in [0, 1] units, applied after scaling pixels to [0, 1]. */
  mean: number[];
  std: number[];
}

// Far above every dataset here (28–64 px, 10–43 classes); they bound what a manifest can make
// us allocate (a 15000-pixel compact CNN would ask for gigabytes before failing).
export const MAX_IMAGE_SIZE = 1024;
export const MAX_CLASSES = 100_000;

export function readModelSpec(r: FieldReader, v: unknown, path: string): ModelSpec {
  const o = r.object(v, path);
  const names = [...modelNames(), TORCHSCRIPT_ARCH];
  return {
    name: r.oneOf(o.name, `${path}.name`, names),
    numClasses: r.number(o.numClasses, `${path}.numClasses`, { integer: true, min: 1, max: MAX_CLASSES }),
    inChannels: r.number(o.inChannels, `${path}.inChannels`, { integer: true, min: 1, max: 3 }),
    imageSize: r.number(o.imageSize, `${path}.imageSize`, { integer: true, min: 1, max: MAX_IMAGE_SIZE }),
  };
}

export function readPreprocessing(r: FieldReader, v: unknown, path: string, spec: ModelSpec): Preprocessing {
  const o = r.object(v, path);
  const size = r.numbers(o.imageSize, `${path}.imageSize`, { length: 2, integer: true, min: 1, max: MAX_IMAGE_SIZE });
  const [h, w] = size as [number, number];
  if (h !== spec.imageSize || w !== spec.imageSize)
    r.fail(`${path}.imageSize`, `[${spec.imageSize}, ${spec.imageSize}] (the model's imageSize)`, size);
  const channels = r.number(o.channels, `${path}.channels`, { integer: true });
  if (channels !== spec.inChannels) r.fail(`${path}.channels`, `${spec.inChannels} (the model's inChannels)`, channels);
  return {
    imageSize: [h, w],
    channels,
    mean: r.numbers(o.mean, `${path}.mean`, { length: channels }),
    // std divides: zero or negative would make every score NaN or meaningless.
    std: r.numbers(o.std, `${path}.std`, { length: channels, positive: true }),
  };
}

export function readClassNames(r: FieldReader, v: unknown, path: string, spec: ModelSpec): string[] {
  return r.strings(v, path, { length: spec.numClasses });
}
