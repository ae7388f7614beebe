// `badexpert evaluate-defense`: a detector bundle against an attack on the held-out evaluation
// split — CA and ASR before/after, AUROC, TPR/FPR at the threshold — and an HTML/Markdown report.
import type { Command, OptionSpec } from "../command.js";
import { FPR, choice, choiceWithDefault, emitJson, num, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { evaluateBundle } from "../../jobs/evaluate-defense.js";
import { LIMIT_ORDERS } from "../../jobs/compare.js";
import { SCORE_RULES } from "../../defense/scores.js";
import { metricsRows } from "../../report/report.js";
import { DEFAULT_SALIENCY_METHOD, SALIENCY_METHODS } from "../../forensics/saliency.js";

const OPTIONS: Record<string, OptionSpec> = {
  bundle: { type: "string", short: "b", description: "detector bundle directory (from `badexpert defend`, or `defend --detector NAME` for a baseline)" },
  ...ATTACK_OPTIONS,
  rule: { type: "string", description: `score rule to evaluate (${SCORE_RULES.join(", ")}; default: the bundle's)`, value: { kind: "choice", values: SCORE_RULES } },
  fpr: { type: "string", description: "target FPR when re-calibrating, in (0, 1) (default: the bundle's)", value: FPR },
  "data-path": { type: "string", description: "dataset location (default: the one the bundle was made with)" },
  report: { type: "string", short: "r", description: "directory for report.html, report.md, the SVG charts and metrics.json" },
  "verify-key": { type: "string", description: "Ed25519 public key (PEM): refuse the bundle unless it is signed by its private key" },
  parts: { type: "boolean", description: "also measure M, B and M' each on their own: clean accuracy and the share of triggered inputs each sends to the target (says which of B and M' failed when an attack gets through)" },
  "explain-inputs": { type: "string", description: "with --report: flagged poisoned inputs explained in its \"What the detector saw\" section (0: none)", default: "48", value: { kind: "int", min: 0, max: 1e6 } },
  "explain-method": { type: "string", description: `saliency method of that section: ${SALIENCY_METHODS.join(", ")}`, default: DEFAULT_SALIENCY_METHOD, value: { kind: "choice", values: SALIENCY_METHODS } },
  "evaluation-limit": { type: "string", description: "use N images of the evaluation split (0: all; STRIP costs ~100 passes per input)", value: { kind: "int", min: 0, max: 1e9 } },
  "limit-order": { type: "string", description: "how that limit picks: sample (a seeded random N) or first (the first N by index; the rule before session 8)", default: "sample", value: { kind: "choice", values: LIMIT_ORDERS } },
  ...RUNTIME_OPTIONS,
};

export const evaluateDefenseCommand: Command = {
  name: "evaluate-defense",
  summary: "measure a detector against an attack: CA/ASR before and after, AUROC, TPR/FPR; write a report",
  details: [
    "Scores the bundle's evaluation split (disjoint from the reserved and calibration splits) and the same images",
    "with the attack's trigger. By default the attack is the one recorded in the model's checkpoint.",
    "--rule scores with another rule, re-calibrating its threshold on the bundle's calibration split.",
    "A baseline detector bundle (`defend --detector strip|...`) is measured with the same metric and threshold code;",
    "its report has no (b, a) decision plane and no \"What the detector saw\" section (both need BaDExpert's B), and says so.",
  ].join("\n"),
  examples: [
    "badexpert evaluate-defense --bundle out/demo/detector --report out/evaluation",
    "badexpert evaluate-defense --bundle out/demo/detector --parts --evaluation-limit 1000",
  ],
  options: OPTIONS,
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const attack = str(v, "attack");
    const rule = choice(v, "rule", SCORE_RULES);
    const fpr = num(v, "fpr", OPTIONS);
    const dataPath = str(v, "data-path");
    const report = str(v, "report");
    const bundle = requireStr(v, "bundle", "a directory written by `badexpert defend`");
    const verifyKey = str(v, "verify-key");
    const evaluationLimit = num(v, "evaluation-limit", OPTIONS);
    const limitOrder = choiceWithDefault(v, "limit-order", LIMIT_ORDERS, OPTIONS);
    const r = await evaluateBundle({
      bundle,
      ...(verifyKey !== undefined ? { verifyKey } : {}),
      attackParams: parseAttackParams(v),
      progress: true,
      device,
      ...(attack ? { attack } : {}),
      ...(rule ? { rule } : {}),
      ...(fpr !== undefined ? { targetFpr: fpr } : {}),
      ...(dataPath ? { dataPath } : {}),
      ...(report ? { report } : {}),
      ...(evaluationLimit !== undefined ? { evaluationLimit } : {}),
      limitOrder,
      explainInputs: num(v, "explain-inputs", OPTIONS) ?? 48,
      explainMethod: choice(v, "explain-method", SALIENCY_METHODS) ?? DEFAULT_SALIENCY_METHOD,
      parts: v.parts === true,
    });
    const m = r.metrics;
    const who = r.rule !== null ? `BaDExpert (${r.rule})` : r.detector;
    console.log(`${who} vs ${r.attack.name} on ${r.dataset}: ${m.cleanCount} clean and ${m.poisonCount} poisoned evaluation inputs`);
    console.log(`| metric | before | after |\n|---|---|---|\n${metricsRows(m).map(([k, b, a]) => `| ${k} | ${b} | ${a} |`).join("\n")}`);
    console.log(`scoring: ${r.scoringRate.toFixed(0)} inputs/s`);
    if (r.parts) {
      const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
      const rows = ([["M", r.parts.model], ["B", r.parts.expert], ["M'", r.parts.auxiliary]] as const).map(([n, p]) => `| ${n} | ${pct(p.cleanAccuracy)} | ${pct(p.toTarget)} |`);
      console.log(`| model | clean accuracy | triggered sent to the target |\n|---|---|---|\n${rows.join("\n")}`);
    }
    if (r.reportFiles) console.error(`report: ${r.reportFiles.html} and ${r.reportFiles.markdown}`);
    emitJson(v, { bundle, detector: r.detector, dataset: r.dataset, model: r.model, attack: r.attack, rule: r.rule, targetFpr: r.targetFpr, ...m, scoringRate: r.scoringRate, ...(r.parts ? { parts: r.parts } : {}) });
    return 0;
  },
};
