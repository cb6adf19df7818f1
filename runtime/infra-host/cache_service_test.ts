/**
 * The cache service (cache_service.ts) on one in-process store node: an unbounded cache (the default) reports
 * the entries and bytes put through this node in its stats and in `cacheStats()` (the metrics), and never
 * evicts; a bounded one evicts its least recently used keys.
 */

import assert from "node:assert/strict";
import type { NodeId } from "../core/mod.ts";
import { testStoreCluster } from "./_store_testing.ts";
// services.ts first: it imports every service.
import { SERVICES } from "./services.ts";
import { cacheStats } from "./cache_service.ts";

const CACHE_SERVICE = SERVICES.find((s) => s.name === "cache")!;
const PARTITIONS = 4;
const SELF: NodeId = "n1";

function oneNode() {
  const c = testStoreCluster({ nodes: [SELF], partitions: PARTITIONS });
  const cache = (group: string, method: string, payload: Record<string, unknown>) =>
    CACHE_SERVICE.serve!(c.store(0), {
      group,
      method,
      payload,
      deadlineMs: Date.now() + 5_000,
      requestId: "r",
    });
  return { cache, stop: c.stop };
}

type Stats = { entries: number; bytes: number; evictions: number; puts: number; hits: number };

Deno.test("cache: an unbounded cache counts its entries and bytes (stats and metrics) and never evicts", async () => {
  const c = oneNode();
  try {
    for (let i = 0; i < 5; i++) {
      await c.cache("g.unbounded", "put", { cache: "links", key: `k${i}`, value: i });
    }
    await c.cache("g.unbounded", "put", { cache: "links", key: "k0", value: "again" }); // a re-put: one entry
    const stats = await c.cache("g.unbounded", "stats", { cache: "links" }) as Stats;
    // Keys k0..k4 (2 bytes each) with values 1..4 (1 byte each) and "again" (7 bytes).
    assert.equal(stats.entries, 5);
    assert.equal(stats.bytes, 5 * 2 + 4 + 7);
    assert.equal(stats.evictions, 0);
    const metrics = cacheStats().find((s) => s.cache === "g.unbounded/links");
    assert.equal(metrics?.entries, 5);
    assert.equal(metrics?.bytes, 21);
    for (let i = 0; i < 5; i++) {
      assert.notEqual(await c.cache("g.unbounded", "get", { cache: "links", key: `k${i}` }), undefined);
    }
    await c.cache("g.unbounded", "remove", { cache: "links", key: "k1" });
    assert.equal((await c.cache("g.unbounded", "stats", { cache: "links" }) as Stats).entries, 4);
  } finally {
    c.stop();
  }
});

Deno.test("cache: bounding an unbounded cache later evicts its least recently used keys", async () => {
  const c = oneNode();
  try {
    for (let i = 0; i < 4; i++) await c.cache("g.later", "put", { cache: "c", key: `k${i}`, value: i });
    await c.cache("g.later", "configure", { cache: "c", maxEntries: 2 });
    const stats = await c.cache("g.later", "stats", { cache: "c" }) as Stats;
    assert.equal(stats.entries, 2);
    assert.equal(stats.evictions, 2);
    assert.equal(await c.cache("g.later", "get", { cache: "c", key: "k0" }), undefined);
    assert.equal(await c.cache("g.later", "get", { cache: "c", key: "k3" }), 3);
  } finally {
    c.stop();
  }
});
