import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { KvState } from "../kv/mod.ts";
import { decodeValue, kvKeys, type TargetRecord } from "../model/mod.ts";
import { isWriteOk } from "./cluster_manager.ts";
import { planBlueprintDelete, planBlueprintSource, planDeploy, planScale, planUndeploy } from "./targets.ts";
import { applyCommand, manifest, publish, putTarget } from "./_testing.ts";
import { ViewReader } from "./view.ts";
import { blueprintStatus, sliceStatuses } from "./status.ts";

function state(): KvState {
  const kv = new KvState();
  publish(
    kv,
    manifest("shop:orders:1.0.0", { calls: { db: ["shop:db", "^1.0.0"] } }),
    manifest("shop:reports:1.0.0", { calls: { db: ["shop:db", "^1.0.0"] } }),
    manifest("shop:db:1.0.0"),
    manifest("shop:db:1.2.0"),
    manifest("shop:db:2.0.0"),
    manifest("shop:audit:1.0.0"),
  );
  return kv;
}

const SHOP = `id = "shop:app:1.0.0"
[[slices]]
artifact = "shop:orders:1.0.0"
instances = 3
min = 2
max = 5
[[slices]]
artifact = "shop:audit:1.0.0"
`;

const REPORTS = `id = "shop:reports-app:1.0.0"
[[slices]]
artifact = "shop:reports:1.0.0"
instances = 2
[[slices]]
artifact = "shop:db:1.0.0"
instances = 4
`;

function target(kv: KvState, base: string): TargetRecord | undefined {
  const entry = kv.get(kvKeys.target(base));
  return entry ? decodeValue("target", entry.value) : undefined;
}

function apply(kv: KvState, planned: { command: Parameters<typeof applyCommand>[1] }): void {
  assert.equal(isWriteOk(applyCommand(kv, planned.command)), true, "the planned command applies");
}

function fails(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AetherError);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  });
}

Deno.test("targets: applying a blueprint writes it and every target it owns in one transaction", () => {
  const kv = state();
  const planned = planBlueprintSource(kv, SHOP, 7);
  assert.equal(planned.command.type, "txn");
  assert.deepEqual(planned.plan.targets.map((t) => [t.slice, t.action, t.to?.version, t.to?.instances]), [
    ["shop:db", "create", "1.2.0", 1],
    ["shop:orders", "create", "1.0.0", 3],
    ["shop:audit", "create", "1.0.0", 1],
  ]);
  assert.equal(planned.plan.action, "create");
  assert.equal(kv.range("targets/").length, 0, "planning (dry run) writes nothing");
  apply(kv, planned);
  assert.deepEqual(target(kv, "shop:orders"), {
    version: "1.0.0",
    instances: 3,
    min: 2,
    max: 5,
    owners: ["shop:app:1.0.0"],
    updatedAt: 7,
  });
  const record = decodeValue("blueprint", kv.get(kvKeys.blueprint("shop:app:1.0.0"))!.value);
  assert.deepEqual(record.slices.map((s) => [s.artifact, s.transitive]), [
    ["shop:db:1.2.0", true],
    ["shop:orders:1.0.0", false],
    ["shop:audit:1.0.0", false],
  ]);
  assert.equal(record.source, SHOP);
});

Deno.test("targets: re-applying updates counts and releases slices the blueprint no longer lists", () => {
  const kv = state();
  apply(kv, planBlueprintSource(kv, SHOP, 1));
  const changed = SHOP.replace("instances = 3", "instances = 4").replace(
    /\[\[slices\]\]\nartifact = "shop:audit:1.0.0"\n/,
    "",
  );
  const planned = planBlueprintSource(kv, changed, 2);
  assert.equal(planned.plan.action, "update");
  assert.deepEqual(planned.plan.targets.map((t) => [t.slice, t.action]), [
    ["shop:db", "keep"],
    ["shop:orders", "update"],
    ["shop:audit", "remove"],
  ]);
  apply(kv, planned);
  assert.equal(target(kv, "shop:orders")!.instances, 4);
  assert.equal(target(kv, "shop:audit"), undefined);
});

