// A source-specific (conditional) backdoor around another attack's trigger: TaCT's poisoning plan
// (triggered images of one source class relabelled to the target; triggered cover images of other
// classes keep their label, so the trigger alone does not decide the class) with any trigger. The
// defender's conditional canary (src/defense/canary.ts) is built with it from the defender's own
// patch, so that it shares TaCT's conditionality but not TaCT's watermark.
import type { Tensor } from "../engine/index.js";
import type { ApplyTriggerOptions, Attack, ImageSpec, ParamValue } from "./attack.js";
import { resolveParams } from "./params.js";
import { TaCT, TACT_PARAMS } from "./tact.js";

export class SourceSpecific extends TaCT {
  readonly inner: Attack;

  /** `params`: TaCT's (targetClass, sourceClass, coverClasses, rate, coverRate); `inner` gives only its trigger. */
  constructor(inner: Attack, params: Readonly<Record<string, ParamValue>>, spec: ImageSpec) {
    const name = `source-specific-${inner.name}`;
    super(resolveParams(name, TACT_PARAMS, params), spec, {
      name,
      description: `${inner.name}'s trigger on one source class relabelled to the target; cover classes carry it with their own label`,
    });
    this.inner = inner;
  }

  override applyTrigger(x: Tensor, opts?: ApplyTriggerOptions): Tensor {
    return this.inner.applyTrigger(x, opts);
  }
}
