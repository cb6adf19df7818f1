import { deepEqual, equal } from "node:assert/strict";
import { DEFAULT_BACKOFF, describeExit, nextRestartDelayMs } from "./supervisor.ts";

const policy = { initialMs: 500, maxMs: 4_000, stableAfterMs: 10_000 };

Deno.test("the first restart comes after the initial delay", () => {
  equal(nextRestartDelayMs(null, 0, policy), 500);
  equal(nextRestartDelayMs(null, 60_000, policy), 500);
});

Deno.test("a node that keeps dying right after start waits twice as long each time, up to the ceiling", () => {
  const delays: number[] = [];
  let delay: number | null = null;
  for (let i = 0; i < 7; i++) {
    delay = nextRestartDelayMs(delay, 200, policy);
    delays.push(delay);
  }
  deepEqual(delays, [500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000]);
});

Deno.test("a node that ran a while before it died is restarted after the initial delay again", () => {
  equal(nextRestartDelayMs(4_000, 9_999, policy), 4_000);
  equal(nextRestartDelayMs(4_000, 10_000, policy), 500);
  equal(nextRestartDelayMs(2_000, 120_000, policy), 500);
});

Deno.test("the default policy restarts within a second and never waits more than 30 s", () => {
  equal(nextRestartDelayMs(null, 0), DEFAULT_BACKOFF.initialMs);
  equal(DEFAULT_BACKOFF.initialMs <= 1_000, true);
  let delay: number | null = null;
  for (let i = 0; i < 20; i++) delay = nextRestartDelayMs(delay, 0);
  equal(delay, 30_000);
});

Deno.test("an exit is described by its signal, else its code", () => {
  equal(describeExit({ success: false, code: 137, signal: "SIGKILL" }), "signal SIGKILL");
  equal(describeExit({ success: false, code: 1, signal: null }), "code 1");
  equal(describeExit({ success: true, code: 0, signal: null }), "code 0");
});
