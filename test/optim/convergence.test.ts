// Convergence sanity: every optimizer minimises an ill-conditioned quadratic from backward().
import { test } from "node:test";
import assert from "node:assert/strict";
import { tensor, tidy, type Tensor } from "../../src/engine/index.js";
import {
  Adam,
  AdamW,
  CosineAnnealingLR,
  SGD,
  type BaseHyper,
  type Optimizer,
  type ParamState,
} from "../../src/optim/index.js";
import { free, noLeaks, param } from "./helpers.js";

const TARGET = [3, -1, 0.5, 2];
const SCALE = [1, 4, 0.5, 2];

/** loss = sum(scale * (p - target)^2); its minimum is at target. */
function lossAndGrad(p: Tensor, target: Tensor, scale: Tensor): number {
  return tidy(() => {
    const loss = p.sub(target).square().mul(scale).sum();
    loss.backward();
    return loss.item();
  });
}

type Make = (ps: Tensor[]) => Optimizer<BaseHyper, ParamState>;
const cases: [string, Make, number][] = [
  ["SGD", (ps) => new SGD(ps, { lr: 0.1 }), 200],
  ["SGD momentum", (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9 }), 200],
  ["SGD nesterov", (ps) => new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true }), 200],
  ["Adam", (ps) => new Adam(ps, { lr: 0.1 }), 500],
  ["Adam amsgrad", (ps) => new Adam(ps, { lr: 0.1, amsgrad: true }), 500],
  ["AdamW (tiny decay)", (ps) => new AdamW(ps, { lr: 0.1, weightDecay: 1e-6 }), 500],
];

for (const [name, make, steps] of cases) {
  void test(`${name} minimises a quadratic`, () => {
    noLeaks(() => {
      const p = param([0, 0, 0, 0]);
      const target = tensor(TARGET, { dtype: "float64" });
      const scale = tensor(SCALE, { dtype: "float64" });
      const opt = make([p]);
      // Annealing the lr lets Adam settle instead of hovering at a distance of about lr.
      const schedule = new CosineAnnealingLR(opt, steps);
      const first = lossAndGrad(p, target, scale);
      for (let i = 0; i < steps; i++) {
        opt.zeroGrad();
        lossAndGrad(p, target, scale);
        opt.step();
        schedule.step();
      }
      opt.zeroGrad();
      const last = lossAndGrad(p, target, scale);
      assert.ok(first > 10, `${name}: starting loss ${first}`);
      assert.ok(last < 1e-6, `${name}: final loss ${last}`);
      p.toArray().forEach((v, i) => assert.ok(Math.abs(v - (TARGET[i] ?? NaN)) < 1e-3, `${name}: p[${i}] = ${v}`));
      opt.zeroGrad();
      opt.dispose();
      free(p, target, scale);
    });
  });
}