Deno.test("targets: a slice two blueprints share stays until neither owns it", () => {
  const kv = state();
  apply(kv, planBlueprintSource(kv, SHOP, 1));
  // reports lists db itself (1.0.0) but shop already runs db 1.2.0: the versions must agree.
  fails(
    () => planBlueprintSource(kv, REPORTS, 2),
    "conflict",
    /wants shop:db:1.0.0, but shop:db runs 1.2.0 for blueprint\(s\) shop:app:1.0.0/,
  );
  apply(kv, planBlueprintSource(kv, REPORTS.replace("shop:db:1.0.0", "shop:db:1.2.0"), 2));
  assert.deepEqual(target(kv, "shop:db"), {
    version: "1.2.0",
    instances: 4,
    owners: ["shop:app:1.0.0", "shop:reports-app:1.0.0"],
    updatedAt: 2,
  });

  const deleteShop = planBlueprintDelete(kv, "shop:app:1.0.0", 3);
  assert.deepEqual(deleteShop.plan.targets.map((t) => [t.slice, t.action]), [
    ["shop:audit", "remove"],
    ["shop:db", "release"],
    ["shop:orders", "remove"],
  ]);
  apply(kv, deleteShop);
  assert.equal(kv.get(kvKeys.blueprint("shop:app:1.0.0")), undefined);
  assert.deepEqual(target(kv, "shop:db")!.owners, ["shop:reports-app:1.0.0"]);
  assert.equal(target(kv, "shop:orders"), undefined);
  apply(kv, planBlueprintDelete(kv, "shop:reports-app:1.0.0", 4));
  assert.equal(kv.range("targets/").length, 0);
  fails(() => planBlueprintDelete(kv, "shop:reports-app:1.0.0", 5), "not_found", /there is no blueprint/);
});

Deno.test("targets: a plan built on a state that changed meanwhile does not apply", () => {
  const kv = state();
  const planned = planBlueprintSource(kv, SHOP, 1);
  apply(kv, planDeploy(kv, "shop:audit:1.0.0", 2, 1));
  assert.equal(isWriteOk(applyCommand(kv, planned.command)), false);
  assert.equal(kv.get(kvKeys.blueprint("shop:app:1.0.0")), undefined);
});

