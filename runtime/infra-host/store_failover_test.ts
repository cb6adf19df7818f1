/**
 * How soon the store answers after a failover, on three in-process store nodes joined by an in-memory
 * transport: an operation reaching a primary that is still taking its partition over waits for the promotion
 * (it is not refused and retried a backoff later), and a call retrying while its primary is unreachable retries
 * as soon as a new partition map arrives.
 */

import assert from "node:assert/strict";
import { type NodeId, silentLogger, systemClock } from "../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord } from "../model/mod.ts";
import { MemoryEngine } from "./engine.ts";
import { partitionOf } from "./partitioning.ts";
import { type StoreMeta, StoreNode, type StoreTransport } from "./store_node.ts";

const PARTITIONS = 4;
const NODES: NodeId[] = ["n1", "n2", "n3"];

/** Three store nodes; `down` cuts a node off (not connected, nothing delivered); `setMap` is a new map. */
function cluster() {
  const handlers = new Map<NodeId, (from: NodeId, message: unknown) => void>();
  const down = new Set<NodeId>();
  const listeners = new Set<(store: string) => void>();
  const config: StoreConfigRecord = {
    replicas: 3,
    writeQuorum: 2,
    engine: "memory",
    partitions: PARTITIONS,
    createdAt: 1,
  };
  let map: PartitionMapRecord = {
    epoch: 1,
    nodes: NODES,
    owners: Array.from({ length: PARTITIONS }, (_, p) => [p % 3, (p + 1) % 3, (p + 2) % 3]),
    moving: {},
    updatedAt: 1,
  };
  const meta: StoreMeta = {
    stores: () => ["t"],
    config: (s) => s === "t" ? config : undefined,
    map: (s) => s === "t" ? map : undefined,
    createConfig: () => Promise.resolve(),
    reports: () => new Map(),
    writeSyncReport: () => Promise.resolve(),
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const nodes = NODES.map((self) => {
    const transport: StoreTransport = {
      send(to, message) {
        const handler = handlers.get(to);
        if (!handler || down.has(to) || down.has(self)) return false;
        const copy = JSON.parse(JSON.stringify(message));
        setTimeout(() => {
          if (!down.has(to) && !down.has(self)) handler(self, copy);
        }, 0);
        return true;
      },
      onMessage(handler) {
        handlers.set(self, handler);
        return () => handlers.delete(self);
      },
      isConnected: (node) => handlers.has(node) && !down.has(node) && !down.has(self),
    };
    return new StoreNode({
      self,
      transport,
      meta,
      timers: systemClock,
      memory: new MemoryEngine((key) => partitionOf(key, PARTITIONS), { durable: true }),
      log: silentLogger,
      settings: { replicateTimeoutMs: 300, opTimeoutMs: 5_000 },
    });
  });
  return {
    nodes,
    down,
    setMap(next: Omit<PartitionMapRecord, "epoch" | "updatedAt" | "moving" | "nodes">) {
      map = { ...map, ...next, epoch: map.epoch + 1, moving: {} };
      for (const listener of listeners) listener("t");
    },
    stop: () => nodes.forEach((n) => n.stop()),
  };
}

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
