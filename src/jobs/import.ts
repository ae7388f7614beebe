// The import job: a model trained elsewhere (a state_dict for a zoo architecture, or a
// TorchScript file of any architecture) becomes a checkpoint directory every command takes.
// What the model expects comes from a dataset, or is given (input shape, mean, std, classes);
// with a dataset the model is evaluated on its test split and the accuracy recorded.
import { resolve } from "node:path";
import { noGrad, tidy, zeros } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import { StateDictError } from "../nn/state-dict-error.js";
import { TorchScriptModule } from "../nn/torchscript-module.js";
import { readStateDictFile } from "../io/state-dict-file.js";
import { datasetInfo, loadDataset } from "../data/registry.js";
import { createModel, modelNames } from "../models/registry.js";
import { TORCHSCRIPT_ARCH } from "../models/model-source.js";
import { saveCheckpoint, type CheckpointMeta, type ModelSpec, type Preprocessing } from "../train/checkpoint.js";
import { evaluateModel } from "../train/evaluate.js";
import { FileReadError, readRegularTextFile } from "../util/read-regular-file.js";

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
    if (n < 2) throw new RangeError(`classes: expected at least 2 classes, got ${n}`);
    return Array.from({ length: n }, (_, i) => String(i));
  }
  let text: string;
  try {
    // A class list is a few kilobytes; a FIFO, a device or a huge file is refused before reading.
    text = await readRegularTextFile(spec, { maxBytes: MAX_CLASS_LIST_BYTES, what: "class names file" });
  } catch (e) {
    throw new Error(`classes: ${spec} is neither a number nor a readable file of class names (${e instanceof FileReadError ? e.problem : (e as Error).message})`, { cause: e });
  }
  const names = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "");
  if (names.length < 2) throw new RangeError(`classes: ${spec} lists ${names.length} class names, expected at least 2 (one per line)`);
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
    if (!info.imageSize && !o.input) throw new Error(`import: dataset ${o.dataset} has no fixed image size; give --input CxHxW`);
    const c = o.input?.[0] ?? info.channels;
    const [h, w] = o.input ? [o.input[1], o.input[2]] : [info.imageSize?.height ?? 0, info.imageSize?.width ?? 0];
    const mean = o.mean ?? info.mean ?? new Array<number>(c).fill(0.5);
    const std = o.std ?? info.std ?? new Array<number>(c).fill(0.5);
    const classNames = o.classNames ?? (info.numClasses ? Array.from({ length: info.numClasses }, (_, i) => String(i)) : []);
    return { preprocessing: { imageSize: [h, w], channels: c, mean, std }, classNames, dataset: { name: o.dataset, ...(o.dataPath ? { path: resolve(o.dataPath) } : {}) } };
  }
  if (!o.input || !o.mean || !o.std || !o.classNames) {
    throw new Error("import: say what the model expects: --dataset NAME, or all of --input CxHxW --mean a,b,c --std a,b,c --classes FILE|N");
  }
  const [c, h, w] = o.input;
  for (const [k, v] of [["mean", o.mean], ["std", o.std]] as const) {
    if (v.length !== c) throw new RangeError(`import: --${k} has ${v.length} values but --input has ${c} channels`);
  }
  if (o.std.some((s) => !(s > 0))) throw new RangeError(`import: --std values must be positive, got ${o.std.join(",")}`);
  return { preprocessing: { imageSize: [h, w], channels: c, mean: o.mean, std: o.std }, classNames: o.classNames, dataset: { name: "custom" } };
}

