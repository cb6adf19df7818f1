/**
 * The deployment API routes over a real KvState (writes apply at once, as a one-member cluster would):
 * request validation field by field, problem documents, dry runs, and the re-plan on a lost race. The same
 * routes on real node processes are in tests/integration/deployment_test.ts.
 */

import assert from "node:assert/strict";
import { Hono } from "hono";
import { AetherError, problemOf, toAetherError } from "../core/mod.ts";
import { type KvCommand, KvState } from "../kv/mod.ts";
import { decodeValue, kvKeys } from "../model/mod.ts";
import { deploymentRoutes } from "./routes.ts";
import { manifest, publish } from "./_testing.ts";

function api(kv = new KvState(), beforeWrite?: () => void) {
  publish(
    kv,
    manifest("shop:orders:1.0.0", { calls: { db: ["shop:db", "^1.0.0"] } }),
    manifest("shop:db:1.0.0"),
    manifest("shop:audit:1.0.0"),
  );
  const writes: KvCommand[] = [];
  const app = new Hono();
  // The node's API turns every AetherError into a problem document the same way (runtime/api/app.ts).
  app.onError((e, c) =>
    c.json(problemOf(toAetherError(e), { instance: c.req.path }), toAetherError(e).status as 400)
  );
  app.route(
    "/api/v1",
    deploymentRoutes({
      state: () => kv,
      write: (command) => {
        beforeWrite?.();
        writes.push(command);
        const result = kv.apply(command);
        if (!result.ok) return Promise.reject(new AetherError("bad_request", result.message));
        return Promise.resolve({ revision: result.revision, succeeded: result.succeeded });
      },
      isConnected: () => true,
      nowMs: () => 1_000,
    }),
  );
  const call = async (method: string, path: string, body?: string) => {
    const response = await app.request(`/api/v1${path}`, { method, body });
    return { status: response.status, body: await response.json() };
  };
  return { kv, writes, call };
}

const SHOP = `id = "shop:app:1.0.0"
[[slices]]
artifact = "shop:orders:1.0.0"
instances = 2
`;

Deno.test("routes: a blueprint is planned by dry run, applied, listed, read back and deleted", async () => {
  const { kv, writes, call } = api();
  const dry = await call("POST", "/blueprints?dryRun=true", SHOP);
  assert.equal(dry.status, 200);
  assert.equal(dry.body.dryRun, true);
  assert.deepEqual(dry.body.slices.map((s: { artifact: string }) => s.artifact), [
    "shop:db:1.0.0",
    "shop:orders:1.0.0",
  ], "expanded with the slice it calls, in activation order");
  assert.equal(writes.length, 0, "a dry run writes nothing");

  const applied = await call("POST", "/blueprints", SHOP);
  assert.equal(applied.status, 201);
  assert.equal(applied.body.action, "create");
  assert.ok(applied.body.revision > 0);
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:orders"))!.value).instances, 2);
  assert.equal((await call("POST", "/blueprints", SHOP)).status, 200, "re-applying updates");

  const list = await call("GET", "/blueprints");
  assert.deepEqual(list.body.blueprints.map((b: { id: string }) => b.id), ["shop:app:1.0.0"]);
  const one = await call("GET", "/blueprints/shop:app:1.0.0");
  assert.equal(one.body.source, SHOP);
  const status = await call("GET", "/blueprints/shop%3Aapp%3A1.0.0/status");
  assert.equal(status.status, 200);
  assert.deepEqual(status.body.slices.map((s: { slice: string; desired: number }) => [s.slice, s.desired]), [
    ["shop:db", 1],
    ["shop:orders", 2],
  ]);
  assert.equal(status.body.settled, false, "nothing runs yet");

  const dryDelete = await call("DELETE", "/blueprints/shop:app:1.0.0?dryRun=true");
  assert.deepEqual(dryDelete.body.targets.map((t: { action: string }) => t.action), ["remove", "remove"]);
  assert.ok(kv.get(kvKeys.blueprint("shop:app:1.0.0")), "a dry run deletes nothing");
  const deleted = await call("DELETE", "/blueprints/shop:app:1.0.0");
  assert.equal(deleted.status, 200);
  assert.equal(kv.get(kvKeys.target("shop:orders")), undefined);
  assert.equal((await call("GET", "/blueprints/shop:app:1.0.0")).status, 404);
  assert.equal((await call("DELETE", "/blueprints/shop:app:1.0.0")).status, 404);
});

