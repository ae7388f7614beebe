// settingsTag: the one spelling of a cell's overrides in its file name and its table row.
import { test } from "node:test";
import assert from "node:assert/strict";
import { settingsTag } from "../../bench/matrix/settings-tag.js";

void test("settingsTag: sorted by name, lists joined by +, undefined left out, empty for none", () => {
  const o = { unlearnLr: "auto", finetuneLr: 0.05, canaries: ["blend", "patch"], unlearnLabels: undefined };
  assert.equal(settingsTag(o, ","), "canaries=blend+patch,finetuneLr=0.05,unlearnLr=auto");
  assert.equal(settingsTag(o, ", "), "canaries=blend+patch, finetuneLr=0.05, unlearnLr=auto");
  assert.equal(settingsTag({}, ","), "");
  assert.equal(settingsTag(undefined, ","), "");
  assert.equal(settingsTag({ unlearnLr: 1e-4 }, ","), "unlearnLr=0.0001");
});
