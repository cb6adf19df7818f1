import assert from "node:assert/strict";
import { SimulatedTimers, systemClock, VirtualTime } from "./clock.ts";
import { Rng } from "./rng.ts";

Deno.test("systemClock: a deferred task runs before a zero timer; a cancelled timer never runs", async () => {
  const order: string[] = [];
  const cancelled = systemClock.schedule(0, () => order.push("cancelled"));
  const done = Promise.withResolvers<void>();
  systemClock.schedule(5, () => {
    order.push("timer");
    done.resolve();
  });
  systemClock.defer(() => order.push("deferred"));
  cancelled.cancel();
  cancelled.cancel();
  order.push("sync");
  await done.promise;
  assert.deepEqual(order, ["sync", "deferred", "timer"]);
});

Deno.test("VirtualTime: callbacks by time then scheduling order, deferred tasks after each one", () => {
  const time = new VirtualTime(100);
  const seen: string[] = [];
  time.after(10, () => {
    seen.push(`b@${time.nowMs}`);
    time.defer(() => {
      seen.push(`b-deferred@${time.nowMs}`);
      time.defer(() => seen.push("b-deferred-again"));
    });
  });
  time.after(5, () => seen.push(`a@${time.nowMs}`));
  time.after(10, () => seen.push(`c@${time.nowMs}`));
  const dropped = time.after(7, () => seen.push("dropped"));
  dropped.cancel();
  time.at(0, () => seen.push(`past@${time.nowMs}`));
  while (time.step());
  assert.deepEqual(seen, ["past@100", "a@105", "b@110", "b-deferred@110", "b-deferred-again", "c@110"]);
  assert.equal(time.nowMs, 110);
  assert.equal(time.nextAtMs(), undefined);
  assert.equal(time.step(), false);
});

Deno.test("VirtualTime: a negative or non-finite delay means now", () => {
  const time = new VirtualTime();
  const seen: number[] = [];
  time.after(-5, () => seen.push(time.nowMs));
  time.after(NaN, () => seen.push(time.nowMs));
  while (time.step());
  assert.deepEqual(seen, [0, 0]);
});

Deno.test("SimulatedTimers: own clock skew, never early, seeded lateness replays exactly", () => {
  const run = (seed: number) => {
    const time = new VirtualTime();
    const timers = new SimulatedTimers(time, {
      offsetMs: -7,
      rng: new Rng(seed),
      maxLateMs: 20,
      onError: fail,
    });
    const fired: number[] = [];
    for (let i = 0; i < 50; i++) timers.schedule(10, () => fired.push(time.nowMs));
    while (time.step());
    assert.equal(timers.now(), time.nowMs - 7);
    return fired;
  };
  const first = run(1);
  assert.ok(first.every((t) => t >= 10 && t <= 30), `fired at ${first}`);
  assert.ok(new Set(first).size > 1, "lateness varies");
  assert.deepEqual(run(1), first);
  assert.notDeepEqual(run(2), first);
});

Deno.test("SimulatedTimers: stop() drops every scheduled and deferred callback; errors go to onError", () => {
  const time = new VirtualTime();
  const errors: unknown[] = [];
  const timers = new SimulatedTimers(time, { onError: (e) => errors.push(e) });
  const seen: string[] = [];
  timers.schedule(1, () => {
    throw new Error("boom");
  });
  timers.schedule(2, () => {
    seen.push("before stop");
    timers.defer(() => seen.push("deferred after stop"));
    timers.stop();
  });
  timers.schedule(3, () => seen.push("after stop"));
  while (time.step());
  assert.deepEqual(seen, ["before stop"]);
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as Error).message, "boom");
  assert.ok(timers.stopped);
});

function fail(error: unknown): never {
  throw error;
}
