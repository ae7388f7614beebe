// Public surface of the attack library.
export type {
  Attack,
  AttackContext,
  AttackKind,
  AttackParams,
  ApplyTriggerOptions,
  ImageSpec,
  ParamValue,
  PoisonedTestSet,
  PoisonedTrainingSet,
  Targeting,
} from "./attack.js";
export { AttackParamError, parseParamOverrides, resolveParams, type ParamSpec, type ParamTable } from "./params.js";
export { loadAttack } from "./load.js";
export { createAttack, attackNames, attackInfo, attackDefaults, type AttackEntry } from "./registry.js";
export { attackSuccessRate } from "./success-rate.js";
export { TriggerCanvas, pasteTrigger, triggerScale } from "./canvas.js";
export { BaseAttack, type AttackInfo, type AlterStep, type PoisonPlan } from "./base.js";
export { BadNet } from "./badnet.js";
export { BadNetAllToAll } from "./badnet-all-to-all.js";
export { Blend } from "./blend.js";
export { Trojan } from "./trojan.js";
export { Sig, sigSignal } from "./sig.js";
export { WaNet, warpGrid } from "./wanet.js";
export { Bpp, quantize } from "./bpp.js";
export { AdaptiveBlend, pieceMasks } from "./adaptive-blend.js";
export { AdaptivePatch } from "./adaptive-patch.js";
export { TaCT } from "./tact.js";
export { CleanLabel, pgdPerturb, type PgdOptions } from "./clean-label.js";
export { Ft } from "./ft.js";
export { Sra } from "./sra.js";
export { TrojanNN } from "./trojannn.js";
export { Issba, IssbaEncoder, IssbaDecoder, secretBits } from "./issba.js";
export { Dynamic, TriggerNet, diversityLoss } from "./dynamic.js";
export { GeneratorAttack, attackerSlice, type TrainedNetwork } from "./generator-attack.js";
export {
  SleeperAgent,
  applyCrafted,
  craftedArtifacts,
  craftingRate,
  retrainSteps,
  shifted,
  SLEEPER_DELTAS,
  SLEEPER_INDICES,
  type SleeperDetails,
} from "./sleeper-agent.js";
export {
  ATTACK_ARTIFACTS_FILE,
  artifactsDigest,
  loadArtifacts,
  saveArtifacts,
  serializeArtifacts,
  type AttackArtifacts,
} from "./artifacts.js";
export {
  TamperingBase,
  WeightEditor,
  isTamperingAttack,
  type TamperContext,
  type TamperResult,
  type TamperingAttack,
} from "./tampering.js";
