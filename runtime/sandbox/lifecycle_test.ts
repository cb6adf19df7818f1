import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  canTransition,
  DEFAULT_DEADLINES,
  type ExecutorRecord,
  isInProgress,
  LIFECYCLE_STATES,
  type LifecycleCommand,
  type LifecycleDeadlines,
  type LifecycleState,
  REMOVED,
  step,
} from "./lifecycle.ts";

/** The table written out pair by pair, independently of TRANSITIONS: every pair not listed is invalid. */
const VALID = new Set([
  "LOAD>LOADING",
  "LOADING>LOADED",
  "LOADED>ACTIVATE",
  "LOADED>UNLOAD",
  "ACTIVATE>ACTIVATING",
  "ACTIVATING>ACTIVE",
  "ACTIVE>DEACTIVATE",
  "DEACTIVATE>DEACTIVATING",
  "DEACTIVATING>LOADED",
  "FAILED>UNLOAD",
  "UNLOAD>UNLOADING",
  // FAILED from every state but itself (in-progress failures and deadlines; crashes of idle instances).
  ...LIFECYCLE_STATES.filter((s) => s !== "FAILED").map((s) => `${s}>FAILED`),
]);

Deno.test("canTransition: every one of the 121 pairs", () => {
  let checked = 0;
  for (const from of LIFECYCLE_STATES) {
    for (const to of LIFECYCLE_STATES) {
      assertEquals(canTransition(from, to), VALID.has(`${from}>${to}`), `${from} → ${to}`);
      checked++;
    }
  }
  assertEquals(checked, 121);
  assertEquals(VALID.size, 21);
});

Deno.test("in-progress states are every state but LOADED, ACTIVE and FAILED", () => {
  assertEquals(LIFECYCLE_STATES.filter((s) => !isInProgress(s)), ["LOADED", "ACTIVE", "FAILED"]);
});

const D: LifecycleDeadlines = {
  loadingMs: 100,
  activatingMs: 200,
  deactivatingMs: 300,
  unloadingMs: 400,
  hookMs: 50,
};

function at(state: LifecycleState, epoch = 1, sinceMs = 0, deadlineAtMs?: number): ExecutorRecord {
  return { instanceId: "i", state, sinceMs, epoch, ...(deadlineAtMs === undefined ? {} : { deadlineAtMs }) };
}

Deno.test("commands: accepted exactly where the table allows, refused everywhere else", () => {
  const commands: LifecycleCommand[] = ["LOAD", "ACTIVATE", "DEACTIVATE", "UNLOAD"];
  const accepted: string[] = [];
  for (const command of commands) {
    for (const state of LIFECYCLE_STATES) {
      const result = step(at(state), "i", { type: "command", command }, 1_000, D);
      if (result.rejected === undefined) accepted.push(`${state}:${command}`);
      else {
        assertEquals(result.record, at(state), "a refused command changes nothing");
        assertEquals(result.effects, []);
        assert(
          result.rejected.includes(`cannot ${command} instance i: it is ${state}`) || command === "LOAD",
        );
      }
    }
  }
  assertEquals(accepted.sort(), ["ACTIVE:DEACTIVATE", "FAILED:UNLOAD", "LOADED:ACTIVATE", "LOADED:UNLOAD"]);
  // LOAD takes a new instance only.
  assertEquals(step(undefined, "i", { type: "command", command: "LOAD" }, 0, D).rejected, undefined);
  assert(
    step(at("LOADED"), "i", { type: "command", command: "LOAD" }, 0, D).rejected?.includes("already exists"),
  );
  for (const command of ["ACTIVATE", "DEACTIVATE", "UNLOAD"] as const) {
    assertEquals(
      step(undefined, "i", { type: "command", command }, 0, D).rejected,
      "instance i does not exist",
    );
  }
  assertEquals(
    step(at("LOADING"), "i", { type: "command", command: "ACTIVATE" }, 0, D).rejected,
    "cannot ACTIVATE instance i: it is LOADING (ACTIVATE needs LOADED)",
  );
  assertEquals(
    step(at("ACTIVE"), "i", { type: "command", command: "UNLOAD" }, 0, D).rejected,
    "cannot UNLOAD instance i: it is ACTIVE (UNLOAD needs LOADED or FAILED; from ACTIVE the commands are DEACTIVATE)",
  );
});

Deno.test("the happy path reports every change, starts each operation and sets each deadline", () => {
  let record: ExecutorRecord | undefined;
  const trail: string[] = [];
  const apply = (event: Parameters<typeof step>[2], now: number) => {
    const result = step(record, "i", event, now, D);
    assertEquals(result.rejected, undefined);
    record = result.record;
    for (const e of result.effects) {
      if (e.type === "report") trail.push(`${e.from}>${e.to}`);
      if (e.type === "run") trail.push(`run:${e.operation}@${e.epoch}`);
      if (e.type === "schedule") trail.push(`wake@${e.atMs}`);
      if (e.type === "forget") trail.push("forget");
      if (e.type === "abort") trail.push("abort");
    }
  };
  apply({ type: "command", command: "LOAD" }, 10);
  assertEquals(record?.deadlineAtMs, 110);
  apply({ type: "completed", epoch: 1 }, 20);
  assertEquals(record?.deadlineAtMs, undefined);
  apply({ type: "command", command: "ACTIVATE" }, 30);
  assertEquals(record?.deadlineAtMs, 230);
  apply({ type: "completed", epoch: 2 }, 40);
  apply({ type: "command", command: "DEACTIVATE" }, 50);
  assertEquals(record?.deadlineAtMs, 350);
  apply({ type: "completed", epoch: 3 }, 60);
  apply({ type: "command", command: "UNLOAD" }, 70);
  assertEquals(record?.deadlineAtMs, 470);
  apply({ type: "completed", epoch: 4 }, 80);
  assertEquals(record, undefined);
  assertEquals(trail, [
    "LOAD>LOADING",
    "run:load@1",
    "wake@110",
    "LOADING>LOADED",
    "ACTIVATE>ACTIVATING",
    "run:start@2",
    "wake@230",
    "ACTIVATING>ACTIVE",
    "DEACTIVATE>DEACTIVATING",
    "run:stop@3",
    "wake@350",
    "DEACTIVATING>LOADED",
    "UNLOAD>UNLOADING",
    "run:unload@4",
    "wake@470",
    `UNLOADING>${REMOVED}`,
    "forget",
  ]);
});