Deno.test("routes: blueprint problems are 400 problem documents with line, column, field and all problems", async () => {
  const { call, writes } = api();
  const cases: [string, number, number, string, RegExp][] = [
    [`id = "shop:app:1.0.0"\n[[slices]]\nartifact = \n`, 3, 12, "", /TOML syntax/],
    [
      `id = "shop:app:1.0.0"\n[[slices]]\nartifact = "shop:orders:1.0.0"\ninstances = -1\n`,
      4,
      13,
      "slices[0].instances",
      /instances/,
    ],
    [
      `id = "shop:app:1.0.0"\n[[slices]]\nartifact = "shop:nope:1.0.0"\n`,
      3,
      12,
      "slices[0].artifact",
      /not published/,
    ],
    [`id = "shop:app"\n[[slices]]\nartifact = "shop:db:1.0.0"\n`, 1, 6, "id", /group:artifact:version/],
  ];
  for (const [toml, line, column, field, pattern] of cases) {
    for (const query of ["", "?dryRun=true"]) {
      const { status, body } = await call("POST", `/blueprints${query}`, toml);
      assert.equal(status, 400, toml);
      assert.equal(body.type, "https://aether.dev/problems/bad_request");
      assert.match(body.detail, pattern);
      assert.deepEqual([body.line, body.column, body.field], [line, column, field], toml);
      assert.ok(Array.isArray(body.problems) && body.problems.length >= 1);
    }
  }
  assert.equal(writes.length, 0);
  const two = await call(
    "POST",
    "/blueprints",
    `id = "shop:app:1.0.0"\n[[slices]]\nartifact = "shop:db:1.0.0"\ninstances = "3"\ncolour = 1\n`,
  );
  assert.equal(two.body.problems.length, 2, "every problem is reported, not only the first");
  const huge = await call("POST", "/blueprints", "#".repeat(300 * 1024));
  assert.equal(huge.status, 413);
  assert.equal((await call("POST", "/blueprints?dryRun=yes", SHOP)).body.field, "dryRun");
});

Deno.test("routes: deploy, scale and undeploy validate their JSON field by field", async () => {
  const { call, writes } = api();
  const bad: [string, string | undefined, string | undefined, RegExp][] = [
    ["/deploy", "", undefined, /body is empty/],
    ["/deploy", "{", undefined, /not JSON/],
    ["/deploy", "[1]", undefined, /must be a JSON object/],
    ["/deploy", `{"artifact": "shop:db:1.0.0", "replicas": 2}`, "replicas", /unknown field "replicas"/],
    ["/deploy", `{}`, "artifact", /artifact is missing/],
    ["/deploy", `{"artifact": 7}`, "artifact", /must be a string/],
    ["/deploy", `{"artifact": "shop:db"}`, "artifact", /group:artifact:version/],
    ["/deploy", `{"artifact": "shop:db:1.0.0", "instances": 1.5}`, "instances", /integer from 0/],
    ["/deploy", `{"artifact": "shop:db:1.0.0", "instances": -1}`, "instances", /integer from 0/],
    ["/deploy", `{"artifact": "shop:db:1.0.0", "instances": "2"}`, "instances", /integer from 0/],
    ["/scale", `{"artifact": "shop:db"}`, "instances", /instances is missing/],
    ["/scale", `{"artifact": "shop", "instances": 1}`, "artifact", /artifact/],
    ["/undeploy", `{"artifact": "shop:db", "instances": 1}`, "instances", /unknown field/],
  ];
  for (const [path, body, field, pattern] of bad) {
    const answer = await call("POST", path, body);
    assert.equal(answer.status, 400, `${path} ${body}`);
    assert.match(answer.body.detail, pattern, `${path} ${body}`);
    assert.equal(answer.body.field, field, `${path} ${body}`);
  }
  assert.equal(writes.length, 0);

  assert.equal((await call("POST", "/deploy", `{"artifact": "shop:nope:1.0.0"}`)).status, 404);
  assert.equal((await call("POST", "/scale", `{"artifact": "shop:db", "instances": 2}`)).status, 404);
  assert.equal((await call("POST", "/undeploy", `{"artifact": "shop:db"}`)).status, 404);

  const dry = await call("POST", "/deploy?dryRun=true", `{"artifact": "shop:orders:1.0.0", "instances": 2}`);
  assert.deepEqual([dry.status, dry.body.dryRun, dry.body.missingCalls], [200, true, ["shop:db ^1.0.0"]]);
  assert.equal(writes.length, 0);
  const deployed = await call("POST", "/deploy", `{"artifact": "shop:db:1.0.0"}`);
  assert.deepEqual([deployed.status, deployed.body.entry.to.instances], [201, 1], "one instance by default");
  const scaled = await call("POST", "/scale", `{"artifact": "shop:db:1.0.0", "instances": 4}`);
  assert.deepEqual([scaled.status, scaled.body.entry.from.instances, scaled.body.entry.to.instances], [
    200,
    1,
    4,
  ]);
  assert.equal((await call("POST", "/undeploy", `{"artifact": "shop:db"}`)).status, 200);

  await call("POST", "/blueprints", SHOP);
  const owned = await call("POST", "/undeploy", `{"artifact": "shop:orders"}`);
  assert.equal(owned.status, 409, "a blueprint's slice goes with the blueprint");
  assert.match(owned.body.detail, /belongs to blueprint\(s\) shop:app:1\.0\.0/);
});

