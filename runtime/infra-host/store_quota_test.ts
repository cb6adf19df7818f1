/**
 * The per-group storage bound (_group_quota.ts) on three in-process store nodes joined by an in-memory
 * transport: a group writing past its share of a partition is refused with QuotaExceeded (413) naming the
 * group, the store and the bound, nothing stored is lost, another group still writes, an overwrite does not
 * count twice, deletes free room, expired entries drop out when recounted, a new primary recounts, the cache
 * service's puts are bounded the same way, and the cache of counts is bounded.
 */

import assert from "node:assert/strict";
import { AetherError, type NodeId } from "../core/mod.ts";
import type { StoreConfigRecord } from "../model/mod.ts";
import { MemoryEngine } from "./engine.ts";
import { partitionOf } from "./partitioning.ts";
import { LocalStore } from "./_local.ts";
import { ENTRY_OVERHEAD_BYTES, entryBytes, groupOf, GroupQuota, partitionShare } from "./_group_quota.ts";
import { TEST_STORE, testStoreCluster } from "./_store_testing.ts";
// services.ts first: it imports every service.
import { SERVICES } from "./services.ts";

const PARTITIONS = 4;
const NODES: NodeId[] = ["n1", "n2", "n3"];
/**
 * Bytes per group in the test store: a share of ceil(2 × 1500 / 4) = 750 bytes per partition, where an entry
 * of a short key and VALUE counts about 170 (key + value + ENTRY_OVERHEAD_BYTES): four fit, five do not.
 */
const LIMIT_BYTES = 1500;
/** How soon a full count is recounted here (the default is 10 s). */
const RECOUNT_AFTER_MS = 500;

function cluster() {
  return testStoreCluster({
    nodes: NODES,
    partitions: PARTITIONS,
    settings: { maxGroupBytesByStore: { [TEST_STORE]: LIMIT_BYTES }, groupRecountAfterMs: RECOUNT_AFTER_MS },
  });
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
    assert.equal(partitionShare(LIMIT_BYTES, PARTITIONS), 750);
    const keys = keysIn(1, "g1/k", 5);
    // Each entry counts key + value characters + 64 (~170): four fit in the 750-byte share, the fifth does not.
    for (const [i, key] of keys.slice(0, 4).entries()) await c.store(i % 3).put(key, VALUE);
    const refused = await refusal(c.store(1).put(keys[4], VALUE));
    assert.equal(refused.code, "too_large");
    assert.equal(refused.status, 413);
    assert.equal(refused.extra.errorName, "QuotaExceeded");
    assert.match(refused.message, /^store t: group g1 keeps \d+ bytes in partition 1;/);
    assert.match(refused.message, /share of 750 bytes/);
    assert.match(refused.message, /MAX_GROUP_BYTES_PER_STORE 1500 bytes per group per store/);
    // The share has ~70 bytes left: an atomic add creating a new key (~88 with its counter) is refused too.
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
  assert.equal(entryBytes({ key: "ab", value: "cde" }), 5 + ENTRY_OVERHEAD_BYTES);
  // A store with no bound (0) never refuses.
  const unbounded = new GroupQuota(() => 0);
  assert.equal(unbounded.check(store, 0, "g/k", undefined, 10 ** 9, 0), undefined);
});

Deno.test("store quota: the cache service's puts are bounded too; remove frees room, other groups put", async () => {
  const c = cluster();
  const service = SERVICES.find((s) => s.name === "cache")!;
  const cache = (group: string, method: string, payload: Record<string, unknown>) =>
    service.serve!(c.store(0), { group, method, payload, deadlineMs: Date.now() + 5_000, requestId: "r" });
  try {
    // Store keys `{group}/{cache}/{generation}/{key}`; keys of one partition, values of ~100 bytes: four fit.
    const keys: string[] = [];
    for (let i = 0; keys.length < 5; i++) {
      if (partitionOf(`g.hog/c/0/k${i}`, PARTITIONS) === 3) keys.push(`k${i}`);
    }
    for (const key of keys.slice(0, 4)) await cache("g.hog", "put", { cache: "c", key, value: VALUE });
    const refused = await refusal(cache("g.hog", "put", { cache: "c", key: keys[4], value: VALUE }));
    assert.equal(refused.extra.errorName, "QuotaExceeded");
    assert.match(refused.message, /group g\.hog keeps \d+ bytes in partition 3/);
    await cache("g.other", "put", { cache: "c", key: keys[4], value: VALUE });
    assert.equal(await cache("g.hog", "remove", { cache: "c", key: keys[0] }), true);
    await cache("g.hog", "put", { cache: "c", key: keys[4], value: VALUE });
    assert.deepEqual(await cache("g.hog", "get", { cache: "c", key: keys[4] }), VALUE);
  } finally {
    c.stop();
  }
});

Deno.test("store quota: a new primary recounts what the group keeps and refuses the same", async () => {
  const c = cluster();
  try {
    const keys = keysIn(0, "g5/k", 5);
    for (const key of keys.slice(0, 4)) await c.store(0).put(key, VALUE);
    assert.equal((await refusal(c.store(0).put(keys[4], VALUE))).extra.errorName, "QuotaExceeded");
    // Partition 0's primary was n1 (0 % 3); now n2 leads it, then n1 again: each counts from its copy.
    const rotate = (first: number) =>
      c.setMap({
        owners: Array.from({ length: PARTITIONS }, (_, p) => [0, 1, 2].map((i) => (p + i + first) % 3)),
      });
    rotate(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await refusal(c.store(2).put(keys[4], VALUE))).extra.errorName, "QuotaExceeded");
    assert.equal(await c.store(1).delete(keys[0]), true, "n2 frees room as primary");
    rotate(0);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // n1 leads again: its count was dropped when it stopped leading, so the delete made on n2 is seen.
    await c.store(0).put(keys[4], VALUE);
    assert.equal((await c.store(1).get(keys[4]))?.value, VALUE);
  } finally {
    c.stop();
  }
});
