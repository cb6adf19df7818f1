/**
 * The store's atomic add on three in-process store nodes joined by an in-memory transport (one partition map,
 * every node an owner): concurrent adds from every node, idempotence by add id, the floor (BelowMinimum), a
 * value that is not a number, expiry, and a retry answered only once the entry is on a write quorum.
 */

import assert from "node:assert/strict";
import type { AetherError } from "../core/mod.ts";
import { parseStoreMessage } from "./_protocol.ts";
import { testStoreCluster } from "./_store_testing.ts";
import { ADD_IDS_KEPT, readCounter } from "./store_node.ts";

/** Three store nodes; `cut` drops every message to and from a node (it stays connected: writes time out). */
const cluster = () => testStoreCluster();
const NODES = ["n1", "n2", "n3"];

Deno.test("store add: 300 concurrent adds from three nodes to one key are all counted, none refused", async () => {
  const c = cluster();
  try {
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => c.store(i % 3).add("hot", 1, { op: `add-${i}` })),
    );
    const values = results.map((r) => r.value).sort((a, b) => a - b);
    assert.deepEqual(values, Array.from({ length: 300 }, (_, i) => i + 1), "each add saw a distinct total");
    const versions = new Set(results.map((r) => r.version));
    assert.equal(versions.size, 300);
    // Every owner holds the final count (the write quorum is 2 of 3; the third gets it by replication too).
    await new Promise((r) => setTimeout(r, 50));
    for (const node of c.nodes) {
      const counter = readCounter(node.local("t")!.get("hot")!.value!);
      assert.ok(typeof counter !== "string" && counter.n === 300, `${node.self}: ${JSON.stringify(counter)}`);
      assert.equal(counter.ops.length, ADD_IDS_KEPT);
    }
    assert.equal(JSON.parse((await c.store(1).get("hot"))!.value).$n, 300);
  } finally {
    c.stop();
  }
});

Deno.test("store add: the same add id is counted once, also behind other adds", async () => {
  const c = cluster();
  try {
    assert.deepEqual((await c.store(0).add("k", 5, { op: "first" })).value, 5);
    const again = await c.store(1).add("k", 5, { op: "first" });
    assert.equal(again.value, 5);
    await c.store(2).add("k", 2, { op: "second" });
    // Behind another add, the id is still remembered: the answer is the current total, nothing added.
    assert.equal((await c.store(0).add("k", 5, { op: "first" })).value, 7);
    // A key holding a plain JSON number is counted from it; an add without an id is never deduplicated.
    await c.store(0).put("plain", "40");
    assert.equal((await c.store(1).add("plain", 1)).value, 41);
    assert.equal((await c.store(1).add("plain", 1)).value, 42);
    // An id pushed out by ADD_IDS_KEPT later adds counts again (the stated limit).
    for (let i = 0; i < ADD_IDS_KEPT; i++) await c.store(i % 3).add("k", 1, { op: `later-${i}` });
    const total = 7 + ADD_IDS_KEPT;
    assert.equal((await c.store(2).add("k", 5, { op: "first" })).value, total + 5);
  } finally {
    c.stop();
  }
});

Deno.test("store add: min refuses with BelowMinimum and the current value; concurrent takes never oversell", async () => {
  const c = cluster();
  try {
    await c.store(0).add("stock", 10);
    const takes = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) => c.store(i % 3).add("stock", -1, { min: 0, op: `take-${i}` })),
    );
    assert.equal(takes.filter((t) => t.status === "fulfilled").length, 10);
    for (const t of takes) {
      if (t.status === "fulfilled") continue;
      const e = t.reason as AetherError;
      assert.equal(e.code, "conflict");
      assert.equal(e.extra.errorName, "BelowMinimum");
      assert.deepEqual(e.extra.details, { current: 0 });
      assert.match(e.message, /"stock" is 0; adding -1 would go below 0/);
    }
    assert.equal(JSON.parse((await c.store(2).get("stock"))!.value).$n, 0);
  } finally {
    c.stop();
  }
});

