// `badexpert evaluate-defense`: a detector bundle against an attack on the held-out evaluation
// split — CA and ASR before/after, AUROC, TPR/FPR at the threshold — and an HTML/Markdown report.
// The triggered side is a built-in attack, the user's own triggered inputs, or a trigger image.
import { UsageError, type Command, type OptionSpec } from "../command.js";
import { FPR, choice, emitJson, num, requireStr, str } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { MISCLASSIFIED_ASR, evaluateBundle } from "../../jobs/evaluate-defense.js";
import { SCORE_RULES } from "../../defense/scores.js";
import { metricsRows } from "../../report/report.js";
import { DEFAULT_SALIENCY_METHOD, SALIENCY_METHODS } from "../../forensics/saliency.js";

const OPTIONS: Record<string, OptionSpec> = {
  bundle: {
    type: "string",
    short: "b",
    description: "detector bundle directory (from `badexpert defend`, or `defend --detector NAME` for a baseline)",
  },
  ...ATTACK_OPTIONS,
  triggered: {
    type: "string",
    description:
      "instead of an attack: your own triggered inputs, a folder of images with labels.csv (file,label[,target]) or an .npz with arrays x, y[, target]",
  },
  trigger: {
    type: "string",
    description:
      "instead of an attack: a trigger image (PNG, at the model's input size) stamped on the clean evaluation images; its alpha channel is the mask",
  },
  mask: {
    type: "string",
    description:
      "with --trigger: a greyscale mask image (white: the trigger's pixels, black: the clean image's) for a trigger without alpha",
  },
  "trigger-alpha": {
    type: "string",
    description:
      "with --trigger: blend weight A in (0, 1]: x' = (1 - A m) x + A m trigger (default 1: a patch; e.g. 0.2 for a blended pattern)",
    value: { kind: "float", min: 0, max: 1, exclusiveMin: true },
  },
  target: {
    type: "string",
    description:
      "with --trigger, or --triggered inputs that record none: the class index the trigger is meant to reach (without one, ASR counts triggered inputs whose prediction differs from their true label)",
    value: { kind: "int", min: 0, max: 1e6 },
  },
  rule: {
    type: "string",
    description: `score rule to evaluate (${SCORE_RULES.join(", ")}; default: the bundle's)`,
    value: { kind: "choice", values: SCORE_RULES },
  },
  fpr: { type: "string", description: "target FPR when re-calibrating, in (0, 1) (default: the bundle's)", value: FPR },
  "data-path": { type: "string", description: "dataset location (default: the one the bundle was made with)" },
  report: {
    type: "string",
    short: "r",
    description: "directory for report.html, report.md, the SVG charts and metrics.json",
  },
  "verify-key": {
    type: "string",
    description: "Ed25519 public key (PEM): refuse the bundle unless it is signed by its private key",
  },
  parts: {
    type: "boolean",
    description:
      "also measure M, B and M' each on their own: clean accuracy and the share of triggered inputs each sends to the target (says which of B and M' failed when an attack gets through)",
  },
  "explain-inputs": {
    type: "string",
    description: 'with --report: flagged poisoned inputs explained in its "What the detector saw" section (0: none)',
    default: "48",
    value: { kind: "int", min: 0, max: 1e6 },
  },
  "explain-method": {
    type: "string",
    description: `saliency method of that section: ${SALIENCY_METHODS.join(", ")}`,
    default: DEFAULT_SALIENCY_METHOD,
    value: { kind: "choice", values: SALIENCY_METHODS },
  },
  "evaluation-limit": {
    type: "string",
    description: "use N images of the evaluation split (0: all; STRIP costs ~100 passes per input)",
    value: { kind: "int", min: 0, max: 1e9 },
  },
  ...RUNTIME_OPTIONS,
};

