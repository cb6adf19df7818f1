/**
 * Keys to partitions, and the leader's pure planner of partition maps: the initial placement, failover when
 * owners depart, moves that fill a partition back to its replica count or even out the load when nodes join,
 * completion of moves whose new owners reported their data streamed, and primary balancing.
 *
 * A move never hands ownership to a node before it holds the data: the planner first names the new owners in
 * `moving[p].next` (writes then go to both sets), each new owner streams the partition from the current owners
 * and reports it synced in `stores/{name}/synced/{node}`, and only then does `owners[p]` become `next`.
 */

import type { NodeId } from "../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord, SyncReportRecord } from "../model/mod.ts";

/** Partitions per store: fixed for a store's life (kept in its config record). */
export const PARTITION_COUNT = 1024;

const utf8 = new TextEncoder();

/** FNV-1a 32 over the key's UTF-8 bytes. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  // ASCII fast path; other strings go through the encoder so every runtime hashes the same bytes.
  let ascii = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) {
      ascii = false;
      break;
    }
    h = Math.imul(h ^ c, 0x01000193);
  }
  if (ascii) return h >>> 0;
  h = 0x811c9dc5;
  for (const b of utf8.encode(text)) h = Math.imul(h ^ b, 0x01000193);
  return h >>> 0;
}

/** The partition of `key` in a store of `partitions` partitions. */
export function partitionOf(key: string, partitions = PARTITION_COUNT): number {
  return hash32(key) % partitions;
}

export interface PlanInput {
  config: StoreConfigRecord;
  current: PartitionMapRecord | undefined;
  /** Nodes that may own partitions now (connected long enough), sorted. */
  live: readonly NodeId[];
  reports: ReadonlyMap<NodeId, SyncReportRecord>;
  nowMs: number;
  /** At most this many partitions move at once (each new owner streams its data first). */
  maxMoving: number;
  /**
   * Members seen disconnected and connected again since the last map: a restart may have lost what they
   * streamed, so their moves start over (reports from before do not count).
   */
  rejoined?: ReadonlySet<NodeId>;
}

/** The next map, or undefined when nothing changes. */
export function planPartitionMap(input: PlanInput): PartitionMapRecord | undefined {
  const { config, current, live } = input;
  if (live.length === 0) return undefined;
  if (!current) return initialMap(config, live, input.nowMs);
  const plan = new MapDraft(current, live);
  plan.restartMoves(input.rejoined ?? new Set());
  plan.completeMoves(input.reports);
  plan.dropDeparted();
  const replicas = Math.min(config.replicas, live.length);
  plan.fill(replicas, input.maxMoving);
  plan.rebalance(input.maxMoving);
  plan.balancePrimaries();
  return plan.result(input.nowMs);
}

function initialMap(config: StoreConfigRecord, live: readonly NodeId[], nowMs: number): PartitionMapRecord {
  const replicas = Math.min(config.replicas, live.length);
  const owners: number[][] = [];
  for (let p = 0; p < config.partitions; p++) {
    owners.push(Array.from({ length: replicas }, (_, i) => (p + i) % live.length));
  }
  return { epoch: 1, nodes: [...live], owners, moving: {}, updatedAt: nowMs };
}

/** A mutable copy of a map that the planner's steps change in turn. */
class MapDraft {
  readonly nodes: NodeId[];
  readonly owners: number[][];
  readonly moving = new Map<number, { next: number[]; since: number }>();
  readonly live: Set<number>;
  readonly epoch: number;
  changed = false;

  constructor(current: PartitionMapRecord, live: readonly NodeId[]) {
    this.epoch = current.epoch;
    this.nodes = [...current.nodes];
    for (const node of live) if (!this.nodes.includes(node)) this.nodes.push(node);
    if (this.nodes.length !== current.nodes.length) this.changed = true;
    this.owners = current.owners.map((o) => [...o]);
    for (const [p, move] of Object.entries(current.moving)) {
      this.moving.set(Number(p), { next: [...move.next], since: move.since });
    }
    this.live = new Set(live.map((n) => this.nodes.indexOf(n)));
  }

  /** Moves that add a rejoined member begin again at the next epoch, so only a report after it counts. */
  restartMoves(rejoined: ReadonlySet<NodeId>): void {
    if (rejoined.size === 0) return;
    const indexes = new Set([...rejoined].map((n) => this.nodes.indexOf(n)).filter((i) => i >= 0));
    for (const [p, move] of this.moving) {
      if (move.next.some((n) => indexes.has(n) && !this.owners[p].includes(n))) {
        move.since = this.epoch + 1;
        this.changed = true;
      }
    }
  }

  /** Moves whose every new owner reported the partition synced (at or after the move began) complete. */
  completeMoves(reports: ReadonlyMap<NodeId, SyncReportRecord>): void {
    const synced = new Map<number, { epoch: number; partitions: Set<number> }>();
    for (const [node, report] of reports) {
      const index = this.nodes.indexOf(node);
      if (index >= 0) synced.set(index, { epoch: report.epoch, partitions: new Set(report.partitions) });
    }
    for (const [p, move] of this.moving) {
      const adding = move.next.filter((n) => !this.owners[p].includes(n));
      const done = adding.every((n) => {
        const report = synced.get(n);
        return report !== undefined && report.epoch >= move.since && report.partitions.has(p);
      });
      if (done) this.#finish(p, move.next);
    }
  }

