// `badexpert defend`: suspicious model + clean data → a BaDExpert detector bundle.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, emitJson, int, num, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { defendCheckpoint } from "../../jobs/defend.js";
import { SCORE_RULES, type ScoreRule } from "../../defense/scores.js";

export const defend: Command = {
  name: "defend",
  summary: "build a BaDExpert detector (backdoor expert B, auxiliary model M', threshold) for a model",
  details: [
    "Takes the suspicious model M (a checkpoint directory) and clean data. The test split of the dataset is cut",
    "(seeded) into three disjoint parts: the reserved clean set B and M' are finetuned on, a calibration split for",
    "the threshold, and an evaluation split that `evaluate-defense` reports on. Writes a bundle directory.",
    "",
    "The unlearning rate of B decides how well it works. Where the paper gives none for the model's architecture",
    "and dataset, it is chosen with canaries: the defender plants two backdoors of its own (a blend and a patch)",
    "in copies of M, extracts B from each at every candidate rate, and keeps the strongest rate at which B still",
    "separates both (AUROC >= 0.98); when no rate does, it warns and keeps the architecture's static default.",
    "This uses only the reserved and calibration splits, never the attacker's data, and adds about 80 s",
    "for the compact CNN on 2 CPU cores. The choice and the canary tables are recorded in the bundle.",
    "",
    "Example: badexpert defend --checkpoint runs/fmnist-badnet --out runs/fmnist-badnet-detector",
  ].join("\n"),
  options: {
    checkpoint: { type: "string", short: "c", description: "the suspicious model's checkpoint directory" },
    out: { type: "string", short: "o", description: "bundle directory to write" },
    dataset: { type: "string", short: "d", description: "clean data (default: the checkpoint's dataset)" },
    "data-path": { type: "string", description: "dataset location (default: the checkpoint's, else the standard one)" },
    reserved: { type: "string", description: "reserved clean images (default: 5% of the training-set size, at most 30% of the test set)" },
    calibration: { type: "string", description: "calibration images (default: 20% of the test set, at most 2,000)" },
    "split-seed": { type: "string", description: "seed of the reserved/calibration/evaluation split", default: "0" },
    "unlearn-lr": { type: "string", description: "Adam learning rate of the backdoor expert, or 'auto': chosen with canary backdoors the defender plants itself. Default: the paper's rate where it has one for this architecture and dataset, otherwise auto" },
    "unlearn-epochs": { type: "string", description: "epochs of unlearning", default: "1" },
    "finetune-lr": { type: "string", description: "SGD learning rate of M' (default: per architecture)" },
    "finetune-gamma": { type: "string", description: "MultiStep gamma of M' (default: per architecture)" },
    "finetune-epochs": { type: "string", description: "epochs of clean finetuning", default: "10" },
    rule: { type: "string", description: `score rule: ${SCORE_RULES.join(", ")}`, default: "triangle" },
    fpr: { type: "string", description: "target false-positive rate on clean inputs (default: 0.01; GTSRB 0.001)" },
    seed: { type: "string", description: "seed of the finetuning runs", default: "0" },
    force: { type: "boolean", description: "replace an existing non-empty --out (otherwise refused)" },
    "sign-key": { type: "string", description: "Ed25519 private key (PEM, from `badexpert keygen`): sign the bundle (detector.json.sig)" },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    applyRuntimeOptions(v);
    const lrText = str(v, "unlearn-lr");
    if (lrText !== undefined && lrText !== "auto" && !(Number(lrText) > 0)) throw new UsageError(`--unlearn-lr: expected a positive number or 'auto', got '${lrText}'`);
    const opt = <T>(name: string, value: T | undefined) => (value === undefined ? {} : { [name]: value });
    const r = await defendCheckpoint({
      checkpoint: requireStr(v, "checkpoint", "a directory written by `badexpert train`"),
      out: requireStr(v, "out", "where to write the detector bundle"),
      ...opt("dataset", str(v, "dataset")),
      ...opt("dataPath", str(v, "data-path")),
      ...opt("reserved", int(v, "reserved", { min: 1 })),
      ...opt("calibration", int(v, "calibration", { min: 1 })),
      ...opt("splitSeed", int(v, "split-seed")),
      ...opt("unlearnLr", lrText === undefined ? undefined : lrText === "auto" ? "auto" : Number(lrText)),
      ...opt("unlearnEpochs", int(v, "unlearn-epochs", { min: 1 })),
      ...opt("finetuneLr", num(v, "finetune-lr", { positive: true })),
      ...opt("finetuneGamma", num(v, "finetune-gamma", { positive: true })),
      ...opt("finetuneEpochs", int(v, "finetune-epochs", { min: 1 })),
      ...opt("rule", choice(v, "rule", SCORE_RULES) as ScoreRule | undefined),
      ...opt("targetFpr", num(v, "fpr", { positive: true })),
      ...opt("seed", int(v, "seed")),
      ...opt("signKey", str(v, "sign-key")),
      force: v.force === true,
    });
    const c = r.calibration;
    console.error(`threshold ${r.threshold.toPrecision(6)} (${r.options.rule}, target FPR ${r.options.targetFpr}, achieved ${(100 * c.achievedFpr).toFixed(2)}% on ${c.count} calibration images) — bundle in ${r.bundle}`);
    emitJson(v, r);
    return 0;
  },
};
