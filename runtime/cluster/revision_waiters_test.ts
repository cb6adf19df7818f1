import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { AetherError, systemClock } from "../core/mod.ts";
import { RevisionWaiters } from "./_revision_waiters.ts";

Deno.test("revision waiters resolve in order as the applied revision reaches theirs, and time out", async () => {
  const waiters = new RevisionWaiters(systemClock, 10);
  const resolved: number[] = [];
  const at = (revision: number, timeoutMs = 1_000) =>
    waiters.waitFor(revision, timeoutMs).then((applied) => applied && resolved.push(revision));
  const all = [at(5), at(3), at(3), at(9)];
  const late = waiters.waitFor(20, 10);
  waiters.release(2);
  await Promise.resolve();
  deepStrictEqual(resolved, []);
  waiters.release(5);
  await Promise.resolve();
  deepStrictEqual(resolved.sort(), [3, 3, 5]);
  equal(await late, false, "timed out");
  equal(waiters.stats.waiting, 1);
  waiters.release(100);
  await Promise.all(all);
  deepStrictEqual(resolved.sort((a, b) => a - b), [3, 3, 5, 9]);
  equal(waiters.stats.waiting, 0);
});

Deno.test("revision waiters are bounded: beyond the limit overloaded with retry-after, the rest unharmed", async () => {
  const waiters = new RevisionWaiters(systemClock, 2);
  const admitted = [waiters.waitFor(1, 1_000), waiters.waitFor(2, 1_000)];
  await rejects(waiters.waitFor(3, 1_000), (e: AetherError) => {
    equal(e.code, "overloaded");
    equal(e.extra.retryAfterSeconds, 1);
    return true;
  });
  deepStrictEqual(waiters.stats, { waiting: 2, maxWaiting: 2, refused: 1 });
  waiters.release(2);
  deepStrictEqual(await Promise.all(admitted), [true, true]);
});
