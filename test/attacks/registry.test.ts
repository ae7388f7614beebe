// The attack table and parameter validation: names, defaults, overrides and error messages.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AttackParamError,
  attackDefaults,
  attackInfo,
  attackNames,
  createAttack,
  parseParamOverrides,
  type ImageSpec,
} from "../../src/attacks/index.js";

const CIFAR: ImageSpec = { numClasses: 10, height: 32, width: 32, channels: 3 };

test("the table lists every attack of the reference setting with its kind and targeting", () => {
  assert.deepEqual(attackNames(), [
    "badnet",
    "blend",
    "trojan",
    "clean-label",
    "sig",
    "wanet",
    "bpp",
    "adaptive-blend",
    "adaptive-patch",
    "badnet-all-to-all",
    "tact",
    "issba",
    "dynamic",
    "sleeper-agent",
    "ft",
    "sra",
    "trojannn",
  ]);
  for (const name of attackNames()) {
    const a = createAttack(name, {}, CIFAR);
    const e = attackInfo(name);
    assert.equal(a.name, name);
    assert.equal(a.kind, e.kind);
    assert.equal(a.targeting, e.targeting);
    assert.equal(a.needsCleanModel, name === "clean-label");
    assert.deepEqual(Object.keys(a.params), Object.keys(e.params), `${name}: params lists every parameter`);
    assert.deepEqual(JSON.parse(JSON.stringify(a.params)), a.params, `${name}: params survive JSON`);
  }
  assert.equal(attackInfo("sig").kind, "clean-label");
  assert.equal(attackInfo("tact").targeting, "source-specific");
  assert.deepEqual(
    [attackInfo("sleeper-agent").kind, attackInfo("sleeper-agent").targeting],
    ["clean-label", "source-specific"],
  );
  assert.equal(attackInfo("badnet-all-to-all").targeting, "all-to-all");
  assert.deepEqual(
    attackNames().filter((n) => attackInfo(n).hasArtifacts === true),
    ["issba", "dynamic"],
  );
  assert.deepEqual(
    attackNames().filter((n) => attackInfo(n).kind === "model-tampering"),
    ["ft", "sra", "trojannn"],
  );
});

test("defaults follow the reference settings", () => {
  const d = (name: string) => attackDefaults(name);
  assert.deepEqual(d("badnet"), { targetClass: 0, rate: 0.003, cells: 3, margin: 1, corner: 0 });
  assert.equal(d("blend").alpha, 0.2);
  assert.equal(d("sig").delta, 20 / 255);
  assert.equal(d("sig").frequency, 6);
  assert.equal(d("sig").rate, 0.02);
  assert.deepEqual([d("wanet").rate, d("wanet").coverRate, d("wanet").k, d("wanet").strength], [0.05, 0.1, 4, 0.5]);
  assert.deepEqual(
    [
      d("adaptive-blend").pieces,
      d("adaptive-blend").piecesUsed,
      d("adaptive-blend").trainAlpha,
      d("adaptive-blend").testAlpha,
    ],
    [16, 8, 0.15, 0.2],
  );
  assert.deepEqual([d("tact").sourceClass, d("tact").coverClasses], [1, "5,7"]);
  assert.equal(d("clean-label").eps, 16 / 255);
  assert.equal(d("bpp").levels, 8);
  // GTSRB: target class 2, BadNet rate 0.01; explicit values still win.
  assert.deepEqual(attackDefaults("badnet", "gtsrb"), { targetClass: 2, rate: 0.01, cells: 3, margin: 1, corner: 0 });
  assert.equal(attackDefaults("blend", "gtsrb").rate, 0.003);
  const g = createAttack("badnet", { targetClass: 5 }, { ...CIFAR, numClasses: 43, dataset: "gtsrb" });
  assert.deepEqual([g.params.targetClass, g.params.rate], [5, 0.01]);
});

test("overrides accept numbers, numeric strings and fractions", () => {
  const a = createAttack("clean-label", { eps: "8/255", steps: "3", randomStart: "false" }, CIFAR);
  assert.equal(a.params.eps, 8 / 255);
  assert.equal(a.params.steps, 3);
  assert.equal(a.params.randomStart, false);
  assert.equal(
    createAttack("adaptive-patch", { trainAlphas: "0.3, 0.4", testPatches: "1" }, CIFAR).params.trainAlphas,
    "0.3,0.4",
  );
  assert.deepEqual(parseParamOverrides("trainAlphas=0.5,0.2,rate=0.01, targetClass = 3"), {
    trainAlphas: "0.5,0.2",
    rate: "0.01",
    targetClass: "3",
  });
  assert.deepEqual(parseParamOverrides(""), {});
  assert.throws(() => parseParamOverrides("0.5"), /expected key=value, got '0.5'/);
});

