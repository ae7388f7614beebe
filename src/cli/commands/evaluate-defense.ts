// `badexpert evaluate-defense`: a detector bundle against an attack on the held-out evaluation
// split — CA and ASR before/after, AUROC, TPR/FPR at the threshold — and an HTML/Markdown report.
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { choice, emitJson, num, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { loadBundle } from "../../defense/bundle.js";
import { loadDataset } from "../../data/registry.js";
import { subset } from "../../data/splits.js";
import { defenseSplits, type DefenseSplitSpec } from "../../defense/splits.js";
import { evaluateDefense } from "../../defense/evaluate.js";
import { recalibrate } from "../../defense/recalibrate.js";
import { SCORE_RULES, type ScoreRule } from "../../defense/scores.js";
import { createAttack } from "../../attacks/registry.js";
import type { ParamValue } from "../../attacks/attack.js";
import { writeReport, metricsRows } from "../../report/report.js";

export const evaluateDefenseCommand: Command = {
  name: "evaluate-defense",
  summary: "measure a detector against an attack: CA/ASR before and after, AUROC, TPR/FPR; write a report",
  details: [
    "Scores the bundle's evaluation split (disjoint from the reserved and calibration splits) and the same images",
    "with the attack's trigger. By default the attack is the one recorded in the model's checkpoint.",
    "--rule scores with another rule, re-calibrating its threshold on the bundle's calibration split.",
    "",
    "Example: badexpert evaluate-defense --bundle runs/detector --report out/report",
  ].join("\n"),
  options: {
    bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`)" },
    ...ATTACK_OPTIONS,
    rule: { type: "string", description: `score rule to evaluate (${SCORE_RULES.join(", ")}; default: the bundle's)` },
    fpr: { type: "string", description: "target FPR when re-calibrating for --rule (default: the bundle's)" },
    "data-path": { type: "string", description: "dataset location (default: the one the bundle was made with)" },
    report: { type: "string", short: "r", description: "directory for report.html, report.md, the SVG charts and metrics.json" },
    ...RUNTIME_OPTIONS,
  },
  async run(v) {
    applyRuntimeOptions(v);
    const dir = requireStr(v, "bundle", "a directory written by `badexpert defend`");
    const det0 = await loadBundle(dir);
    const created = det0.info.creation as { dataset?: { name: string; path?: string }; splits?: DefenseSplitSpec; modelTraining?: { attack?: { name: string; params: Record<string, ParamValue> } | null } };
    try {
      if (!created.dataset || !created.splits) throw new UsageError(`${dir}: the bundle does not record its dataset and splits (made by an older version?)`);
      const recorded = created.modelTraining?.attack ?? null;
      const attackName = str(v, "attack") ?? recorded?.name;
      if (!attackName) throw new UsageError("--attack is required: the model's checkpoint records no attack");
      const params = str(v, "attack") && str(v, "attack") !== recorded?.name ? parseAttackParams(v) : { ...(recorded?.params ?? {}), ...parseAttackParams(v) };
      const path = str(v, "data-path") ?? created.dataset.path;
      const [h, w] = det0.info.preprocessing.imageSize;
      const test = await loadDataset(created.dataset.name, { split: "test", ...(path ? { path } : {}), imageSize: [h, w], channels: det0.info.preprocessing.channels === 1 ? 1 : 3 });
      const splits = defenseSplits(test.count, created.splits);
      const attack = createAttack(attackName, params, { numClasses: test.classNames.length, height: h, width: w, channels: test.channels, dataset: created.dataset.name });
      const rule = (choice(v, "rule", SCORE_RULES) ?? det0.rule) as ScoreRule;
      const det = rule === det0.rule && num(v, "fpr") === undefined
        ? det0
        : recalibrate(det0, rule, num(v, "fpr", { positive: true }) ?? det0.info.targetFpr, subset(test, splits.calibration));
      const evalSet = subset(test, splits.evaluation);
      const r = evaluateDefense(det, evalSet, attack, { progress: true });
      const m = r.metrics;
      console.log(`BaDExpert (${rule}) vs ${attack.name} on ${created.dataset.name}: ${m.cleanCount} clean and ${m.poisonCount} poisoned evaluation inputs`);
      console.log(`| metric | before | after |\n|---|---|---|\n${metricsRows(m).map(([k, b, a]) => `| ${k} | ${b} | ${a} |`).join("\n")}`);
      console.log(`scoring: ${r.scoringRate.toFixed(0)} inputs/s`);
      const reportDir = str(v, "report");
      if (reportDir) {
        const files = await writeReport(reportDir, {
          title: `BaDExpert vs ${attack.name} — ${created.dataset.name}, ${det.info.spec.name}`,
          dataset: created.dataset.name,
          model: det.info.spec.name,
          attack: { name: attack.name, params: attack.params },
          rule,
          threshold: det.threshold,
          targetFpr: det.info.targetFpr,
          metrics: m,
          clean: r.clean,
          poisoned: r.poisoned,
          details: {
            bundle: dir,
            "reserved / calibration / evaluation images": `${splits.reserved.length} / ${splits.calibration.length} / ${splits.evaluation.length} (split seed ${created.splits.seed})`,
            "calibration FPR achieved": `${(100 * det.info.calibration.achievedFpr).toFixed(2)}% of ${det.info.calibration.count}`,
            "scoring throughput": `${r.scoringRate.toFixed(0)} inputs/s`,
            creation: JSON.stringify(det0.info.creation),
          },
        });
        console.error(`report: ${files.html} and ${files.markdown}`);
      }
      emitJson(v, { bundle: dir, attack: { name: attack.name, params: attack.params }, rule, targetFpr: det.info.targetFpr, ...m, scoringRate: r.scoringRate });
      return 0;
    } finally {
      det0.dispose();
    }
  },
};
