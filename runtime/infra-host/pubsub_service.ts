/**
 * Durable pub/sub for slices (`ctx.infra.topic("orders")`), kept in the consensus KV (pubsub_records.ts):
 *
 * - **publish** writes the message as one transaction that creates `pubsub/m/{group}/{topic}/{id}` only if
 *   absent; it is acknowledged once consensus committed it (a majority of members have it durably) and this
 *   node applied it. Its offset is that write's revision. With an idempotency key the id is the key, so a
 *   publish retried after an unknown outcome finds the first one (`duplicate: true`, the same offset) for as
 *   long as retention keeps the message.
 * - **delivery**: the leader delivers every (consumer group, partition) in offset order, one message at a time
 *   per partition, by invoking the subscribing slice's method through the invoker with the message as the
 *   request. Success moves the group's `next` offset, committed to consensus behind the deliveries in a
 *   transaction fenced on the leader's own record (a deposed leader's commit fails). A failure is retried with
 *   exponential backoff; after `maxAttempts` failures the message is written to `{topic}.dlq` and the offset
 *   moved past it in one transaction. A new leader resumes from the committed offsets, so a message whose
 *   delivery was under way (or delivered but not yet committed) when the leader died is delivered again:
 *   **at least once**, in offset order per partition (hence per key).
 * - **retention**: the leader deletes messages older than the topic's `retentionMs` and the oldest ones beyond
 *   its `retentionBytes`, whether consumed or not (a group behind them skips to the oldest message left).
 *
 * Why the consensus KV and not the partitioned store: one transaction gives a message its offset, its
 * idempotency check and its replication at once, every member can read any partition locally and watch it
 * (delivery needs no read round trip), and the commit of an offset can be fenced on leadership. The measured
 * cost (tests/bench/pubsub_bench.ts, /tmp/notes/pubsub.md) is within what consensus writes sustain. The
 * price: every member holds every retained message, hence the byte limits in pubsub_records.ts.
 */

import { AetherError } from "../core/mod.ts";
import type { KvOp } from "../kv/mod.ts";
import { LEADER_KEY, parseLeaderRecord } from "../model/mod.ts";
import { hash32 } from "./partitioning.ts";
import type { ConsensusServiceOptions, SliceInvoke } from "./consensus_service.ts";
import { type InfraService, remainingMs, type ServiceCall } from "./services.ts";
import { PubsubIndex, type SubscriptionState, type TopicState } from "./pubsub_index.ts";
import {
  byteLength,
  checkFields,
  checkInteger,
  checkMethod,
  checkName,
  checkSlice,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_PARTITIONS,
  DEFAULT_RETENTION_BYTES,
  DEFAULT_RETENTION_MS,
  DLQ_SUFFIX,
  encodeRecord,
  IDEMPOTENCY_KEY,
  MAX_ATTEMPTS_LIMIT,
  MAX_GROUP_BYTES,
  MAX_KEY_BYTES,
  MAX_MESSAGE_BYTES,
  MAX_PARTITIONS,
  MAX_RETENTION_BYTES,
  MAX_RETENTION_MS,
  MAX_SUBSCRIPTIONS_PER_TOPIC,
  MAX_TOPICS,
  MAX_TOPICS_PER_GROUP,
  MAX_TOTAL_BYTES,
  messageKey,
  type MessageRecord,
  offsetKey,
  type OffsetRecord,
  offsetsPrefix,
  subscriptionKey,
  type SubscriptionRecord,
  topicKey,
  type TopicRecord,
} from "./pubsub_records.ts";

/** Deliveries the leader runs at once across all groups and partitions. */
export const MAX_IN_FLIGHT_DELIVERIES = 256;
/** How long one delivery may take before it counts as failed. */
export const DELIVERY_TIMEOUT_MS = 30_000;
const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 10_000;
const TICK_MS = 20;
/** How often the leader creates the subscriptions deployed slices declare in their manifests. */
const RECONCILE_MS = 1_000;
const RETENTION_TICK_MS = 1_000;
/** Deletes one retention transaction carries. */
const RETENTION_BATCH = 256;

export const PUBSUB_SERVICE: InfraService = {
  name: "pubsub",
  version: "1.0.0",
  description:
    "durable topics with partitions, consumer groups, retries and a dead-letter topic, on consensus",
  methods: ["publish", "create", "subscribe", "unsubscribe", "seek", "info"],
};

/** Invokes a slice method (the node's SliceInvoker). */
export type PubsubInvoke = SliceInvoke;

