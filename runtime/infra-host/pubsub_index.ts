/**
 * What one node knows of pub/sub, kept current from its replica of the consensus KV (every member holds every
 * topic): topics, each partition's messages in offset order (offset, id, size, time), subscriptions and the
 * consumer groups' offsets. The service reads it to answer, the leader to deliver and to enforce retention;
 * lag is computed from it (the same on every member once it applied the same revision).
 */

import type { KvEvent, KvState } from "../kv/mod.ts";
import {
  decodeRecord,
  keyParts,
  type MessageRecord,
  MESSAGES_PREFIX,
  type OffsetRecord,
  OFFSETS_PREFIX,
  PUBSUB_PREFIX,
  type SubscriptionRecord,
  SUBSCRIPTIONS_PREFIX,
  type TopicRecord,
  TOPICS_PREFIX,
} from "./pubsub_records.ts";

/** One partition's messages, oldest first (offsets increase). */
export class PartitionLog {
  offsets: number[] = [];
  ids: string[] = [];
  sizes: number[] = [];
  times: number[] = [];
  bytes = 0;

  append(offset: number, id: string, size: number, atMs: number): void {
    this.offsets.push(offset);
    this.ids.push(id);
    this.sizes.push(size);
    this.times.push(atMs);
    this.bytes += size;
  }

  /** Index of the first message with offset >= `offset` (length when none). */
  firstAtOrAfter(offset: number): number {
    let lo = 0, hi = this.offsets.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.offsets[mid] < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  remove(offset: number): void {
    const i = this.firstAtOrAfter(offset);
    if (this.offsets[i] !== offset) return;
    this.bytes -= this.sizes[i];
    this.offsets.splice(i, 1);
    this.ids.splice(i, 1);
    this.sizes.splice(i, 1);
    this.times.splice(i, 1);
  }

  /** Messages with offset >= `next`. */
  countFrom(next: number): number {
    return this.offsets.length - this.firstAtOrAfter(next);
  }
}

export interface TopicState {
  group: string;
  topic: string;
  config: TopicRecord;
  partitions: PartitionLog[];
  bytes: number;
}

export interface SubscriptionState extends SubscriptionRecord {
  group: string;
  topic: string;
  consumerGroup: string;
}

export interface OffsetState extends OffsetRecord {
  modRevision: number;
}

export class PubsubIndex {
  readonly topics = new Map<string, TopicState>();
  /** Message key → where it sits (for deletes). */
  readonly #messages = new Map<string, { topic: string; partition: number; offset: number }>();
  readonly subscriptions = new Map<string, SubscriptionState>();
  readonly offsets = new Map<string, OffsetState>();
  totalBytes = 0;

  rebuild(state: KvState): void {
    this.topics.clear();
    this.#messages.clear();
    this.subscriptions.clear();
    this.offsets.clear();
    this.totalBytes = 0;
    for (const e of state.range(TOPICS_PREFIX, Infinity)) this.#put(e.key, e.value, e.modRevision);
    // Messages sorted by offset so each partition's array is in order.
    const messages = state.range(MESSAGES_PREFIX, Infinity).sort((a, b) =>
      a.createRevision - b.createRevision
    );
    for (const e of messages) this.#put(e.key, e.value, e.createRevision);
    for (const e of state.range(SUBSCRIPTIONS_PREFIX, Infinity)) this.#put(e.key, e.value, e.modRevision);
    for (const e of state.range(OFFSETS_PREFIX, Infinity)) this.#put(e.key, e.value, e.modRevision);
  }

  apply(events: readonly KvEvent[]): boolean {
    let changed = false;
    for (const event of events) {
      if (!event.key.startsWith(PUBSUB_PREFIX)) continue;
      changed = true;
      if (event.type === "put") this.#put(event.key, event.value, event.revision);
      else this.#delete(event.key);
    }
    return changed;
  }

  topicOf(group: string, topic: string): TopicState | undefined {
    return this.topics.get(`${group}/${topic}`);
  }

