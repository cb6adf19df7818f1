/**
 * `ctx.infra.topic(name)`: durable pub/sub (runtime/infra-host/pubsub_service.ts, manifest `requires:
 * ["pubsub"]`). Topics belong to the slice's group: another group's slice naming the same topic reaches its
 * own. Free of bare specifiers (the child process runs without a config file).
 */

import type { CallOptions, JsonValue } from "./_types.ts";

export interface PublishOptions extends CallOptions {
  /** Messages with one key go to one partition and are delivered in publish order. */
  key?: string;
  /**
   * A publish retried with the same key (after a timeout, say) is stored once: the answer names the first
   * one's offset with `duplicate: true` (for as long as retention keeps the message).
   */
  idempotencyKey?: string;
}

export interface PublishResult {
  topic: string;
  partition: number;
  /** The message's offset: grows within a partition (with gaps). */
  offset: number;
  duplicate: boolean;
}

export interface SubscribeOptions extends CallOptions {
  /** The consumer group: each group gets every message (at least once). */
  group: string;
  /** The method of this slice that receives each message as its request (a `DeliveredMessage`). */
  method: string;
  /** Failed deliveries of a message before it goes to `{topic}.dlq` (default 5, 1-100). */
  maxAttempts?: number;
  /** Where a new group starts: "latest" (default: messages published from now on), "earliest", an offset. */
  from?: "earliest" | "latest" | number;
  /** Another slice of this group to deliver to (`group:artifact`); default: the calling slice. */
  slice?: string;
}

/** What a subscriber's method receives. */
export interface DeliveredMessage<T = JsonValue> {
  topic: string;
  consumerGroup: string;
  partition: number;
  offset: number;
  id: string;
  key?: string;
  value: T;
  publishedAtMs: number;
  /** 1 for the first delivery; higher after failures, and again after a failover redelivers. */
  attempt: number;
}

export interface TopicInfo {
  group: string;
  topic: string;
  partitions: number;
  retentionMs: number;
  retentionBytes: number;
  messages: number;
  bytes: number;
  consumerGroups: Array<{
    consumerGroup: string;
    slice: string;
    method: string;
    maxAttempts: number;
    lag: number;
    partitions: Array<{ partition: number; next: number; head: number; lag: number }>;
  }>;
}

export interface TopicClient {
  publish(value: unknown, options?: PublishOptions): Promise<PublishResult>;
  /** Creates the topic (else the first publish or subscribe creates it with 4 partitions) or sets retention. */
  create(
    config: { partitions?: number; retentionMs?: number; retentionBytes?: number },
    options?: CallOptions,
  ): Promise<TopicInfo>;
  subscribe(options: SubscribeOptions): Promise<{ created: boolean }>;
  unsubscribe(group: string, options?: CallOptions): Promise<{ removed: boolean }>;
  /** Replay: the group's next delivery starts at `offset` (every partition, or `partition`). */
  seek(group: string, offset: number, options?: CallOptions & { partition?: number }): Promise<void>;
  /** The topic with its consumer groups' lag, or null. */
  info(options?: CallOptions): Promise<TopicInfo | null>;
}

type Send = (method: string, payload: Record<string, JsonValue>, options?: CallOptions) => Promise<unknown>;

function defined(fields: Record<string, JsonValue | undefined>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out;
}

export function topicClient(send: Send): TopicClient {
  return {
    publish: async (value, options) =>
      (await send(
        "publish",
        defined({ value: value as JsonValue, key: options?.key, idempotencyKey: options?.idempotencyKey }),
        options,
      )) as PublishResult,
    create: async (config, options) => (await send("create", defined({ ...config }), options)) as TopicInfo,
    subscribe: async (options) =>
      (await send(
        "subscribe",
        defined({
          group: options.group,
          method: options.method,
          maxAttempts: options.maxAttempts,
          from: options.from,
          slice: options.slice,
        }),
        options,
      )) as never,
    unsubscribe: async (group, options) => (await send("unsubscribe", { group }, options)) as never,
    seek: async (group, offset, options) =>
      void await send("seek", defined({ group, offset, partition: options?.partition }), options),
    info: async (options) => (await send("info", {}, options)) as TopicInfo | null,
  };
}
