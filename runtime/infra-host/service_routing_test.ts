/**
 * service_routing.ts against the real bundled repository (infra/dist) and the SERVICES table: every method of
 * a bundled service's row is either a method of its slice or answered node-locally (never both, never
 * neither), and the calls whose repetition would repeat an effect are the not-idempotent ones.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { readBundledRepository } from "./bundled.ts";
import { isIdempotentCall, isNodeLocal, NODE_LOCAL_METHODS } from "./service_routing.ts";
import { SERVICES } from "./services.ts";

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
