import { deepEqual, equal } from "node:assert/strict";
import { KvState } from "../kv/mod.ts";
import type { KvCommand, KvEvent } from "../kv/mod.ts";
import { PartitionLog, PubsubIndex } from "./pubsub_index.ts";
import {
  encodeRecord,
  messageKey,
  type MessageRecord,
  offsetKey,
  subscriptionKey,
  topicKey,
} from "./pubsub_records.ts";

/** Applies commands to a real KvState, feeding the events to the index as a node does. */
function harness() {
  const state = new KvState();
  const index = new PubsubIndex();
  const apply = (command: KvCommand) => {
    const events: KvEvent[] = [];
    const result = state.apply(command, events);
    index.apply(events);
    return result;
  };
  return { state, index, apply };
}

const topic = (partitions: number) =>
  encodeRecord({ partitions, retentionMs: 60_000, retentionBytes: 1 << 20, createdAtMs: 1 });
const message = (p: number, v: unknown, at = 1): Uint8Array =>
  encodeRecord({ p, v, at } satisfies MessageRecord);

Deno.test("PartitionLog: offsets in order, lookup at or after, counts from, removal", () => {
  const log = new PartitionLog();
  for (const offset of [3, 7, 9, 20]) log.append(offset, `m${offset}`, 10, 0);
  equal(log.firstAtOrAfter(0), 0);
  equal(log.firstAtOrAfter(7), 1);
  equal(log.firstAtOrAfter(8), 2);
  equal(log.firstAtOrAfter(21), 4);
  equal(log.countFrom(8), 2);
  log.remove(7);
  deepEqual(log.offsets, [3, 9, 20]);
  equal(log.bytes, 30);
  log.remove(8); // absent: nothing changes
  equal(log.offsets.length, 3);
});

Deno.test("PubsubIndex: messages by partition in offset order, lag per group, deletes, rebuild", () => {
  const { state, index, apply } = harness();
  apply({ type: "put", key: topicKey("org.a", "orders"), value: topic(2) });
  const offsets: number[] = [];
  for (let i = 0; i < 6; i++) {
    const r = apply({ type: "put", key: messageKey("org.a", "orders", `r.${i}`), value: message(i % 2, i) });
    if (r.ok) offsets.push(r.revision);
  }
  const t = index.topicOf("org.a", "orders")!;
  deepEqual(t.partitions[0].offsets, [offsets[0], offsets[2], offsets[4]]);
  deepEqual(t.partitions[1].offsets, [offsets[1], offsets[3], offsets[5]]);
  apply({
    type: "put",
    key: subscriptionKey("org.a", "orders", "billing"),
    value: encodeRecord({ slice: "org.a:billing", method: "onOrder", maxAttempts: 3, createdAtMs: 1 }),
  });
  apply({
    type: "put",
    key: offsetKey("org.a", "orders", "billing", 0),
    value: encodeRecord({ next: offsets[2] }),
  });
  const sub = index.subscriptions.get("org.a/orders/billing")!;
  deepEqual(index.lag(sub), [2, 3], "partition 0 from its offset, partition 1 without a record: all");
  // Retention deletes the oldest: lag shrinks, bytes follow.
  const before = t.bytes;
  apply({ type: "delete", key: messageKey("org.a", "orders", "r.1") });
  deepEqual(index.lag(sub), [2, 2]);
  ok(t.bytes < before);
  equal(index.totalBytes, t.bytes);
  // Another group's topic of the same name is another topic.
  apply({ type: "put", key: topicKey("org.b", "orders"), value: topic(1) });
  equal(index.topicOf("org.b", "orders")!.partitions[0].offsets.length, 0);
  deepEqual(index.topicsOfGroup("org.a").map((x) => x.topic), ["orders"]);
  // A rebuild from the state gives the same picture.
  const rebuilt = new PubsubIndex();
  rebuilt.rebuild(state);
  deepEqual(
    rebuilt.topicOf("org.a", "orders")!.partitions.map((p) => p.offsets),
    t.partitions.map((p) => p.offsets),
  );
  deepEqual(rebuilt.lag(rebuilt.subscriptions.get("org.a/orders/billing")!), [2, 2]);
  equal(rebuilt.totalBytes, index.totalBytes);
});

Deno.test("PubsubIndex: an overwritten message moves to its new offset; a bad record is ignored", () => {
  const { index, apply } = harness();
  apply({ type: "put", key: topicKey("g", "t"), value: topic(1) });
  const first = apply({ type: "put", key: messageKey("g", "t", "dlq.x.1"), value: message(0, 1) });
  const second = apply({ type: "put", key: messageKey("g", "t", "dlq.x.1"), value: message(0, 1) });
  const log = index.topicOf("g", "t")!.partitions[0];
  deepEqual(log.offsets, [second.revision]);
  ok(first.revision < second.revision);
  apply({ type: "put", key: messageKey("g", "t", "bad"), value: new TextEncoder().encode("{not json") });
  apply({ type: "put", key: messageKey("g", "t", "p9"), value: message(9, 1) }); // no partition 9
  equal(log.offsets.length, 1);
});

function ok(value: unknown, message?: string): void {
  equal(Boolean(value), true, message);
}