Deno.test("targets: deploy, scale and undeploy of a directly deployed slice", () => {
  const kv = state();
  fails(() => planDeploy(kv, "shop:orders:9.0.0", 1, 1), "not_found", /shop:orders:9.0.0 is not published/);
  fails(() => planDeploy(kv, "shop:orders", 1, 1), "bad_request", /not group:artifact:version/);
  const deploy = planDeploy(kv, "shop:orders:1.0.0", 2, 1);
  assert.deepEqual(deploy.plan.missingCalls, ["shop:db ^1.0.0"]);
  apply(kv, deploy);
  assert.deepEqual(target(kv, "shop:orders"), { version: "1.0.0", instances: 2, owners: [], updatedAt: 1 });

  apply(kv, planScale(kv, "shop:orders", 5, 2));
  assert.equal(target(kv, "shop:orders")!.instances, 5);
  fails(() => planScale(kv, "shop:audit", 1, 2), "not_found", /shop:audit is not deployed/);
  fails(() => planScale(kv, "shop:orders", -1, 2), "bad_request", /instances must be an integer from 0/);
  putTarget(kv, "shop:audit", { version: "1.0.0", instances: 2, min: 2, max: 3, owners: [], updatedAt: 0 });
  fails(() => planScale(kv, "shop:audit", 4, 2), "bad_request", /4 instances is above the slice's max \(3\)/);

  // A new version forgets the old version's failures.
  putTarget(kv, "shop:db", {
    version: "1.0.0",
    instances: 1,
    owners: [],
    updatedAt: 0,
    backoff: { failures: 3, retryAt: 99 },
  });
  apply(kv, planDeploy(kv, "shop:db:1.2.0", 1, 3));
  assert.equal(target(kv, "shop:db")!.backoff, undefined);

  const undeploy = planUndeploy(kv, "shop:db");
  assert.deepEqual(undeploy.plan.callers, ["shop:orders:1.0.0"]);
  apply(kv, undeploy);
  assert.equal(target(kv, "shop:db"), undefined);
  fails(() => planUndeploy(kv, "shop:db"), "not_found", /not deployed/);
  apply(kv, planBlueprintSource(kv, SHOP, 4));
  fails(() => planUndeploy(kv, "shop:audit:1.0.0"), "conflict", /belongs to blueprint\(s\) shop:app:1.0.0/);
});

Deno.test("status: desired and actual per slice, settled only when exactly the desired instances are ACTIVE", () => {
  const kv = state();
  apply(kv, planBlueprintSource(kv, SHOP, 1));
  const put = (key: string, s: string) =>
    applyCommand(kv, {
      type: "put",
      key,
      value: new TextEncoder().encode(JSON.stringify({ state: s, updatedAt: 3 })),
    });
  put(kvKeys.instance("n1", "shop:audit:1.0.0", 0), "ACTIVE");
  put(kvKeys.instance("n2", "shop:db:1.2.0", 0), "ACTIVE");
  put(kvKeys.instance("n3", "shop:orders:1.0.0", 0), "ACTIVE");
  put(kvKeys.instance("n1", "shop:orders:1.0.0", 0), "LOADING");
  const view = new ViewReader().read(kv);
  const statuses = sliceStatuses(view, (node) => node !== "n3");
  assert.deepEqual(statuses.map((s) => [s.slice, s.desired, s.active, s.settled]), [
    ["shop:audit", 1, 1, true],
    ["shop:db", 1, 1, true],
    ["shop:orders", 3, 0, false],
  ]);
  assert.deepEqual(statuses[2].instances.map((i) => [i.node, i.state, i.connected]), [
    ["n1", "LOADING", true],
    ["n3", "ACTIVE", false],
  ]);
  assert.equal(blueprintStatus(view, "shop:app:1.0.0", () => true).settled, false);
});

Deno.test("status: while routing keeps a second version, both show with their instances; settled needs both", () => {
  const kv = state();
  apply(kv, planDeploy(kv, "shop:db:1.0.0", 2, 1));
  const put = (key: string, value: unknown) =>
    applyCommand(kv, { type: "put", key, value: new TextEncoder().encode(JSON.stringify(value)) });
  put(kvKeys.routing("shop:db"), {
    oldVersion: "1.0.0",
    newVersion: "1.2.0",
    oldWeight: 3,
    newWeight: 1,
    updatedAt: 2,
  });
  put(kvKeys.instance("n1", "shop:db:1.0.0", 0), { state: "ACTIVE", updatedAt: 3 });
  put(kvKeys.instance("n2", "shop:db:1.0.0", 0), { state: "ACTIVE", updatedAt: 3 });
  put(kvKeys.instance("n3", "shop:db:1.2.0", 0), { state: "ACTIVE", updatedAt: 3 });
  put(kvKeys.instance("n1", "shop:db:1.2.0", 0), { state: "LOADING", updatedAt: 3 });
  const reader = new ViewReader();
  let db = sliceStatuses(reader.read(kv), () => true)[0];
  assert.deepEqual(
    [db.version, db.desired, db.active, db.settled, db.routed, db.weights],
    ["1.0.0", 2, 2, false, { version: "1.2.0", desired: 2, active: 1 }, { "1.0.0": 3, "1.2.0": 1 }],
  );
  assert.deepEqual(db.instances.map((i) => `${i.node} ${i.version} ${i.state}`), [
    "n1 1.0.0 ACTIVE",
    "n1 1.2.0 LOADING",
    "n2 1.0.0 ACTIVE",
    "n3 1.2.0 ACTIVE",
  ]);
  put(kvKeys.instance("n1", "shop:db:1.2.0", 0), { state: "ACTIVE", updatedAt: 4 });
  db = sliceStatuses(reader.read(kv), () => true)[0];
  assert.equal(db.settled, true);
  // Without the routing record, the 1.2.0 instances are left-overs: not settled until they are gone.
  applyCommand(kv, { type: "delete", key: kvKeys.routing("shop:db") });
  db = sliceStatuses(reader.read(kv), () => true)[0];
  assert.deepEqual([db.settled, db.routed, db.weights], [false, undefined, undefined]);
});
