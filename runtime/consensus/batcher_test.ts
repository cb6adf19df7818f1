import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { Batcher, type BatcherConfig, type Outcome } from "./batcher.ts";

const config: BatcherConfig = {
  self: "n1",
  incarnation: "7",
  maxBatchBytes: 100,
  maxBatchCommands: 3,
  maxQueuedBytes: 250,
};

function collect<R>() {
  const outcomes: Outcome<R>[] = [];
  return { outcomes, ticket: (o: Outcome<R>) => outcomes.push(o) };
}

Deno.test("batches are formed in order, one in flight at a time, with session ids from seq 1", () => {
  const b = new Batcher<string, number>(config);
  const { ticket } = collect<number>();
  for (const c of ["a", "b", "c", "d"]) b.enqueue(c, 10, ticket);
  const first = b.takeBatch(1000)!;
  assert.deepEqual(first, { id: "n1:7:1", submitter: "n1", createdAt: 1000, commands: ["a", "b", "c"] });
  assert.equal(b.inFlight, "n1:7:1");
  assert.equal(b.takeBatch(1001), null, "one batch in flight at most");
  assert.ok(b.onDecided("n1:7:1", [1, 2, 3]));
  const second = b.takeBatch(1002)!;
  assert.deepEqual([second.id, second.commands], ["n1:7:2", ["d"]]);
  assert.equal(b.takeBatch(1003), null);
});

Deno.test("a batch is bounded by bytes, but a single large command still forms a batch", () => {
  const b = new Batcher<string, number>(config);
  const { ticket } = collect<number>();
  b.enqueue("big", 120, ticket);
  b.enqueue("x", 60, ticket);
  b.enqueue("y", 50, ticket);
  assert.deepEqual(b.takeBatch(0)!.commands, ["big"]);
  b.onDecided("n1:7:1", [0]);
  assert.deepEqual(b.takeBatch(0)!.commands, ["x"], "60 + 50 exceeds maxBatchBytes 100");
});

Deno.test("decided results reach each command's ticket in order", () => {
  const b = new Batcher<string, string>(config);
  const got: string[] = [];
  for (const c of ["p", "q"]) b.enqueue(c, 1, (o) => got.push(o.ok ? `${c}=${o.result}` : `${c}:error`));
  const batch = b.takeBatch(0)!;
  assert.equal(b.onDecided("other:1:1", ["zz"]), false, "someone else's batch");
  assert.equal(b.onDecided(batch.id, ["r1", "r2"]), true);
  assert.deepEqual(got, ["p=r1", "q=r2"]);
  assert.equal(b.onDecided(batch.id, ["r1", "r2"]), false, "a re-decision is ignored");
  assert.ok(b.idle);
});

Deno.test("a duplicate decision (null results) and a dropped batch give 'outcome unknown'", () => {
  const b = new Batcher<string, number>(config);
  const { outcomes, ticket } = collect<number>();
  b.enqueue("a", 1, ticket);
  b.onDecided(b.takeBatch(0)!.id, null);
  b.enqueue("b", 1, ticket);
  const second = b.takeBatch(0)!;
  b.onDropped(["x:1:1"]);
  assert.equal(b.inFlight, second.id, "dropping other batches changes nothing");
  b.onDropped([second.id]);
  assert.equal(b.inFlight, undefined);
  assert.equal(outcomes.length, 2);
  for (const o of outcomes) {
    assert.ok(!o.ok && o.error.extra.outcome === "unknown" && /outcome unknown/.test(o.error.message));
  }
});

Deno.test("the queue is bounded: enqueue refuses with 'overloaded' instead of growing", () => {
  const b = new Batcher<string, number>(config);
  const { ticket } = collect<number>();
  b.enqueue("a", 200, ticket);
  assert.throws(
    () => b.enqueue("b", 60, ticket),
    (e: unknown) => e instanceof AetherError && e.code === "overloaded" && e.extra.retryAfterSeconds === 1,
  );
  assert.equal(b.queuedBytes, 200);
  assert.equal(b.refusedQueueFull, 1);
  b.enqueue("c", 50, ticket);
  assert.throws(
    () => b.enqueue("huge", 251, ticket),
    (e: unknown) => e instanceof AetherError && e.code === "too_large",
  );
  assert.throws(
    () => b.enqueue("zero", 0, ticket),
    (e: unknown) => e instanceof AetherError && e.code === "bad_request",
  );
  b.takeBatch(0);
  assert.equal(b.queuedBytes, 50, "batched commands leave the queue");
});

Deno.test("failAll: queued commands get the given error, the batch in flight an unknown outcome", () => {
  const b = new Batcher<string, number>(config);
  const { outcomes, ticket } = collect<number>();
  for (const c of ["a", "b", "c", "d"]) b.enqueue(c, 1, ticket);
  b.takeBatch(0);
  b.failAll(new AetherError("unavailable", "shutting down"));
  assert.equal(outcomes.length, 4);
  const messages = outcomes.map((o) => o.ok ? "ok" : o.error.message);
  assert.deepEqual(messages.slice(0, 3).map((m) => m.startsWith("outcome unknown")), [true, true, true]);
  assert.equal(messages[3], "shutting down");
  assert.ok(b.idle);
});

Deno.test("enqueueAsync resolves and rejects through a promise", async () => {
  const b = new Batcher<string, number>(config);
  const good = b.enqueueAsync("a", 1);
  b.onDecided(b.takeBatch(0)!.id, [42]);
  assert.equal(await good, 42);
  const bad = b.enqueueAsync("b", 1);
  b.onDropped([b.takeBatch(0)!.id]);
  await assert.rejects(bad, /outcome unknown/);
});

Deno.test("a ticket that throws does not keep the others from their outcome", () => {
  const b = new Batcher<string, number>(config);
  const seen: number[] = [];
  b.enqueue("a", 1, () => {
    throw new Error("boom");
  });
  b.enqueue("b", 1, (o) => o.ok && seen.push(o.result));
  const batch = b.takeBatch(0)!;
  assert.throws(() => b.onDecided(batch.id, [1, 2]), /boom/);
  assert.deepEqual(seen, [2]);
});

Deno.test("bad configuration is refused", () => {
  assert.throws(() => new Batcher({ ...config, incarnation: "a:b" }), /incarnation/);
  assert.throws(() => new Batcher({ ...config, maxBatchCommands: 0 }), /maxBatchCommands/);
});

Deno.test("result count must match the batch (a broken state machine is a bug)", () => {
  const b = new Batcher<string, number>(config);
  b.enqueue("a", 1, () => {});
  const batch = b.takeBatch(0)!;
  assert.throws(() => b.onDecided(batch.id, [1, 2]), /assertion failed/);
});

Deno.test("a batch the engine refused at submission fails with that error, and the next batch may go", () => {
  const b = new Batcher<string, number>(config);
  const { outcomes, ticket } = collect<number>();
  for (const c of ["a", "b", "c", "d"]) b.enqueue(c, 10, ticket);
  const first = b.takeBatch(0)!;
  const refusal = new AetherError("overloaded", "pending batches are full", { retryAfterSeconds: 1 });
  assert.equal(b.onRefused("n1:7:99", refusal), false, "not the batch in flight");
  assert.ok(b.onRefused(first.id, refusal));
  assert.deepEqual(outcomes, [1, 2, 3].map(() => ({ ok: false, error: refusal })));
  assert.equal(b.inFlight, undefined);
  assert.deepEqual(b.takeBatch(1)!.commands, ["d"]);
});
