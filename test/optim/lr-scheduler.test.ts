// Learning-rate schedules against PyTorch's closed-form formulas written out here, plus a few
// values worked by hand.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  CosineAnnealingLR,
  LinearLR,
  LRScheduler,
  MultiStepLR,
  OneCycleLR,
  SGD,
  SequentialLR,
  StepLR,
  type Schedulable,
} from "../../src/optim/index.js";
import { assertClose, free, noLeaks, param, setGrad } from "./helpers.js";

/** A stand-in optimizer: schedules only touch the groups' lrs. */
function groups(...lrs: number[]): Schedulable {
  return { paramGroups: lrs.map((lr) => ({ lr })) };
}

/** The lr in force during each of `epochs` epochs: read, then step (the usual training loop). */
function sequence(s: LRScheduler, epochs: number, group = 0): number[] {
  const out: number[] = [];
  for (let e = 0; e < epochs; e++) {
    out.push(s.optimizer.paramGroups[group]?.lr ?? NaN);
    s.step();
  }
  return out;
}

void test("MultiStepLR([2, 4, 6, 8], 0.1): the BaDExpert recipe over 10 epochs", () => {
  const opt = groups(0.1);
  const s = new MultiStepLR(opt, [2, 4, 6, 8], 0.1);
  const got = sequence(s, 10);
  assertClose(got, [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5], 1e-15);
  assert.equal(s.lastEpoch, 10);
  assertClose(s.getLastLr(), [1e-5], 1e-15);
});

void test("MultiStepLR: unsorted and repeated milestones", () => {
  const s = new MultiStepLR(groups(1), [3, 1, 3], 0.5);
  assertClose(sequence(s, 5), [1, 0.5, 0.5, 0.125, 0.125], 1e-15);
  assert.deepEqual(s.milestones, [1, 3, 3]);
});

void test("StepLR(3, 0.5)", () => {
  const s = new StepLR(groups(0.2, 1), 3, 0.5);
  const expected = Array.from({ length: 8 }, (_, e) => 0.2 * 0.5 ** Math.floor(e / 3));
  assertClose(sequence(s, 8), expected, 1e-15);
  assert.throws(() => new StepLR(groups(1), 0), /StepLR: stepSize must be a positive integer, got 0/);
});

void test("CosineAnnealingLR(tMax=10, etaMin=0.001) follows the closed form, also past tMax", () => {
  const s = new CosineAnnealingLR(groups(0.1), 10, 0.001);
  const expected = Array.from(
    { length: 14 },
    (_, e) => 0.001 + ((0.1 - 0.001) * (1 + Math.cos((Math.PI * e) / 10))) / 2,
  );
  const got = sequence(s, 14);
  assertClose(got, expected, 1e-15);
  assertClose([got[0] ?? NaN, got[5] ?? NaN, got[10] ?? NaN], [0.1, 0.0505, 0.001], 1e-15);
});

/** PyTorch's OneCycleLR formula for one group, written out independently. */
function oneCycleReference(
  step: number,
  o: { maxLr: number; total: number; pct: number; div: number; finalDiv: number; cos: boolean; three: boolean },
): number {
  const initial = o.maxLr / o.div;
  const min = initial / o.finalDiv;
  const anneal = (a: number, b: number, pct: number): number =>
    o.cos ? b + ((a - b) / 2) * (Math.cos(Math.PI * pct) + 1) : (b - a) * pct + a;
  const up = o.pct * o.total - 1;
  if (step <= up) return anneal(initial, o.maxLr, step / up);
  if (!o.three) return anneal(o.maxLr, min, (step - up) / (o.total - 1 - up));
  const down = 2 * o.pct * o.total - 2;
  if (step <= down) return anneal(o.maxLr, initial, (step - up) / (down - up));
  return anneal(initial, min, (step - down) / (o.total - 1 - down));
}

void test("OneCycleLR(maxLr=0.1, totalSteps=10): 0.004 at the start, peak at step 2, then cosine down", () => {
  const opt = groups(0.5);
  const s = new OneCycleLR(opt, { maxLr: 0.1, totalSteps: 10 });
  assert.equal(opt.paramGroups[0]?.initialLr, 0.004);
  const got = sequence(s, 10);
  const ref = { maxLr: 0.1, total: 10, pct: 0.3, div: 25, finalDiv: 1e4, cos: true, three: false };
  assertClose(
    got,
    got.map((_, e) => oneCycleReference(e, ref)),
    1e-15,
  );
  // By hand: step 1 is half-way up the cosine, step 9 is the minimum 0.004 / 1e4.
  assertClose([got[0] ?? NaN, got[1] ?? NaN, got[2] ?? NaN, got[9] ?? NaN], [0.004, 0.052, 0.1, 4e-7], 1e-15);
  assert.equal(Math.max(...got), got[2]);
  // PyTorch lets the step count reach totalSteps, and refuses the one after.
  assert.equal(s.lastEpoch, 10);
  assert.throws(() => s.step(), /OneCycleLR: tried to step 11 times; the specified number of total steps is 10/);
  assert.equal(s.lastEpoch, 10, "a refused step changes nothing");
});

