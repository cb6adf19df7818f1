import assert from "node:assert/strict";
import { systemClock } from "../core/mod.ts";
import { StepLoop } from "./_step_loop.ts";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

Deno.test("step loop: calls in one turn become one run; runs again at the time it asks for", async () => {
  const runs: number[] = [];
  let wakeIn: number | undefined;
  const loop = new StepLoop(
    () => {
      runs.push(systemClock.now());
      return wakeIn === undefined ? undefined : systemClock.now() + wakeIn;
    },
    systemClock,
    (e) => assert.fail(String(e)),
  );
  try {
    for (let i = 0; i < 10; i++) loop.schedule();
    await tick(5);
    assert.equal(runs.length, 1);
    wakeIn = 30;
    loop.schedule();
    await tick(5);
    assert.equal(runs.length, 2);
    wakeIn = undefined;
    await tick(60);
    assert.equal(runs.length, 3, "woke up once by itself, then waits for the next schedule()");
    await tick(60);
    assert.equal(runs.length, 3);
    assert.ok(runs[2] - runs[1] >= 29, `woke after ${runs[2] - runs[1]} ms`);
  } finally {
    loop.stop();
  }
});

Deno.test("step loop: a run that throws is reported and retried; stop() ends everything", async () => {
  const errors: unknown[] = [];
  let runs = 0;
  const loop = new StepLoop(
    () => {
      runs++;
      throw new Error("boom");
    },
    systemClock,
    (e) => errors.push(e),
  );
  loop.schedule();
  await tick(5);
  assert.deepEqual([runs, errors.length], [1, 1]);
  loop.stop();
  loop.schedule();
  await tick(5);
  assert.equal(runs, 1, "stopped: the retry timer is gone and schedule() does nothing");
});