test("unknown names and bad values give errors naming what, expected and actual", () => {
  assert.throws(
    () => createAttack("nope", {}, CIFAR),
    /unknown attack 'nope'; valid names: badnet, blend, trojan, clean-label/,
  );
  assert.throws(
    () => createAttack("badnet", { ratio: 0.1 }, CIFAR),
    /attack 'badnet': unknown parameter 'ratio'; valid: targetClass, rate, cells, margin/,
  );
  assert.throws(
    () => createAttack("badnet", { rate: 2 }, CIFAR),
    /parameter 'rate' must be a number >= 0 and <= 1, got 2/,
  );
  assert.throws(
    () => createAttack("badnet", { rate: "lots" }, CIFAR),
    /parameter 'rate' must be a number >= 0 and <= 1, got "lots"/,
  );
  assert.throws(
    () => createAttack("badnet", { cells: 2.5 }, CIFAR),
    /parameter 'cells' must be an integer >= 1 and <= 16, got 2.5/,
  );
  assert.throws(
    () => createAttack("blend", { alpha: 0 }, CIFAR),
    /parameter 'alpha' must be a number > 0 and <= 1, got 0/,
  );
  assert.throws(
    () => createAttack("bpp", { dither: "maybe" }, CIFAR),
    /parameter 'dither' must be true or false, got "maybe"/,
  );
  assert.throws(
    () => createAttack("badnet", { targetClass: 10 }, CIFAR),
    /parameter 'targetClass' must be a class in 0\.\.9, got 10/,
  );
  assert.throws(
    () => createAttack("tact", { sourceClass: 0 }, CIFAR),
    /'sourceClass' must differ from targetClass \(0\)/,
  );
  assert.throws(
    () => createAttack("tact", { coverClasses: "5,1" }, CIFAR),
    /'coverClasses' must not include the source \(1\) or target \(0\) class, got 1/,
  );
  assert.throws(
    () => createAttack("tact", { coverClasses: "5,12" }, CIFAR),
    /'coverClasses' must list classes in 0\.\.9, got 12/,
  );
  assert.throws(
    () => createAttack("tact", { coverClasses: "5,x" }, CIFAR),
    /'coverClasses' must be a comma-separated list of integers, each >= 0, got "5,x"/,
  );
  assert.throws(() => createAttack("adaptive-blend", { pieces: 15 }, CIFAR), /'pieces' must be a square number/);
  assert.throws(
    () => createAttack("adaptive-blend", { piecesUsed: 17 }, CIFAR),
    /'piecesUsed' must be at most pieces \(16\), got 17/,
  );
  assert.throws(
    () => createAttack("adaptive-patch", { trainAlphas: "0.5,0.5,0.5,0.5,0.5" }, CIFAR),
    /'trainAlphas' must list 1 to 4 opacities/,
  );
  assert.throws(
    () => createAttack("adaptive-patch", { trainAlphas: "0.5,0.5" }, CIFAR),
    /'testPatches' must list patches in 0\.\.1 \(one per training opacity\), got 2/,
  );
  assert.throws(() => createAttack("badnet", {}, { ...CIFAR, numClasses: 1 }), /spec.numClasses must be at least 2/);
  assert.throws(
    () => createAttack("badnet", {}, { ...CIFAR, height: 0 }),
    /spec.height must be a positive integer, got 0/,
  );
  assert.ok(
    (() => {
      try {
        createAttack("badnet", { rate: -1 }, CIFAR);
      } catch (e) {
        return e instanceof AttackParamError;
      }
      return false;
    })(),
    "parameter errors are AttackParamError, so the CLI can report them as usage errors",
  );
});

test("triggers that do not fit the image are refused with the sizes", () => {
  assert.throws(
    () => createAttack("trojan", {}, { ...CIFAR, height: 8, width: 8 }),
    /a 8x8 trigger at row -3, column -3 does not fit a 8x8 image/,
  );
  assert.throws(
    () => createAttack("badnet", { cells: 9 }, { ...CIFAR, height: 8, width: 8 }),
    /a 9x9 trigger .* does not fit a 8x8 image/,
  );
  assert.throws(
    () => createAttack("adaptive-blend", { pieces: 100 }, { ...CIFAR, height: 8, width: 8 }),
    /10x10 grid, finer than the 8x8 image/,
  );
});
