// How commands name an attack and its parameters: --attack NAME plus --attack-param k=v,k=v
// (lists continue after commas: coverClasses=5,7). Values stay strings here; the attack's
// parameter table converts and validates them.
import { UsageError, type OptionSpec } from "./command.js";
import { attackNames } from "../attacks/registry.js";
import { str } from "./args.js";
import { AttackParamError, parseParamOverrides } from "../attacks/params.js";

export const ATTACK_OPTIONS: Record<string, OptionSpec> = {
  attack: {
    type: "string",
    short: "a",
    description: "backdoor attack (see `badexpert attack list`)",
    value: { kind: "choice", values: attackNames() },
  },
  "attack-param": {
    type: "string",
    description: "attack parameters as key=value,key=value (e.g. rate=0.01,targetClass=3)",
  },
};

export function parseAttackParams(v: Record<string, string | boolean | undefined>): Record<string, string> {
  const raw = str(v, "attack-param");
  if (!raw) return {};
  try {
    return parseParamOverrides(raw);
  } catch (e) {
    if (e instanceof AttackParamError) throw new UsageError(`--attack-param: ${e.message}`);
    throw e;
  }
}