export interface PubsubServiceOptions extends ConsensusServiceOptions {
  /** The invoker; bound late (the invoker is built after the infrastructure services). */
  invoke: PubsubInvoke;
}

/** A consumer group's standing in one partition (what `aether topics lag` shows). */
export interface PartitionLag {
  partition: number;
  next: number;
  /** Offset of the newest message (0: none). */
  head: number;
  lag: number;
}

export interface GroupView {
  consumerGroup: string;
  slice: string;
  method: string;
  maxAttempts: number;
  lag: number;
  partitions: PartitionLag[];
}

export interface TopicView {
  group: string;
  topic: string;
  partitions: number;
  retentionMs: number;
  retentionBytes: number;
  messages: number;
  bytes: number;
  consumerGroups: GroupView[];
}

/** Counters of this node's deliveries (it delivers while it leads). */
export interface DeliveryCounters {
  delivered: number;
  failed: number;
  deadLettered: number;
  inFlight: number;
}

export interface PubsubService {
  serve(call: ServiceCall): Promise<unknown>;
  /** Topics of one group, or of all groups (operators). */
  topics(group?: string): TopicView[];
  topic(group: string, topic: string): TopicView | undefined;
  /** Moves a consumer group to `offset` (replay): every partition, or one. */
  seek(
    group: string,
    topic: string,
    consumerGroup: string,
    offset: number,
    partition?: number,
  ): Promise<void>;
  /** As a slice of `group` would call (the operator's API). */
  callAs(group: string, method: string, payload: Record<string, unknown>, from?: string): Promise<unknown>;
  counters(): DeliveryCounters;
  /** Lag per (topic `{group}/{topic}`, consumer group) for the node's metrics sample. */
  lagSeries(): Array<{ topic: string; consumerGroup: string; lag: number }>;
  stop(): void;
}

interface Cursor {
  sub: SubscriptionState;
  partition: number;
  /** The first offset not delivered yet. */
  next: number;
  /** `next` as committed, and the offset record's modRevision it was committed at (0: no record yet). */
  committedNext: number;
  recordRevision: number;
  busy: boolean;
  committing: boolean;
  attempts: number;
  retryAtMs: number;
}

