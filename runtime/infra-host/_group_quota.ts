/**
 * The per-group storage bound of a store, decided by each partition's primary (store_node.ts).
 *
 * A key's group is its text before the first '/' (the services scope every key as `{group}/...`, from the
 * caller's manifest). A group may keep `share` bytes (characters of key and value of live entries, plus
 * ENTRY_OVERHEAD_BYTES each) in one
 * partition: ceil(2 × limit / partitions). Keys hash uniformly over the partitions, so a group that spreads
 * its keys reaches about the limit before any partition refuses, and can never keep more than 2 × the limit
 * in the store; a group that piles its keys into one partition only limits itself.
 *
 * The primary counts a (store, group, partition) lazily: a range scan of the group's keys in the partition on
 * first use (engine `liveBytes`), then every write it decides adds the difference it makes; the count is
 * dropped when the node stops leading the partition (a new primary recounts). Writes it did not decide (anti-entropy repairs of a deposed
 * primary's writes, expiry sweeps) are not counted, so a count may drift; a write that would pass the share
 * recounts by scan first (at most once per `recountAfterMs` per count, default RECOUNT_AFTER_MS) so expired
 * and swept entries drop out. A scan of a full share costs about 2 ms (SQLite, 512 values of 4 KiB), so a
 * group hammering full partitions costs a primary at most one such scan per partition per RECOUNT_AFTER_MS.
 */

import type { StoredEntry } from "./engine.ts";
import type { LocalStore } from "./_local.ts";

/** Bytes one group may keep in one store (up to twice that in the worst case: see the file's comment). */
export const MAX_GROUP_BYTES_PER_STORE = 1024 * 1024 * 1024;
/** At most this many (store, group, partition) counts are cached on a node; the oldest are dropped first. */
export const MAX_GROUP_COUNTS = 100_000;
/** A count is recounted by scan before a refusal at most this often. */
export const RECOUNT_AFTER_MS = 10_000;

/**
 * What an entry costs beyond its key and value (version, origin, times, the partition index: about this on
 * disk in SQLite), so a group of many tiny entries is bounded by what it really takes.
 */
export const ENTRY_OVERHEAD_BYTES = 64;

/** The bytes an entry counts for: characters of its key and value plus the overhead; a tombstone nothing. */
export function entryBytes(entry: Pick<StoredEntry, "key" | "value"> | undefined): number {
  return entry === undefined || entry.value === null
    ? 0
    : entry.key.length + entry.value.length + ENTRY_OVERHEAD_BYTES;
}

/** The group a key belongs to (its text before the first '/'); undefined for a key outside any group. */
export function groupOf(key: string): string | undefined {
  const slash = key.indexOf("/");
  return slash > 0 ? key.slice(0, slash) : undefined;
}

/** The bytes a group may keep in one partition of a store of `partitions` partitions under `limitBytes`. */
export function partitionShare(limitBytes: number, partitions: number): number {
  return Math.ceil(limitBytes * 2 / partitions);
}

interface GroupCount {
  bytes: number;
  countedAtMs: number;
}

/** What a refused write is told. */
export interface QuotaRefusal {
  group: string;
  bytes: number;
  share: number;
  limitBytes: number;
  message: string;
}

export class GroupQuota {
  readonly #counts = new Map<string, GroupCount>();
  readonly #limitOf: (store: string) => number;
  readonly #maxCounts: number;
  readonly #recountAfterMs: number;

  /** `limitOf`: a store's limit in bytes per group (0: none). */
  constructor(
    limitOf: (store: string) => number,
    options: { maxCounts?: number; recountAfterMs?: number } = {},
  ) {
    this.#limitOf = limitOf;
    this.#maxCounts = options.maxCounts ?? MAX_GROUP_COUNTS;
    this.#recountAfterMs = options.recountAfterMs ?? RECOUNT_AFTER_MS;
  }

  /** Counts cached now (status, tests). */
  get size(): number {
    return this.#counts.size;
  }

  /**
   * Checks a write of `next` over `live` (the key's live entry) in partition p, decided now by the primary;
   * undefined when allowed. A write that does not grow the group's bytes is always allowed.
   */
  check(
    store: LocalStore,
    p: number,
    key: string,
    live: StoredEntry | undefined,
    next: number,
    nowMs: number,
  ) {
    const group = groupOf(key);
    const limitBytes = this.#limitOf(store.name);
    if (group === undefined || limitBytes <= 0) return undefined;
    const growth = next - entryBytes(live);
    if (growth <= 0) return undefined;
    const share = partitionShare(limitBytes, store.config.partitions);
    let count = this.#count(store, p, group, nowMs);
    if (count.bytes + growth > share && nowMs - count.countedAtMs >= this.#recountAfterMs) {
      count = this.#recount(store, p, group, nowMs);
    }
    if (count.bytes + growth <= share) return undefined;
    const refusal: QuotaRefusal = {
      group,
      bytes: count.bytes,
      share,
      limitBytes,
      message: `store ${store.name}: group ${group} keeps ${count.bytes} bytes in partition ${p}; ` +
        `this write (${growth} bytes more) would pass the group's share of ${share} bytes there ` +
        `(MAX_GROUP_BYTES_PER_STORE ${limitBytes} bytes per group per store, counted per partition as ` +
        `2 × ${limitBytes} / ${store.config.partitions}); delete keys or write smaller values`,
    };
    return refusal;
  }

  /** A write the primary decided (after `check` allowed it): its count follows. */
  wrote(store: LocalStore, p: number, key: string, live: StoredEntry | undefined, entry: StoredEntry): void {
    const group = groupOf(key);
    if (group === undefined) return;
    const count = this.#counts.get(countKey(store.name, p, group));
    if (count) count.bytes = Math.max(0, count.bytes + entryBytes(entry) - entryBytes(live));
  }

  /** Drops the counts of partitions this node no longer leads (a new primary recounts). */
  dropNotPrimary(store: LocalStore): void {
    const prefix = `${store.name}\u0000`;
    for (const key of [...this.#counts.keys()]) {
      if (!key.startsWith(prefix)) continue;
      const p = Number(key.slice(prefix.length, key.indexOf("\u0000", prefix.length)));
      if (store.role(p) !== "primary") this.#counts.delete(key);
    }
  }

  #count(store: LocalStore, p: number, group: string, nowMs: number): GroupCount {
    const key = countKey(store.name, p, group);
    const count = this.#counts.get(key);
    if (!count) return this.#recount(store, p, group, nowMs);
    // Most recently used last: the oldest is dropped first.
    this.#counts.delete(key);
    this.#counts.set(key, count);
    return count;
  }

  /** Counts the group's live entries in the partition by a scan of its keys' range there. */
  #recount(store: LocalStore, p: number, group: string, nowMs: number): GroupCount {
    const bytes = store.engine.liveBytes(store.name, p, `${group}/`, nowMs, ENTRY_OVERHEAD_BYTES);
    const key = countKey(store.name, p, group);
    const count = { bytes, countedAtMs: nowMs };
    this.#counts.delete(key);
    this.#counts.set(key, count);
    while (this.#counts.size > this.#maxCounts) this.#counts.delete(this.#counts.keys().next().value!);
    return count;
  }
}

function countKey(store: string, p: number, group: string): string {
  return `${store}\u0000${p}\u0000${group}`;
}
