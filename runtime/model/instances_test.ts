import assert from "node:assert/strict";
import { isLifecycleState, LIFECYCLE_STATES } from "./instances.ts";

Deno.test("instances: isLifecycleState accepts exactly the listed states, spelled as listed", () => {
  for (const state of LIFECYCLE_STATES) assert.ok(isLifecycleState(state), state);
  for (const value of ["RUNNING", "active", "Loaded", "REMOVED", "", null, undefined, 1, ["ACTIVE"]]) {
    assert.equal(isLifecycleState(value), false, String(value));
  }
  assert.equal(new Set(LIFECYCLE_STATES).size, LIFECYCLE_STATES.length, "no state is listed twice");
});