export function startPubsubService(options: PubsubServiceOptions): PubsubService {
  const log = options.log.with({ component: "pubsub" });
  const index = new PubsubIndex();
  index.rebuild(options.state());
  const cursors = new Map<string, Cursor>();
  const counters: DeliveryCounters = { delivered: 0, failed: 0, deadLettered: 0, inFlight: 0 };
  // A new message or offset wakes the deliverer at once (the tick is only the fallback and the retry clock).
  let deliverScheduled = false;
  const scheduleDeliver = () => {
    if (deliverScheduled) return;
    deliverScheduled = true;
    setTimeout(runDeliver, 0);
  };
  const offEvents = options.onEvents((events) => {
    if (index.apply(events)) scheduleDeliver();
  });
  const offReset = options.onReset(() => {
    index.rebuild(options.state());
    cursors.clear();
  });

  /** The leader record naming this node, as the fence of the leader's writes; undefined when not leading. */
  const leaderFence = () => {
    if (!options.isLeader()) return undefined;
    const leader = options.state().get(LEADER_KEY);
    if (leader === undefined || parseLeaderRecord(leader.value)?.nodeId !== options.self) return undefined;
    return { key: LEADER_KEY, modRevision: leader.modRevision };
  };

  // ----------------------------------------------------------------------------------------------------------
  // Delivery (the leader)

  const cursorKey = (sub: SubscriptionState, partition: number) =>
    `${sub.group}/${sub.topic}/${sub.consumerGroup}/${partition}`;

  const newCursor = (sub: SubscriptionState, partition: number): Cursor => {
    const record = index.offsetOf(sub.group, sub.topic, sub.consumerGroup, partition);
    const next = record?.next ?? 0;
    return {
      sub,
      partition,
      next,
      committedNext: next,
      recordRevision: record?.modRevision ?? 0,
      busy: false,
      committing: false,
      attempts: 0,
      retryAtMs: 0,
    };
  };

  const live = (cursor: Cursor) => cursors.get(cursorKey(cursor.sub, cursor.partition)) === cursor;

  const commit = (cursor: Cursor) => {
    if (cursor.committing || cursor.next === cursor.committedNext) return;
    const fence = leaderFence();
    if (!fence) return;
    cursor.committing = true;
    const target = cursor.next;
    const key = offsetKey(cursor.sub.group, cursor.sub.topic, cursor.sub.consumerGroup, cursor.partition);
    options.kv.write({
      type: "txn",
      compare: [fence, { key, modRevision: cursor.recordRevision }],
      success: [{ op: "put", key, value: encodeRecord({ next: target } satisfies OffsetRecord) }],
      failure: [],
    }, { timeoutMs: 5_000 }).then((outcome) => {
      if (!outcome.succeeded) {
        // A seek (replay) or another leader wrote the record: start over from what it says.
        if (live(cursor)) cursors.delete(cursorKey(cursor.sub, cursor.partition));
        return;
      }
      cursor.committedNext = target;
      cursor.recordRevision = outcome.revision;
    }).catch((e) => log.debug("offset commit not written", { key, error: String(e) }))
      .finally(() => {
        cursor.committing = false;
      });
  };

  const deadLetter = async (
    cursor: Cursor,
    id: string,
    offset: number,
    message: MessageRecord,
    error: string,
  ) => {
    // The transaction compares the offset record's revision: let a commit under way land first.
    while (cursor.committing && live(cursor)) await new Promise((r) => setTimeout(r, 5));
    const fence = leaderFence();
    if (!fence) return false;
    const { group, topic, consumerGroup } = cursor.sub;
    const dlq = `${topic}${DLQ_SUFFIX}`;
    const record: MessageRecord = {
      p: 0,
      v: {
        topic,
        consumerGroup,
        partition: cursor.partition,
        offset,
        id,
        ...(message.k === undefined ? {} : { key: message.k }),
        value: message.v as never,
        attempts: cursor.attempts,
        error: error.slice(0, 1024),
      },
      at: Date.now(),
    };
    const key = offsetKey(group, topic, consumerGroup, cursor.partition);
    const ops: KvOp[] = [];
    if (!index.topicOf(group, dlq)) {
      ops.push({ op: "put", key: topicKey(group, dlq), value: encodeRecord(defaultTopic(1)) });
    }
    // A dead letter already written (by a leader that died before the offset moved) is not written again.
    const dlqKey = messageKey(group, dlq, `dlq.${consumerGroup}.${offset}`);
    if (!options.state().get(dlqKey)) ops.push({ op: "put", key: dlqKey, value: encodeRecord(record) });
    ops.push({ op: "put", key, value: encodeRecord({ next: offset + 1 } satisfies OffsetRecord) });
    const outcome = await options.kv.write({
      type: "txn",
      compare: [fence, { key, modRevision: cursor.recordRevision }],
      success: ops,
      failure: [],
    }, { timeoutMs: 5_000 });
    if (!outcome.succeeded) return false;
    cursor.recordRevision = outcome.revision;
    cursor.committedNext = Math.max(cursor.committedNext, offset + 1);
    return true;
  };

  const deliver = (cursor: Cursor, topic: TopicState, at: number) => {
    const log_ = topic.partitions[cursor.partition];
    const offset = log_.offsets[at];
    const id = log_.ids[at];
    const entry = options.state().get(messageKey(topic.group, topic.topic, id));
    const message = entry ? decodeMessage(entry.value) : undefined;
    if (!message) {
      cursor.next = offset + 1; // deleted by retention meanwhile
      return;
    }
    cursor.busy = true;
    counters.inFlight++;
    const attempt = cursor.attempts + 1;
    const request = {
      topic: topic.topic,
      consumerGroup: cursor.sub.consumerGroup,
      partition: cursor.partition,
      offset,
      id,
      ...(message.k === undefined ? {} : { key: message.k }),
      value: message.v,
      publishedAtMs: message.at,
      attempt,
    };
    options.invoke(cursor.sub.slice, cursor.sub.method, request, {
      timeoutMs: DELIVERY_TIMEOUT_MS,
      requestId: `pubsub-${cursor.sub.consumerGroup}-${offset}-${attempt}`,
      from: "aether.infra:pubsub",
    }).then(
      (outcome) => outcome.ok ? undefined : `${outcome.error.name}: ${outcome.error.message}`,
      (e) => e instanceof Error ? e.message : String(e),
    ).then(async (error) => {
      if (!live(cursor)) return;
      if (error === undefined) {
        counters.delivered++;
        cursor.attempts = 0;
        cursor.next = offset + 1;
        commit(cursor);
        return;
      }
      counters.failed++;
      cursor.attempts = attempt;
      if (attempt < cursor.sub.maxAttempts) {
        cursor.retryAtMs = Date.now() + Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
        return;
      }
      try {
        if (await deadLetter(cursor, id, offset, message, error)) {
          counters.deadLettered++;
          log.info("message dead-lettered", {
            topic: topic.topic,
            offset,
            consumerGroup: cursor.sub.consumerGroup,
          });
          cursor.attempts = 0;
          cursor.next = Math.max(cursor.next, offset + 1);
        } else if (live(cursor)) cursors.delete(cursorKey(cursor.sub, cursor.partition));
      } catch (e) {
        log.debug("dead letter not written", { error: String(e) });
        cursor.retryAtMs = Date.now() + BACKOFF_BASE_MS;
      }
    }).finally(() => {
      cursor.busy = false;
      counters.inFlight--;
      scheduleDeliver(); // the partition's next message, without waiting for the tick
    });
  };

  let rotation = 0;
  const deliverAll = () => {
    if (!leaderFence()) {
      cursors.clear();
      return;
    }
    const nowMs = Date.now();
    const seen = new Set<string>();
    const state = options.state();
    // Starting from a rotating place, so that with MAX_IN_FLIGHT_DELIVERIES reached no group always goes last.
    const subs = [...index.subscriptions.values()];
    const first = subs.length === 0 ? 0 : rotation++ % subs.length;
    for (const sub of [...subs.slice(first), ...subs.slice(0, first)]) {
      const topic = index.topicOf(sub.group, sub.topic);
      // A subscriber slice not deployed (no target) is not called: its messages wait instead of failing
      // their attempts into the dead-letter topic.
      if (!topic || state.get(`targets/${sub.slice}`) === undefined) continue;
      for (let p = 0; p < topic.partitions.length; p++) {
        const key = cursorKey(sub, p);
        seen.add(key);
        let cursor = cursors.get(key);
        const record = index.offsetOf(sub.group, sub.topic, sub.consumerGroup, p);
        if (
          cursor && !cursor.busy && !cursor.committing &&
          (record?.modRevision ?? 0) > cursor.recordRevision
        ) {
          cursor = undefined; // a seek moved the group: start from the record
        }
        if (!cursor) {
          cursor = newCursor(sub, p);
          cursors.set(key, cursor);
        }
        cursor.sub = sub;
        if (!cursor.busy && cursor.next !== cursor.committedNext) commit(cursor);
        if (cursor.busy || cursor.retryAtMs > nowMs || counters.inFlight >= MAX_IN_FLIGHT_DELIVERIES) {
          continue;
        }
        const log_ = topic.partitions[p];
        const at = log_.firstAtOrAfter(cursor.next);
        if (at >= log_.offsets.length) continue;
        deliver(cursor, topic, at);
      }
    }
    for (const key of cursors.keys()) if (!seen.has(key)) cursors.delete(key);
  };

  // ----------------------------------------------------------------------------------------------------------
  // Retention (the leader)

  let sweeping = false;
  const sweep = () => {
    const fence = leaderFence();
    if (!fence || sweeping) return;
    const nowMs = Date.now();
    const deletes: KvOp[] = [];
    for (const topic of index.topics.values()) {
      let excess = topic.bytes - topic.config.retentionBytes;
      const heads = topic.partitions.map(() => 0);
      while (deletes.length < RETENTION_BATCH) {
        // The oldest message left of the topic (smallest offset across partitions).
        let best = -1;
        for (let p = 0; p < topic.partitions.length; p++) {
          const log_ = topic.partitions[p];
          if (heads[p] >= log_.offsets.length) continue;
          if (best < 0 || log_.offsets[heads[p]] < topic.partitions[best].offsets[heads[best]]) best = p;
        }
        if (best < 0) break;
        const log_ = topic.partitions[best];
        const i = heads[best];
        const expired = nowMs - log_.times[i] > topic.config.retentionMs;
        if (!expired && excess <= 0) break;
        deletes.push({ op: "delete", key: messageKey(topic.group, topic.topic, log_.ids[i]) });
        excess -= log_.sizes[i];
        heads[best]++;
      }
      if (deletes.length >= RETENTION_BATCH) break;
    }
    if (deletes.length === 0) return;
    sweeping = true;
    options.kv.write({ type: "txn", compare: [fence], success: deletes, failure: [] }, { timeoutMs: 5_000 })
      .catch((e) => log.debug("retention not written", { error: String(e) }))
      .finally(() => sweeping = false);
  };

  function runDeliver() {
    deliverScheduled = false;
    try {
      deliverAll();
    } catch (e) {
      log.warn("pubsub delivery tick failed", { error: String(e) });
    }
  }
  const tick = setInterval(runDeliver, TICK_MS);
  const retentionTick = setInterval(sweep, RETENTION_TICK_MS);
  let reconciling = false;
  const warned = new Set<string>();
  const reconcileTick = setInterval(() => {
    if (reconciling || !leaderFence()) return;
    reconciling = true;
    reconcileDeclared().catch((e) => log.debug("declared subscriptions not reconciled", { error: String(e) }))
      .finally(() => reconciling = false);
  }, RECONCILE_MS);

  /**
   * Subscriptions declared in the manifests of deployed slices (`subscriptions`, the target's version): the
   * leader creates each one missing and updates one whose method or maxAttempts changed, through the same
   * checks as a slice's own subscribe. Undeploying a slice leaves its subscriptions (and their offsets):
   * delivery pauses until it is deployed again or unsubscribed.
   */
  const reconcileDeclared = async () => {
    const state = options.state();
    for (const target of state.range("targets/", Infinity)) {
      const slice = target.key.slice("targets/".length);
      const version = decodeJson<{ version?: string }>(target.value)?.version;
      if (!version) continue;
      const artifact = state.get(`artifacts/${slice}:${version}`);
      const declared = artifact &&
        decodeJson<{ manifest?: { subscriptions?: Array<Record<string, unknown>> } }>(artifact.value)
          ?.manifest
          ?.subscriptions;
      for (const d of declared ?? []) {
        const group = slice.split(":")[0];
        const existing = index.subscriptions.get(`${group}/${d.topic}/${d.group}`);
        if (
          existing?.slice === slice && existing.method === d.method &&
          existing.maxAttempts === (d.maxAttempts ?? DEFAULT_MAX_ATTEMPTS)
        ) continue;
        try {
          await subscribe({
            group,
            method: "subscribe",
            payload: { ...d },
            deadlineMs: Date.now() + 5_000,
            requestId: crypto.randomUUID(),
            from: `${slice}:${version}`,
          });
          log.info("declared subscription created", { slice, topic: d.topic, consumerGroup: d.group });
        } catch (e) {
          // Once per declaration (it is tried again every second): a conflict stays until someone acts.
          const key = `${slice}/${d.topic}/${d.group}`;
          if (warned.size < 1000 && !warned.has(key)) {
            warned.add(key);
            log.warn("declared subscription not created", { slice, topic: d.topic, error: String(e) });
          }
        }
      }
    }
  };

  // ----------------------------------------------------------------------------------------------------------
  // Requests

  const ensureTopic = async (call: ServiceCall, topic: string, config?: TopicRecord) => {
    if (index.topicOf(call.group, topic)) return index.topicOf(call.group, topic)!;
    if (index.topics.size >= MAX_TOPICS) {
      throw new AetherError("overloaded", `pubsub: the cluster holds ${MAX_TOPICS} topics, the most it may`);
    }
    if (index.topicsOfGroup(call.group).length >= MAX_TOPICS_PER_GROUP) {
      throw new AetherError(
        "overloaded",
        `pubsub: group ${call.group} has ${MAX_TOPICS_PER_GROUP} topics, the most one group may`,
      );
    }
    try {
      await options.kv.write({
        type: "put",
        key: topicKey(call.group, topic),
        value: encodeRecord(config ?? defaultTopic(DEFAULT_PARTITIONS)),
        ifRevision: 0,
      }, { timeoutMs: remainingMs(call) });
    } catch (e) {
      if (!(e instanceof AetherError && e.code === "compare_failed")) throw e;
    }
    const state = index.topicOf(call.group, topic);
    if (!state) throw new AetherError("unavailable", `pubsub: topic ${topic} not applied yet; try again`);
    return state;
  };

  const publish = async (call: ServiceCall) => {
    const where = "pubsub.publish";
    checkFields(where, call.payload, ["topic", "value", "key", "idempotencyKey"]);
    const topicName = checkName(where, "topic", call.payload.topic);
    const { value, key, idempotencyKey } = call.payload;
    if (value === undefined) {
      throw new AetherError("bad_request", `${where}: value is required (any JSON)`, { field: "value" });
    }
    if (key !== undefined && (typeof key !== "string" || key === "" || byteLength(key) > MAX_KEY_BYTES)) {
      throw new AetherError("bad_request", `${where}: key must be a string of 1 to ${MAX_KEY_BYTES} bytes`, {
        field: "key",
      });
    }
    if (
      idempotencyKey !== undefined &&
      (typeof idempotencyKey !== "string" || !IDEMPOTENCY_KEY.test(idempotencyKey))
    ) {
      throw new AetherError(
        "bad_request",
        `${where}: idempotencyKey must be 1-128 letters, digits or ._:@=+-, got ${
          JSON.stringify(idempotencyKey)
        }`,
        { field: "idempotencyKey" },
      );
    }
    const topic = await ensureTopic(call, topicName);
    const partition = key === undefined
      ? Math.floor(Math.random() * topic.partitions.length)
      : hash32(key as string) % topic.partitions.length;
    const record: MessageRecord = { p: partition, v: value, at: Date.now() };
    if (key !== undefined) record.k = key as string;
    const bytes = encodeRecord(record);
    if (bytes.byteLength > MAX_MESSAGE_BYTES) {
      throw new AetherError(
        "too_large",
        `${where}: the message is ${bytes.byteLength} bytes, over the limit of ${MAX_MESSAGE_BYTES}`,
        { field: "value" },
      );
    }
    if (index.totalBytes + bytes.byteLength > MAX_TOTAL_BYTES) {
      throw new AetherError("overloaded", `pubsub: the cluster holds ${MAX_TOTAL_BYTES} bytes of messages`);
    }
    // One group cannot take the whole cluster's room from the others.
    const groupBytes = index.topicsOfGroup(call.group).reduce((sum, t) => sum + t.bytes, 0);
    if (groupBytes + bytes.byteLength > MAX_GROUP_BYTES) {
      throw new AetherError(
        "overloaded",
        `pubsub: group ${call.group} holds ${groupBytes} bytes of messages; ${MAX_GROUP_BYTES} is the most one group may`,
      );
    }
    if (topic.bytes > 2 * topic.config.retentionBytes) {
      throw new AetherError(
        "overloaded",
        `pubsub: topic ${topicName} holds ${topic.bytes} bytes, twice its retention; retention is catching up`,
      );
    }
    const id = idempotencyKey === undefined ? `r.${crypto.randomUUID()}` : `i.${idempotencyKey}`;
    const msgKey = messageKey(call.group, topicName, id);
    const outcome = await options.kv.write({
      type: "txn",
      compare: [{ key: msgKey, modRevision: 0 }],
      success: [{ op: "put", key: msgKey, value: bytes }],
      failure: [],
    }, { timeoutMs: remainingMs(call, 10_000) });
    if (outcome.succeeded) return { topic: topicName, partition, offset: outcome.revision, duplicate: false };
    const existing = options.state().get(msgKey);
    const first = existing ? decodeMessage(existing.value) : undefined;
    return {
      topic: topicName,
      partition: first?.p ?? partition,
      offset: existing?.createRevision ?? outcome.revision,
      duplicate: true,
    };
  };

  const create = async (call: ServiceCall) => {
    const where = "pubsub.create";
    checkFields(where, call.payload, ["topic", "partitions", "retentionMs", "retentionBytes"]);
    const topicName = checkName(where, "topic", call.payload.topic);
    const config: TopicRecord = {
      partitions: checkInteger(
        where,
        "partitions",
        call.payload.partitions,
        1,
        MAX_PARTITIONS,
        DEFAULT_PARTITIONS,
      ),
      retentionMs: checkInteger(
        where,
        "retentionMs",
        call.payload.retentionMs,
        1_000,
        MAX_RETENTION_MS,
        DEFAULT_RETENTION_MS,
      ),
      retentionBytes: checkInteger(
        where,
        "retentionBytes",
        call.payload.retentionBytes,
        1024,
        MAX_RETENTION_BYTES,
        DEFAULT_RETENTION_BYTES,
      ),
      createdAtMs: Date.now(),
    };
    const existing = index.topicOf(call.group, topicName);
    if (existing && existing.config.partitions !== config.partitions) {
      throw new AetherError(
        "conflict",
        `${where}: topic ${topicName} exists with ${existing.config.partitions} partitions; ` +
          "the partition count is fixed for a topic's life (it decides the order per key)",
        { field: "partitions" },
      );
    }
    if (existing) {
      // Retention may change.
      await options.kv.write({
        type: "put",
        key: topicKey(call.group, topicName),
        value: encodeRecord({ ...config, createdAtMs: existing.config.createdAtMs }),
      }, { timeoutMs: remainingMs(call) });
    } else await ensureTopic(call, topicName, config);
    return view(index.topicOf(call.group, topicName)!);
  };

  const subscribe = async (call: ServiceCall) => {
    const where = "pubsub.subscribe";
    checkFields(where, call.payload, ["topic", "group", "method", "maxAttempts", "from", "slice"]);
    const topicName = checkName(where, "topic", call.payload.topic);
    const consumerGroup = checkName(where, "group", call.payload.group);
    const method = checkMethod(where, call.payload.method);
    const maxAttempts = checkInteger(
      where,
      "maxAttempts",
      call.payload.maxAttempts,
      1,
      MAX_ATTEMPTS_LIMIT,
      DEFAULT_MAX_ATTEMPTS,
    );
    const from = call.payload.from ?? "latest";
    if (
      from !== "latest" && from !== "earliest" &&
      !(typeof from === "number" && Number.isInteger(from) && from >= 0)
    ) {
      throw new AetherError(
        "bad_request",
        `${where}: from must be "earliest", "latest" or an offset (an integer >= 0), got ${
          JSON.stringify(from)
        }`,
        { field: "from" },
      );
    }
    const callerSlice = call.from?.split(":").slice(0, 2).join(":");
    const slice = checkSlice(where, call.payload.slice ?? callerSlice, call.group);
    const topic = await ensureTopic(call, topicName);
    const record: SubscriptionRecord = { slice, method, maxAttempts, createdAtMs: Date.now() };
    const key = subscriptionKey(call.group, topicName, consumerGroup);
    const existing = index.subscriptions.get(`${call.group}/${topicName}/${consumerGroup}`);
    if (existing) {
      if (existing.slice !== slice) {
        throw new AetherError(
          "conflict",
          `${where}: consumer group ${consumerGroup} of topic ${topicName} delivers to ${existing.slice}; ` +
            "unsubscribe it first or use another group",
          { field: "group" },
        );
      }
      if (existing.method !== method || existing.maxAttempts !== maxAttempts) {
        await options.kv.write({
          type: "put",
          key,
          value: encodeRecord({ ...record, createdAtMs: existing.createdAtMs }),
        }, { timeoutMs: remainingMs(call) });
      }
      return { topic: topicName, group: consumerGroup, slice, method, maxAttempts, created: false };
    }
    if (index.subscriptionsOf(call.group, topicName).length >= MAX_SUBSCRIPTIONS_PER_TOPIC) {
      throw new AetherError(
        "overloaded",
        `${where}: topic ${topicName} has ${MAX_SUBSCRIPTIONS_PER_TOPIC} consumer groups, the most one topic may`,
      );
    }
    const next = from === "earliest" ? 0 : from === "latest" ? options.state().revision + 1 : from as number;
    const ops: KvOp[] = [{ op: "put", key, value: encodeRecord(record) }];
    for (let p = 0; p < topic.partitions.length; p++) {
      ops.push({
        op: "put",
        key: offsetKey(call.group, topicName, consumerGroup, p),
        value: encodeRecord({ next } satisfies OffsetRecord),
      });
    }
    await options.kv.write({ type: "txn", compare: [{ key, modRevision: 0 }], success: ops, failure: [] }, {
      timeoutMs: remainingMs(call),
    });
    return { topic: topicName, group: consumerGroup, slice, method, maxAttempts, created: true };
  };

  const unsubscribe = async (call: ServiceCall) => {
    const where = "pubsub.unsubscribe";
    checkFields(where, call.payload, ["topic", "group"]);
    const topicName = checkName(where, "topic", call.payload.topic);
    const consumerGroup = checkName(where, "group", call.payload.group);
    const outcome = await options.kv.write({
      type: "txn",
      compare: [],
      success: [
        { op: "delete", key: subscriptionKey(call.group, topicName, consumerGroup) },
        { op: "deletePrefix", prefix: offsetsPrefix(call.group, topicName, consumerGroup) },
      ],
      failure: [],
    }, { timeoutMs: remainingMs(call) });
    return { removed: outcome.succeeded !== false };
  };

  const seekCall = async (call: ServiceCall) => {
    const where = "pubsub.seek";
    checkFields(where, call.payload, ["topic", "group", "offset", "partition"]);
    const topicName = checkName(where, "topic", call.payload.topic);
    const consumerGroup = checkName(where, "group", call.payload.group);
    const offset = checkInteger(where, "offset", call.payload.offset, 0, Number.MAX_SAFE_INTEGER, -1);
    if (offset < 0) throw new AetherError("bad_request", `${where}: offset is required`, { field: "offset" });
    const partition = call.payload.partition === undefined
      ? undefined
      : checkInteger(where, "partition", call.payload.partition, 0, MAX_PARTITIONS - 1, 0);
    await seek(call.group, topicName, consumerGroup, offset, partition);
    return { topic: topicName, group: consumerGroup, offset, partition: partition ?? null };
  };

  const seek = async (
    group: string,
    topicName: string,
    consumerGroup: string,
    offset: number,
    partition?: number,
  ) => {
    const topic = index.topicOf(group, topicName);
    if (!topic) throw new AetherError("not_found", `pubsub: no topic ${topicName} in group ${group}`);
    const sub = index.subscriptions.get(`${group}/${topicName}/${consumerGroup}`);
    if (!sub) {
      throw new AetherError("not_found", `pubsub: topic ${topicName} has no consumer group ${consumerGroup}`);
    }
    if (partition !== undefined && partition >= topic.partitions.length) {
      throw new AetherError(
        "bad_request",
        `pubsub.seek: partition must be below ${topic.partitions.length} (the topic's partitions), got ${partition}`,
        { field: "partition" },
      );
    }
    const ops: KvOp[] = [];
    for (let p = 0; p < topic.partitions.length; p++) {
      if (partition !== undefined && p !== partition) continue;
      ops.push({
        op: "put",
        key: offsetKey(group, topicName, consumerGroup, p),
        value: encodeRecord({ next: offset } satisfies OffsetRecord),
      });
    }
    await options.kv.write({ type: "txn", compare: [], success: ops, failure: [] }, { timeoutMs: 10_000 });
  };

  const info = (call: ServiceCall) => {
    checkFields("pubsub.info", call.payload, ["topic"]);
    const topicName = checkName("pubsub.info", "topic", call.payload.topic);
    const topic = index.topicOf(call.group, topicName);
    return topic ? view(topic) : null;
  };

  const view = (topic: TopicState): TopicView => {
    let messages = 0;
    for (const p of topic.partitions) messages += p.offsets.length;
    return {
      group: topic.group,
      topic: topic.topic,
      partitions: topic.partitions.length,
      retentionMs: topic.config.retentionMs,
      retentionBytes: topic.config.retentionBytes,
      messages,
      bytes: topic.bytes,
      consumerGroups: index.subscriptionsOf(topic.group, topic.topic).map((sub) => {
        const lags = index.lag(sub);
        return {
          consumerGroup: sub.consumerGroup,
          slice: sub.slice,
          method: sub.method,
          maxAttempts: sub.maxAttempts,
          lag: lags.reduce((a, b) => a + b, 0),
          partitions: topic.partitions.map((log_, p) => ({
            partition: p,
            next: index.offsetOf(sub.group, sub.topic, sub.consumerGroup, p)?.next ?? 0,
            head: log_.offsets.at(-1) ?? 0,
            lag: lags[p],
          })),
        };
      }),
    };
  };

  const serve = async (call: ServiceCall): Promise<unknown> => {
    switch (call.method) {
      case "publish":
        return await publish(call);
      case "create":
        return await create(call);
      case "subscribe":
        return await subscribe(call);
      case "unsubscribe":
        return await unsubscribe(call);
      case "seek":
        return await seekCall(call);
      case "info":
        return info(call);
      default:
        throw new AetherError("not_found", `pubsub has no method "${call.method}"`);
    }
  };

  return {
    serve,
    topics: (group) =>
      [...index.topics.values()].filter((t) => group === undefined || t.group === group)
        .sort((a, b) => `${a.group}/${a.topic}`.localeCompare(`${b.group}/${b.topic}`)).map(view),
    topic: (group, topicName) => {
      const topic = index.topicOf(group, topicName);
      return topic ? view(topic) : undefined;
    },
    seek,
    callAs: (group, method, payload, from) =>
      serve({
        group,
        method,
        payload,
        deadlineMs: Date.now() + 10_000,
        requestId: crypto.randomUUID(),
        ...(from === undefined ? {} : { from }),
      }),
    counters: () => ({ ...counters }),
    lagSeries: () =>
      [...index.subscriptions.values()].map((sub) => ({
        topic: `${sub.group}/${sub.topic}`,
        consumerGroup: sub.consumerGroup,
        lag: index.lag(sub).reduce((a, b) => a + b, 0),
      })),
    stop: () => {
      clearInterval(tick);
      clearInterval(retentionTick);
      clearInterval(reconcileTick);
      offEvents();
      offReset();
    },
  };
}

function defaultTopic(partitions: number): TopicRecord {
  return {
    partitions,
    retentionMs: DEFAULT_RETENTION_MS,
    retentionBytes: DEFAULT_RETENTION_BYTES,
    createdAtMs: Date.now(),
  };
}

function decodeJson<T>(bytes: Uint8Array): T | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch {
    return undefined;
  }
}

function decodeMessage(bytes: Uint8Array): MessageRecord | undefined {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as MessageRecord;
  } catch {
    return undefined;
  }
}