  /**
   * Owners that are not live leave `owners` (a replica takes over as primary) and `moving[p].next`. The last
   * owner of a partition is kept even when departed: it may come back with the data.
   */
  dropDeparted(): void {
    for (let p = 0; p < this.owners.length; p++) {
      const owners = this.owners[p];
      const alive = owners.filter((n) => this.live.has(n));
      if (alive.length > 0 && alive.length < owners.length) {
        this.owners[p] = alive;
        this.changed = true;
      }
      const move = this.moving.get(p);
      if (!move) continue;
      const next = move.next.filter((n) => this.live.has(n) || this.owners[p].includes(n));
      const adds = next.filter((n) => !this.owners[p].includes(n));
      if (adds.length === 0) {
        // Nothing left to stream: the move ends with the owners that remain.
        this.moving.delete(p);
        this.changed = true;
      } else if (next.length !== move.next.length) {
        move.next = next;
        this.changed = true;
      }
    }
  }

  /** Partitions with fewer than `replicas` owners get new ones (the least loaded live nodes). */
  fill(replicas: number, maxMoving: number): void {
    const load = this.#load();
    for (let p = 0; p < this.owners.length && this.moving.size < maxMoving; p++) {
      if (this.moving.has(p)) continue;
      const owners = this.owners[p].filter((n) => this.live.has(n));
      if (owners.length >= replicas) continue;
      const next = [...this.owners[p]];
      const candidates = [...this.live].filter((n) => !next.includes(n)).sort((a, b) =>
        load[a] - load[b] || a - b
      );
      while (next.filter((n) => this.live.has(n)).length < replicas && candidates.length > 0) {
        const add = candidates.shift()!;
        next.push(add);
        load[add]++;
      }
      if (next.length > this.owners[p].length) this.#startMove(p, next);
    }
  }

  /** A live node with at least two partitions more than another swaps one partition to it. */
  rebalance(maxMoving: number): void {
    const load = this.#load();
    const liveNodes = [...this.live];
    for (let p = 0; p < this.owners.length && this.moving.size < maxMoving; p++) {
      if (this.moving.has(p)) continue;
      const owners = this.owners[p];
      // The owner with the most load, against the least loaded live node that does not own p.
      const heaviest = [...owners].sort((a, b) => load[b] - load[a] || a - b)[0];
      const lightest = liveNodes.filter((n) =>
        !owners.includes(n)
      ).sort((a, b) => load[a] - load[b] || a - b)[0];
      if (heaviest === undefined || lightest === undefined) continue;
      if (load[heaviest] - load[lightest] < 2) continue;
      const next = owners.map((n) => n === heaviest ? lightest : n);
      // The new node never starts as primary: it takes the replaced owner's place unless that was the primary.
      if (owners[0] === heaviest && next.length > 1) next.push(next.shift()!);
      load[heaviest]--;
      load[lightest]++;
      this.#startMove(p, next);
    }
  }

  /** With no move under way, primaries move between owners so that no live node leads 2+ more than another. */
  balancePrimaries(): void {
    if (this.moving.size > 0) return;
    const primaries = new Array(this.nodes.length).fill(0);
    for (const owners of this.owners) if (owners.length > 0) primaries[owners[0]]++;
    for (let p = 0; p < this.owners.length; p++) {
      const owners = this.owners[p];
      if (owners.length < 2) continue;
      const primary = owners[0];
      const best = owners.slice(1).filter((n) =>
        this.live.has(n)
      ).sort((a, b) => primaries[a] - primaries[b])[0];
      if (best === undefined || primaries[primary] - primaries[best] < 2) continue;
      this.owners[p] = [best, ...owners.filter((n) => n !== best)];
      primaries[primary]--;
      primaries[best]++;
      this.changed = true;
    }
  }

  result(nowMs: number): PartitionMapRecord | undefined {
    if (!this.changed) return undefined;
    const moving: PartitionMapRecord["moving"] = {};
    for (const [p, move] of [...this.moving].sort((a, b) => a[0] - b[0])) moving[String(p)] = move;
    return { epoch: this.epoch + 1, nodes: this.nodes, owners: this.owners, moving, updatedAt: nowMs };
  }

  #finish(p: number, next: number[]): void {
    this.owners[p] = [...next];
    this.moving.delete(p);
    this.changed = true;
  }

  #startMove(p: number, next: number[]): void {
    this.moving.set(p, { next, since: this.epoch + 1 });
    this.changed = true;
  }

  /** Partitions per node index, counting both current owners and owners being added. */
  #load(): number[] {
    const load = new Array(this.nodes.length).fill(0);
    for (let p = 0; p < this.owners.length; p++) {
      const move = this.moving.get(p);
      const set = new Set([...this.owners[p], ...(move?.next ?? [])]);
      for (const n of set) load[n]++;
    }
    return load;
  }
}

/** The owners (primary first) of partition p, as node ids. */
export function ownersOf(map: PartitionMapRecord, p: number): NodeId[] {
  return (map.owners[p] ?? []).map((i) => map.nodes[i]);
}

/** The owners partition p is moving to (empty when it is not moving), as node ids. */
export function nextOwnersOf(map: PartitionMapRecord, p: number): NodeId[] {
  return (map.moving[String(p)]?.next ?? []).map((i) => map.nodes[i]);
}
