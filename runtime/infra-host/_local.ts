/**
 * One store's state on one node: its engine, the partition map this node last applied, and per partition the
 * highest version seen, an incremental digest (entry count and XOR of (key, version) hashes, for anti-entropy)
 * and two flags:
 *
 * - `complete[p]`: this node holds every acknowledged write of p (or a newer version). True after start on a
 *   durable engine for partitions it owns; false on a memory engine after start, and on a node being added,
 *   until it streamed the partition from enough owners.
 * - `promoted[p]`: this node is p's primary and has pulled from enough owners since it became primary, so it
 *   serves reads and assigns versions above every acknowledged one.
 */

import type { NodeId } from "../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord } from "../model/mod.ts";
import { hash32, nextOwnersOf, ownersOf } from "./partitioning.ts";
import { newer, type StoredEntry, type StoreEngine } from "./engine.ts";

/** Versions are epoch × VERSION_EPOCH_BASE + a counter: a later primary's versions exceed a deposed one's. */
export const VERSION_EPOCH_BASE = 2 ** 32;

export type Role = "primary" | "owner" | "adding" | "none";

export class LocalStore {
  readonly name: string;
  readonly config: StoreConfigRecord;
  readonly engine: StoreEngine;
  map: PartitionMapRecord | undefined;
  readonly maxVersion: Float64Array;
  readonly count: Int32Array;
  readonly hash: Uint32Array;
  readonly complete: Uint8Array;
  readonly promoted: Uint8Array;
  /** For a partition this node is being added to: the move's `since` once its data was streamed. */
  readonly syncedSince = new Map<number, number>();
  /** Partitions that hold data here without this node owning them, and since when (dropped later). */
  readonly notOwnedSince = new Map<number, number>();
  /** Partitions whose promotion or sync is running now. */
  readonly syncing = new Set<number>();
  #roles: Role[];
  readonly self: NodeId;

  constructor(self: NodeId, name: string, config: StoreConfigRecord, engine: StoreEngine) {
    this.self = self;
    this.name = name;
    this.config = config;
    this.engine = engine;
    const n = config.partitions;
    this.maxVersion = new Float64Array(n);
    this.count = new Int32Array(n);
    this.hash = new Uint32Array(n);
    this.complete = new Uint8Array(n).fill(engine.durable ? 1 : 0);
    this.promoted = new Uint8Array(n);
    this.#roles = new Array(n).fill("none");
    for (const { partition, entry } of engine.all(name)) {
      if (partition >= n) continue;
      this.#account(partition, entry, 1);
    }
  }

  get epoch(): number {
    return this.map?.epoch ?? 0;
  }

  role(p: number): Role {
    return this.#roles[p];
  }

  owners(p: number): NodeId[] {
    return this.map ? ownersOf(this.map, p) : [];
  }

  next(p: number): NodeId[] {
    return this.map ? nextOwnersOf(this.map, p) : [];
  }

  moveSince(p: number): number | undefined {
    return this.map?.moving[String(p)]?.since;
  }

  /** Applies a new map: roles, and which partitions must be streamed here again. */
  setMap(map: PartitionMapRecord, nowMs: number): void {
    const first = this.map === undefined;
    this.map = map;
    for (let p = 0; p < this.config.partitions; p++) {
      const owners = ownersOf(map, p);
      const next = nextOwnersOf(map, p);
      const role: Role = owners[0] === this.self
        ? "primary"
        : owners.includes(this.self)
        ? "owner"
        : next.includes(this.self)
        ? "adding"
        : "none";
      this.#roles[p] = role;
      if (first && role !== "primary" && role !== "owner" && this.count[p] > 0) {
        // Data left from before this node departed: the owners moved on without it (deletes whose tombstones
        // are gone since could come back from it), so it starts over and streams the partition if added.
        this.drop(p);
      }
      if (role !== "primary") this.promoted[p] = 0;
      if (role === "adding") {
        if (this.syncedSince.get(p) !== map.moving[String(p)]?.since) {
          this.syncedSince.delete(p);
          this.complete[p] = 0;
        }
      } else this.syncedSince.delete(p);
      if (role === "none") {
        this.complete[p] = 0;
        if (this.count[p] > 0 && !this.notOwnedSince.has(p)) this.notOwnedSince.set(p, nowMs);
      } else this.notOwnedSince.delete(p);
    }
  }

  /** Quorum of a set of owners: the store's write quorum, or all of them when fewer. */
  quorumOf(set: readonly NodeId[]): number {
    return Math.min(this.config.writeQuorum, set.length);
  }

  /**
   * How many other owners a node must pull p from so that it holds every acknowledged write: any set of that
   * size contains a holder of each (at most replicas - writeQuorum owners lack one).
   */
  sourcesNeeded(p: number, selfComplete: boolean): number {
    const others = this.owners(p).filter((n) => n !== this.self).length;
    const slack = this.config.replicas - this.config.writeQuorum + (selfComplete ? 0 : 1);
    return Math.min(others, slack);
  }

  get(key: string): StoredEntry | undefined {
    return this.engine.get(this.name, key);
  }

  /** Keeps the entry if it is newer than the key's current one; resolves once that is durable. */
  apply(p: number, entry: StoredEntry): Promise<void> {
    const current = this.engine.get(this.name, entry.key);
    if (!newer(entry, current)) return this.engine.flush();
    if (current) this.#account(p, current, -1);
    this.#account(p, entry, 1);
    return this.engine.put(this.name, p, entry);
  }

  drop(p: number): void {
    this.engine.dropPartition(this.name, p);
    this.count[p] = 0;
    this.hash[p] = 0;
    this.maxVersion[p] = 0;
    this.complete[p] = 0;
    this.notOwnedSince.delete(p);
  }

  sweep(expiredBeforeMs: number, tombstonesBeforeMs: number): number {
    const removed = this.engine.sweep(this.name, expiredBeforeMs, tombstonesBeforeMs);
    for (const { partition, entry } of removed) this.#account(partition, entry, -1);
    return removed.length;
  }

  /** The next version this primary assigns in p. */
  nextVersion(p: number): number {
    const version = Math.max(this.maxVersion[p] + 1, this.epoch * VERSION_EPOCH_BASE);
    this.maxVersion[p] = version;
    return version;
  }

  #account(p: number, entry: StoredEntry, sign: 1 | -1): void {
    this.count[p] += sign;
    this.hash[p] = (this.hash[p] ^ entryHash(entry)) >>> 0;
    if (sign > 0 && entry.version > this.maxVersion[p]) this.maxVersion[p] = entry.version;
  }
}

export function entryHash(entry: StoredEntry): number {
  return hash32(`${entry.key}\u0000${entry.version}\u0000${entry.origin}`);
}
