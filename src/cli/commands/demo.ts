// `badexpert demo` (npm run demo): the main job end to end on real data. Trains (or reuses a
// cached) backdoored compact CNN on Fashion-MNIST, builds a BaDExpert detector from the model
// and a reserved clean split, evaluates it against the attack on a held-out split, prints the
// metrics table and writes the HTML/Markdown report.
import { join } from "node:path";
import type { Command, OptionSpec } from "../command.js";
import { EPOCHS, SEED, choiceWithDefault, emitJson, numOrWord, numWithDefault, strWithDefault } from "../args.js";
import { RUNTIME_OPTIONS, applyRuntimeOptions } from "../runtime-options.js";
import { ATTACK_OPTIONS, parseAttackParams } from "../attack-options.js";
import { readCheckpointMeta } from "../../train/checkpoint.js";
import { cachedModel, cachedModelPath } from "../../jobs/model-cache.js";
import { defendCheckpoint } from "../../jobs/defend.js";
import { evaluateBundle } from "../../jobs/evaluate-defense.js";
import { assertReportDir, metricsRows } from "../../report/report.js";
import { DETECTOR_BUNDLE_DIRS } from "../../detectors/bundle.js";
import { assertWritableDir } from "../../util/atomic-dir.js";
import { SCORE_RULES } from "../../defense/scores.js";

const OPTIONS: Record<string, OptionSpec> = {
  ...ATTACK_OPTIONS,
  attack: {
    ...ATTACK_OPTIONS.attack,
    type: "string",
    description: "backdoor attack (see `badexpert attack list`)",
    default: "badnet",
  },
  epochs: { type: "string", description: "training epochs of the backdoored model", default: "6", value: EPOCHS },
  seed: {
    type: "string",
    description: "seed of training, poisoning, splits and finetuning",
    default: "0",
    value: SEED,
  },
  out: { type: "string", short: "o", description: "output directory (bundle and report)", default: "out/demo" },
  retrain: { type: "boolean", description: "train a new backdoored model even if a cached one matches" },
  "unlearn-lr": {
    type: "string",
    description:
      "Adam learning rate of the backdoor expert for one epoch. Default, or 'auto': B unlearns from 1e-5 upward until its clean accuracy on held-out images falls to 20%",
    value: { kind: "float-or", word: "auto", number: { kind: "float", min: 0, max: 10, exclusiveMin: true } },
  },
  rule: {
    type: "string",
    description: `score rule (${SCORE_RULES.join(", ")})`,
    default: "triangle",
    value: { kind: "choice", values: SCORE_RULES },
  },
  ...RUNTIME_OPTIONS,
};

export const demo: Command = {
  name: "demo",
  summary: "end to end on Fashion-MNIST: backdoored model → BaDExpert detector → metrics and report",
  details: [
    "The backdoored model is cached under ~/.cache/badexpert/models ($BADEXPERT_MODEL_CACHE) and reused",
    "when its attack, epochs and seed match; --retrain forces a new one.",
  ].join("\n"),
  examples: ["badexpert demo", "badexpert demo --attack blend --out out/demo-blend"],
  options: OPTIONS,
  async run(v) {
    const { device } = applyRuntimeOptions(v);
    const t0 = Date.now();
    const attackName = strWithDefault(v, "attack", OPTIONS);
    const attackParams = parseAttackParams(v);
    const epochs = numWithDefault(v, "epochs", OPTIONS);
    const seed = numWithDefault(v, "seed", OPTIONS);
    const out = strWithDefault(v, "out", OPTIONS);
    const say = (l: string) => console.error(`[demo] ${l}`);
    // The demo's own output directory: each run replaces the bundle and report an earlier run
    // wrote there, and nothing else; checked before the model is trained.
    const bundle = join(out, "detector");
    const reportDir = join(out, "report");
    await assertWritableDir(bundle, { kinds: DETECTOR_BUNDLE_DIRS, replace: true });
    await assertReportDir(reportDir);
    const spec = { dataset: "fashion-mnist", attack: attackName, attackParams, epochs, seed };
    say(`1/3 backdoored compact CNN (${attackName}, ${epochs} epochs): ${cachedModelPath(spec)}`);
    const trained = await cachedModel(spec, { retrain: v.retrain === true, device, log: say });
    const modelDir = trained.dir;
    const trainSeconds = trained.seconds;
    if (!trained.trained) say("reusing the cached model (--retrain trains a new one)");
    const meta = await readCheckpointMeta(modelDir);
    say(
      `backdoored model: clean accuracy ${(100 * (meta.metrics.cleanAccuracy ?? 0)).toFixed(2)}%, attack success rate ${(100 * (meta.metrics.attackSuccessRate ?? 0)).toFixed(2)}%`,
    );

    say("2/3 BaDExpert: extracting the backdoor expert B, finetuning M', calibrating the threshold");
    const unlearnLr = numOrWord(v, "unlearn-lr", "auto", OPTIONS);
    const rule = choiceWithDefault(v, "rule", SCORE_RULES, OPTIONS);
    const r = await defendCheckpoint({
      checkpoint: modelDir,
      out: bundle,
      seed,
      splits: { seed },
      calibration: { rule },
      ...(unlearnLr !== undefined ? { unlearn: { lr: unlearnLr } } : {}),
      device,
      force: true,
      log: say,
    });
    const d = r.badexpert as NonNullable<typeof r.badexpert>;

    say(`3/3 evaluating against ${attackName} on the held-out evaluation split`);
    const e = await evaluateBundle({ bundle, report: reportDir, progress: true });
    const m = e.metrics;
    console.log(
      `\nBaDExpert on Fashion-MNIST (compact CNN) vs ${e.attack.name} — ${m.cleanCount} clean / ${m.poisonCount} poisoned evaluation images`,
    );
    console.log("| metric | before defense | after defense |\n|---|---|---|");
    for (const [k, b, a] of metricsRows(m)) console.log(`| ${k} | ${b} | ${a} |`);
    const total = (Date.now() - t0) / 1000;
    console.log(
      // With the M' rate chosen, M' is the selection's model at that rate: its time is the selection's.
      `\nfit: B ${d.seconds.expert.toFixed(1)} s, ${d.finetuneSelection ? "" : `M' ${d.seconds.auxiliary.toFixed(1)} s, `}calibration ${d.seconds.calibration.toFixed(1)} s` +
        `${d.finetuneSelection ? `, M' at ${d.finetuneSelection.table.length} rates ${d.seconds.finetuneSelection.toFixed(0)} s (chose ${d.finetuneSelection.lr})` : ""}; ` +
        `scoring ${e.scoringRate.toFixed(0)} inputs/s; total ${total.toFixed(0)} s${trainSeconds ? ` (training ${trainSeconds.toFixed(0)} s)` : ""}`,
    );
    console.log(`report: ${e.reportFiles?.html ?? ""} (and report.md)`);
    emitJson(v, {
      model: modelDir,
      bundle,
      report: e.reportFiles,
      attack: e.attack,
      rule: e.rule,
      ...m,
      scoringRate: e.scoringRate,
      fitSeconds: d.seconds,
      totalSeconds: total,
    });
    return 0;
  },
};