Deno.test("routes: a change that lost a race is planned again on the newer state", async () => {
  const kv = new KvState();
  let interfere = 0;
  let writes = 0;
  const { call } = api(kv, () => {
    writes++;
    // Another writer changes the target between the plan and its write, once.
    if (interfere-- === 1) {
      kv.apply({ type: "put", key: "app/unrelated", value: new Uint8Array([1]) });
      const key = kvKeys.target("shop:db");
      const entry = kv.get(key)!;
      kv.apply({ type: "put", key, value: entry.value });
    }
  });
  await call("POST", "/deploy", `{"artifact": "shop:db:1.0.0"}`);
  interfere = 1;
  writes = 0;
  const scaled = await call("POST", "/scale", `{"artifact": "shop:db", "instances": 3}`);
  assert.equal(scaled.status, 200);
  assert.equal(writes, 2, "the first write's compare failed; the second, planned again, applied");
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:db"))!.value).instances, 3);
});

Deno.test("routes: GET /slices shows desired and actual instances per slice", async () => {
  const { call } = api();
  await call("POST", "/deploy", `{"artifact": "shop:audit:1.0.0", "instances": 2}`);
  const { body } = await call("GET", "/slices");
  assert.deepEqual(body.slices, [{
    slice: "shop:audit",
    version: "1.0.0",
    desired: 2,
    active: 0,
    owners: [],
    settled: false,
    instances: [],
  }]);
});

Deno.test("routes: deploy of a new version keeps the running instance count unless instances is given", async () => {
  const { kv, call } = api();
  publish(kv, manifest("shop:audit:1.1.0"), manifest("shop:audit:1.2.0"));
  await call("POST", "/deploy", `{"artifact": "shop:audit:1.0.0", "instances": 2}`);
  const kept = await call("POST", "/deploy", `{"artifact": "shop:audit:1.1.0"}`);
  assert.equal(kept.status, 200, JSON.stringify(kept.body));
  assert.deepEqual([kept.body.entry.from, kept.body.entry.to].map((t) => `${t.version} x${t.instances}`), [
    "1.0.0 x2",
    "1.1.0 x2",
  ]);
  const dry = await call("POST", "/deploy?dryRun=true", `{"artifact": "shop:audit:1.2.0"}`);
  assert.equal(dry.body.entry.to.instances, 2, "the dry run plans the same count");
  const changed = await call("POST", "/deploy", `{"artifact": "shop:audit:1.2.0", "instances": 3}`);
  assert.equal(changed.body.entry.to.instances, 3, "an explicit count wins");
  assert.equal(decodeValue("target", kv.get(kvKeys.target("shop:audit"))!.value).instances, 3);
  const fresh = await call("POST", "/deploy", `{"artifact": "shop:db:1.0.0"}`);
  assert.equal(fresh.body.entry.to.instances, 1, "a new slice gets one instance");
});

Deno.test("routes: undeploy with a version that is not deployed is refused (409) naming the deployed one", async () => {
  const { kv, writes, call } = api();
  publish(kv, manifest("shop:audit:1.1.0"));
  await call("POST", "/deploy", `{"artifact": "shop:audit:1.1.0", "instances": 2}`);
  const before = writes.length;
  for (const path of ["/undeploy", "/undeploy?dryRun=true"]) {
    const refused = await call("POST", path, `{"artifact": "shop:audit:1.0.0"}`);
    assert.equal(refused.status, 409, path);
    assert.match(refused.body.detail, /shop:audit:1\.0\.0 is not deployed; shop:audit runs version 1\.1\.0/);
    assert.equal(refused.body.deployed, "shop:audit:1.1.0");
  }
  assert.equal(writes.length, before, "nothing was written");
  assert.ok(kv.get(kvKeys.target("shop:audit")), "the deployed version still runs");
  const named = await call("POST", "/undeploy", `{"artifact": "shop:audit:1.1.0"}`);
  assert.deepEqual([named.status, named.body.entry.action], [200, "remove"]);
  assert.equal((await call("POST", "/undeploy", `{"artifact": "shop:audit:1.1.0"}`)).status, 404);
});
