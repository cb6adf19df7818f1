/**
 * The shop's kv group commit (kv_batcher.ts) against testSlice's in-memory kv service (the cluster's kv
 * semantics): concurrent operations share calls, answers reach their own callers, two writes of one key never
 * share a batch, a failed call fails only its own batch's operations.
 */

import { deepEqual, equal, ok, rejects } from "node:assert/strict";
import { TestInfra } from "@aether/slices/testing";
import type { KvBatchResult, KvClient, KvOperation } from "@aether/slices";
import { KvBatcher, MAX_OPS_PER_BATCH } from "./kv_batcher.ts";

/** A kv client of map `m` whose batches the in-memory service answers; records each call's operations. */
function client(infra = new TestInfra(), failing = false) {
  const sent: KvOperation[][] = [];
  const kv = {
    batch: async (ops: readonly KvOperation[]) => {
      sent.push([...ops]);
      await new Promise((r) => setTimeout(r, 5));
      if (failing) throw Object.assign(new Error("the kv service is unavailable"), { name: "Unavailable" });
      const outcome = infra.serve("kv", "batch", { map: "m", ops: ops.map((o) => ({ ...o })) });
      if (!outcome.ok) throw new Error(outcome.error.message);
      return outcome.value as unknown as KvBatchResult[];
    },
  } as unknown as KvClient;
  return { kv, sent };
}

Deno.test("kv batcher: concurrent operations share calls and each gets its own answer", async () => {
  const { kv, sent } = client();
  const batcher = new KvBatcher();
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => batcher.run(kv, { op: "add", key: `k${i % 5}`, delta: 1, min: 0 })),
  );
  ok(results.every((r) => r.ok));
  // The first ones go at once, alone (four batches in flight); the rest wait and go together.
  ok(sent.length <= 5, `${sent.length} calls for 100 operations`);
  ok(sent.every((ops) => ops.length <= MAX_OPS_PER_BATCH));
  equal(batcher.calls, sent.length);
  const totals = await batcher.all(kv, Array.from({ length: 5 }, (_, i) => ({ op: "get", key: `k${i}` })));
  deepEqual(totals.map((r) => r.ok && r.result.value), [20, 20, 20, 20, 20]);
  // A failure is the operation's own.
  const [short, fine] = await batcher.all(kv, [
    { op: "add", key: "k0", delta: -50, min: 0 },
    { op: "add", key: "k1", delta: -5, min: 0 },
  ]);
  ok(!short.ok && short.error.name === "BelowMinimum");
  ok(fine.ok && fine.result.value === 15);
});

Deno.test("kv batcher: two writes of one key go in different batches; a failed call fails its operations", async () => {
  const { kv, sent } = client();
  const batcher = new KvBatcher();
  const [first, second, read] = await batcher.all(kv, [
    { op: "put", key: "order", value: 1, ifVersion: 0 },
    { op: "put", key: "order", value: 2, ifVersion: 0 },
    { op: "get", key: "order" },
  ]);
  ok(first.ok);
  ok(!second.ok && second.error.name === "VersionMismatch", JSON.stringify(second));
  ok(read.ok);
  ok(sent.every((ops) => ops.filter((o) => o.key === "order" && o.op === "put").length <= 1));

  const down = client(new TestInfra(), true);
  const broken = new KvBatcher();
  await rejects(broken.run(down.kv, { op: "get", key: "x" }), /the kv service is unavailable/);
});

Deno.test("kv batcher: a batch goes with the latest deadline's client; an operation past its deadline is not sent", async () => {
  const infra = new TestInfra();
  const calls: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const clientNamed = (name: string) =>
    ({
      batch: async (ops: readonly KvOperation[]) => {
        calls.push(name);
        if (name === "first") await gate;
        const outcome = infra.serve("kv", "batch", { map: "m", ops: ops.map((o) => ({ ...o })) });
        if (!outcome.ok) throw new Error(outcome.error.message);
        return outcome.value as unknown as KvBatchResult[];
      },
    }) as unknown as KvClient;
  const batcher = new KvBatcher();
  const now = Date.now();
  // Four batches in flight (puts of one key travel apart), held until released.
  const held = Array.from(
    { length: 4 },
    (_, i) => batcher.run(clientNamed("first"), { op: "put", key: "k", value: i }, now + 60_000),
  );
  await new Promise((r) => setTimeout(r, 0));
  // Waiting meanwhile: a young request's operation, then an old request's give-back (the newest operation), and
  // one whose request's deadline passes before a batch has room.
  const young = batcher.run(clientNamed("young"), { op: "add", key: "a", delta: 1 }, now + 30_000);
  const old = batcher.run(clientNamed("old"), { op: "add", key: "b", delta: 1 }, now + 5_000);
  const late = batcher.run(clientNamed("late"), { op: "add", key: "c", delta: 1 }, now + 50);
  await new Promise((r) => setTimeout(r, 100));
  release();
  const [y, o, l] = await Promise.all([young, old, late]);
  ok(y.ok && o.ok, "both sent");
  ok(!l.ok && l.error.name === "DeadlineExceeded", JSON.stringify(l));
  // Before, the batch went with the newest operation's client (the old request, about to expire).
  deepEqual(calls.slice(4), ["young"]);
  ok((await Promise.all(held)).every((r) => r.ok));
});
