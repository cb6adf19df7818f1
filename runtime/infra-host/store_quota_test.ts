/**
 * The per-group storage bound (_group_quota.ts) on three in-process store nodes joined by an in-memory
 * transport: a group writing past its share of a partition is refused with QuotaExceeded (413) naming the
 * group, the store and the bound, nothing stored is lost, another group still writes, an overwrite does not
 * count twice, deletes free room, expired entries drop out when recounted, and the cache of counts is bounded.
 */

import assert from "node:assert/strict";
import { AetherError, type NodeId, silentLogger, systemClock } from "../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord } from "../model/mod.ts";
import { MemoryEngine } from "./engine.ts";
import { partitionOf } from "./partitioning.ts";
import { LocalStore } from "./_local.ts";
import { entryBytes, groupOf, GroupQuota, partitionShare } from "./_group_quota.ts";
import { type StoreMeta, StoreNode, type StoreTransport } from "./store_node.ts";

const PARTITIONS = 4;
const NODES: NodeId[] = ["n1", "n2", "n3"];
/** Bytes per group in the test store: a share of ceil(2 × 1000 / 4) = 500 bytes per partition. */
const LIMIT_BYTES = 1000;
/** How soon a full count is recounted here (the default is 10 s). */
const RECOUNT_AFTER_MS = 500;

function cluster() {
  const handlers = new Map<NodeId, (from: NodeId, message: unknown) => void>();
  const config: StoreConfigRecord = {
    replicas: 3,
    writeQuorum: 2,
    engine: "memory",
    partitions: PARTITIONS,
    createdAt: 1,
  };
  const map: PartitionMapRecord = {
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
    onChange: () => () => {},
  };
  const nodes = NODES.map((self) => {
    const transport: StoreTransport = {
      send(to, message) {
        const handler = handlers.get(to);
        if (!handler) return false;
        const copy = JSON.parse(JSON.stringify(message));
        setTimeout(() => handler(self, copy), 0);
        return true;
      },
      onMessage(handler) {
        handlers.set(self, handler);
        return () => handlers.delete(self);
      },
      isConnected: (node) => handlers.has(node),
    };
    return new StoreNode({
      self,
      transport,
      meta,
      timers: systemClock,
      memory: new MemoryEngine((key) => partitionOf(key, PARTITIONS), { durable: true }),
      log: silentLogger,
      settings: {
        replicateTimeoutMs: 300,
        opTimeoutMs: 2_000,
        maxGroupBytesByStore: { t: LIMIT_BYTES },
        groupRecountAfterMs: RECOUNT_AFTER_MS,
      },
    });
  });
  return { nodes, store: (i: number) => nodes[i].handle("t")!, stop: () => nodes.forEach((n) => n.stop()) };
}

/** `count` keys `{prefix}{i}` that all fall in partition p. */
function keysIn(p: number, prefix: string, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < count; i++) {
    if (partitionOf(`${prefix}${i}`, PARTITIONS) === p) keys.push(`${prefix}${i}`);
  }
  return keys;
}

async function refusal(write: Promise<unknown>): Promise<AetherError> {
  try {
    await write;
  } catch (e) {
    assert.ok(e instanceof AetherError, String(e));
    return e;
  }
  assert.fail("the write was not refused");
}

const VALUE = "v".repeat(100);

Deno.test("store quota: a group past its share is refused (QuotaExceeded), others write, deletes free room", async () => {
  const c = cluster();
  try {
    assert.equal(partitionShare(LIMIT_BYTES, PARTITIONS), 500);
    const keys = keysIn(1, "g1/k", 6);
    // Each entry counts key + value characters (~105): four fit in the 500-byte share, the fifth does not.
    for (const [i, key] of keys.slice(0, 4).entries()) await c.store(i % 3).put(key, VALUE);
    const refused = await refusal(c.store(1).put(keys[4], VALUE));
    assert.equal(refused.code, "too_large");
    assert.equal(refused.status, 413);
    assert.equal(refused.extra.errorName, "QuotaExceeded");
    assert.match(refused.message, /^store t: group g1 keeps \d+ bytes in partition 1;/);
    assert.match(refused.message, /share of 500 bytes/);
    assert.match(refused.message, /MAX_GROUP_BYTES_PER_STORE 1000 bytes per group per store/);
    // Fill the share to 5 bytes short: an atomic add creating a new key is then refused the same way.
    const used = keys.slice(0, 4).reduce((sum, key) => sum + key.length + VALUE.length, 0);
    await c.store(0).put(keys[5], "x".repeat(500 - used - keys[5].length - 5));
    assert.equal(
      (await refusal(c.store(2).add(keysIn(1, "g1/a", 1)[0], 1))).extra.errorName,
      "QuotaExceeded",
    );
    // Nothing already stored is lost, nothing refused was written.
    for (const key of keys.slice(0, 4)) assert.equal((await c.store(2).get(key))?.value, VALUE, key);
    assert.equal(await c.store(0).get(keys[4]), undefined);
    // Overwriting a key replaces its bytes (no double count), also through every node; shrinking is allowed.
    for (let i = 0; i < 10; i++) await c.store(i % 3).put(keys[0], VALUE);
    await c.store(0).put(keys[1], "small");
    await c.store(1).put(keys[1], VALUE);
    // Another group in the same store (and the same partition) still writes.
    for (const key of keysIn(1, "g2/k", 4)) await c.store(0).put(key, VALUE);
    // A delete frees room for the refused write.
    assert.equal(await c.store(2).delete(keys[2]), true);
    await c.store(1).put(keys[4], VALUE);
    assert.equal((await c.store(0).get(keys[4]))?.value, VALUE);
    // A key outside any group (no '/') is not counted.
    for (const key of keysIn(1, "plain", 8)) await c.store(0).put(key, VALUE);
  } finally {
    c.stop();
  }
});

Deno.test("store quota: expired entries drop out when the primary recounts before refusing", async () => {
  const c = cluster();
  try {
    const keys = keysIn(2, "g3/k", 5);
    for (const key of keys.slice(0, 4)) await c.store(0).put(key, VALUE, { ttlMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, RECOUNT_AFTER_MS + 100));
    await c.store(1).put(keys[4], VALUE);
    assert.equal((await c.store(2).get(keys[4]))?.value, VALUE);
  } finally {
    c.stop();
  }
});

Deno.test("store quota: the counts cached on a node are bounded (oldest dropped) and recounted on use", () => {
  const config: StoreConfigRecord = {
    replicas: 1,
    writeQuorum: 1,
    engine: "memory",
    partitions: 4,
    createdAt: 1,
  };
  const engine = new MemoryEngine((key) => partitionOf(key, 4));
  const store = new LocalStore("n1", "t", config, engine);
  const quota = new GroupQuota(() => LIMIT_BYTES, { maxCounts: 3 });
  for (let g = 0; g < 10; g++) assert.equal(quota.check(store, 0, `g${g}/k`, undefined, 10, 0), undefined);
  assert.equal(quota.size, 3);
  assert.equal(groupOf("org.example/m/k"), "org.example");
  assert.equal(groupOf("/k"), undefined);
  assert.equal(entryBytes({ key: "ab", value: null }), 0);
  assert.equal(entryBytes({ key: "ab", value: "cde" }), 5);
  // A store with no bound (0) never refuses.
  const unbounded = new GroupQuota(() => 0);
  assert.equal(unbounded.check(store, 0, "g/k", undefined, 10 ** 9, 0), undefined);
});
