// The in-flight pixel budget (a counting semaphore in pixels): holds at most its capacity, serves
// waiters in arrival order, and a waiter that is not served by its deadline gets 503 (the input
// was not checked), never a clean answer.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PixelBudget } from "../../src/serve/pixel-budget.js";
import { ServeError } from "../../src/serve/errors.js";

test("PixelBudget: holds at most its capacity, serves waiters in order, times out with 503", async () => {
  const b = new PixelBudget(100);
  const r1 = await b.acquire(60, 1000, "a");
  const order: string[] = [];
  const p2 = b.acquire(50, 1000, "b").then((r) => (order.push("b"), r));
  // c would fit now (60 + 30 <= 100) but waits behind b: no overtaking, so b is not starved.
  const p3 = b.acquire(30, 1000, "c").then((r) => (order.push("c"), r));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual([b.inUse, b.waiting, order.length], [60, 2, 0]);
  r1();
  r1(); // a second release is a no-op
  const r2 = await p2;
  const r3 = await p3;
  assert.deepEqual(order, ["b", "c"]);
  assert.equal(b.inUse, 80);
  const late = b.acquire(40, 30, "images[3]");
  await assert.rejects(late, (e: unknown) => {
    assert.ok(e instanceof ServeError);
    assert.deepEqual([e.statusCode, e.code, e.reason, e.headers["retry-after"]], [503, "E_BUSY", "decode_busy", "1"]);
    assert.match(
      e.message,
      /^images\[3\]: not decoded within 30 ms: the service's decoding budget \(--max-inflight-pixels 100\) stayed in use; the input was not checked and must not be treated as clean/,
    );
    return true;
  });
  assert.equal(b.waiting, 0, "a waiter that gave up is removed");
  r2();
  r3();
  assert.equal(b.inUse, 0);
  await assert.rejects(b.acquire(101, 10, "x"), /exceed the capacity of 100/);
});
