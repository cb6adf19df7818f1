import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DeadlineTimers } from "./deadline_timers.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test({
  name:
    "deadline timers: fire in deadline order, never early; cancelled ones never fire; no timer left behind",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    const timers = new DeadlineTimers();
    const fired: Array<[string, number]> = [];
    const start = Date.now();
    const at = (name: string, delayMs: number) =>
      timers.schedule(start + delayMs, () => fired.push([name, Date.now() - start]));
    at("c", 60);
    at("a", 20);
    const cancelled = at("x", 30);
    at("b", 40);
    at("b2", 40);
    cancelled.cancel();
    cancelled.cancel(); // twice is harmless
    assertEquals(timers.size, 4);
    while (fired.length < 4) await sleep(5);
    assertEquals(fired.map(([name]) => name), ["a", "b", "b2", "c"]);
    for (const [name, elapsed] of fired) {
      const due = { a: 20, b: 40, b2: 40, c: 60 }[name]!;
      assert(elapsed >= due, `${name} fired after ${elapsed} ms, before its deadline of ${due} ms`);
    }
    assertEquals(timers.size, 0);
    // The sanitizers fail this test if the shared timer were still armed here.
  },
});

Deno.test({
  name:
    "deadline timers: when the last deadline is cancelled the idle timer is kept for the next; settle() clears it",
  sanitizeOps: true,
  async fn() {
    const timers = new DeadlineTimers();
    const deadlines = Array.from(
      { length: 5000 },
      (_, i) => timers.schedule(Date.now() + 60_000 + i, () => {}),
    );
    for (const d of deadlines) d.cancel();
    assertEquals(timers.size, 0);
    // The next call reuses the idle timer; its deadline still fires on time.
    let fired = false;
    timers.schedule(Date.now() + 10, () => fired = true);
    while (!fired) await sleep(5);
    timers.schedule(Date.now() + 60_000, () => {}).cancel();
    timers.settle();
    // Nothing armed now: the op sanitizer would report a pending 60 s timer otherwise.
  },
});

Deno.test({
  name: "deadline timers: an earlier deadline re-arms the timer; many dead entries do not delay a live one",
  sanitizeOps: true,
  async fn() {
    const timers = new DeadlineTimers();
    const late = timers.schedule(Date.now() + 60_000, () => {
      throw new Error("must not fire");
    });
    // Thousands of calls that finished (cancelled) between, as on a busy node.
    for (let i = 0; i < 10_000; i++) timers.schedule(Date.now() + 30_000, () => {}).cancel();
    let firedAfterMs = -1;
    const start = Date.now();
    timers.schedule(start + 15, () => firedAfterMs = Date.now() - start);
    while (firedAfterMs < 0) await sleep(5);
    assert(firedAfterMs >= 15 && firedAfterMs < 1_000, `fired after ${firedAfterMs} ms`);
    late.cancel();
    assertEquals(timers.size, 0);
    timers.settle();
  },
});

Deno.test({
  name: "deadline timers: a callback that throws does not stop the others",
  sanitizeOps: true,
  async fn() {
    const timers = new DeadlineTimers();
    const errors: unknown[] = [];
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      errors.push(event.error);
    };
    globalThis.addEventListener("error", onError);
    try {
      let ran = false;
      timers.schedule(Date.now() + 5, () => {
        throw new Error("boom");
      });
      timers.schedule(Date.now() + 5, () => ran = true);
      while (!ran || errors.length === 0) await sleep(5);
      assertEquals((errors[0] as Error).message, "boom");
    } finally {
      globalThis.removeEventListener("error", onError);
    }
  },
});