Deno.test("every in-progress deadline: FAILED exactly at the deadline, with the reason, and the sandbox aborted", () => {
  const cases: Array<[LifecycleState, number]> = [
    ["LOADING", D.loadingMs],
    ["ACTIVATING", D.activatingMs],
    ["DEACTIVATING", D.deactivatingMs],
    ["UNLOADING", D.unloadingMs],
  ];
  for (const [state, limit] of cases) {
    const record = at(state, 5, 1_000, 1_000 + limit);
    assertEquals(
      step(record, "i", { type: "tick" }, 1_000 + limit - 1, D),
      { record, effects: [{ type: "schedule", atMs: 1_000 + limit }] },
      `${state}: an early wake-up sleeps again until the deadline`,
    );
    const result = step(record, "i", { type: "tick" }, 1_000 + limit, D);
    const reason = `${state} did not finish within its deadline of ${limit} ms`;
    assertEquals(result.record, {
      instanceId: "i",
      state: "FAILED",
      sinceMs: 1_000 + limit,
      epoch: 6,
      reason,
    });
    assertEquals(result.effects, [{ type: "report", from: state, to: "FAILED", reason }, { type: "abort" }]);
    // The operation finishing afterwards is ignored.
    assertEquals(step(result.record, "i", { type: "completed", epoch: 5 }, 9_999, D).effects, []);
  }
  for (const state of ["LOADED", "ACTIVE", "FAILED"] as const) {
    assertEquals(step(at(state), "i", { type: "tick" }, 1e12, D).effects, [], `${state} has no deadline`);
  }
  assertEquals(DEFAULT_DEADLINES, {
    loadingMs: 120_000,
    activatingMs: 60_000,
    deactivatingMs: 30_000,
    unloadingMs: 120_000,
    hookMs: 5_000,
  });
});

Deno.test("failures: operation failures, runtime crashes, stale results", () => {
  // An operation failing moves its in-progress state to FAILED.
  for (const state of ["LOADING", "ACTIVATING", "DEACTIVATING", "UNLOADING"] as const) {
    const result = step(at(state, 3), "i", { type: "failed", epoch: 3, reason: "boom" }, 50, D);
    assertEquals(result.record?.state, "FAILED");
    assertEquals(result.effects[0], { type: "report", from: state, to: "FAILED", reason: "boom" });
  }
  // A sandbox exiting on its own while the instance rests is recorded, and reported as a crash.
  for (const state of ["LOADED", "ACTIVE"] as const) {
    const result = step(at(state), "i", { type: "exited", reason: "crash" }, 50, D);
    assertEquals(result.record?.state, "FAILED");
    assertEquals(result.effects, [
      { type: "report", from: state, to: "FAILED", reason: "crash" },
      { type: "abort" },
      { type: "crashed", reason: "crash" },
    ]);
  }
  // Inside an operation, the exit fails that operation: FAILED, but no crash (its caller hears of it).
  for (const state of ["LOADING", "ACTIVATING", "DEACTIVATING"] as const) {
    const result = step(at(state, 3), "i", { type: "exited", reason: "hook threw" }, 50, D);
    assertEquals(result.record?.state, "FAILED");
    assertEquals(result.effects.map((e) => e.type), ["report", "abort"]);
    // The operation's own failure that follows is stale (the epoch moved on).
    assertEquals(step(result.record, "i", { type: "failed", epoch: 3, reason: "late" }, 60, D).effects, []);
  }
  // A sandbox ending while it is being unloaded is what unloading does.
  assertEquals(step(at("UNLOADING"), "i", { type: "exited", reason: "exited" }, 50, D).effects, []);
  // Results of abandoned operations, failures of a failed instance and of unknown ones change nothing.
  assertEquals(step(at("ACTIVATING", 4), "i", { type: "completed", epoch: 3 }, 50, D).effects, []);
  assertEquals(
    step(at("ACTIVATING", 4), "i", { type: "failed", epoch: 3, reason: "late" }, 50, D).effects,
    [],
  );
  assertEquals(step(at("FAILED"), "i", { type: "exited", reason: "again" }, 50, D).effects, []);
  assertEquals(step(at("FAILED"), "i", { type: "failed", epoch: 1, reason: "again" }, 50, D).effects, []);
  assertEquals(step(undefined, "i", { type: "exited", reason: "x" }, 50, D), {
    record: undefined,
    effects: [],
  });
  assertEquals(
    step(at("ACTIVE"), "i", { type: "completed", epoch: 1 }, 50, D).effects,
    [],
    "nothing in progress",
  );
  // From FAILED the way out is UNLOAD, which removes the instance.
  const unload = step(at("FAILED", 7), "i", { type: "command", command: "UNLOAD" }, 60, D);
  assertEquals(unload.record?.state, "UNLOADING");
  assertEquals(step(unload.record, "i", { type: "completed", epoch: 8 }, 70, D).record, undefined);
});
