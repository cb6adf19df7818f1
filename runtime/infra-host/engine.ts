/**
 * Storage engines of the infrastructure store: where one node keeps the entries of the partitions it owns.
 * The replication layer (store_node.ts) decides what to write; an engine only stores, finds and scans.
 *
 * Every write is visible to reads at once and durable once the promise `put` returned resolves: the SQLite
 * engine commits everything staged in one task in one transaction (group commit), the memory engine at once.
 */

import type { NodeId } from "../core/mod.ts";

/** One stored version of a key. A tombstone (value null) remembers a delete so replicas cannot resurrect it. */
export interface StoredEntry {
  key: string;
  value: string | null;
  /** Orders versions of a key: epoch × 2^32 + a counter, assigned by the partition's primary. */
  version: number;
  /** The primary that assigned the version (breaks ties between deposed primaries' unacknowledged writes). */
  origin: NodeId;
  /** Wall-clock ms when the primary accepted the write. */
  writtenAtMs: number;
  /** Wall-clock ms after which the entry reads as absent; 0 for never. */
  expiresAtMs: number;
}

/** True when `a` is a newer version than `b` (b absent: always). */
export function newer(a: StoredEntry, b: StoredEntry | undefined): boolean {
  if (!b) return true;
  if (a.version !== b.version) return a.version > b.version;
  return a.origin > b.origin;
}

/** True when the entry reads as a live value at `nowMs`. */
export function isLive(
  entry: StoredEntry | undefined,
  nowMs: number,
): entry is StoredEntry & { value: string } {
  return entry !== undefined && entry.value !== null &&
    (entry.expiresAtMs === 0 || entry.expiresAtMs > nowMs);
}

export interface StoreEngine {
  readonly kind: "sqlite" | "memory";
  /** Entries survive a process crash (a memory engine's do not: its node resyncs them from replicas). */
  readonly durable: boolean;
  get(store: string, key: string): StoredEntry | undefined;
  /** Stores the entry (replacing the key's previous one); resolves once durable. */
  put(store: string, partition: number, entry: StoredEntry): Promise<void>;
  /** Resolves once everything stored so far is durable. */
  flush(): Promise<void>;
  /** Every entry of one partition, tombstones included, in key order. */
  scan(store: string, partition: number): StoredEntry[];
  /**
   * Characters of key and value, plus `perEntryBytes` each, of the live entries (no tombstones, not expired at
   * `nowMs`) of one partition whose keys start with `prefix` (the per-group storage bound counts with it).
   */
  liveBytes(store: string, partition: number, prefix: string, nowMs: number, perEntryBytes: number): number;
  /** Partitions that hold at least one entry. */
  partitions(store: string): number[];
  /** Removes one partition's entries (this node no longer owns it). */
  dropPartition(store: string, partition: number): void;
  /** Removes entries that expired before `expiredBeforeMs` and tombstones written before `tombstonesBeforeMs`. */
  sweep(
    store: string,
    expiredBeforeMs: number,
    tombstonesBeforeMs: number,
  ): { partition: number; entry: StoredEntry }[];
  /** Every entry of a store with its partition (startup: rebuilds the node's digests and versions). */
  all(store: string): Iterable<{ partition: number; entry: StoredEntry }>;
  /** Commits what is staged and releases the engine. */
  close(): void;
}

/** The in-memory engine: a map per partition. Nothing survives the process. */
export class MemoryEngine implements StoreEngine {
  readonly kind = "memory" as const;
  readonly durable: boolean;
  readonly #stores = new Map<string, Map<number, Map<string, StoredEntry>>>();
  readonly #partitionOf: (key: string) => number;

  /** `durable`: only for the simulator, which keeps one engine across a simulated node's crashes. */
  constructor(partitionOf: (key: string) => number, options: { durable?: boolean } = {}) {
    this.#partitionOf = partitionOf;
    this.durable = options.durable ?? false;
  }

  get(store: string, key: string): StoredEntry | undefined {
    return this.#stores.get(store)?.get(this.#partitionOf(key))?.get(key);
  }

  put(store: string, partition: number, entry: StoredEntry): Promise<void> {
    let partitions = this.#stores.get(store);
    if (!partitions) this.#stores.set(store, partitions = new Map());
    let entries = partitions.get(partition);
    if (!entries) partitions.set(partition, entries = new Map());
    entries.set(entry.key, entry);
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  scan(store: string, partition: number): StoredEntry[] {
    const entries = this.#stores.get(store)?.get(partition);
    return entries ? [...entries.values()].sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0) : [];
  }

  liveBytes(store: string, partition: number, prefix: string, nowMs: number, perEntryBytes: number): number {
    let bytes = 0;
    for (const entry of this.#stores.get(store)?.get(partition)?.values() ?? []) {
      if (entry.key.startsWith(prefix) && isLive(entry, nowMs)) {
        bytes += entry.key.length + entry.value.length + perEntryBytes;
      }
    }
    return bytes;
  }

  partitions(store: string): number[] {
    return [...(this.#stores.get(store)?.keys() ?? [])].sort((a, b) => a - b);
  }

  dropPartition(store: string, partition: number): void {
    this.#stores.get(store)?.delete(partition);
  }

  sweep(store: string, expiredBeforeMs: number, tombstonesBeforeMs: number) {
    const removed: { partition: number; entry: StoredEntry }[] = [];
    for (const [partition, entries] of this.#stores.get(store) ?? []) {
      for (const entry of entries.values()) {
        if (sweepable(entry, expiredBeforeMs, tombstonesBeforeMs)) {
          entries.delete(entry.key);
          removed.push({ partition, entry });
        }
      }
      if (entries.size === 0) this.#stores.get(store)?.delete(partition);
    }
    return removed;
  }

  *all(store: string): Iterable<{ partition: number; entry: StoredEntry }> {
    for (const [partition, entries] of this.#stores.get(store) ?? []) {
      for (const entry of entries.values()) yield { partition, entry };
    }
  }

  close(): void {
    this.#stores.clear();
  }
}

export function sweepable(entry: StoredEntry, expiredBeforeMs: number, tombstonesBeforeMs: number): boolean {
  if (entry.value === null) return entry.writtenAtMs < tombstonesBeforeMs;
  return entry.expiresAtMs !== 0 && entry.expiresAtMs < expiredBeforeMs;
}
