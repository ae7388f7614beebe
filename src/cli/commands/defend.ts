// `badexpert defend`: suspicious model + clean data → a BaDExpert detector bundle.
import type { Command } from "../command.js";
import type { OptionSpec } from "../command.js";
import { COUNT, EPOCHS, FPR, SEED, choiceList, choiceWithDefault, emitJson, int, num, numOrWord, numWithDefault, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { defendCheckpoint } from "../../jobs/defend.js";
import { SCORE_RULES } from "../../defense/scores.js";
import { UNLEARN_LABEL_MAPPINGS } from "../../defense/defaults.js";
import { CANARY_KINDS } from "../../defense/canary.js";
import { datasetNames } from "../../data/registry.js";
import { UsageError } from "../command.js";
import { detectorInfo, detectorNames } from "../../detectors/registry.js";
import { DetectorParamError, parseDetectorParams, resolveDetectorParams } from "../../detectors/params.js";
import { defendBaseline } from "../../jobs/defend-baseline.js";

/** Options that only BaDExpert reads; refused with a baseline detector rather than ignored. */
const BADEXPERT_ONLY = ["unlearn-lr", "canaries", "unlearn-epochs", "finetune-lr", "finetune-gamma", "finetune-epochs", "rule", "sign-key"] as const;

const OPTIONS: Record<string, OptionSpec> = {
  checkpoint: { type: "string", short: "c", description: "the suspicious model's checkpoint directory" },
  detector: { type: "string", description: `detector to build: ${detectorNames().join(", ")} (a baseline writes a baseline detector bundle)`, default: "badexpert" },
  "detector-param": { type: "string", description: "a baseline's parameters: key=value,key=value (docs/baselines.md)" },
  out: { type: "string", short: "o", description: "bundle directory to write" },
  dataset: { type: "string", short: "d", description: "clean data (default: the checkpoint's dataset)", value: { kind: "choice", values: datasetNames() } },
  "data-path": { type: "string", description: "dataset location (default: the checkpoint's, else the standard one)" },
  reserved: { type: "string", description: "reserved clean images (default: 5% of the training-set size, at most 30% of the test set)", value: COUNT },
  calibration: { type: "string", description: "calibration images, at least 1/FPR (default: 20% of the test set, at most 2,000)", value: COUNT },
  "split-seed": { type: "string", description: "seed of the reserved/calibration/evaluation split", default: "0", value: SEED },
  "unlearn-lr": {
    type: "string",
    description: "Adam learning rate of the backdoor expert, or 'auto': chosen with canary backdoors the defender plants itself. Default: the paper's rate where it has one for this architecture and dataset, otherwise auto",
    value: { kind: "float-or", word: "auto", number: { kind: "float", min: 0, max: 10, exclusiveMin: true } },
  },
  canaries: {
    type: "string",
    description: "the canaries that choose B's rate (naming them without --unlearn-lr means --unlearn-lr auto; refused with a given rate): blend and patch (the default), and conditional (the patch on one source class only, with cover classes, like TaCT; adds a third planting; it caps B's rate at the one that separates it best)",
    value: { kind: "choice-list", values: CANARY_KINDS },
  },
  "unlearn-epochs": { type: "string", description: "epochs of unlearning", default: "1", value: EPOCHS },
  "unlearn-labels": {
    type: "string",
    description: "wrong labels B unlearns on: shift ((y+1) mod C, the paper's), permutation (a seeded derangement of the classes), random (a random wrong class per image)",
    default: "shift",
    value: { kind: "choice", values: UNLEARN_LABEL_MAPPINGS },
  },
  "finetune-lr": {
    type: "string",
    description: "SGD learning rate of M', or 'auto': finetune M' at 1, 2, 5 and 10x the architecture's reference rate (0.01 for the compact CNN) and keep the strongest that stays within 4 points of M's clean accuracy on the calibration split (costs three more finetunings). Default: per architecture and dataset (the compact CNN: 0.1 on Fashion-MNIST and GTSRB, 'auto' elsewhere)",
    value: { kind: "float-or", word: "auto", number: { kind: "float", min: 0, max: 10, exclusiveMin: true } },
  },
  "finetune-gamma": { type: "string", description: "MultiStep gamma of M' (default: per architecture)", value: { kind: "float", min: 0, max: 1, exclusiveMin: true } },
  "finetune-epochs": { type: "string", description: "epochs of clean finetuning", default: "10", value: EPOCHS },
  rule: { type: "string", description: `score rule: ${SCORE_RULES.join(", ")}`, default: "triangle", value: { kind: "choice", values: SCORE_RULES } },
  fpr: { type: "string", description: "target false-positive rate on clean inputs, in (0, 1) (default: 0.01; GTSRB 0.001)", value: FPR },
  seed: { type: "string", description: "seed of the finetuning runs", default: "0", value: SEED },
  force: { type: "boolean", description: "replace an existing non-empty --out (otherwise refused)" },
  "sign-key": { type: "string", description: "Ed25519 private key (PEM, from `badexpert keygen`): sign the bundle (detector.json.sig)" },
  ...RUNTIME_OPTIONS,
};

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
    "This uses only the reserved and calibration splits, never the attacker's data; it costs one planting per canary",
    "and one extraction of B per canary and candidate rate. The choice and the canary tables are recorded in the bundle.",
    "Some architectures and datasets have fixed rates of their own instead, where measurements favoured them (the",
    "defaults of --unlearn-lr and --finetune-lr below; docs/defense.md); --unlearn-lr auto runs the canaries anyway.",
    "",
    "--detector NAME builds a baseline instead (strip, scale-up, teco, ibd-psc, cd, frequency, sentinet): fitted on the",
    "same reserved split, calibrated on the same calibration split, written as a baseline detector bundle that",
    "`scan --bundle` reads; its parameters are --detector-param key=value,... (docs/baselines.md).",
  ].join("\n"),
  examples: [
    "badexpert defend --checkpoint runs/fmnist-blend --out runs/fmnist-blend-detector",
    "badexpert defend --checkpoint runs/fmnist-blend --detector strip --detector-param n=50 --out runs/fmnist-blend-strip",
  ],
  options: OPTIONS,
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const checkpoint = requireStr(v, "checkpoint", "a directory written by `badexpert train`");
    const out = requireStr(v, "out", "where to write the detector bundle");
    const opt = <T>(name: string, value: T | undefined) => (value === undefined ? {} : { [name]: value });
    // The data and split options, the same for every detector.
    const shared = {
      ...opt("dataset", str(v, "dataset")),
      ...opt("dataPath", str(v, "data-path")),
      ...opt("reserved", int(v, "reserved", OPTIONS)),
      ...opt("calibration", int(v, "calibration", OPTIONS)),
      splitSeed: numWithDefault(v, "split-seed", OPTIONS),
    };
    const detector = str(v, "detector") ?? "badexpert";
    try {
      detectorInfo(detector);
    } catch (e) {
      throw new UsageError(`--detector: ${(e as Error).message}`);
    }
    if (detector !== "badexpert") {
      const given = BADEXPERT_ONLY.filter((k) => v[k] !== undefined && !(k === "rule" && v[k] === "triangle") && !(k === "unlearn-epochs" && v[k] === "1") && !(k === "finetune-epochs" && v[k] === "10"));
      if (given.length > 0) throw new UsageError(`--${given.join(", --")}: only for --detector badexpert (the baselines take --detector-param)`);
      if (device !== "cpu") throw new UsageError(`--device ${device}: baseline detectors are fitted on the CPU`);
      let params: Record<string, string>;
      try {
        params = parseDetectorParams(`${detector}:${str(v, "detector-param") ?? ""}`)[detector] ?? {};
        // Checked now, before the checkpoint and the data are loaded.
        resolveDetectorParams(detector, detectorInfo(detector).params, params);
      } catch (e) {
        if (e instanceof DetectorParamError) throw new UsageError(`--detector-param: ${e.message}`);
        throw e;
      }
      const r = await defendBaseline({
        checkpoint,
        out,
        detector,
        params,
        ...shared,
        ...opt("targetFpr", num(v, "fpr", OPTIONS)),
        seed: numWithDefault(v, "seed", OPTIONS),
        force: v.force === true,
      });
      const c = r.calibration;
      console.error(`${detector}: threshold ${r.threshold.toPrecision(6)} (target FPR ${c.targetFpr}, achieved ${(100 * c.achievedFpr).toFixed(2)}% on ${c.count} calibration images) — bundle in ${r.bundle}`);
      emitJson(v, r);
      return 0;
    }
    if (v["detector-param"] !== undefined) throw new UsageError("--detector-param: only for baseline detectors; BaDExpert takes its own options (--unlearn-lr, --rule, ...)");
    const r = await defendCheckpoint({
      checkpoint,
      out,
      device,
      ...shared,
      ...opt("unlearnLr", numOrWord(v, "unlearn-lr", "auto", OPTIONS)),
      ...opt("canaries", choiceList(v, "canaries", CANARY_KINDS, OPTIONS)),
      unlearnEpochs: numWithDefault(v, "unlearn-epochs", OPTIONS),
      unlearnLabels: choiceWithDefault(v, "unlearn-labels", UNLEARN_LABEL_MAPPINGS, OPTIONS),
      ...opt("finetuneLr", numOrWord(v, "finetune-lr", "auto", OPTIONS)),
      ...opt("finetuneGamma", num(v, "finetune-gamma", OPTIONS)),
      finetuneEpochs: numWithDefault(v, "finetune-epochs", OPTIONS),
      rule: choiceWithDefault(v, "rule", SCORE_RULES, OPTIONS),
      ...opt("targetFpr", num(v, "fpr", OPTIONS)),
      seed: numWithDefault(v, "seed", OPTIONS),
      ...opt("signKey", str(v, "sign-key")),
      force: v.force === true,
    });
    const c = r.calibration;
    console.error(`threshold ${r.threshold.toPrecision(6)} (${r.options.rule}, target FPR ${r.options.targetFpr}, achieved ${(100 * c.achievedFpr).toFixed(2)}% on ${c.count} calibration images) — bundle in ${r.bundle}`);
    emitJson(v, r);
    return 0;
  },
};
