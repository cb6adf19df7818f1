/**
 * Dependency protection (issue 18 item 8): undeploying a slice, or scaling it to 0, while slices with ACTIVE
 * instances call it is refused with 409 naming the callers and the call chains; `?force=true` skips it.
 */
import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { KvState } from "../kv/mod.ts";
import { encodeValue, kvKeys } from "../model/mod.ts";
import { protectBudget, protectDependents } from "./targets.ts";
import { applyCommand, manifest, publish, putTarget } from "./_testing.ts";

function state(activeCallers: boolean): KvState {
  const kv = new KvState();
  publish(
    kv,
    manifest("shop:web:1.0.0", { calls: { orders: ["shop:orders", "^1.0.0"] } }),
    manifest("shop:orders:1.0.0", { calls: { inventory: ["shop:inventory", "^1.0.0"] } }),
    manifest("shop:inventory:1.0.0"),
  );
  for (const base of ["shop:web", "shop:orders", "shop:inventory"]) {
    putTarget(kv, base, { version: "1.0.0", instances: 1, owners: [], updatedAt: 1 });
    const state = activeCallers || base === "shop:inventory" ? "ACTIVE" : "LOADED";
    applyCommand(kv, {
      type: "put",
      key: kvKeys.instance("n1", `${base}:1.0.0`, 0),
      value: encodeValue("instance", { state, updatedAt: 1 }),
    });
  }
  return kv;
}

Deno.test("dependency protection: undeploying a slice ACTIVE slices call is refused, naming the chain", () => {
  assert.throws(
    () => protectDependents(state(true), "shop:inventory", "undeploy"),
    (e: unknown) =>
      e instanceof AetherError && e.status === 409 &&
      e.message.includes("called by ACTIVE slice(s) shop:orders:1.0.0") &&
      e.message.includes("shop:web:1.0.0 → shop:orders:1.0.0 → shop:inventory") &&
      /--force/.test(e.message),
  );
  assert.throws(
    () => protectDependents(state(true), "shop:orders", "scale to 0"),
    /scale to 0: shop:orders is called by ACTIVE slice\(s\) shop:web:1\.0\.0/,
  );
});

Deno.test("dependency protection: nothing ACTIVE calls the top slice, nor a slice whose callers are not ACTIVE", () => {
  protectDependents(state(true), "shop:web", "undeploy");
  protectDependents(state(false), "shop:inventory", "undeploy");
});

Deno.test("disruption budget: scaling below minAvailable is refused naming the budget", () => {
  const kv = state(true);
  putTarget(kv, "shop:web", {
    version: "1.0.0",
    instances: 4,
    owners: [],
    updatedAt: 1,
    minAvailable: "50%",
  });
  assert.throws(
    () => protectBudget(kv, "shop:web", 1),
    /scale: shop:web has a disruption budget of minAvailable 50% \(2 of 4 instances\); 1 would break it/,
  );
  protectBudget(kv, "shop:web", 2);
  protectBudget(kv, "shop:orders", 0); // no budget
});
