/**
 * How soon the store answers after a failover, on three in-process store nodes joined by an in-memory
 * transport: an operation reaching a primary that is still taking its partition over waits for the promotion
 * (it is not refused and retried a backoff later), and a call retrying while its primary is unreachable retries
 * as soon as a new partition map arrives.
 */

import assert from "node:assert/strict";
import { partitionOf } from "./partitioning.ts";
import { testStoreCluster } from "./_store_testing.ts";

const PARTITIONS = 4;

/** Three store nodes; `down` cuts a node off (not connected, nothing delivered); `setMap` is a new map. */
const cluster = () => testStoreCluster({ partitions: PARTITIONS, settings: { opTimeoutMs: 5_000 } });

/** A key whose partition's primary (first owner in the first map) is node `index`. */
function keyOf(index: number): string {
  for (let i = 0;; i++) if (partitionOf(`k${i}`, PARTITIONS) % 3 === index) return `k${i}`;
}

Deno.test("store failover: an operation at a primary still taking its partition over waits for it, no retry", async () => {
  const c = cluster();
  try {
    // Just started: every primary is streaming its partitions from the other owners (a promotion). Before,
    // the primary refused the put ("being taken over") and the caller retried a backoff later.
    const { version } = await c.nodes[0].handle("t")!.put(keyOf(0), "v");
    assert.ok(version > 0);
    assert.equal(c.nodes[0].stats.retries, 0, "answered after the promotion, without a retry");
    assert.equal(c.nodes[0].stats.promotions > 0, true);
  } finally {
    c.stop();
  }
});

Deno.test("store failover: a call retrying for an unreachable primary retries as soon as a new map names another", async () => {
  const c = cluster();
  try {
    // Every partition promoted first.
    for (const [i, node] of c.nodes.entries()) await node.handle("t")!.put(keyOf(i), "before");
    c.down.add("n1");
    const n2 = c.nodes[1];
    const key = keyOf(0);
    const startedAt = performance.now();
    const put = n2.handle("t")!.put(key, "after");
    // Wait until the call sleeps before its 6th retry (backoff 200 ms from then on), then fail n1 over.
    while (n2.stats.retries < 6) await new Promise((r) => setTimeout(r, 1));
    const failedOverAt = performance.now();
    c.setMap({ owners: Array.from({ length: PARTITIONS }, (_, p) => [1 + (p % 2), 2 - (p % 2)]) });
    await put;
    const afterMapMs = performance.now() - failedOverAt;
    assert.ok(failedOverAt - startedAt >= 300, "the call was retrying");
    // Before, it slept out its backoff (up to 200 ms) first.
    assert.ok(
      afterMapMs < 120,
      `answered ${afterMapMs.toFixed(0)} ms after the new map (its backoff: 200 ms)`,
    );
    assert.equal(JSON.parse(JSON.stringify((await n2.handle("t")!.get(key))?.value)), "after");
  } finally {
    c.stop();
  }
});
