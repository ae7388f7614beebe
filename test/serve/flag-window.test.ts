// The sliding-window flagged rate and the alert built on it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FlagWindow } from "../../src/serve/flag-window.js";
import { RateAlert } from "../../src/serve/alert.js";

test("the window counts the last N seconds only, per predicted class", () => {
  const w = new FlagWindow(10, 3);
  const t0 = 1_000_000;
  for (let i = 0; i < 8; i++) w.record(0, false, t0);
  w.record(2, true, t0 + 500);
  w.record(2, true, t0 + 3_000);
  assert.deepEqual(w.stats(t0 + 3_000), { scored: 10, flagged: 2, rate: 0.2, flaggedByClass: [0, 0, 2] });
  // 10.5 s later the first second has left the window; the flag at +3 s is still in it.
  const s = w.stats(t0 + 10_500);
  assert.equal(s.scored, 1);
  assert.equal(s.flagged, 1);
  assert.deepEqual(w.stats(t0 + 60_000), { scored: 0, flagged: 0, rate: 0, flaggedByClass: [0, 0, 0] });
});

test("the alert fires once when the rate crosses, names the dominant class, and recovers", () => {
  const w = new FlagWindow(60, 3);
  const warns: { obj: Record<string, unknown>; msg: string }[] = [];
  const infos: string[] = [];
  const a = new RateAlert(w, {
    rate: 0.3,
    minInputs: 10,
    classNames: ["a", "b", "target"],
    log: { warn: (obj, msg) => warns.push({ obj, msg }), info: (_o, msg) => infos.push(msg) },
  });
  const t = 5_000_000;
  for (let i = 0; i < 5; i++) w.record(2, true, t);
  a.check(t);
  assert.equal(warns.length, 0, "5 inputs are below alertMinInputs");
  for (let i = 0; i < 5; i++) w.record(1, false, t);
  a.check(t);
  assert.equal(warns.length, 1);
  assert.equal(warns[0]?.obj.topClass, "target");
  assert.equal(warns[0]?.obj.rate, 0.5);
  assert.match(
    warns[0]?.msg ?? "",
    /flagged rate 50\.0% .* above --alert-rate 30\.0%; 5 of 5 flagged inputs were predicted as "target"/,
  );
  assert.equal(a.active, true);
  a.check(t + 1000);
  assert.equal(warns.length, 1, "no repeat within the window");
  for (let i = 0; i < 40; i++) w.record(0, false, t + 2000);
  a.check(t + 2000);
  assert.equal(a.active, false);
  assert.deepEqual(infos, ["flagged rate is back below --alert-rate"]);
});