  topicsOfGroup(group: string): TopicState[] {
    return [...this.topics.values()].filter((t) => t.group === group);
  }

  subscriptionsOf(group: string, topic: string): SubscriptionState[] {
    return [...this.subscriptions.values()].filter((s) => s.group === group && s.topic === topic);
  }

  offsetOf(group: string, topic: string, consumerGroup: string, partition: number): OffsetState | undefined {
    return this.offsets.get(`${group}/${topic}/${consumerGroup}/${partition}`);
  }

  /** Messages of each partition the consumer group has not handled yet. */
  lag(sub: SubscriptionState): number[] {
    const topic = this.topicOf(sub.group, sub.topic);
    if (!topic) return [];
    return topic.partitions.map((log, p) =>
      log.countFrom(this.offsetOf(sub.group, sub.topic, sub.consumerGroup, p)?.next ?? 0)
    );
  }

  #put(key: string, value: Uint8Array | undefined, revision: number): void {
    if (key.startsWith(TOPICS_PREFIX)) {
      const [group, topic] = keyParts(key, TOPICS_PREFIX);
      const config = decodeRecord<TopicRecord>(value);
      if (!config) return;
      const existing = this.topics.get(`${group}/${topic}`);
      if (existing) existing.config = { ...config, partitions: existing.config.partitions };
      else {
        const partitions = Array.from({ length: config.partitions }, () => new PartitionLog());
        this.topics.set(`${group}/${topic}`, { group, topic, config, partitions, bytes: 0 });
      }
    } else if (key.startsWith(MESSAGES_PREFIX)) {
      const [group, topic, id] = keyParts(key, MESSAGES_PREFIX);
      const state = this.topics.get(`${group}/${topic}`);
      const record = decodeRecord<MessageRecord>(value);
      if (!state || !record || !(record.p >= 0 && record.p < state.partitions.length)) return;
      this.#delete(key); // an overwrite (a dead letter written again) moves to its new offset
      const size = value!.byteLength;
      state.partitions[record.p].append(revision, id, size, record.at);
      state.bytes += size;
      this.totalBytes += size;
      this.#messages.set(key, { topic: `${group}/${topic}`, partition: record.p, offset: revision });
    } else if (key.startsWith(SUBSCRIPTIONS_PREFIX)) {
      const [group, topic, consumerGroup] = keyParts(key, SUBSCRIPTIONS_PREFIX);
      const record = decodeRecord<SubscriptionRecord>(value);
      if (record) {
        this.subscriptions.set(`${group}/${topic}/${consumerGroup}`, {
          ...record,
          group,
          topic,
          consumerGroup,
        });
      }
    } else if (key.startsWith(OFFSETS_PREFIX)) {
      const record = decodeRecord<OffsetRecord>(value);
      if (record) {
        this.offsets.set(key.slice(OFFSETS_PREFIX.length), { next: record.next, modRevision: revision });
      }
    }
  }

  #delete(key: string): void {
    if (key.startsWith(MESSAGES_PREFIX)) {
      const where = this.#messages.get(key);
      if (!where) return;
      this.#messages.delete(key);
      const state = this.topics.get(where.topic);
      if (!state) return;
      const log = state.partitions[where.partition];
      const before = log.bytes;
      log.remove(where.offset);
      state.bytes -= before - log.bytes;
      this.totalBytes -= before - log.bytes;
    } else if (key.startsWith(TOPICS_PREFIX)) {
      const [group, topic] = keyParts(key, TOPICS_PREFIX);
      const state = this.topics.get(`${group}/${topic}`);
      if (state) this.totalBytes -= state.bytes;
      this.topics.delete(`${group}/${topic}`);
    } else if (key.startsWith(SUBSCRIPTIONS_PREFIX)) {
      this.subscriptions.delete(key.slice(SUBSCRIPTIONS_PREFIX.length));
    } else if (key.startsWith(OFFSETS_PREFIX)) {
      this.offsets.delete(key.slice(OFFSETS_PREFIX.length));
    }
  }
}
