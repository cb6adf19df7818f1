/**
 * The leader's duty for the store: keep every store's partition map in step with the live members. Only the
 * consensus-agreed leader runs it (the node turns it on and off with leadership); each change is a
 * compare-and-set on the map's previous epoch, so a deposed leader's late write cannot land.
 *
 * Liveness is the leader's view of the mesh, smoothed: a member counts as departed once it has been
 * disconnected for `departAfterMs` (its partitions fail over to a replica), and as joined once it has been
 * connected for `joinAfterMs` (partitions are then streamed to it and moved). Every node watches its
 * connections while it is not the leader too, so a new leader counts the time a member has been down already:
 * when the leader dies, its partitions fail over `departAfterMs` after the survivors lost it (or at once on
 * election, if that took longer), not `departAfterMs` after the election. Liveness only decides when a map is
 * proposed; safety stays with the map's epoch (compare-and-set, leader only).
 */

import { type Logger, type NodeId, type Timers, toAetherError } from "../core/mod.ts";
import type { PartitionMapRecord } from "../model/mod.ts";
import { planPartitionMap } from "./partitioning.ts";
import type { StoreMeta } from "./store_node.ts";

export interface LeaderMeta extends StoreMeta {
  /** Writes the map if the stored one still has `previousEpoch` (0: none); rejects otherwise. */
  writeMap(store: string, map: PartitionMapRecord, previousEpoch: number): Promise<void>;
}

export interface BalancerSettings {
  intervalMs: number;
  departAfterMs: number;
  joinAfterMs: number;
  /** Partitions of one store moving at once. */
  maxMoving: number;
}

export const DEFAULT_BALANCER_SETTINGS: BalancerSettings = {
  intervalMs: 200,
  departAfterMs: 2_000,
  joinAfterMs: 1_000,
  maxMoving: 128,
};

export interface BalancerOptions {
  self: NodeId;
  members: readonly NodeId[];
  meta: LeaderMeta;
  timers: Timers;
  log: Logger;
  isConnected(node: NodeId): boolean;
  settings?: Partial<BalancerSettings>;
}

export class StoreBalancer {
  readonly settings: BalancerSettings;
  readonly #o: BalancerOptions;
  /** Per member: since when it has been connected (undefined: disconnected). */
  readonly #connectedSince = new Map<NodeId, number>();
  readonly #disconnectedSince = new Map<NodeId, number>();
  readonly #live = new Set<NodeId>();
  /** Per store: members seen disconnected, then connected again, since this leader last wrote its map. */
  readonly #rejoined = new Map<string, Set<NodeId>>();
  readonly #seenDown = new Set<NodeId>();
  readonly #writing = new Set<string>();
  #timer: { cancel(): void } | undefined;
  #leading = false;
  #stopped = false;
  mapsWritten = 0;

  constructor(options: BalancerOptions) {
    this.#o = options;
    this.settings = { ...DEFAULT_BALANCER_SETTINGS, ...options.settings };
    this.#observe();
    this.#schedule();
  }

  setLeading(leading: boolean): void {
    if (leading === this.#leading || this.#stopped) return;
    this.#leading = leading;
    if (!leading) return;
    // A new leader trusts the connections it has now; a member it has seen disconnected keeps the time it has
    // been down (watched before this node led), so its partitions fail over departAfterMs after it went away.
    const now = this.#o.timers.now();
    this.#observe();
    this.#live.clear();
    this.#rejoined.clear();
    this.#seenDown.clear();
    for (const m of this.#o.members) {
      if (m === this.#o.self || this.#o.isConnected(m)) {
        this.#live.add(m);
        this.#connectedSince.set(m, now);
        continue;
      }
      this.#seenDown.add(m);
      if (now - this.#disconnectedSince.get(m)! < this.settings.departAfterMs) this.#live.add(m);
    }
  }

  stop(): void {
    this.setLeading(false);
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** Members the leader counts as live now, sorted. */
  live(): NodeId[] {
    return [...this.#live].sort();
  }

  /** Every intervalMs: the leader plans; any other node only watches its connections. */
  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = this.#o.timers.schedule(this.settings.intervalMs, () => {
      if (this.#leading) this.#tickSafely();
      else this.#observe();
      this.#schedule();
    });
  }

  #tickSafely(): void {
    try {
      this.tick();
    } catch (e) {
      this.#o.log.error("store balancer failed", { error: toAetherError(e).message });
    }
  }

  /** Since when each member has been connected, or disconnected (kept while this node does not lead). */
  #observe(): void {
    const now = this.#o.timers.now();
    for (const m of this.#o.members) {
      if (m === this.#o.self) continue;
      if (this.#o.isConnected(m)) {
        this.#disconnectedSince.delete(m);
        if (!this.#connectedSince.has(m)) this.#connectedSince.set(m, now);
      } else {
        this.#connectedSince.delete(m);
        if (!this.#disconnectedSince.has(m)) this.#disconnectedSince.set(m, now);
      }
    }
  }

  /** One round: liveness, then a plan per store (public for tests). */
  tick(): void {
    this.#updateLiveness();
    const live = this.live();
    for (const store of this.#o.meta.stores()) {
      if (this.#writing.has(store)) continue;
      const config = this.#o.meta.config(store);
      if (!config) continue;
      const current = this.#o.meta.map(store);
      const next = planPartitionMap({
        config,
        current,
        live,
        reports: this.#o.meta.reports(store),
        nowMs: Math.round(this.#o.timers.now()),
        maxMoving: this.settings.maxMoving,
        rejoined: this.#rejoined.get(store),
      });
      if (!next) continue;
      this.#writing.add(store);
      const rejoined = [...this.#rejoined.get(store) ?? []];
      this.#o.meta.writeMap(store, next, current?.epoch ?? 0).then(
        () => {
          for (const n of rejoined) this.#rejoined.get(store)?.delete(n);
          this.mapsWritten++;
          this.#o.log.debug("store map written", {
            store,
            epoch: next.epoch,
            moving: Object.keys(next.moving).length,
          });
        },
        (e) => this.#o.log.debug("store map not written", { store, error: String(e) }),
      ).finally(() => this.#writing.delete(store));
    }
  }

  #updateLiveness(): void {
    const now = this.#o.timers.now();
    for (const m of this.#o.members) {
      if (m === this.#o.self) {
        this.#live.add(m);
        continue;
      }
      if (this.#o.isConnected(m)) {
        if (this.#seenDown.delete(m)) {
          for (const store of this.#o.meta.stores()) {
            let set = this.#rejoined.get(store);
            if (!set) this.#rejoined.set(store, set = new Set());
            set.add(m);
          }
        }
        this.#disconnectedSince.delete(m);
        if (!this.#connectedSince.has(m)) this.#connectedSince.set(m, now);
        if (now - this.#connectedSince.get(m)! >= this.settings.joinAfterMs) this.#live.add(m);
      } else {
        this.#seenDown.add(m);
        this.#connectedSince.delete(m);
        if (!this.#disconnectedSince.has(m)) this.#disconnectedSince.set(m, now);
        if (now - this.#disconnectedSince.get(m)! >= this.settings.departAfterMs) this.#live.delete(m);
      }
    }
  }
}
