/**
 * The pub/sub records in the consensus KV (pubsub_service.ts serves them). Every record is scoped to the slice
 * group that owns the topic (the calling slice's artifact group, set by the sandbox host):
 *
 * | key                                   | record        | written by                                     |
 * | ------------------------------------- | ------------- | ---------------------------------------------- |
 * | `pubsub/t/{group}/{topic}`            | TopicRecord   | the first publish/subscribe/create (absent→put) |
 * | `pubsub/m/{group}/{topic}/{id}`       | MessageRecord | publish (create only: the id is the idempotency |
 * |                                       |               | key); the leader's retention deletes it         |
 * | `pubsub/s/{group}/{topic}/{cg}`       | Subscription  | subscribe / unsubscribe                        |
 * | `pubsub/o/{group}/{topic}/{cg}/{p}`   | OffsetRecord  | the delivering leader (fenced), seek (replay)  |
 *
 * A message's **offset** is the KV revision that created it: offsets grow within a partition (and across the
 * whole cluster), with gaps. A consumer group's offset record holds `next`: the first offset not yet handled.
 */

import { AetherError } from "../core/mod.ts";

export const PUBSUB_PREFIX = "pubsub/";
export const TOPICS_PREFIX = "pubsub/t/";
export const MESSAGES_PREFIX = "pubsub/m/";
export const SUBSCRIPTIONS_PREFIX = "pubsub/s/";
export const OFFSETS_PREFIX = "pubsub/o/";

/** Topics across the cluster (each one's messages are held by every member). */
export const MAX_TOPICS = 1024;
/** Topics of one slice group. */
export const MAX_TOPICS_PER_GROUP = 64;
export const MAX_PARTITIONS = 32;
export const DEFAULT_PARTITIONS = 4;
/** A message: the JSON of its value plus its key, in bytes. */
export const MAX_MESSAGE_BYTES = 256 * 1024;
export const MAX_KEY_BYTES = 256;
export const DEFAULT_RETENTION_MS = 7 * 24 * 3600_000;
export const MAX_RETENTION_MS = 30 * 24 * 3600_000;
export const DEFAULT_RETENTION_BYTES = 16 * 1024 * 1024;
/** Every member holds every retained message in its consensus KV (memory, snapshots): kept modest. */
export const MAX_RETENTION_BYTES = 64 * 1024 * 1024;
/** Messages of all topics held at once; publishes beyond are refused (overloaded) until retention frees room. */
export const MAX_TOTAL_BYTES = 256 * 1024 * 1024;
/** Messages of one slice group's topics held at once (so one group cannot fill the cluster's room). */
export const MAX_GROUP_BYTES = 64 * 1024 * 1024;
/** Consumer groups subscribed to one topic. */
export const MAX_SUBSCRIPTIONS_PER_TOPIC = 16;
export const DEFAULT_MAX_ATTEMPTS = 5;
export const MAX_ATTEMPTS_LIMIT = 100;
/** Suffix of the dead-letter topic of `orders`: `orders.dlq`. */
export const DLQ_SUFFIX = ".dlq";

/** Topic and consumer-group names: 1-60 letters, digits, '.', '_', '-' (room for the `.dlq` suffix). */
export const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$/;
/** Message ids: an idempotency key `i.{key}` or a random `r.{uuid}`. */
export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:@=+-]{1,128}$/;
const GROUP = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const METHOD = /^[A-Za-z_$][A-Za-z0-9_$]{0,63}$/;
/** A slice without version: `group:artifact`. */
const SLICE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}:[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface TopicRecord {
  partitions: number;
  retentionMs: number;
  retentionBytes: number;
  createdAtMs: number;
}

export interface MessageRecord {
  /** Partition. */
  p: number;
  /** Partition key, if the publisher gave one. */
  k?: string;
  /** The value (any JSON). */
  v: unknown;
  /** Wall-clock time of the publishing node (retention by time compares it). */
  at: number;
}

export interface SubscriptionRecord {
  /** The subscribing slice, `group:artifact` (always of the topic's group). */
  slice: string;
  method: string;
  maxAttempts: number;
  createdAtMs: number;
}

export interface OffsetRecord {
  /** The first offset this consumer group has not handled (delivered or dead-lettered). */
  next: number;
}

export const topicKey = (group: string, topic: string) => `${TOPICS_PREFIX}${group}/${topic}`;
export const messagesPrefix = (group: string, topic: string) => `${MESSAGES_PREFIX}${group}/${topic}/`;
export const messageKey = (group: string, topic: string, id: string) =>
  `${messagesPrefix(group, topic)}${id}`;
export const subscriptionKey = (group: string, topic: string, consumerGroup: string) =>
  `${SUBSCRIPTIONS_PREFIX}${group}/${topic}/${consumerGroup}`;
export const offsetsPrefix = (group: string, topic: string, consumerGroup: string) =>
  `${OFFSETS_PREFIX}${group}/${topic}/${consumerGroup}/`;
export const offsetKey = (group: string, topic: string, consumerGroup: string, partition: number) =>
  `${offsetsPrefix(group, topic, consumerGroup)}${partition}`;

/** Splits a key under one of the prefixes into its path parts (group, topic, ...). */
export function keyParts(key: string, prefix: string): string[] {
  return key.slice(prefix.length).split("/");
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function encodeRecord(record: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(record));
}

export function decodeRecord<T>(bytes: Uint8Array | undefined): T | undefined {
  if (!bytes) return undefined;
  try {
    return JSON.parse(utf8Decoder.decode(bytes)) as T;
  } catch {
    return undefined;
  }
}

export function byteLength(text: string): number {
  return utf8.encode(text).byteLength;
}

function bad(where: string, message: string, field: string): never {
  throw new AetherError("bad_request", `${where}: ${message}`, { field });
}

export function checkGroup(where: string, group: unknown): string {
  if (typeof group !== "string" || !GROUP.test(group)) {
    bad(where, `group must be a slice group like org.example.shop, got ${JSON.stringify(group)}`, "group");
  }
  return group;
}

export function checkName(where: string, field: string, value: unknown): string {
  if (typeof value !== "string" || !NAME.test(value)) {
    bad(
      where,
      `${field} must be 1-60 letters, digits, '.', '_' or '-' (starting with a letter or digit), got ${
        JSON.stringify(value)
      }`,
      field,
    );
  }
  return value;
}

export function checkMethod(where: string, value: unknown): string {
  if (typeof value !== "string" || !METHOD.test(value)) {
    bad(where, `method must be a method name like handleOrder, got ${JSON.stringify(value)}`, "method");
  }
  return value;
}

export function checkSlice(where: string, value: unknown, group: string): string {
  if (typeof value !== "string" || !SLICE.test(value)) {
    bad(where, `slice must be group:artifact like ${group}:orders, got ${JSON.stringify(value)}`, "slice");
  }
  if (value.split(":")[0] !== group) {
    bad(where, `slice ${value} is not of the topic's group ${group}`, "slice");
  }
  return value;
}

export function checkInteger(
  where: string,
  field: string,
  value: unknown,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    bad(where, `${field} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`, field);
  }
  return value;
}

/** Refuses fields a request does not know, naming them and the fields it does. */
export function checkFields(where: string, payload: Record<string, unknown>, known: readonly string[]): void {
  for (const field of Object.keys(payload)) {
    if (!known.includes(field)) {
      bad(where, `unknown field ${JSON.stringify(field)} (fields: ${known.join(", ")})`, field);
    }
  }
}