/** Key overlap of a state dict with each zoo architecture, best first (for "did you mean"). */
function closestArchitectures(keys: Map<string, number[]>, spec: Omit<ModelSpec, "name">): { name: string; score: number }[] {
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

async function importWeights(o: ImportOptions, spec: ModelSpec, log: (l: string) => void): Promise<{ model: Module; source: Record<string, unknown> }> {
  const file = await readStateDictFile(o.weights as string);
  try {
    const wrap = file.unwrapped.length ? `, unwrapped ${file.unwrapped.map((k) => `["${k}"]`).join("")}` : "";
    const strip = file.strippedPrefixes.length ? `, stripped key prefix ${file.strippedPrefixes.map((p) => `'${p}'`).join(" and ")}` : "";
    log(`read ${file.tensors.size} tensors from ${o.weights} (${file.format}${wrap}${strip})`);
    const model = createModel(spec.name, spec);
    try {
      model.loadStateDict(file.tensors, { strict: true });
    } catch (e) {
      model.dispose();
      if (!(e instanceof StateDictError)) throw e;
      const shapes = new Map([...file.tensors].map(([k, t]) => [k, t.shape]));
      const best = closestArchitectures(shapes, spec)[0];
      const hint = best && best.name !== spec.name && best.score > 0 ? ` The closest zoo architecture is '${best.name}' (${(100 * best.score).toFixed(0)}% of keys and shapes match): try --arch ${best.name}.` : "";
      throw new Error(`import: ${o.weights} does not fit --arch ${spec.name}. ${e.message}${hint} A model of another architecture can be imported with --torchscript.`);
    }
    return { model, source: { kind: "state_dict", file: resolve(o.weights as string), format: file.format, unwrapped: file.unwrapped, strippedPrefixes: file.strippedPrefixes } };
  } finally {
    for (const t of file.tensors.values()) t.dispose();
  }
}

function importTorchScript(o: ImportOptions, spec: ModelSpec): { model: Module; source: Record<string, unknown> } {
  const model = TorchScriptModule.load(o.torchscript as string);
  try {
    // One forward pass on a blank image: the output must be [1, numClasses] logits.
    const shape = noGrad(() => tidy(() => model.forward(zeros([1, spec.inChannels, spec.imageSize, spec.imageSize])).shape));
    if (shape.length !== 2 || shape[1] !== spec.numClasses) {
      throw new RangeError(`import: ${o.torchscript} maps a [1, ${spec.inChannels}, ${spec.imageSize}, ${spec.imageSize}] input to [${shape.join(", ")}], expected [1, ${spec.numClasses}] logits`);
    }
  } catch (e) {
    model.dispose();
    const msg = (e as Error).message;
    throw msg.startsWith("import:") ? e : new Error(`import: ${o.torchscript} does not run on [1, ${spec.inChannels}, ${spec.imageSize}, ${spec.imageSize}] inputs: ${msg.split("\n")[0] ?? ""}`);
  }
  return { model, source: { kind: "torchscript", file: resolve(o.torchscript as string) } };
}

export async function importModel(o: ImportOptions): Promise<ImportResult> {
  const log = o.log ?? ((l: string) => console.error(l));
  if ((o.weights === undefined) === (o.torchscript === undefined)) throw new Error("import: give exactly one of --weights FILE (with --arch NAME) and --torchscript FILE");
  if (o.weights !== undefined && o.arch === undefined) throw new Error(`import: --weights needs --arch (one of ${modelNames().join(", ")}); a model of another architecture can be imported with --torchscript`);
  const target = resolveTarget(o);
  const { preprocessing: p, classNames } = target;
  if (p.imageSize[0] !== p.imageSize[1]) throw new RangeError(`import: only square inputs are supported, got ${p.imageSize[0]}x${p.imageSize[1]}`);
  const test = o.dataset ? await loadDataset(o.dataset, { split: "test", ...(o.dataPath ? { path: o.dataPath } : {}), imageSize: p.imageSize, channels: p.channels === 1 ? 1 : 3 }) : null;
  const names = test && !o.classNames ? test.classNames : classNames;
  if (test && test.classNames.length !== names.length) throw new RangeError(`import: dataset ${test.name} has ${test.classNames.length} classes but --classes gives ${names.length}`);
  const spec: ModelSpec = { name: o.torchscript ? TORCHSCRIPT_ARCH : (o.arch as string), numClasses: names.length, inChannels: p.channels, imageSize: p.imageSize[0] };
  const { model, source } = o.torchscript ? importTorchScript(o, spec) : await importWeights(o, spec, log);
  try {
    let accuracy: number | null = null;
    if (test && (o.verify ?? true)) {
      const device = o.device ?? "cpu";
      if (device !== "cpu") model.to(device);
      accuracy = evaluateModel(model, test, { normalization: p, ...(device !== "cpu" ? { device } : {}) }).accuracy;
      if (device !== "cpu") model.to("cpu");
      log(`accuracy on ${test.name}/test: ${(100 * accuracy).toFixed(2)}% over ${test.count} images${device !== "cpu" ? ` (on ${device})` : ""}`);
    }
    model.eval();
    const meta = await saveCheckpoint(o.out, model, {
      model: spec,
      dataset: { ...target.dataset, ...(test ? { testCount: test.count } : {}) },
      preprocessing: p,
      classNames: names,
      training: { imported: source },
      metrics: accuracy === null ? {} : { cleanAccuracy: accuracy },
    });
    log(`wrote checkpoint ${o.out}`);
    return { checkpoint: o.out, meta, accuracy, source };
  } finally {
    model.dispose();
  }
}
