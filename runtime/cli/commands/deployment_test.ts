import assert from "node:assert/strict";
import { goalReached, progressLine, slicesTable, type SliceStatus } from "./deployment.ts";
import type { LifecycleState } from "../../model/mod.ts";

function slice(extra: Partial<SliceStatus>, states: LifecycleState[]): SliceStatus {
  return {
    slice: "org.example:inventory",
    version: "1.0.0",
    desired: 3,
    active: states.filter((s) => s === "ACTIVE").length,
    owners: [],
    settled: false,
    instances: states.map((state, i) => ({
      node: `n${i + 1}`,
      n: 0,
      version: "1.0.0",
      state,
      connected: true,
      updatedAt: 0,
    })),
    ...extra,
  };
}

const GOAL = { slice: "org.example:inventory", gone: false };

Deno.test("cli --wait: one line of progress per slice, with the states on the way and failures", () => {
  assert.equal(
    progressLine(GOAL, slice({}, ["ACTIVE", "ACTIVE", "LOADING"])),
    "inventory 2/3 ACTIVE (1 LOADING)",
  );
  assert.equal(progressLine(GOAL, undefined), "inventory 0/? ACTIVE (not deployed)");
  const failing = slice({ backoff: { failures: 2, retryAt: 5_000, lastReason: "n1: start hook threw" } }, []);
  assert.equal(
    progressLine(GOAL, failing, 3_000),
    "inventory 0/3 ACTIVE; 2 failure(s), next try in 2.0s: n1: start hook threw",
  );
  assert.equal(
    progressLine({ ...GOAL, gone: true }, slice({ version: undefined, desired: 0 }, ["DEACTIVATE"])),
    "inventory removing: 1 instance(s) left (1 DEACTIVATE)",
  );
  assert.equal(progressLine({ ...GOAL, gone: true }, undefined), "inventory removed");
});

Deno.test("cli --wait: settled means exactly the desired instances ACTIVE on reachable nodes, or gone", () => {
  assert.equal(goalReached(GOAL, slice({ settled: true }, ["ACTIVE", "ACTIVE", "ACTIVE"])), true);
  const unreachable = slice({ settled: true }, ["ACTIVE", "ACTIVE", "ACTIVE"]);
  unreachable.instances[2].connected = false;
  assert.equal(goalReached(GOAL, unreachable), false);
  assert.equal(goalReached(GOAL, undefined), false);
  assert.equal(goalReached({ ...GOAL, gone: true }, undefined), true);
  assert.equal(goalReached({ ...GOAL, gone: true }, slice({ version: undefined }, ["UNLOADING"])), false);
});

Deno.test("cli slices: a table with each instance's node and state, and failures below it", () => {
  const text = slicesTable([
    slice({ settled: false }, ["ACTIVE", "FAILED"]),
  ].map((s) => ({
    ...s,
    instances: s.instances.map((i) => i.state === "FAILED" ? { ...i, reason: "crashed" } : i),
  })));
  assert.match(text, /^SLICE\s+VERSION\s+DESIRED\s+ACTIVE\s+STATUS\s+INSTANCES/);
  assert.match(text, /org\.example:inventory\s+1\.0\.0\s+3\s+1\s+deploying\s+n1\/0 ACTIVE {2}n2\/0 FAILED/);
  assert.match(text, /failures:\n {2}org\.example:inventory n2\/0 FAILED: crashed/);
  assert.equal(slicesTable([]), "no slices deployed");
});

Deno.test("cli slices: a version kept by weights shows next to the target's, with its instances", () => {
  const s = slice({ desired: 1, settled: true, routed: { version: "1.1.0", desired: 1, active: 1 } }, [
    "ACTIVE",
    "ACTIVE",
  ]);
  s.active = 1;
  s.instances[1].version = "1.1.0";
  const text = slicesTable([s]);
  assert.match(
    text,
    /org\.example:inventory\s+1\.0\.0 \+1\.1\.0\s+1\s+1\+1\s+settled\s+n1\/0 ACTIVE {2}n2\/0@1\.1\.0 ACTIVE/,
  );
});