void test("OneCycleLR: linear annealing, three phases, per-group maxLr, epochs x stepsPerEpoch", () => {
  const opt = groups(1, 1);
  const s = new OneCycleLR(opt, {
    maxLr: [0.2, 1],
    epochs: 4,
    stepsPerEpoch: 5,
    pctStart: 0.25,
    annealStrategy: "linear",
    divFactor: 10,
    finalDivFactor: 100,
    threePhase: true,
  });
  assert.equal(s.totalSteps, 20);
  assertClose(
    sequence(s, 20, 1),
    Array.from({ length: 20 }, (_, e) => s.lrAt(e)[1] ?? NaN),
    0,
    "stepping matches lrAt",
  );
  for (const [g, maxLr] of [
    [0, 0.2],
    [1, 1],
  ] as const) {
    const ref = { maxLr, total: 20, pct: 0.25, div: 10, finalDiv: 100, cos: false, three: true };
    const expected = Array.from({ length: 20 }, (_, e) => oneCycleReference(e, ref));
    assertClose(
      Array.from({ length: 20 }, (_, e) => s.lrAt(e)[g] ?? NaN),
      expected,
      1e-14,
      `group ${g}`,
    );
  }
  // Linear warm-up from 0.02 to 0.2 over steps 0..4.
  assertClose(
    Array.from({ length: 5 }, (_, e) => s.lrAt(e)[0] ?? NaN),
    [0.02, 0.065, 0.11, 0.155, 0.2],
    1e-14,
  );
  assert.throws(
    () => new OneCycleLR(groups(1), { maxLr: [0.1, 0.2], totalSteps: 5 }),
    /maxLr has 2 values but the optimizer has 1 param group/,
  );
  assert.throws(() => new OneCycleLR(groups(1), { maxLr: 0.1 }), /give totalSteps, or both epochs and stepsPerEpoch/);
  assert.throws(
    () => new OneCycleLR(groups(1), { maxLr: 0.1, totalSteps: 5, pctStart: 1.5 }),
    /pctStart must be in \[0, 1\], got 1.5/,
  );
});

void test("LinearLR warm-up then cosine via SequentialLR", () => {
  const opt = groups(0.1);
  const warm = new LinearLR(opt, { startFactor: 0.1, totalIters: 3 });
  const cos = new CosineAnnealingLR(opt, 5);
  const s = new SequentialLR(opt, [warm, cos], [3]);
  const got = sequence(s, 9);
  const expected = [
    ...[0, 1, 2].map((e) => 0.1 * (0.1 + (0.9 * e) / 3)),
    ...[0, 1, 2, 3, 4, 5].map((e) => (0.1 * (1 + Math.cos((Math.PI * e) / 5))) / 2),
  ];
  assertClose(got, expected, 1e-15);
  assert.throws(() => new SequentialLR(opt, [warm, cos], []), /expected 1 milestone\(s\) for 2 schedules/);
  assert.throws(() => new SequentialLR(groups(1), [warm], []), /schedulers\[0\] belongs to a different optimizer/);
  assert.throws(() => new LinearLR(opt, { startFactor: 0 }), /startFactor must be in \(0, 1\], got 0/);
});

void test("a second schedule starts from the group's initial lr, not the lr the first one set", () => {
  const opt = groups(0.1);
  new LinearLR(opt, { startFactor: 0.5 });
  assertClose([opt.paramGroups[0]?.lr ?? NaN], [0.05]);
  const s = new StepLR(opt, 2);
  assert.deepEqual(s.baseLrs, [0.1]);
});

void test("scheduler stateDict round trip resumes the same sequence", () => {
  const make = (o: Schedulable): LRScheduler => new MultiStepLR(o, [2, 4, 6, 8], 0.1);
  const a = groups(0.1, 0.5);
  const sa = make(a);
  for (let i = 0; i < 5; i++) sa.step();
  const sd = sa.stateDict();
  assert.deepEqual(sd.lastEpoch, 5);
  assert.deepEqual(sd.baseLrs, [0.1, 0.5]);
  const b = groups(0.1, 0.5);
  const sb = make(b);
  sb.loadStateDict(JSON.parse(JSON.stringify(sd)) as typeof sd);
  assert.deepEqual(
    b.paramGroups.map((g) => g.lr),
    a.paramGroups.map((g) => g.lr),
  );
  for (let i = 0; i < 4; i++) {
    sa.step();
    sb.step();
    assert.deepEqual(sb.getLastLr(), sa.getLastLr());
    assert.deepEqual(
      b.paramGroups.map((g) => g.lr),
      a.paramGroups.map((g) => g.lr),
    );
  }
  assert.throws(() => sb.loadStateDict({ ...sd, lastLr: [1] }), /lastLr must have one lr per param group \(2\), got 1/);
  // OneCycle also round-trips (and keeps its bound on the step count).
  const c = new OneCycleLR(groups(1), { maxLr: 0.1, totalSteps: 10 });
  for (let i = 0; i < 4; i++) c.step();
  const d = new OneCycleLR(groups(1), { maxLr: 0.1, totalSteps: 10 });
  d.loadStateDict(c.stateDict());
  c.step();
  d.step();
  assert.deepEqual(d.getLastLr(), c.getLastLr());
});

void test("getLastLr returns a copy", () => {
  const s = new StepLR(groups(1), 1);
  s.getLastLr()[0] = 42;
  assert.deepEqual(s.getLastLr(), [1]);
});

void test("a schedule drives a real optimizer's steps", () => {
  noLeaks(() => {
    const p = param([0]);
    const opt = new SGD([p], { lr: 1 });
    const s = new StepLR(opt, 1, 0.5);
    for (let e = 0; e < 3; e++) {
      setGrad(p, [-1]);
      opt.step();
      s.step();
    }
    // p moved by 1 + 0.5 + 0.25.
    assertClose(p.toArray(), [1.75]);
    assert.equal(opt.paramGroups[0]?.lr, 0.125);
    assert.equal(opt.paramGroups[0]?.initialLr, 1);
    opt.dispose();
    free(p);
  });
});
