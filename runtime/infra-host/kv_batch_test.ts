/**
 * The kv service's `batch` (kv_service.ts) on three in-process store nodes joined by an in-memory transport:
 * per-operation answers in the order given, a failed operation undoing nothing, add ids kept by a retried
 * batch, the floor under concurrent batches, and bad input refusing the whole batch before anything runs.
 */

import assert from "node:assert/strict";
import { AetherError, type NodeId } from "../core/mod.ts";
import { testStoreCluster } from "./_store_testing.ts";
// services.ts first: it imports every service (kv_service.ts imports its helpers back).
import { SERVICES } from "./services.ts";
import { type BatchResult, MAX_BATCH_OPS } from "./kv_service.ts";

const KV_SERVICE = SERVICES.find((s) => s.name === "kv")!;

const PARTITIONS = 4;
const NODES: NodeId[] = ["n1", "n2", "n3"];

/** Three store nodes (every node an owner of every partition), each with the kv service's `serve`. */
function cluster() {
  const c = testStoreCluster({ nodes: NODES, partitions: PARTITIONS });
  /** A call of group `g` to map `m` through node i. */
  const kv = (i: number, method: string, payload: Record<string, unknown>, group = "g") =>
    KV_SERVICE.serve!(c.store(i), {
      group,
      method,
      payload: { map: "m", ...payload },
      deadlineMs: Date.now() + 5_000,
      requestId: "r",
    });
  const batch = (i: number, ops: unknown, group = "g") =>
    kv(i, "batch", { ops }, group) as Promise<BatchResult[]>;
  return { kv, batch, stop: c.stop };
}

Deno.test("kv batch: a method of the kv row of SERVICES", () => {
  assert.deepEqual(KV_SERVICE.methods, ["get", "put", "delete", "add", "batch"]);
});

Deno.test("kv batch: answers each operation in order; a failed one undoes nothing", async () => {
  const c = cluster();
  try {
    const { version } = (await c.kv(0, "put", { key: "a", value: { x: 1 } })) as { version: number };
    await c.kv(0, "add", { key: "stock", delta: 3 });
    const results = await c.batch(1, [
      { op: "get", key: "a" },
      { op: "get", key: "absent" },
      { op: "add", key: "stock", delta: -2, min: 0, id: "take-00001" },
      { op: "add", key: "other", delta: -5, min: 0, id: "take-00002" },
      { op: "put", key: "order", value: [1, 2], ifVersion: 0, ttlMs: 60_000 },
      { op: "put", key: "a", value: "late", ifVersion: 7 },
      { op: "delete", key: "gone" },
    ]);
    assert.deepEqual(results[0], { ok: true, result: { value: { x: 1 }, version } });
    assert.deepEqual(results[1], { ok: true, result: null });
    assert.equal(results[2].ok && (results[2].result as { value: number }).value, 1);
    assert.ok(!results[3].ok);
    assert.equal(results[3].error.name, "BelowMinimum");
    assert.equal(results[3].error.code, "conflict");
    assert.deepEqual(results[3].error.details, { current: 0 });
    assert.match(results[3].error.message, /kv\.add: other is 0; adding -5 would go below 0/);
    assert.ok(results[4].ok && (results[4].result as { version: number }).version >= 1);
    assert.ok(!results[5].ok);
    assert.equal(results[5].error.name, "VersionMismatch");
    assert.deepEqual(results[5].error.details, { current: version });
    assert.deepEqual(results[6], { ok: true, result: false });
    // What succeeded stands beside the failures: the take, the new order.
    assert.equal(((await c.kv(2, "get", { key: "stock" })) as { value: number }).value, 1);
    assert.deepEqual(((await c.kv(2, "get", { key: "order" })) as { value: unknown }).value, [1, 2]);
    assert.deepEqual(((await c.kv(2, "get", { key: "a" })) as { value: unknown }).value, { x: 1 });
    // An operation may name another map of the group; the same key in two maps is two keys.
    const maps = await c.batch(0, [
      { op: "put", key: "a", value: "in m2", map: "m2" },
      { op: "put", key: "a", value: "in m3", map: "m3", ifVersion: 0 },
      { op: "get", key: "a" },
    ]);
    assert.ok(maps.every((r) => r.ok), JSON.stringify(maps));
    assert.deepEqual(((await c.kv(2, "get", { key: "a", map: "m2" })) as { value: unknown }).value, "in m2");
    assert.deepEqual(((await c.kv(2, "get", { key: "a", map: "m3" })) as { value: unknown }).value, "in m3");
    // Keys stay scoped to the caller's group: another group sees none of them.
    const foreign = await c.batch(0, [{ op: "get", key: "a" }, { op: "get", key: "stock" }], "other-group");
    assert.deepEqual(foreign, [{ ok: true, result: null }, { ok: true, result: null }]);
  } finally {
    c.stop();
  }
});

