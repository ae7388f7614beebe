// An imported TorchScript model is defended exactly like the same network from the zoo: B's and
// M''s finetuning (dropout, BatchNorm statistics, Adam and SGD steps) gives bit-identical weights
// on both wrappings of one set of weights. Where `defend` results differ between the two, the
// cause is the per-architecture defaults (src/defense/defaults.ts), not the TorchScript path.
import { test } from "node:test";
import assert from "node:assert/strict";
import { memory } from "../../src/engine/index.js";
import { TorchScriptModule } from "../../src/nn/torchscript-module.js";
import { createModel } from "../../src/models/registry.js";
import type { Module } from "../../src/nn/index.js";
import { extractBackdoorExpert, finetuneAuxiliary } from "../../src/defense/fit.js";
import { DEFAULT_FINETUNE, GIVEN_RATE_UNLEARNING } from "../../src/defense/defaults.js";
import { fixture } from "../helpers/pytorch-fixtures.js";
import { GREY8, syntheticSet } from "../detectors/fixtures.js";

function weights(m: Module): Map<string, number[]> {
  return new Map([...m.stateDict()].map(([k, t]) => [k, Array.from(t.data() as ArrayLike<number | bigint>, Number)]));
}

test("B and M' finetuned from a TorchScript model equal those finetuned from the zoo model with its weights", async () => {
  const before = memory().numTensors;
  const scripted = TorchScriptModule.load(fixture("compact-cnn-8-scripted.pt"));
  const spec = { name: "compact-cnn", numClasses: 10, inChannels: 1, imageSize: 8 };
  const zoo = createModel("compact-cnn", spec);
  zoo.loadStateDict(scripted.stateDict(), { strict: true });
  zoo.eval();
  const reserved = syntheticSet(96, 10, (i, k) => (i * 37 + k * 11) % 256);
  const d = { finetune: { ...DEFAULT_FINETUNE, lr: 0.1 }, unlearn: { ...GIVEN_RATE_UNLEARNING, lr: 1e-4 } };
  const common = { augment: { cropPadding: 1 }, normalization: GREY8, seed: 3, silent: true };
  const made: Module[] = [];
  try {
    const fits = [];
    for (const [m, s] of [
      [zoo, spec],
      [scripted, { ...spec, name: "torchscript" }],
    ] as const) {
      const expert = await extractBackdoorExpert(m, s, reserved, {
        ...common,
        unlearn: { ...d.unlearn, lr: 1e-3, batchSize: 32 },
      });
      made.push(expert);
      const aux = await finetuneAuxiliary(m, s, reserved, {
        ...common,
        finetune: { ...d.finetune, epochs: 2, batchSize: 32 },
      });
      made.push(aux);
      fits.push({ expert: weights(expert), aux: weights(aux) });
    }
    const [z, t] = fits as [(typeof fits)[number], (typeof fits)[number]];
    const original = weights(zoo);
    for (const role of ["expert", "aux"] as const) {
      assert.deepEqual([...t[role].keys()], [...z[role].keys()], `${role}: same state_dict keys`);
      for (const [k, w] of z[role]) {
        assert.deepEqual(t[role].get(k), w, `${role} ${k}: TorchScript and zoo finetuning differ`);
      }
      // The test can fail: finetuning moved the weights away from M's.
      assert.ok(
        [...z[role]].some(([k, w]) => w.some((x, i) => x !== original.get(k)?.[i])),
        `${role}: finetuning did not move any weight`,
      );
    }
  } finally {
    for (const m of made) m.dispose();
    zoo.dispose();
    scripted.dispose();
  }
  assert.equal(memory().numTensors, before);
});
