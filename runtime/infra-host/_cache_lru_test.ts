import { deepStrictEqual as eq, strictEqual } from "node:assert";
import { LruIndex } from "./_cache_lru.ts";

Deno.test("LRU by entries: the least recently used key leaves first; a touch saves a key", () => {
  const lru = new LruIndex({ maxEntries: 3, maxBytes: 0 });
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
  const lru = new LruIndex({ maxEntries: 0, maxBytes: 100 });
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
  const lru = new LruIndex({ maxEntries: 10, maxBytes: 50 });
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
