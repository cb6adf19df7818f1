import assert from "node:assert/strict";
import { Rng } from "../core/mod.ts";
import { olderThan, PendingBatches } from "./_pending.ts";
import type { Batch } from "./types.ts";

function batch(id: string, createdAt: number): Batch<string> {
  return { id, submitter: id.split(":")[0], createdAt, commands: [] };
}

/** What the engine did before: the oldest by a scan over everything pending. */
function oldestByScan(batches: Iterable<Batch<string>>): Batch<string> | undefined {
  let oldest: Batch<string> | undefined;
  for (const b of batches) if (!oldest || olderThan(b, oldest)) oldest = b;
  return oldest;
}

Deno.test("pending batches: the oldest matches a full scan through random adds and deletes (ties by id)", () => {
  for (let seed = 1; seed <= 20; seed++) {
    const rng = new Rng(seed);
    const pending = new PendingBatches<string>(10_000);
    const reference = new Map<string, Batch<string>>();
    for (let step = 0; step < 500; step++) {
      if (reference.size > 0 && rng.next() < 0.4) {
        const ids = [...reference.keys()];
        const id = ids[Math.floor(rng.next() * ids.length)];
        assert.equal(pending.delete(id), true);
        reference.delete(id);
      } else {
        const b = batch(`n${Math.floor(rng.next() * 5)}:i:${step}`, Math.floor(rng.next() * 20));
        assert.equal(pending.add(b, rng.next() < 0.2), "added");
        reference.set(b.id, b);
      }
      assert.equal(pending.size, reference.size);
      assert.equal(pending.oldest(), oldestByScan(reference.values()), `seed ${seed} step ${step}`);
    }
  }
});

Deno.test("pending batches: full, it keeps the oldest others' batches and always its own; counts what it drops", () => {
  const pending = new PendingBatches<string>(3);
  assert.equal(pending.add(batch("b:i:1", 10), false), "added");
  assert.equal(pending.add(batch("b:i:2", 20), false), "added");
  assert.equal(pending.add(batch("b:i:3", 30), false), "added");
  assert.equal(pending.add(batch("b:i:1", 10), false), "known");
  assert.equal(pending.add(batch("c:i:1", 40), false), "refused", "newer than everything kept");
  assert.equal(
    pending.add(batch("c:i:2", 15), false),
    "added",
    "older than the newest kept: takes its place",
  );
  assert.equal(pending.has("b:i:3"), false);
  assert.equal(pending.foreignRefused, 2);
  assert.equal(pending.add(batch("a:i:1", 50), true), "added", "an own batch evicts the newest other's");
  assert.equal(pending.has("b:i:2"), false);
  assert.equal(pending.isOwn("a:i:1"), true);
  assert.equal(pending.fullOfOwn, false);
  assert.equal(pending.foreignRefused, 3);
  assert.deepEqual(pending.dropForeign(), ["b:i:1", "c:i:2"]);
  assert.equal(pending.oldest()?.id, "a:i:1");
  pending.add(batch("a:i:2", 1), true);
  pending.add(batch("a:i:3", 2), true);
  assert.equal(pending.fullOfOwn, true);
  assert.throws(() => pending.add(batch("a:i:4", 3), true), /assertion failed: pending batches: no place/);
  assert.equal(pending.add(batch("b:i:9", 0), false), "refused", "nothing of others' to evict");
});
