// The import job: a model trained elsewhere (a state_dict for a zoo architecture, or a
// TorchScript file of any architecture) becomes a checkpoint directory every command takes.
// What the model expects comes from a dataset, or is given (input shape, mean, std, classes);
// with a dataset the model is evaluated on its test split and the accuracy recorded. Before it is
// accepted the model runs on a small batch, and a model a detector could not judge by (non-finite
// logits, a wrong shape, rows that depend on the rest of the batch, a forward that fails) is refused.
import { resolve } from "node:path";
import { inferenceMode, isFloating, tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { StateDictError } from "../nn/state-dict-error.js";
import { TorchScriptModule } from "../nn/torchscript-module.js";
import { readStateDictFile } from "../io/state-dict-file.js";
import { datasetInfo, datasetNames, loadDataset } from "../data/registry.js";
import type { ImageDataset } from "../data/dataset.js";
import { gatherImages, imagesToTensor } from "../data/batch.js";
import { normalize } from "../data/augment.js";
import { createModel, modelNames } from "../models/registry.js";
import { TORCHSCRIPT_ARCH } from "../models/model-source.js";
import {
  CHECKPOINT_DIR,
  saveCheckpoint,
  type CheckpointMeta,
  type ModelSpec,
  type Preprocessing,
} from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import { FileReadError, readRegularTextFile } from "../util/read-regular-file.js";
import { assertWritableDir } from "../util/atomic-dir.js";
import { Rng } from "../util/rng.js";
import { OptionError } from "./errors.js";
import { requireDataPath } from "./data-path.js";
import { BadExpertError } from "../util/errors.js";

export interface ImportOptions {
  out: string;
  /** A state_dict file (safetensors or torch.save zip) for the zoo architecture `arch`. */
  weights?: string;
  arch?: string;
  /** A TorchScript file (any architecture). */
  torchscript?: string;
  dataset?: string;
  dataPath?: string;
  /** Without a dataset: channels, height, width; mean and std per channel; class names. */
  input?: [number, number, number];
  mean?: number[];
  std?: number[];
  classNames?: string[];
  /** Evaluate on the dataset's test split (default true when a dataset is given). */
  verify?: boolean;
  /** Where the verification runs (cpu, cuda, cuda:N; default cpu). The checkpoint is written from the CPU either way. */
  device?: string;
  /** Replace an existing non-empty --out when it is a checkpoint of ours (anything else is refused). */
  force?: boolean;
  log?: (line: string) => void;
}

export interface ImportResult {
  checkpoint: string;
  meta: CheckpointMeta;
  accuracy: number | null;
  source: Record<string, unknown>;
}

/** A class list of 100,000 names of 100 characters: far more than any classifier here. */
const MAX_CLASS_LIST_BYTES = 16 * 1024 * 1024;

/** Reads `--classes`: a count, or a file with one class name per line. */
export async function readClassNames(spec: string): Promise<string[]> {
  if (/^\d+$/.test(spec)) {
    const n = Number(spec);
    if (n < 2) throw new OptionError("--classes", `expected at least 2 classes, got ${n}`);
    return Array.from({ length: n }, (_, i) => String(i));
  }
  let text: string;
  try {
    // A class list is a few kilobytes; a FIFO, a device or a huge file is refused before reading.
    text = await readRegularTextFile(spec, { maxBytes: MAX_CLASS_LIST_BYTES, what: "class names file" });
  } catch (e) {
    throw new OptionError(
      "--classes",
      `${spec} is neither a number nor a readable file of class names (${e instanceof FileReadError ? e.problem : (e as Error).message})`,
    );
  }
  const names = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  if (names.length < 2)
    throw new OptionError("--classes", `${spec} lists ${names.length} class names, expected at least 2 (one per line)`);
  return names;
}

interface Target {
  preprocessing: Preprocessing;
  classNames: string[];
  dataset: { name: string; path?: string };
}

/** What the model expects: from the dataset's registry entry, or from the given values. */
function resolveTarget(o: ImportOptions): Target {
  if (o.dataset) {
    const info = datasetInfo(o.dataset);
    if (!info.imageSize && !o.input)
      throw new OptionError("--input", `dataset ${o.dataset} has no fixed image size; give --input CxHxW`);
    const c = o.input?.[0] ?? info.channels;
    const [h, w] = o.input ? [o.input[1], o.input[2]] : [info.imageSize?.height ?? 0, info.imageSize?.width ?? 0];
    const mean = o.mean ?? info.mean ?? new Array<number>(c).fill(0.5);
    const std = o.std ?? info.std ?? new Array<number>(c).fill(0.5);
    const classNames =
      o.classNames ?? (info.numClasses ? Array.from({ length: info.numClasses }, (_, i) => String(i)) : []);
    return {
      preprocessing: { imageSize: [h, w], channels: c, mean, std },
      classNames,
      dataset: { name: o.dataset, ...(o.dataPath ? { path: resolve(o.dataPath) } : {}) },
    };
  }
  if (!o.input || !o.mean || !o.std || !o.classNames) {
    const missing = (["input", "mean", "std", "classNames"] as const)
      .filter((k) => o[k] === undefined)
      .map((k) => (k === "classNames" ? "--classes" : `--${k}`));
    throw new OptionError(
      "--dataset",
      `say what the model expects: --dataset NAME, or all of --input CxHxW --mean a,b,c --std a,b,c --classes FILE|N (missing: ${missing.join(", ")})`,
    );
  }
  const [c, h, w] = o.input;
  for (const [k, v] of [
    ["mean", o.mean],
    ["std", o.std],
  ] as const) {
    if (v.length !== c) throw new OptionError(`--${k}`, `--${k} has ${v.length} values but --input has ${c} channels`);
  }
  if (o.std.some((s) => !(s > 0)))
    throw new OptionError("--std", `--std values must be positive, got ${o.std.join(",")}`);
  return {
    preprocessing: { imageSize: [h, w], channels: c, mean: o.mean, std: o.std },
    classNames: o.classNames,
    dataset: { name: "custom" },
  };
}

/** Key overlap of a state dict with each zoo architecture, best first (for "did you mean"). */
function closestArchitectures(
  keys: Map<string, number[]>,
  spec: Omit<ModelSpec, "name">,
): { name: string; score: number }[] {
  const out: { name: string; score: number }[] = [];
  for (const name of modelNames()) {
    let m: Module;
    try {
      m = createModel(name, spec);
    } catch {
      continue; // e.g. an image size the architecture does not accept
    }
    try {
      const own = [...m.stateDict()].map(([k, t]) => [k, t.shape] as const);
      const matched = own.filter(([k, s]) => {
        const g = keys.get(k);
        return g !== undefined && g.length === s.length && g.every((d, i) => d === s[i]);
      }).length;
      out.push({ name, score: matched / Math.max(own.length, keys.size) });
    } finally {
      m.dispose();
    }
  }
  return out.sort((a, b) => b.score - a.score);
}

async function importWeights(
  o: ImportOptions,
  spec: ModelSpec,
  log: (l: string) => void,
): Promise<{ model: Module; source: Record<string, unknown> }> {
  const file = await readStateDictFile(o.weights as string);
  try {
    const wrap = file.unwrapped.length ? `, unwrapped ${file.unwrapped.map((k) => `["${k}"]`).join("")}` : "";
    const strip = file.strippedPrefixes.length
      ? `, stripped key prefix ${file.strippedPrefixes.map((p) => `'${p}'`).join(" and ")}`
      : "";
    log(`read ${file.tensors.size} tensors from ${o.weights} (${file.format}${wrap}${strip})`);
    const model = createModel(spec.name, spec);
    try {
      model.loadStateDict(file.tensors, { strict: true });
    } catch (e) {
      model.dispose();
      if (!(e instanceof StateDictError)) throw e;
      const shapes = new Map([...file.tensors].map(([k, t]) => [k, t.shape]));
      const best = closestArchitectures(shapes, spec)[0];
      const hint =
        best && best.name !== spec.name && best.score > 0
          ? ` The closest zoo architecture is '${best.name}' (${(100 * best.score).toFixed(0)}% of keys and shapes match): try --arch ${best.name}.`
          : "";
      throw new BadExpertError(
        "E_MODEL_FORMAT",
        `import: ${o.weights} does not fit --arch ${spec.name}. ${e.message}${hint} A model of another architecture can be imported with --torchscript.`,
      );
    }
    return {
      model,
      source: {
        kind: "state_dict",
        file: resolve(o.weights as string),
        format: file.format,
        unwrapped: file.unwrapped,
        strippedPrefixes: file.strippedPrefixes,
      },
    };
  } finally {
    for (const t of file.tensors.values()) t.dispose();
  }
}

function importTorchScript(o: ImportOptions): { model: Module; source: Record<string, unknown> } {
  const model = TorchScriptModule.load(o.torchscript as string);
  return { model, source: { kind: "torchscript", file: resolve(o.torchscript as string) } };
}

/** Inputs a model is tried on before it is accepted. */
export const PROBE_INPUTS = 4;

/** PROBE_INPUTS inputs of the declared shape, normalised as the checkpoint records: the dataset's first test images, or seeded noise without a dataset. */
function probeBatch(spec: ModelSpec, p: Preprocessing, test: ImageDataset | null): Tensor {
  const [h, w] = p.imageSize;
  const per = h * w * p.channels;
  let bytes: Uint8Array;
  if (test !== null && test.count >= PROBE_INPUTS) {
    bytes = gatherImages(
      test,
      Int32Array.from({ length: PROBE_INPUTS }, (_, i) => i),
    );
  } else {
    const rng = new Rng(0);
    bytes = Uint8Array.from({ length: PROBE_INPUTS * per }, () => Math.floor(rng.next() * 256));
  }
  return tidy(() => normalize(imagesToTensor(bytes, PROBE_INPUTS, h, w, p.channels), p.mean, p.std));
}

/** Largest difference allowed between an input's logits alone and in a batch (float32 kernels may pick other algorithms per batch size). */
const BATCH_TOLERANCE = 1e-3;

/**
 * Runs the model on PROBE_INPUTS inputs, as a batch and one by one, and refuses what a detector
 * could not judge by: a forward that fails or returns no tensor, an output that is not
 * [batch, numClasses] floating-point logits, NaN or Infinity, or rows that change with the rest of
 * the batch (scoring batches inputs, so each must be judged on its own).
 */
export function checkModelOutputs(
  model: Module,
  spec: ModelSpec,
  p: Preprocessing,
  test: ImageDataset | null,
  what: string,
): void {
  model.eval();
  const n = PROBE_INPUTS;
  const shape = `[${n}, ${spec.inChannels}, ${p.imageSize[0]}, ${p.imageSize[1]}]`;
  const inputs =
    test !== null && test.count >= n ? `the first ${n} test images of ${test.name}` : `${n} seeded random images`;
  const classes = `${spec.numClasses} classes${test !== null ? ` in ${test.name}` : ""}`;
  inferenceMode(() =>
    tidy(() => {
      const x = probeBatch(spec, p, test);
      const run = (input: Tensor, label: string): Tensor => {
        try {
          return model.forward(input);
        } catch (e) {
          throw new BadExpertError(
            "E_MODEL_FORMAT",
            `import: ${what} fails on ${label}: ${((e as Error).message.split("\n")[0] ?? "").slice(0, 300)}`,
            { cause: e },
          );
        }
      };
      const y = run(x, `a batch of ${n} inputs ${shape}`);
      if (y.shape.length !== 2 || y.shape[0] !== n || y.shape[1] !== spec.numClasses) {
        throw new BadExpertError(
          "E_MODEL_FORMAT",
          `import: ${what} maps a batch of ${n} inputs ${shape} to [${y.shape.join(", ")}], expected [${n}, ${spec.numClasses}]: one row of logits per input, one value per class (${classes})`,
        );
      }
      if (!isFloating(y.dtype))
        throw new BadExpertError(
          "E_MODEL_FORMAT",
          `import: ${what} returns ${y.dtype} values, expected floating-point logits`,
        );
      const batch = y.to({ dtype: "float64" }).data() as Float64Array;
      const badRows = new Set<number>();
      let bad = 0;
      batch.forEach((v, k) => {
        if (!Number.isFinite(v)) {
          bad++;
          badRows.add(Math.floor(k / spec.numClasses));
        }
      });
      if (bad > 0) {
        throw new BadExpertError(
          "E_MODEL_FORMAT",
          `import: ${what} returns ${bad} non-finite logit(s) (NaN or Infinity) for ${badRows.size} of ${n} inputs (${inputs}: input ${[...badRows].join(", ")}); ` +
            "a detector cannot judge inputs by such logits",
        );
      }
      for (let i = 0; i < n; i++) {
        const alone = run(
          x.narrow(0, i, 1),
          `input ${i} alone [1, ${spec.inChannels}, ${p.imageSize[0]}, ${p.imageSize[1]}]`,
        );
        const ok = alone.shape.length === 2 && alone.shape[0] === 1 && alone.shape[1] === spec.numClasses;
        const row = ok ? (alone.to({ dtype: "float64" }).data() as Float64Array) : null;
        let worst = 0;
        if (row !== null) {
          row.forEach((v, c) => {
            const b = batch[i * spec.numClasses + c] as number;
            const d = Number.isFinite(v) ? Math.abs(v - b) / (1 + Math.abs(b)) : Number.POSITIVE_INFINITY;
            worst = Math.max(worst, d);
          });
        }
        if (row === null || worst > BATCH_TOLERANCE) {
          throw new BadExpertError(
            "E_MODEL_FORMAT",
            `import: ${what} gives input ${i} (${inputs}) ${row === null ? `output of shape [${alone.shape.join(", ")}]` : `logits up to ${worst.toPrecision(3)} (relative) away from its row of the batch`} ` +
              `when run alone: its output depends on the other inputs of its batch, and scoring runs inputs in batches`,
          );
        }
      }
    }),
  );
}

export async function importModel(o: ImportOptions): Promise<ImportResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  if (o.weights !== undefined && o.torchscript !== undefined)
    throw new OptionError(
      "--torchscript",
      "give one of --weights FILE (with --arch NAME) and --torchscript FILE, not both",
    );
  if (o.weights === undefined && o.torchscript === undefined)
    throw new OptionError("--weights", "give the model: --weights FILE (with --arch NAME) or --torchscript FILE");
  if (o.weights !== undefined && o.arch === undefined)
    throw new OptionError(
      "--arch",
      `--weights needs --arch (one of ${modelNames().join(", ")}); a model of another architecture can be imported with --torchscript`,
    );
  if (o.arch !== undefined && o.torchscript !== undefined)
    throw new OptionError("--arch", "--arch goes with --weights; a TorchScript file carries its own architecture");
  if (o.arch !== undefined && !modelNames().includes(o.arch))
    throw new OptionError(
      "--arch",
      `unknown architecture ${JSON.stringify(o.arch)}; expected one of ${modelNames().join(", ")}`,
    );
  if (o.dataset !== undefined && !datasetNames().includes(o.dataset))
    throw new OptionError(
      "--dataset",
      `unknown dataset ${JSON.stringify(o.dataset)}; expected one of ${datasetNames().join(", ")}`,
    );
  const target = resolveTarget(o);
  const { preprocessing: p, classNames } = target;
  if (p.imageSize[0] !== p.imageSize[1])
    throw new OptionError("--input", `only square inputs are supported, got ${p.imageSize[0]}x${p.imageSize[1]}`);
  if (o.dataset !== undefined) requireDataPath(o.dataset, o.dataPath);
  // Refused before the model is read and evaluated.
  await assertWritableDir(o.out, {
    kinds: [CHECKPOINT_DIR],
    replace: o.force === true,
    forceHint: "--force",
    argument: "--out",
  });
  const test = o.dataset
    ? await loadDataset(o.dataset, {
        split: "test",
        ...(o.dataPath ? { path: o.dataPath } : {}),
        imageSize: p.imageSize,
        channels: p.channels === 1 ? 1 : 3,
      })
    : null;
  const names = test && !o.classNames ? test.classNames : classNames;
  if (test && test.classNames.length !== names.length)
    throw new OptionError(
      "--classes",
      `dataset ${test.name} has ${test.classNames.length} classes but --classes gives ${names.length}`,
    );
  const spec: ModelSpec = {
    name: o.torchscript ? TORCHSCRIPT_ARCH : (o.arch as string),
    numClasses: names.length,
    inChannels: p.channels,
    imageSize: p.imageSize[0],
  };
  const { model, source } = o.torchscript ? importTorchScript(o) : await importWeights(o, spec, log);
  try {
    checkModelOutputs(model, spec, p, test, (o.torchscript ?? o.weights) as string);
    let accuracy: number | null = null;
    if (test && (o.verify ?? true)) {
      const device = o.device ?? "cpu";
      if (device !== "cpu") model.to(device);
      accuracy = evaluateModel(model, test, { normalization: p, ...(device !== "cpu" ? { device } : {}) }).accuracy;
      if (device !== "cpu") model.to("cpu");
      log(
        `accuracy on ${test.name}/test: ${(100 * accuracy).toFixed(2)}% over ${test.count} images${device !== "cpu" ? ` (on ${device})` : ""}`,
      );
    }
    model.eval();
    const meta = await saveCheckpoint(
      o.out,
      model,
      {
        model: spec,
        dataset: { ...target.dataset, ...(test ? { testCount: test.count } : {}) },
        preprocessing: p,
        classNames: names,
        training: { imported: source },
        metrics: accuracy === null ? {} : { cleanAccuracy: accuracy },
      },
      { replace: o.force === true, forceHint: "--force", argument: "--out" },
    );
    log(`wrote checkpoint ${o.out}`);
    return { checkpoint: o.out, meta, accuracy, source };
  } finally {
    model.dispose();
  }
}
