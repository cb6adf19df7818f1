import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import {
  EVENT_TYPES,
  EventBus,
  matchesTypes,
  MAX_EVENT_DETAILS_BYTES,
  parseEventTypeFilter,
} from "./events.ts";

const clock = { now: () => 1_000 };

function bus(capacity = 5, firstId = 100) {
  return new EventBus({ node: "n1", capacity, firstId, clock, maxSubscribers: 2 });
}

Deno.test("events: publish assigns increasing ids from the first id, the node and the time", () => {
  const b = bus();
  const a = b.publish({ type: EVENT_TYPES.nodeDown, subject: "n2", details: { reason: "closed" } });
  const c = b.publish({ type: "alert.firing", subject: "p99", time: 5 });
  assert.deepEqual(a, {
    id: 100,
    time: 1_000,
    type: "node.down",
    node: "n1",
    subject: "n2",
    details: { reason: "closed" },
  });
  assert.equal(c.id, 101);
  assert.equal(c.time, 5);
  assert.deepEqual(c.details, {});
  assert.equal(b.latestId, 101);
  assert.equal(b.oldestId, 100);
});

Deno.test("events: the ring keeps the newest `capacity` events", () => {
  const b = bus(3);
  for (let i = 0; i < 7; i++) b.publish({ type: "node.down", subject: `n${i}` });
  assert.deepEqual(b.recent(10).map((e) => e.id), [104, 105, 106]);
  assert.equal(b.stats.held, 3);
  assert.equal(b.stats.evicted, 4);
  assert.equal(b.stats.published, 7);
});

Deno.test("events: since resumes after an id that is held, with nothing lost", () => {
  const b = bus(5);
  for (let i = 0; i < 4; i++) b.publish({ type: "node.down", subject: `n${i}` });
  const answer = b.since(101);
  assert.equal(answer.gone, false);
  assert.deepEqual(answer.gone === false && answer.events.map((e) => e.id), [102, 103]);
  const latest = b.since(103);
  assert.deepEqual(latest.gone === false && latest.events, []);
  const limited = b.since(99, undefined, 2);
  assert.deepEqual(limited.gone === false && limited.events.map((e) => e.id), [100, 101]);
});

Deno.test("events: since an id that fell out of the ring is gone and names the oldest id", () => {
  const b = bus(3);
  for (let i = 0; i < 6; i++) b.publish({ type: "node.down", subject: `n${i}` });
  // Held: 103, 104, 105. After 102 nothing is lost; after 101, 102 is.
  assert.equal(b.since(102).gone, false);
  assert.deepEqual(b.since(101), { gone: true, oldestId: 103 });
});

Deno.test("events: since an id from another stream (before a restart, or in the future) is gone", () => {
  const b = bus(5, 1_000);
  assert.equal(b.since(999).gone, false, "just before the first id: nothing missed");
  assert.deepEqual(b.since(500), { gone: true, oldestId: undefined });
  b.publish({ type: "node.down", subject: "n2" });
  assert.deepEqual(b.since(500), { gone: true, oldestId: 1_000 });
  assert.deepEqual(b.since(1_001), { gone: true, oldestId: 1_000 });
  assert.deepEqual(b.since(5_000), { gone: true, oldestId: 1_000 });
});

Deno.test("events: type filters match a type or a family", () => {
  assert.ok(matchesTypes("node.down", ["node"]));
  assert.ok(matchesTypes("node.down", ["node.down"]));
  assert.ok(!matchesTypes("nodes.down", ["node"]));
  assert.ok(!matchesTypes("node.downs", ["node.down"]));
  assert.ok(matchesTypes("alert.firing", []));
  const b = bus(10);
  b.publish({ type: "node.down", subject: "a" });
  b.publish({ type: "alert.firing", subject: "b" });
  b.publish({ type: "node.back", subject: "c" });
  assert.deepEqual(b.recent(10, ["node"]).map((e) => e.subject), ["a", "c"]);
  const since = b.since(99, ["alert"]);
  assert.deepEqual(since.gone === false && since.events.map((e) => e.subject), ["b"]);
  assert.deepEqual(b.recent(1, ["node"]).map((e) => e.subject), ["c"]);
});

Deno.test("events: parseEventTypeFilter takes repeated and comma-separated values, and names bad input", () => {
  assert.deepEqual(parseEventTypeFilter(["node,alert.firing", " rollout "], "type"), [
    "node",
    "alert.firing",
    "rollout",
  ]);
  assert.deepEqual(parseEventTypeFilter([], "type"), []);
  assert.throws(
    () => parseEventTypeFilter(["Node.Down"], "query parameter type"),
    (e: unknown) =>
      e instanceof AetherError && e.code === "bad_request" &&
      /query parameter type.*Node\.Down/.test(e.message),
  );
});

Deno.test("events: subscribers get matching events in order; a failing one does not stop the rest", () => {
  const b = bus(10);
  const all: number[] = [];
  const nodes: number[] = [];
  b.subscribe(() => {
    throw new Error("broken listener");
  });
  const sub = b.subscribe((e) => nodes.push(e.id), ["node"]);
  assert.throws(
    () => b.subscribe((e) => all.push(e.id)),
    (e: unknown) => e instanceof AetherError && e.code === "overloaded",
  );
  assert.equal(b.stats.refusedSubscribers, 1);
  b.publish({ type: "node.down", subject: "a" });
  b.publish({ type: "alert.firing", subject: "b" });
  sub.close();
  b.publish({ type: "node.back", subject: "c" });
  assert.deepEqual(nodes, [100]);
  assert.equal(b.stats.subscribers, 1);
});

Deno.test("events: malformed events are refused with what was wrong", () => {
  const b = bus();
  assert.throws(() => b.publish({ type: "Down", subject: "x" }), /event type "Down"/);
  assert.throws(() => b.publish({ type: "node", subject: "x" }), /family\.name/);
  assert.throws(() => b.publish({ type: "node.down", subject: "x".repeat(600) }), /subject/);
  assert.throws(
    () =>
      b.publish({ type: "node.down", subject: "x", details: { blob: "y".repeat(MAX_EVENT_DETAILS_BYTES) } }),
    /details take \d+ bytes/,
  );
  assert.equal(b.stats.published, 0);
  assert.throws(() => new EventBus({ node: "n", capacity: 0 }), /capacity/);
});
