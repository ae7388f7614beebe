// Evaluation: predictions and accuracy of a model over a dataset, batch by batch, in inference mode.
import { inferenceMode, tidy, type Tensor } from "../engine/index.js";
import type { Module } from "../nn/index.js";
import type { ImageDataset } from "../data/dataset.js";
import { DataLoader } from "../data/loader.js";
import { Progress } from "../util/progress.js";

export interface EvalOptions {
  batchSize?: number;
  normalization: { mean: readonly number[]; std: readonly number[] };
  device?: string;
  /** Label for the progress bar; omit for no progress output. */
  progressLabel?: string;
}

export interface EvalResult {
  accuracy: number;
  loss: number;
  count: number;
  /** Predicted class per sample (dataset order). */
  predictions: Int32Array;
}

/** Runs `model` (switched to eval mode) over `ds` and compares with the dataset's labels. */
export function evaluateModel(model: Module, ds: ImageDataset, o: EvalOptions): EvalResult {
  model.eval();
  const loader = new DataLoader(ds, { batchSize: o.batchSize ?? 256, normalization: o.normalization });
  const predictions = new Int32Array(ds.count);
  let correct = 0;
  let lossSum = 0;
  const bar = o.progressLabel ? new Progress(o.progressLabel, ds.count) : null;
  let at = 0;
  for (const b of loader) {
    const [pred, loss] = inferenceMode(() =>
      tidy(() => {
        const x: Tensor = o.device && o.device !== "cpu" ? b.x.to({ device: o.device }) : b.x;
        const logits = model.forward(x);
        const y = o.device && o.device !== "cpu" ? b.y.to({ device: o.device }) : b.y;
        const l = logits.logSoftmax(1).gather(1, y.unsqueeze(1)).sum().neg().item();
        return [logits.argmax(1).to({ device: "cpu", dtype: "int32" }).data() as Int32Array, l] as const;
      }),
    );
    predictions.set(pred, at);
    const labels = ds.labels;
    for (let k = 0; k < pred.length; k++) if (pred[k] === labels[b.indices[k] as number]) correct++;
    lossSum += loss;
    at += pred.length;
    b.x.dispose();
    b.y.dispose();
    bar?.tick(pred.length);
  }
  return {
    accuracy: ds.count ? correct / ds.count : 0,
    loss: ds.count ? lossSum / ds.count : 0,
    count: ds.count,
    predictions,
  };
}
