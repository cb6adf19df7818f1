import assert from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { AetherError } from "../core/mod.ts";
import type { KvEvent } from "./commands.ts";
import { KvState } from "./state.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

Deno.test("kv state: a transaction takes one revision for all its changes, even two writes of one key", () => {
  const state = new KvState();
  const events: KvEvent[] = [];
  const result = state.apply({
    type: "txn",
    compare: [],
    success: [
      { op: "put", key: "a", value: bytes("1") },
      { op: "put", key: "a", value: bytes("2") },
      { op: "delete", key: "a" },
      { op: "put", key: "a", value: bytes("3") },
    ],
    failure: [],
  }, events);
  assert.deepEqual(result, { ok: true, revision: 1, succeeded: true, deleted: 1 });
  assert.deepEqual(events.map((e) => `${e.type} ${e.key}@${e.revision}`), [
    "put a@1",
    "put a@1",
    "delete a@1",
    "put a@1",
  ]);
  assert.equal(state.get("a")?.version, 1);
  assert.equal(new TextDecoder().decode(state.get("a")!.value), "3");
});

Deno.test("kv state: commands that change nothing keep the revision and report no events", () => {
  const state = new KvState();
  state.apply({ type: "put", key: "k", value: bytes("v") });
  const events: KvEvent[] = [];
  assert.deepEqual(state.apply({ type: "barrier" }, events), { ok: true, revision: 1 });
  assert.deepEqual(state.apply({ type: "delete", key: "missing" }, events), {
    ok: true,
    revision: 1,
    deleted: 0,
  });
  assert.equal(state.apply({ type: "put", key: "k", value: bytes("w"), ifRevision: 7 }, events).ok, false);
  assert.deepEqual(
    state.apply(
      { type: "txn", compare: [], success: [{ op: "deletePrefix", prefix: "none/" }], failure: [] },
      events,
    ),
    { ok: true, revision: 1, succeeded: true, deleted: 0 },
  );
  assert.deepEqual(events, []);
  assert.equal(state.revision, 1);
});

Deno.test("kv state: a snapshot round-trips; a corrupt one fails as a broken invariant, not a user error", () => {
  const state = new KvState();
  state.applyBatch({
    id: "n1:i:1",
    submitter: "n1",
    createdAt: 0,
    commands: [{ type: "put", key: "x", value: bytes("1") }],
  });
  const copy = KvState.fromSnapshot(state.snapshot());
  assert.equal(copy.revision, 1);
  assert.equal(copy.get("x")?.modRevision, 1);
  // The batch-id filter survives the snapshot.
  assert.equal(copy.applyBatch({ id: "n1:i:1", submitter: "n1", createdAt: 0, commands: [] }).results, null);
  const corrupt = encode({ v: 1, revision: 1, entries: [["x", bytes("1"), 1, 5, 1]], sessions: [] });
  assert.throws(
    () => KvState.fromSnapshot(corrupt),
    (e: unknown) =>
      e instanceof Error && !(e instanceof AetherError) && /assertion failed: KV snapshot/.test(e.message),
  );
});
