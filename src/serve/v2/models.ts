// The two models the Open Inference Protocol sees: the detector (named by --model-name,
// "badexpert" by default), which answers each input's score, threshold, flag and M's prediction,
// and the filtered model ("<name>-filtered"), the firewall: M's prediction for inputs the
// detector passes, a refusal for each flagged or unscorable one. Both take one input, "image".
import type { ServedInfo } from "../../workers/served-info.js";
import { ServeError } from "../errors.js";
import type { Datatype } from "./tensor.js";

export type ModelRole = "detector" | "filtered";

export interface ServedModel {
  name: string;
  role: ModelRole;
}

/** badexpert serves one version of each model; a request may name it or leave it out. */
export const MODEL_VERSION = "1";
export const INPUT_NAME = "image";
/** The protocol extensions the server implements (reported by server metadata). */
export const EXTENSIONS = ["binary_tensor_data"];
export const FILTERED_SUFFIX = "-filtered";

export interface TensorMetadata {
  name: string;
  datatype: Datatype;
  shape: number[];
}

/** Each model's outputs, in the order they are answered when the request names none. */
export const OUTPUTS: Record<ModelRole, readonly { name: string; datatype: Datatype; description: string }[]> = {
  detector: [
    {
      name: "score",
      datatype: "FP64",
      description:
        "the detector's score (higher is more suspicious); NaN (null in JSON) when the input could not be scored",
    },
    {
      name: "threshold",
      datatype: "FP64",
      description: "the calibrated threshold: an input scoring above it is flagged",
    },
    {
      name: "flagged",
      datatype: "BOOL",
      description: "true for a suspected backdoor input, and for every input that could not be scored (fail closed)",
    },
    {
      name: "pred",
      datatype: "INT64",
      description: "the protected model M's predicted class index; -1 when M did not see the input",
    },
    { name: "class", datatype: "BYTES", description: "the name of that class; empty when pred is -1" },
    {
      name: "error",
      datatype: "BYTES",
      description: "empty when the input was scored; otherwise why it could not be (such an input is flagged)",
    },
  ],
  filtered: [
    {
      name: "pred",
      datatype: "INT64",
      description: "M's predicted class index for an input the detector passed; -1 for a refused input",
    },
    { name: "class", datatype: "BYTES", description: "the name of that class; empty for a refused input" },
    {
      name: "refused",
      datatype: "BOOL",
      description: "true when the input was flagged or could not be scored: no prediction is given for it",
    },
    { name: "error", datatype: "BYTES", description: "empty for an answered input; otherwise why it was refused" },
  ],
};

/** Finds the model a request names (and its version, when given), or throws 404 naming the models served. */
export function resolveModel(detectorName: string, name: string, version: string | undefined): ServedModel {
  const filtered = detectorName + FILTERED_SUFFIX;
  const role: ModelRole | null = name === detectorName ? "detector" : name === filtered ? "filtered" : null;
  if (role === null)
    throw new ServeError(
      "E_NOT_FOUND",
      "unknown_model",
      `no model named ${JSON.stringify(name.slice(0, 200))}; this server serves ${JSON.stringify(detectorName)} and ${JSON.stringify(filtered)}`,
    );
  if (version !== undefined && version !== "" && version !== MODEL_VERSION) {
    throw new ServeError(
      "E_NOT_FOUND",
      "unknown_version",
      `model ${JSON.stringify(name)} has no version ${JSON.stringify(version.slice(0, 200))}; it serves version ${MODEL_VERSION}`,
    );
  }
  return { name, role };
}

/** The model's input as the protocol's metadata gives it: uint8 NHWC pixels at the bundle's size. */
export function inputMetadata(info: ServedInfo): TensorMetadata {
  const [h, w] = info.preprocessing.imageSize;
  return { name: INPUT_NAME, datatype: "UINT8", shape: [-1, h, w, info.preprocessing.channels === 1 ? 1 : 3] };
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}

export function modelMetadata(model: ServedModel, info: ServedInfo, engine: string): ModelMetadata {
  return {
    name: model.name,
    versions: [MODEL_VERSION],
    // "<project>_<format>", as the protocol's platform names are.
    platform: `badexpert_${engine}`,
    inputs: [inputMetadata(info)],
    outputs: OUTPUTS[model.role].map((o) => ({ name: o.name, datatype: o.datatype, shape: [-1] })),
  };
}