Deno.test("kv batch: a retried batch's adds are counted once; concurrent batches never go below the floor", async () => {
  const c = cluster();
  try {
    const ops = [{ op: "add", key: "n", delta: 5, id: "click-0001" }, { op: "add", key: "n", delta: 1 }];
    await c.batch(0, ops);
    const again = await c.batch(1, ops);
    // The add with an id is recognised; the one without is a new add each time.
    assert.ok(again[0].ok && again[1].ok);
    assert.equal(((await c.kv(2, "get", { key: "n" })) as { value: number }).value, 7);

    await c.kv(0, "add", { key: "s1", delta: 10 });
    await c.kv(0, "add", { key: "s2", delta: 10 });
    const orders = await Promise.all(Array.from({ length: 30 }, (_, i) =>
      c.batch(i % 3, [
        { op: "add", key: "s1", delta: -1, min: 0, id: `o-${i}-line-1` },
        { op: "add", key: "s2", delta: -1, min: 0, id: `o-${i}-line-2` },
      ])));
    const taken = (line: number) => orders.filter((r) => r[line].ok).length;
    assert.equal(taken(0), 10);
    assert.equal(taken(1), 10);
    for (const r of orders.flat()) if (!r.ok) assert.equal(r.error.name, "BelowMinimum");
  } finally {
    c.stop();
  }
});

Deno.test("kv batch: bad input refuses the whole batch before any operation runs, naming the operation", async () => {
  const c = cluster();
  try {
    const refused = async (ops: unknown, pattern: RegExp, field: string) => {
      const e = await c.batch(0, ops).then(() => undefined, (e) => e);
      assert.ok(e instanceof AetherError, `expected a refusal for ${JSON.stringify(ops)}`);
      assert.equal(e.code, "bad_request");
      assert.match(e.message, pattern);
      assert.equal(e.extra.field, field);
    };
    const good = { op: "add", key: "untouched", delta: 1 };
    await refused(undefined, /kv\.batch: ops must be an array of 1 to 64 operations/, "ops");
    await refused([], /ops must be an array of 1 to 64/, "ops");
    await refused("get", /ops must be an array/, "ops");
    await refused(Array.from({ length: MAX_BATCH_OPS + 1 }, () => good), /1 to 64/, "ops");
    await refused([good, null], /kv\.batch: ops\[1\] must be an object/, "ops[1]");
    await refused([good, ["get"]], /ops\[1\] must be an object/, "ops[1]");
    await refused(
      [good, { op: "scan", key: "k" }],
      /ops\[1\]\.op must be one of get, put, delete, add, got "scan"/,
      "ops[1].op",
    );
    await refused([good, { op: "batch", key: "k" }], /got "batch"/, "ops[1].op");
    await refused(
      [good, { op: "get" }],
      /kv\.batch: ops\[1\] \(get\): key must be a non-empty string/,
      "ops[1].key",
    );
    await refused(
      [good, { op: "get", key: "x".repeat(513) }],
      /ops\[1\] \(get\): key is over 512 bytes/,
      "ops[1].key",
    );
    await refused([good, { op: "add", key: "k" }], /ops\[1\] \(add\): delta is missing/, "ops[1].delta");
    await refused(
      [good, { op: "add", key: "k", delta: "1" }],
      /ops\[1\] \(add\): delta must be a finite number/,
      "ops[1].delta",
    );
    await refused(
      [good, { op: "add", key: "k", delta: 1, min: Infinity }],
      /min must be a finite number/,
      "ops[1].min",
    );
    await refused([good, { op: "put", key: "k" }], /ops\[1\] \(put\): value is missing/, "ops[1].value");
    await refused(
      [good, { op: "put", key: "k", value: 1, ifVersion: -1 }],
      /ifVersion must be a version/,
      "ops[1].ifVersion",
    );
    await refused(
      [good, { op: "put", key: "k", value: 1, ttlMs: 0 }],
      /ttlMs must be an integer from 1/,
      "ops[1].ttlMs",
    );
    await refused(
      [good, { op: "put", key: "k", value: "x".repeat(600_000) }],
      /value is over 524288 bytes/,
      "ops[1].value",
    );
    await refused(
      [good, { op: "delete", key: "k", ifVersion: 1.5 }],
      /ops\[1\] \(delete\): ifVersion/,
      "ops[1].ifVersion",
    );
    await refused(
      [{ op: "put", key: "k", value: 1 }, { op: "add", key: "k", delta: 1 }],
      /ops\[1\] \(add\) and ops\[0\] \(put\) both write "k"/,
      "ops[1].key",
    );
    await refused([good, { op: "delete", key: "untouched" }], /both write "untouched"/, "ops[1].key");
    await refused(
      [good, { op: "get", key: "k", map: "a/b" }],
      /ops\[1\] \(get\): map must be 1-64/,
      "ops[1].map",
    );
    await refused(
      [good, { op: "get", key: "k", map: 7 }],
      /ops\[1\] \(get\): map must be 1-64/,
      "ops[1].map",
    );
    // Nothing ran: the good first operation of every refused batch added nothing.
    assert.equal(await c.kv(1, "get", { key: "untouched" }), null);
    // Reads of a written key and adds of one key are allowed together.
    const mixed = await c.batch(0, [good, good, { op: "get", key: "untouched" }]);
    assert.ok(mixed.every((r) => r.ok));
    assert.equal(((await c.kv(1, "get", { key: "untouched" })) as { value: number }).value, 2);
    // The map is checked as for every method.
    await assert.rejects(
      c.kv(0, "batch", { map: "", ops: [good] }),
      /kv\.batch: map must be a non-empty string/,
    );
  } finally {
    c.stop();
  }
});
