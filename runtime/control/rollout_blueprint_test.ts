/**
 * A blueprint whose slice version changes starts a rollout with the slice's `rollout` table (the target keeps
 * the stable version until the rollout succeeds); bad rollout tables are refused with their line and field.
 */
import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { KvState } from "../kv/mod.ts";
import { decodeValue, kvKeys } from "../model/mod.ts";
import { planBlueprintSource } from "../deployment/mod.ts";
import { applyCommand, manifest, publish } from "../deployment/testing.ts";
import { applyRolloutAction } from "./rollout_spec.ts";

const blueprint = (
  version: string,
  rollout = `rollout = { strategy = "canary", steps = ["10%", "pause 5s", "100%"] }`,
) =>
  `id = "shop:app:1.0.0"
[[slices]]
artifact = "shop:orders:${version}"
instances = 3
${rollout}
`;

function state(): KvState {
  const kv = new KvState();
  publish(kv, manifest("shop:orders:1.0.0"), manifest("shop:orders:1.1.0"), manifest("shop:orders:1.2.0"));
  return kv;
}

function apply(kv: KvState, source: string, nowMs: number) {
  const planned = planBlueprintSource(kv, source, nowMs);
  const result = applyCommand(kv, planned.command);
  assert.ok(result.ok && result.succeeded !== false, JSON.stringify(result));
  return planned.plan;
}

Deno.test("blueprint rollout: a version change starts the blueprint's rollout; the target keeps the stable version", () => {
  const kv = state();
  const first = apply(kv, blueprint("1.0.0"), 1);
  assert.equal(first.targets[0].action, "create", "a new slice is deployed at once");
  assert.equal(kv.get(kvKeys.rollout("shop:orders")), undefined);

  const second = apply(kv, blueprint("1.1.0"), 2);
  assert.equal(second.targets[0].rollout, "canary to 1.1.0");
  const target = decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value);
  assert.equal(target.version, "1.0.0");
  const rollout = decodeValue("rollout", kv.get(kvKeys.rollout("shop:orders"))!.value);
  assert.equal(rollout.strategy, "canary");
  assert.deepEqual(rollout.steps, ["10%", "pause 5s", "100%"]);
  assert.equal(rollout.stableVersion, "1.0.0");
  assert.equal(rollout.newVersion, "1.1.0");
  assert.equal(rollout.instances, 3);

  // Applying it again while the rollout runs changes nothing; another version is refused.
  const again = apply(kv, blueprint("1.1.0"), 3);
  assert.equal(again.targets[0].rollout, "canary to 1.1.0 (under way)");
  assert.throws(
    () => planBlueprintSource(kv, blueprint("1.2.0"), 4),
    (e: unknown) =>
      e instanceof AetherError && e.status === 409 && /abort it before rolling out 1\.2\.0/.test(e.message),
  );

  // Once it ended (here: aborted and rolled back), the next change starts a new one.
  const aborted = { ...applyRolloutAction(rollout, "abort", 5), phase: "RolledBack" as const, endedAt: 5 };
  applyCommand(kv, {
    type: "put",
    key: kvKeys.rollout("shop:orders"),
    value: new TextEncoder().encode(JSON.stringify(aborted)),
  });
  const third = apply(kv, blueprint("1.2.0"), 6);
  assert.equal(third.targets[0].rollout, "canary to 1.2.0");
});

Deno.test("blueprint rollout: without a rollout table the version changes at once", () => {
  const kv = state();
  apply(kv, blueprint("1.0.0", ""), 1);
  apply(kv, blueprint("1.1.0", ""), 2);
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value).version, "1.1.0");
  assert.equal(kv.get(kvKeys.rollout("shop:orders")), undefined);
});

Deno.test("blueprint rollout: a bad rollout table is refused with its line and field", () => {
  const kv = state();
  for (
    const [table, pattern] of [
      [`rollout = { strategy = "sideways" }`, /line 5.*strategy must be one of rolling, canary, blue-green/],
      [`rollout = { strategy = "canary", steps = ["5%", "wait 3s"] }`, /line 5.*steps\[1\].*is not a step/],
      [`rollout = { strategy = "rolling", maxSurge = "lots" }`, /line 5.*maxSurge must be a count/],
      [`rollout = "canary"`, /line 5.*must be a table/],
    ] as const
  ) {
    assert.throws(
      () => planBlueprintSource(kv, blueprint("1.0.0", table), 1),
      (e: unknown) => e instanceof AetherError && e.status === 400 && pattern.test(e.message),
      table,
    );
  }
});

Deno.test("blueprint budget: minAvailable goes into the target; bad values are refused with their line", () => {
  const kv = state();
  apply(kv, blueprint("1.0.0", `minAvailable = "50%"`), 1);
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value).minAvailable, "50%");
  apply(kv, blueprint("1.0.0", `minAvailable = 2`), 2);
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value).minAvailable, "2");
  apply(kv, blueprint("1.0.0", ""), 3);
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value).minAvailable, undefined);
  assert.throws(
    () => planBlueprintSource(kv, blueprint("1.0.0", `minAvailable = "lots"`), 4),
    (e: unknown) => e instanceof AetherError && /line 5.*minAvailable: must be a count/.test(e.message),
  );
});
