// `badexpert evaluate`: accuracy of a checkpoint on a dataset split, overall and per class.
import type { Command } from "../command.js";
import { choiceWithDefault, emitJson, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { loadDataset } from "../../data/registry.js";
import { loadCheckpoint } from "../../train/checkpoint.js";
import { evaluateModel } from "../../train/evaluate.js";
import { requireDataPath } from "../../jobs/data-path.js";
import { UsageError } from "../command.js";

export const evaluate: Command = {
  name: "evaluate",
  summary: "measure a checkpoint's accuracy on a dataset split",
  examples: [
    "badexpert evaluate --checkpoint runs/fmnist --json",
    "badexpert evaluate --checkpoint runs/fmnist-blend --split train",
  ],
  options: {
    checkpoint: { type: "string", short: "c", description: "checkpoint directory (model.json + model.safetensors)" },
    dataset: { type: "string", short: "d", description: "dataset (default: the one the checkpoint was trained on)" },
    "data-path": { type: "string", description: "dataset location (default: the checkpoint's, else the standard one)" },
    split: {
      type: "string",
      description: "train or test",
      default: "test",
      value: { kind: "choice", values: ["train", "test"] },
    },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const dir = requireStr(v, "checkpoint", "a directory written by `badexpert train`");
    const { model, meta } = await loadCheckpoint(dir);
    try {
      const name = str(v, "dataset") ?? meta.dataset.name;
      const path = str(v, "data-path") ?? (name === meta.dataset.name ? meta.dataset.path : undefined);
      const split = choiceWithDefault(v, "split", ["train", "test"] as const, evaluate.options);
      const [h, w] = meta.preprocessing.imageSize;
      requireDataPath(name, path);
      const ds = await loadDataset(name, {
        split,
        ...(path ? { path } : {}),
        imageSize: [h, w],
        channels: meta.preprocessing.channels === 1 ? 1 : 3,
      });
      if (ds.classNames.length !== meta.model.numClasses) {
        throw new UsageError(
          `--dataset: ${name} has ${ds.classNames.length} classes but the checkpoint's model has ${meta.model.numClasses}`,
        );
      }
      if (device !== "cpu") model.to(device);
      const r = evaluateModel(model, ds, {
        normalization: meta.preprocessing,
        device,
        progressLabel: `evaluating ${name}/${split}`,
      });
      const perClass = meta.classNames.map((cls, c) => {
        let n = 0;
        let ok = 0;
        for (let i = 0; i < ds.count; i++) {
          if (ds.labels[i] === c) {
            n++;
            if (r.predictions[i] === c) ok++;
          }
        }
        return { class: cls, count: n, accuracy: n ? ok / n : 0 };
      });
      console.log(
        `accuracy ${(100 * r.accuracy).toFixed(2)}% over ${r.count} ${name}/${split} images (loss ${r.loss.toFixed(4)})`,
      );
      for (const p of perClass) console.log(`  ${p.class.padEnd(24)} ${(100 * p.accuracy).toFixed(2)}% of ${p.count}`);
      emitJson(v, {
        checkpoint: dir,
        dataset: name,
        split,
        count: r.count,
        accuracy: r.accuracy,
        loss: r.loss,
        perClass,
      });
      return 0;
    } finally {
      model.dispose();
    }
  },
};
