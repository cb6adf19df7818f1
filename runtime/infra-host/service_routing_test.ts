/**
 * service_routing.ts against the real bundled repository (infra/dist) and the SERVICES table: every method of
 * a bundled service's row is either a method of its slice or answered node-locally (never both, never
 * neither), and the calls whose repetition would repeat an effect are the not-idempotent ones.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { silentLogger } from "../core/mod.ts";
import { encodeValue } from "../model/mod.ts";
import type { OutboundCall } from "../sandbox/mod.ts";
import { readBundledRepository } from "./bundled.ts";
import type { InfraStores } from "./feature.ts";
import { isIdempotentCall, isNodeLocal, NODE_LOCAL_METHODS } from "./service_routing.ts";
import { ServiceSlices } from "./service_slices.ts";
import { type ServiceCall, SERVICES, startInfraServices } from "./services.ts";

Deno.test("each bundled slice's methods plus the node-local ones are exactly its SERVICES row's", async () => {
  const { services, problems } = await readBundledRepository();
  deepEqual(problems, []);
  for (const [name, bundled] of services) {
    const row = SERVICES.find((s) => s.name === name);
    ok(row, `bundled ${name} has a SERVICES row`);
    equal(bundled.version, row.version, `${name}: the slice's version is its row's`);
    const local = NODE_LOCAL_METHODS[name] ?? [];
    for (const method of bundled.manifest.methods) {
      ok(!local.includes(method), `${name}.${method} is node-local: the slice must not have it`);
    }
    deepEqual(
      [...bundled.manifest.methods, ...local].sort(),
      [...row.methods].sort(),
      `${name}: slice methods + node-local methods = the row's methods`,
    );
  }
  for (const name of ["http", "db", "pubsub", "scheduler", "statemachine", "cache", "kv", "lock"]) {
    ok(services.has(name), `${name} is bundled`);
  }
});

Deno.test("a database transaction's calls stay on the node that takes them; a query does not", () => {
  for (const method of ["begin", "queryIn", "commit", "rollback"]) ok(isNodeLocal("db", method), method);
  ok(!isNodeLocal("db", "query"));
  ok(!isNodeLocal("db", "migrate"));
  ok(!isNodeLocal("cache", "get"));
  ok(!isNodeLocal("http", "request"));
});

Deno.test("calls with effects that must not repeat are not idempotent", () => {
  ok(isIdempotentCall("http", "request", { url: "http://a" }), "GET by default");
  ok(isIdempotentCall("http", "request", { url: "http://a", method: "put" }));
  ok(!isIdempotentCall("http", "request", { url: "http://a", method: "POST" }));
  ok(!isIdempotentCall("http", "request", { url: "http://a", method: "patch" }));
  ok(!isIdempotentCall("http", "request", { url: "http://a", method: "BREW" }), "unknown: not idempotent");
  ok(!isIdempotentCall("db", "query", { db: "d", sql: "SELECT 1" }));
  ok(isIdempotentCall("db", "migrate", { db: "d", migrations: [] }), "migrations are recorded by sha");
  ok(!isIdempotentCall("pubsub", "publish", { topic: "t" }));
  ok(isIdempotentCall("pubsub", "publish", { topic: "t", idempotencyKey: "k1" }), "deduplicated by key");
  ok(isIdempotentCall("pubsub", "info", { topic: "t" }));
  ok(!isIdempotentCall("scheduler", "run", { job: "j" }));
  ok(isIdempotentCall("scheduler", "schedule", { job: "j" }));
  ok(!isIdempotentCall("statemachine", "send", { machine: "m" }));
  ok(isIdempotentCall("statemachine", "get", { machine: "m" }));
  ok(isIdempotentCall("kv", "add", { map: "m" }), "kv.add carries an op id: a retry finds its write");
});

function appCall(service: string, method: string, payload: unknown): OutboundCall {
  return {
    instanceId: "org.example.shop:cart:1.0.0/1",
    from: "org.example.shop:cart:1.0.0",
    name: "@infra",
    target: { artifact: `aether.infra:${service}`, range: "*" },
    method,
    payload,
    requestId: "r1",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    deadlineMs: Date.now() + 5_000,
    fireAndForget: false,
  };
}

Deno.test("with the db and http slices deployed: what goes through the invoker, with which retries", async () => {
  const bundled = readBundledRepository();
  const versions = new Map([...(await bundled).services].map(([name, s]) => [name, s.version]));
  // Targets of every bundled service at its bundled version: all deployed.
  const state = {
    get: (key: string) => {
      const name = key.startsWith("targets/aether.infra:") ? key.slice("targets/aether.infra:".length) : "";
      const version = versions.get(name);
      if (!version) return undefined;
      const value = encodeValue("target", { version, instances: 3, owners: [], updatedAt: 0 });
      return { key, value, modRevision: 5, createRevision: 5, version: 1 };
    },
    range: () => [],
    revision: 5,
  };
  const slices = new ServiceSlices({
    bundled,
    state: () => state as never,
    write: () => Promise.reject(new Error("not used")),
    members: () => ["n1"],
    isConnected: () => true,
    nowMs: () => Date.now(),
    publish: () => Promise.reject(new Error("not used")),
    published: () => undefined,
    log: silentLogger,
  });
  await slices.names();
  const invoked: Array<{ service: string; method: string; idempotent: boolean }> = [];
  const served: ServiceCall[] = [];
  const engine = (call: ServiceCall) => Promise.resolve(void served.push(call)).then(() => ({ tx: "t1" }));
  const services = startInfraServices({
    stores: {} as InfraStores,
    kvServed: { db: engine, http: engine },
    slices,
    invoke: (call, options) => {
      invoked.push({ service: call.target.artifact, method: call.method, idempotent: options.idempotent });
      return Promise.resolve({ ok: true, value: null });
    },
  });
  for (const method of ["begin", "queryIn", "commit", "rollback"]) {
    const outcome = await services.serve(appCall("db", method, { db: "orders", tx: "t1" }));
    ok(outcome.ok, JSON.stringify(outcome));
  }
  deepEqual(served.map((c) => [c.method, c.group]), [
    ["begin", "org.example.shop"],
    ["queryIn", "org.example.shop"],
    ["commit", "org.example.shop"],
    ["rollback", "org.example.shop"],
  ], "a transaction's calls are answered by this node's engine");
  equal(invoked.length, 0);
  await services.serve(appCall("db", "query", { db: "orders", sql: "SELECT 1" }));
  await services.serve(appCall("db", "migrate", { db: "orders", migrations: [] }));
  await services.serve(appCall("http", "request", { url: "http://a/" }));
  await services.serve(appCall("http", "request", { url: "http://a/", method: "POST" }));
  deepEqual(invoked, [
    { service: "aether.infra:db", method: "query", idempotent: false },
    { service: "aether.infra:db", method: "migrate", idempotent: true },
    { service: "aether.infra:http", method: "request", idempotent: true },
    { service: "aether.infra:http", method: "request", idempotent: false },
  ]);
  equal(served.length, 4, "nothing else reached the engine directly");
});
