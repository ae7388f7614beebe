// Rebuilding a recorded attack for test time (evaluate-defense, compare, `attack preview
// --checkpoint`): like createAttack(), plus, for the attacks that trained a trigger network while
// poisoning (ISSBA, Dynamic), that network read from the checkpoint it poisoned and checked
// against the digest its parameters record.
import type { Attack, ImageSpec, ParamValue } from "./attack.js";
import { loadArtifacts } from "./artifacts.js";
import { attackInfo, createAttack } from "./registry.js";

export async function loadAttack(
  name: string,
  params: Readonly<Record<string, ParamValue>>,
  spec: ImageSpec,
  checkpoint: string | undefined,
): Promise<Attack> {
  if (!attackInfo(name).hasArtifacts) return createAttack(name, params, spec);
  const sha = params.generatorSha256;
  if (typeof sha !== "string" || sha === "") {
    throw new Error(
      `attack '${name}': its trigger network is recorded by parameter 'generatorSha256', which is missing; rebuild it from the checkpoint's own attack record`,
    );
  }
  if (checkpoint === undefined)
    throw new Error(
      `attack '${name}': its trigger network is stored with the checkpoint it poisoned, and no checkpoint directory is known`,
    );
  return createAttack(name, params, spec, await loadArtifacts(checkpoint, sha));
}