Deno.test("store add: clear errors for a value that is not a number and for bad arguments", async () => {
  const c = cluster();
  try {
    await c.store(0).put("text", JSON.stringify("hello"));
    await c.store(0).put("raw", "not json");
    await assert.rejects(c.store(1).add("text", 1), (e: AetherError) => {
      assert.equal(e.code, "bad_request");
      assert.equal(e.extra.errorName, "NotANumber");
      assert.match(e.message, /"text" holds a string, not a number/);
      return true;
    });
    await assert.rejects(c.store(2).add("raw", 1), /"raw" holds text that is not JSON, not a number/);
    await assert.rejects(c.store(0).add("k", Number.NaN), /delta must be a finite number/);
    await assert.rejects(c.store(0).add("k", 1, { min: Infinity }), /min must be a finite number/);
    await assert.rejects(c.store(0).add("k", 1, { op: "" }), /op must be a string of 1 to 64/);
    await assert.rejects(c.store(0).add("k", 1, { ttlMs: -5 }), /ttlMs must be a positive integer/);
    await c.store(0).add("big", Number.MAX_VALUE);
    await assert.rejects(c.store(0).add("big", Number.MAX_VALUE), /is not a finite number/);
  } finally {
    c.stop();
  }
});

Deno.test("store add: ttlMs sets the expiry; an add without it keeps the entry's expiry", async () => {
  const c = cluster();
  try {
    await c.store(0).add("window", 1, { ttlMs: 200 });
    const first = await c.store(1).get("window");
    assert.ok(first?.expiresAtMs);
    await c.store(2).add("window", 1);
    assert.equal((await c.store(1).get("window"))?.expiresAtMs, first.expiresAtMs);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await c.store(0).get("window"), undefined);
    assert.equal((await c.store(0).add("window", 1)).value, 1, "an expired counter starts again from 0");
  } finally {
    c.stop();
  }
});

Deno.test("store add: a retry of a landed add is answered only once the entry reaches a write quorum", async () => {
  const c = cluster();
  try {
    const key = "quorum";
    const primary = c.primaryIndex(key);
    const others = [0, 1, 2].filter((i) => i !== primary);
    await c.store(primary).add(key, 1, { op: "one" });
    // Both other owners unreachable: the add lands on the primary only; its outcome is unknown.
    for (const i of others) c.cut.add(NODES[i]);
    await assert.rejects(
      c.store(primary).add(key, 1, { op: "two", timeoutMs: 1_000 }),
      (e: AetherError) => e.code === "unavailable" && /may or may not have been applied/.test(e.message),
    );
    // The retry finds its id but no quorum yet: still unknown, not a success.
    await assert.rejects(c.store(primary).add(key, 1, { op: "two", timeoutMs: 1_000 }), /write quorum/);
    c.cut.clear();
    // Once the owners are back, the retry replicates the entry and reports it, counted once.
    assert.equal((await c.store(others[0]).add(key, 1, { op: "two" })).value, 2);
    const counter = readCounter(c.nodes[others[1]].local("t")!.get(key)!.value!);
    assert.ok(typeof counter !== "string" && counter.n === 2);
  } finally {
    c.stop();
  }
});

Deno.test("store add: a peer's add message with a missing or bad field is dropped, never applied", () => {
  const op = { t: "op", id: 1, s: "t", p: 0, op: "add", key: "k", delta: 1 };
  assert.equal(typeof parseStoreMessage(op), "object");
  assert.equal(parseStoreMessage({ ...op, delta: undefined }), "op: bad field delta");
  assert.equal(parseStoreMessage({ ...op, delta: "1" }), "op: bad field delta");
  assert.equal(parseStoreMessage({ ...op, min: null }), "op: bad field min");
  assert.equal(parseStoreMessage({ ...op, addId: "x".repeat(65) }), "op: bad field addId");
  const refused = { t: "op-r", id: 1, ok: false, code: "conflict", message: "m", retry: false };
  assert.equal(parseStoreMessage({ ...refused, name: "BelowMinimum", n: "3" }), "op-r: bad field n");
  assert.equal(typeof parseStoreMessage({ ...refused, name: "BelowMinimum", n: 3 }), "object");
});
