// How commands name an attack and its parameters: --attack NAME plus --attack-param k=v,k=v
// (numbers and booleans are parsed; everything else stays a string).
import { UsageError, type OptionSpec } from "./command.js";
import { str } from "./args.js";
import type { ParamValue } from "../attacks/attack.js";

export const ATTACK_OPTIONS: Record<string, OptionSpec> = {
  attack: { type: "string", short: "a", description: "backdoor attack (see `badexpert attack list`)" },
  "attack-param": { type: "string", description: "attack parameters as key=value,key=value (e.g. rate=0.01,targetClass=3)" },
};

export function parseAttackParams(v: Record<string, string | boolean | undefined>): Record<string, ParamValue> {
  const raw = str(v, "attack-param");
  const out: Record<string, ParamValue> = {};
  if (!raw) return out;
  for (const part of raw.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new UsageError(`--attack-param: expected key=value pairs separated by commas, got '${part}'`);
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    out[key] = value === "true" ? true : value === "false" ? false : value !== "" && Number.isFinite(Number(value)) ? Number(value) : value;
  }
  return out;
}
