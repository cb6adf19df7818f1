import { deepStrictEqual as eq, strictEqual } from "node:assert";
import { LruIndex } from "./_cache_lru.ts";

Deno.test("LRU by entries: the least recently used key leaves first; a touch saves a key", () => {
  const lru = new LruIndex({ maxEntries: 3, maxBytes: 0 }, 1_000);
  eq(lru.admit("a", 10, 1), []);
  eq(lru.admit("b", 10, 2), []);
  eq(lru.admit("c", 10, 3), []);
  strictEqual(lru.touch("a"), true); // order now b, c, a
  eq(lru.admit("d", 10, 4), [{ key: "b", version: 2 }]);
  eq(lru.keys(), ["c", "a", "d"]);
  eq(lru.admit("c", 10, 5), []); // a re-put refreshes, never evicts itself
  eq(lru.admit("e", 10, 6), [{ key: "a", version: 1 }]);
  eq(lru.keys(), ["d", "c", "e"]);
  strictEqual(lru.size, 3);
  strictEqual(lru.bytes, 30);
  strictEqual(lru.touch("zz"), false);
});

Deno.test("LRU by bytes: as many oldest keys leave as the new one needs; one oversized value stays alone", () => {
  const lru = new LruIndex({ maxEntries: 0, maxBytes: 100 }, 1_000);
  lru.admit("a", 40, 1);
  lru.admit("b", 40, 2);
  lru.admit("c", 20, 3);
  strictEqual(lru.bytes, 100);
  eq(lru.admit("d", 70, 4).map((e) => e.key), ["a", "b"]);
  eq(lru.keys(), ["c", "d"]);
  strictEqual(lru.bytes, 90);
  eq(lru.admit("big", 500, 5).map((e) => e.key), ["c", "d"]);
  eq(lru.keys(), ["big"]);
  lru.forget("big");
  strictEqual(lru.bytes, 0);
  strictEqual(lru.size, 0);
});

Deno.test("LRU: both bounds at once, and shrinking the limits evicts at once", () => {
  const lru = new LruIndex({ maxEntries: 10, maxBytes: 50 }, 1_000);
  for (let i = 0; i < 10; i++) lru.admit(`k${i}`, 5, i);
  strictEqual(lru.size, 10);
  eq(lru.admit("k10", 5, 10).map((e) => e.key), ["k0"]); // by count
  eq(lru.admit("k11", 15, 11).map((e) => e.key), ["k1", "k2", "k3"]); // by bytes
  strictEqual(lru.bytes <= 50 && lru.size <= 10, true);
  eq(lru.setLimits({ maxEntries: 2, maxBytes: 0 }).map((e) => e.key), ["k4", "k5", "k6", "k7", "k8", "k9"]);
  eq(lru.keys(), ["k10", "k11"]);
  lru.clear();
  strictEqual(lru.size, 0);
});

Deno.test("LRU unbounded: every key counted, none evicted; beyond the tracking bound the oldest are forgotten", () => {
  const lru = new LruIndex({ maxEntries: 0, maxBytes: 0 }, 3);
  for (let i = 0; i < 3; i++) eq(lru.admit(`k${i}`, 10, i), []);
  strictEqual(lru.size, 3);
  strictEqual(lru.bytes, 30);
  strictEqual(lru.touch("k0"), true); // order now k1, k2, k0
  eq(lru.admit("k3", 5, 3), []); // over the tracking bound: k1 leaves the index, not the store
  eq(lru.keys(), ["k2", "k0", "k3"]);
  strictEqual(lru.bytes, 25);
  // Given bounds later, the tracked keys are what it evicts.
  eq(lru.setLimits({ maxEntries: 1, maxBytes: 0 }).map((e) => e.key), ["k2", "k0"]);
  eq(lru.keys(), ["k3"]);
});

Deno.test("LRU: the tracking bound of unbounded caches never limits a bounded one", () => {
  const lru = new LruIndex({ maxEntries: 5, maxBytes: 0 }, 2);
  for (let i = 0; i < 5; i++) eq(lru.admit(`k${i}`, 1, i), []);
  strictEqual(lru.size, 5);
  eq(lru.admit("k5", 1, 5), [{ key: "k0", version: 0 }]);
  // Made unbounded, it keeps what the tracking bound allows and evicts nothing.
  eq(lru.setLimits({ maxEntries: 0, maxBytes: 0 }), []);
  eq(lru.keys(), ["k4", "k5"]);
});
