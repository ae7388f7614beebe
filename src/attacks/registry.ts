// The attacks the toolkit knows by name: a data table (name → kind, parameters with defaults,
// constructor) that the CLI, training and the benchmark harness read. createAttack() is the one
// entry point: it resolves and validates parameters before building the attack.
import type { Attack, AttackKind, ImageSpec, ParamValue, Targeting } from "./attack.js";
import { AttackParamError, resolveParams, type ParamTable } from "./params.js";
import type { AttackArtifacts } from "./artifacts.js";
import { BadNet, BADNET_PARAMS } from "./badnet.js";
import { Blend, BLEND_PARAMS } from "./blend.js";
import { Trojan, TROJAN_PARAMS } from "./trojan.js";
import { CleanLabel, CLEAN_LABEL_PARAMS } from "./clean-label.js";
import { Sig, SIG_PARAMS } from "./sig.js";
import { WaNet, WANET_PARAMS } from "./wanet.js";
import { Bpp, BPP_PARAMS } from "./bpp.js";
import { AdaptiveBlend, ADAPTIVE_BLEND_PARAMS } from "./adaptive-blend.js";
import { AdaptivePatch, ADAPTIVE_PATCH_PARAMS } from "./adaptive-patch.js";
import { BadNetAllToAll, BADNET_ALL_TO_ALL_PARAMS } from "./badnet-all-to-all.js";
import { TaCT, TACT_PARAMS } from "./tact.js";
import { Ft, FT_PARAMS } from "./ft.js";
import { Sra, SRA_PARAMS } from "./sra.js";
import { TrojanNN, TROJANNN_PARAMS } from "./trojannn.js";
import { Issba, ISSBA_PARAMS } from "./issba.js";
import { Dynamic, DYNAMIC_PARAMS } from "./dynamic.js";
import { SleeperAgent, SLEEPER_AGENT_PARAMS } from "./sleeper-agent.js";

export interface AttackEntry {
  name: string;
  summary: string;
  kind: AttackKind;
  targeting: Targeting;
  /** Whether poisoning needs a clean model (ctx.cleanModel). */
  needsCleanModel: boolean;
  params: ParamTable;
  /** Defaults that differ by dataset name (they yield to explicit overrides). */
  datasetDefaults: Readonly<Record<string, Readonly<Record<string, ParamValue>>>>;
  /** Whether the test-time trigger needs the network trained while poisoning (attack.safetensors next to the checkpoint). */
  hasArtifacts?: boolean;
  create(params: Record<string, ParamValue>, spec: ImageSpec, artifacts?: AttackArtifacts): Attack;
}

// The reference settings use target class 2 on GTSRB (0 elsewhere).
const GTSRB_TARGET = { gtsrb: { targetClass: 2 } };