export const evaluateDefenseCommand: Command = {
  name: "evaluate-defense",
  summary: "measure a detector against an attack: CA/ASR before and after, AUROC, TPR/FPR; write a report",
  details: [
    "Scores the bundle's evaluation split (disjoint from the reserved and calibration splits) and the same images",
    "with the attack's trigger. By default the attack is the one recorded in the model's checkpoint.",
    "A model with no attack recorded (an imported one) is evaluated against the trigger you fear:",
    "  --triggered DIR       images carrying the trigger, with DIR/labels.csv: header file,label[,target], one row",
    "                        per image (file relative to DIR, true class index, class the trigger aims at)",
    "  --triggered FILE.npz  arrays x (uint8 [N,H,W] or [N,H,W,C], or float [N,C,H,W] in 0..1), y (true classes),",
    "                        optionally target (one per image, or one for all)",
    "  --trigger PNG         a trigger image stamped on the evaluation images (those of the --target class left out)",
    "Triggered images must have the model's input size (they are not resized). Inputs whose true class is their",
    "target are left out. Without a target, ASR is the share of triggered inputs whose prediction differs from",
    "their true label, and the output says so. Formats: docs/triggered-inputs.md.",
    "--rule scores with another rule, re-calibrating its threshold on the bundle's calibration split.",
    "A baseline detector bundle (`defend --detector strip|...`) is measured with the same metric and threshold code;",
    'its report has no (b, a) decision plane and no "What the detector saw" section (both need BaDExpert\'s B), and says so.',
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
    const triggered = str(v, "triggered");
    const trigger = str(v, "trigger");
    const mask = str(v, "mask");
    const triggerAlpha = num(v, "trigger-alpha", OPTIONS);
    const target = num(v, "target", OPTIONS);
    const sources = [attack && "--attack", triggered && "--triggered", trigger && "--trigger"].filter((x) => x);
    if (sources.length > 1)
      throw new UsageError(`give one of --attack, --triggered and --trigger, not ${sources.join(" and ")}`);
    if (!trigger && (mask !== undefined || triggerAlpha !== undefined))
      throw new UsageError(`--${mask !== undefined ? "mask" : "trigger-alpha"} goes with --trigger PNG`);
    if (!trigger && !triggered && target !== undefined)
      throw new UsageError(
        "--target goes with --trigger or --triggered (a built-in attack's target is --attack-param targetClass=N)",
      );
    if ((trigger || triggered) && str(v, "attack-param") !== undefined)
      throw new UsageError("--attack-param goes with a built-in attack (--attack), not with --triggered or --trigger");
    const r = await evaluateBundle({
      bundle,
      ...(verifyKey !== undefined ? { verifyKey } : {}),
      attackParams: parseAttackParams(v),
      progress: true,
      device,
      ...(attack ? { attack } : {}),
      ...(triggered ? { triggered } : {}),
      ...(trigger
        ? {
            trigger: {
              image: trigger,
              ...(mask !== undefined ? { mask } : {}),
              ...(triggerAlpha !== undefined ? { alpha: triggerAlpha } : {}),
            },
          }
        : {}),
      ...(target !== undefined ? { target } : {}),
      ...(rule ? { rule } : {}),
      ...(fpr !== undefined ? { targetFpr: fpr } : {}),
      ...(dataPath ? { dataPath } : {}),
      ...(report ? { report } : {}),
      ...(evaluationLimit !== undefined ? { evaluationLimit } : {}),
      explainInputs: num(v, "explain-inputs", OPTIONS) ?? 48,
      explainMethod: choice(v, "explain-method", SALIENCY_METHODS) ?? DEFAULT_SALIENCY_METHOD,
      parts: v.parts === true,
    });
    const m = r.metrics;
    const who = r.rule !== null ? `BaDExpert (${r.rule})` : r.detector;
    console.log(
      `${who} vs ${r.attack.name} on ${r.dataset}: ${m.cleanCount} clean and ${m.poisonCount} poisoned evaluation inputs`,
    );
    const misclassified = r.asrMeaning === "misclassified";
    if ((r.leftOut ?? 0) > 0) console.log(`${r.leftOut} triggered inputs left out: their true class is their target`);
    const rows = metricsRows(m).map(([k, b, a]) =>
      misclassified && k.startsWith("Attack success rate")
        ? ["Triggered inputs misclassified (ASR, no target known)", b, a]
        : [k, b, a],
    );
    console.log(
      `| metric | before | after |\n|---|---|---|\n${rows.map(([k, b, a]) => `| ${k} | ${b} | ${a} |`).join("\n")}`,
    );
    if (misclassified) console.log(`${MISCLASSIFIED_ASR}.`);
    console.log(`scoring: ${r.scoringRate.toFixed(0)} inputs/s`);
    if (r.parts) {
      const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
      const rows = (
        [
          ["M", r.parts.model],
          ["B", r.parts.expert],
          ["M'", r.parts.auxiliary],
        ] as const
      ).map(([n, p]) => `| ${n} | ${pct(p.cleanAccuracy)} | ${pct(p.toTarget)} |`);
      console.log(`| model | clean accuracy | triggered sent to the target |\n|---|---|---|\n${rows.join("\n")}`);
    }
    if (r.reportFiles) console.error(`report: ${r.reportFiles.html} and ${r.reportFiles.markdown}`);
    emitJson(v, {
      bundle,
      detector: r.detector,
      dataset: r.dataset,
      model: r.model,
      attack: r.attack,
      rule: r.rule,
      targetFpr: r.targetFpr,
      asrMeaning: r.asrMeaning ?? "target",
      leftOut: r.leftOut ?? 0,
      ...m,
      scoringRate: r.scoringRate,
      ...(r.parts ? { parts: r.parts } : {}),
    });
    return 0;
  },
};
