// `badexpert compare`: BaDExpert and the baseline detectors on the same defender splits of a
// checkpoint's test set, against its attack — one table, one ROC chart, a report and JSON.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { emitJson, int, num, requireStr, str, FPR } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { compareDetectors } from "../../jobs/compare.js";
import { detectorNames, parseDetectorList } from "../../detectors/registry.js";
import { DetectorParamError, parseDetectorParams } from "../../detectors/params.js";
import { COMPARE_HEADER, compareRows } from "../../report/compare.js";

export const compareCommand: Command = {
  name: "compare",
  summary: "BaDExpert and baseline detectors side by side on the same splits: AUROC, TPR/FPR, CA/ASR after, cost",
  details: [
    `Detectors: ${detectorNames().join(", ")} (parameters and papers: docs/baselines.md).`,
    "Every detector is fitted on the same reserved clean split, calibrated at the target FPR on the same",
    "calibration split and measured on the same evaluation split (and its triggered copies) with the same",
    "metric code. By default the attack is the one recorded in the checkpoint.",
    "--calibration-limit / --evaluation-limit use a seeded random subset of those splits (STRIP costs ~100 passes per input).",
  ].join("\n"),
  examples: [
    "badexpert compare --checkpoint runs/fmnist-blend --detectors badexpert,strip,scale-up --report out/compare",
  ],
  options: {
    checkpoint: { type: "string", short: "c", description: "model checkpoint directory (from `badexpert train`)" },
    detectors: { type: "string", short: "d", description: "'all' or a comma-separated list", default: "all" },
    "detector-param": {
      type: "string",
      description: "detector parameters: name:key=value,key=value;name:... (e.g. strip:n=50)",
    },
    ...ATTACK_OPTIONS,
    fpr: {
      type: "string",
      description: "target false-positive rate on the calibration split",
      default: "0.01",
      value: FPR,
    },
    "calibration-limit": {
      type: "string",
      description: "use N images of the calibration split (0: all)",
      value: { kind: "int", min: 0, max: 1e9 },
    },
    "evaluation-limit": {
      type: "string",
      description: "use N images of the evaluation split (0: all)",
      value: { kind: "int", min: 0, max: 1e9 },
    },
    "data-path": { type: "string", description: "dataset location (default: the checkpoint's)" },
    report: {
      type: "string",
      short: "r",
      description: "directory for compare.html, compare.md, roc.svg and compare.json",
    },
    "split-seed": {
      type: "string",
      description: "seed of the reserved/calibration/evaluation split",
      default: "0",
      value: { kind: "int", min: 0, max: 1e9 },
    },
    seed: {
      type: "string",
      description: "seed of the detectors' random draws and finetuning",
      default: "0",
      value: { kind: "int", min: 0, max: 1e9 },
    },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    applyRuntimeOptions(v);
    const checkpoint = requireStr(v, "checkpoint", "a directory written by `badexpert train`");
    let detectors: string[];
    let params: Record<string, Record<string, string>>;
    try {
      detectors = parseDetectorList(str(v, "detectors") ?? "all");
      params = parseDetectorParams(str(v, "detector-param") ?? "");
    } catch (e) {
      if (e instanceof RangeError || e instanceof DetectorParamError)
        throw new UsageError(`--detectors/--detector-param: ${e.message}`);
      throw e;
    }
    for (const name of Object.keys(params))
      if (!detectors.includes(name))
        throw new UsageError(
          `--detector-param: '${name}' is not among the compared detectors (${detectors.join(", ")})`,
        );
    const attack = str(v, "attack");
    const fpr = num(v, "fpr", compareCommand.options);
    const calibrationLimit = int(v, "calibration-limit", compareCommand.options);
    const evaluationLimit = int(v, "evaluation-limit", compareCommand.options);
    const dataPath = str(v, "data-path");
    const report = str(v, "report");
    const seed = int(v, "seed", compareCommand.options);
    const splitSeed = int(v, "split-seed", compareCommand.options);
    const r = await compareDetectors({
      checkpoint,
      detectors,
      params,
      attackParams: parseAttackParams(v),
      progress: true,
      ...(attack ? { attack } : {}),
      ...(fpr !== undefined ? { targetFpr: fpr } : {}),
      ...(calibrationLimit !== undefined ? { calibrationLimit } : {}),
      ...(evaluationLimit !== undefined ? { evaluationLimit } : {}),
      ...(dataPath ? { dataPath } : {}),
      ...(report ? { report } : {}),
      ...(seed !== undefined ? { seed } : {}),
      ...(splitSeed !== undefined ? { splitSeed } : {}),
    });
    console.log(
      `Detectors vs ${r.attack.name} on ${r.dataset} (${r.model}): ${r.splits.evaluationUsed} clean + ${r.splits.poisonedUsed} triggered evaluation inputs, thresholds at ${(100 * r.targetFpr).toFixed(2)}% FPR`,
    );
    console.log(
      `| ${COMPARE_HEADER.join(" | ")} |\n|${"---|".repeat(COMPARE_HEADER.length)}\n${compareRows(r.rows)
        .map((c) => `| ${c.join(" | ")} |`)
        .join("\n")}`,
    );
    if (r.reportFiles) console.error(`report: ${r.reportFiles.html}, ${r.reportFiles.markdown}, ${r.reportFiles.json}`);
    emitJson(v, { ...r, rows: r.rows.map(({ roc: _roc, ...row }) => row) });
    return 0;
  },
};
