// `badexpert import`: a model trained elsewhere (a PyTorch state_dict for a zoo architecture, or
// a TorchScript file of any architecture) becomes a checkpoint that defend, evaluate, scan and
// evaluate-defense take.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { emitJson, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { importModel, readClassNames } from "../../jobs/import.js";

function numberList(v: Record<string, string | boolean | undefined>, name: string): number[] | undefined {
  const x = str(v, name);
  if (x === undefined) return undefined;
  const parts = x.split(",").map((p) => Number(p.trim()));
  if (parts.some((p) => !Number.isFinite(p)))
    throw new UsageError(`--${name}: expected comma-separated numbers, got '${x}'`);
  return parts;
}

function inputShape(x: string | undefined): [number, number, number] | undefined {
  if (x === undefined) return undefined;
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(x);
  if (!m) throw new UsageError(`--input: expected CxHxW (e.g. 3x32x32), got '${x}'`);
  const [c, h, w] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (c !== 1 && c !== 3) throw new UsageError(`--input: expected 1 or 3 channels, got ${c}`);
  return [c, h, w];
}

export const importCommand: Command = {
  name: "import",
  summary: "turn a PyTorch state_dict or TorchScript model into a checkpoint",
  details: [
    "--weights reads safetensors and torch.save zip files (.pt/.pth/.bin) without running any code in them:",
    '{"state_dict"|"model"|"net": ...} wrappers and \'module.\'/\'model.\' key prefixes are handled.',
    "--torchscript takes a torch.jit.script or torch.jit.trace save of any architecture.",
    "Before it is written, the model runs on 4 inputs (the dataset's first test images, or seeded noise), as a",
    "batch and one by one; a model whose output is not one finite row of logits per input and class, or whose",
    "rows change with the rest of the batch, is refused.",
  ].join("\n"),
  examples: [
    "badexpert import --weights runs/fmnist/model.safetensors --arch compact-cnn --dataset fashion-mnist --out runs/fmnist-imported",
    "badexpert import --weights resnet18.pth --arch resnet18 --dataset cifar10 --data-path cifar-10-batches-bin --out runs/mine",
    "badexpert import --torchscript model.pt --input 3x32x32 --mean 0.49,0.48,0.45 --std 0.25,0.24,0.26 --classes classes.txt --out runs/mine",
  ],
  options: {
    weights: { type: "string", short: "w", description: "state_dict file (safetensors, .pt, .pth, .bin) for --arch" },
    arch: { type: "string", short: "a", description: "zoo architecture of --weights (see `badexpert train --help`)" },
    torchscript: { type: "string", description: "TorchScript file (any architecture)" },
    dataset: {
      type: "string",
      short: "d",
      description: "the dataset the model was trained for (sets input, normalisation, classes)",
    },
    "data-path": { type: "string", description: "dataset location (default: the standard one)" },
    input: { type: "string", description: "without --dataset: input shape CxHxW" },
    mean: { type: "string", description: "per-channel mean in 0..1 units, e.g. 0.4914,0.4822,0.4465" },
    std: { type: "string", description: "per-channel std in 0..1 units" },
    classes: { type: "string", description: "number of classes, or a file with one class name per line" },
    "no-verify": { type: "boolean", description: "do not evaluate on the dataset's test split" },
    out: { type: "string", short: "o", description: "checkpoint directory to write" },
    force: {
      type: "boolean",
      description:
        "replace an existing non-empty --out that is a checkpoint badexpert wrote (anything else is refused)",
    },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const out = requireStr(v, "out", "the checkpoint directory to write");
    const classes = str(v, "classes");
    const mean = numberList(v, "mean");
    const std = numberList(v, "std");
    const input = inputShape(str(v, "input"));
    const weights = str(v, "weights");
    const arch = str(v, "arch");
    const torchscript = str(v, "torchscript");
    const dataset = str(v, "dataset");
    const dataPath = str(v, "data-path");
    const r = await importModel({
      out,
      ...(weights ? { weights } : {}),
      ...(arch ? { arch } : {}),
      ...(torchscript ? { torchscript } : {}),
      ...(dataset ? { dataset } : {}),
      ...(dataPath ? { dataPath } : {}),
      ...(input ? { input } : {}),
      ...(mean ? { mean } : {}),
      ...(std ? { std } : {}),
      ...(classes ? { classNames: await readClassNames(classes) } : {}),
      verify: v["no-verify"] !== true,
      force: v.force === true,
      device,
    });
    console.log(
      `imported ${r.meta.model.name} (${r.meta.model.numClasses} classes, ${r.meta.preprocessing.channels}x${r.meta.preprocessing.imageSize.join("x")}) into ${r.checkpoint}` +
        (r.accuracy === null ? "" : `; test accuracy ${(100 * r.accuracy).toFixed(2)}%`),
    );
    emitJson(v, { checkpoint: r.checkpoint, model: r.meta.model, accuracy: r.accuracy, source: r.source });
    return 0;
  },
};