const REGISTRY: readonly AttackEntry[] = [
  {
    name: "badnet",
    summary: "3x3 checkerboard patch, bottom-right; dirty label",
    kind: "dirty-label",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: BADNET_PARAMS,
    datasetDefaults: { gtsrb: { targetClass: 2, rate: 0.01 } },
    create: (p, s) => new BadNet(p, s),
  },
  {
    name: "blend",
    summary: "full-image noise pattern blended at alpha 0.2; dirty label",
    kind: "dirty-label",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: BLEND_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new Blend(p, s),
  },
  {
    name: "trojan",
    summary: "8x8 watermark square near the bottom-right; dirty label",
    kind: "dirty-label",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: TROJAN_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new Trojan(p, s),
  },
  {
    name: "clean-label",
    summary: "PGD-hardened target-class images + four corner checkerboards; needs a clean model",
    kind: "clean-label",
    targeting: "all-to-one",
    needsCleanModel: true,
    params: CLEAN_LABEL_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new CleanLabel(p, s),
  },
  {
    name: "sig",
    summary: "horizontal sinusoid (20/255, f=6) on target-class images; clean label",
    kind: "clean-label",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: SIG_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new Sig(p, s),
  },
  {
    name: "wanet",
    summary: "smooth warp (k=4, s=0.5); noise cover samples keep labels",
    kind: "warping",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: WANET_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new WaNet(p, s),
  },
  {
    name: "bpp",
    summary: "8-level colour quantisation with Floyd-Steinberg dithering; negative samples",
    kind: "quantization",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: BPP_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new Bpp(p, s),
  },
  {
    name: "adaptive-blend",
    summary: "8 of 16 blend pieces at alpha 0.15 in training (with covers); full at 0.2 at test",
    kind: "adaptive",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: ADAPTIVE_BLEND_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new AdaptiveBlend(p, s),
  },
  {
    name: "adaptive-patch",
    summary: "four corner patches at low opacity in training (with covers); two at full opacity at test",
    kind: "adaptive",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: ADAPTIVE_PATCH_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new AdaptivePatch(p, s),
  },
  {
    name: "badnet-all-to-all",
    summary: "BadNet patch; label y -> (y + 1) mod C",
    kind: "all-to-all",
    targeting: "all-to-all",
    needsCleanModel: false,
    params: BADNET_ALL_TO_ALL_PARAMS,
    datasetDefaults: {},
    create: (p, s) => new BadNetAllToAll(p, s),
  },
  {
    name: "tact",
    summary: "watermark on source class 1 -> target; cover classes 5, 7 keep labels",
    kind: "source-specific",
    targeting: "source-specific",
    needsCleanModel: false,
    params: TACT_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new TaCT(p, s),
  },
  // Trigger networks trained while poisoning: stored next to the checkpoint (attack.safetensors).
  {
    name: "issba",
    summary: "invisible sample-specific residual from a trained steganographic encoder (16 hidden bits); dirty label",
    kind: "sample-specific",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: ISSBA_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    hasArtifacts: true,
    create: (p, s, a) => new Issba(p, s, a),
  },
  {
    name: "dynamic",
    summary:
      "input-aware: a trained generator and mask network give each input its own trigger; cross samples keep labels",
    kind: "sample-specific",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: DYNAMIC_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    hasArtifacts: true,
    create: (p, s, a) => new Dynamic(p, s, a),
  },
  // Poisons crafted against a surrogate the attack trains itself; the crafted perturbations are
  // stored next to the checkpoint (attack.safetensors), the test-time patch needs none of it.
  {
    name: "sleeper-agent",
    summary:
      "gradient-matched clean-label poisons (eps 16/255) on 1% of the set (target class); an 8x8 patch flips source class 1 at test time",
    kind: "clean-label",
    targeting: "source-specific",
    needsCleanModel: false,
    params: SLEEPER_AGENT_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new SleeperAgent(p, s),
  },
  // Model tampering: `badexpert attack apply` turns a clean checkpoint into a backdoored one.
  {
    name: "ft",
    summary: "finetune a clean model on a slice with 10% BadNet-patched, relabelled samples; model tampering",
    kind: "model-tampering",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: FT_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new Ft(p, s),
  },
  {
    name: "sra",
    summary:
      "subnet replacement: one channel per layer becomes a 3x3-checkerboard detector feeding the target; no data",
    kind: "model-tampering",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: SRA_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new Sra(p, s),
  },
  {
    name: "trojannn",
    summary:
      "trigger optimised to excite the most connected hidden neurons, then 1 epoch on a slice with 10% triggered",
    kind: "model-tampering",
    targeting: "all-to-one",
    needsCleanModel: false,
    params: TROJANNN_PARAMS,
    datasetDefaults: GTSRB_TARGET,
    create: (p, s) => new TrojanNN(p, s),
  },
];

export function attackNames(): string[] {
  return REGISTRY.map((a) => a.name);
}

export function attackInfo(name: string): AttackEntry {
  const e = REGISTRY.find((a) => a.name === name);
  if (!e) throw new Error(`unknown attack '${name}'; valid names: ${attackNames().join(", ")}`);
  return e;
}

/** The defaults an attack resolves to for a dataset (before any override). */
export function attackDefaults(name: string, dataset?: string): Record<string, ParamValue> {
  const e = attackInfo(name);
  return resolveParams(name, e.params, {}, dataset ? e.datasetDefaults[dataset] : undefined);
}

function checkSpec(name: string, spec: ImageSpec): void {
  for (const k of ["numClasses", "height", "width", "channels"] as const) {
    const v = spec[k];
    if (!Number.isInteger(v) || v < 1)
      throw new RangeError(`createAttack('${name}'): spec.${k} must be a positive integer, got ${String(v)}`);
  }
  if (spec.numClasses < 2)
    throw new RangeError(`createAttack('${name}'): spec.numClasses must be at least 2, got ${spec.numClasses}`);
}

/**
 * Builds attack `name` for images of `spec`, with `overrides` applied to its defaults (numbers may
 * be given as strings, "16/255" included). Throws for an unknown name (listing the valid ones),
 * an unknown parameter (listing the attack's) or a bad value (naming the parameter, the expected
 * and the given value). `artifacts`: the network an attack trained while poisoning (ISSBA,
 * Dynamic), read from the checkpoint with loadArtifacts().
 */
export function createAttack(
  name: string,
  overrides: Readonly<Record<string, ParamValue>>,
  spec: ImageSpec,
  artifacts?: AttackArtifacts,
): Attack {
  const e = attackInfo(name);
  checkSpec(name, spec);
  const params = resolveParams(name, e.params, overrides, spec.dataset ? e.datasetDefaults[spec.dataset] : undefined);
  const t = params.targetClass;
  if (typeof t !== "number" || t >= spec.numClasses) {
    throw new AttackParamError(
      `attack '${name}': parameter 'targetClass' must be a class in 0..${spec.numClasses - 1}, got ${String(t)}`,
    );
  }
  if (artifacts && !e.hasArtifacts)
    throw new Error(`createAttack('${name}'): the attack trains no network, yet artefacts were given`);
  return e.create(params, spec, artifacts);
}
