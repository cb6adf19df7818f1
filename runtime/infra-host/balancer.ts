/**
 * The leader's duty for the store: keep every store's partition map in step with the live members. Only the
 * consensus-agreed leader runs it (the node turns it on and off with leadership); each change is a
 * compare-and-set on the map's previous epoch, so a deposed leader's late write cannot land.
 *
 * Liveness is the leader's view of the mesh, smoothed: a member counts as departed once it has been
 * disconnected for `departAfterMs` (its partitions fail over to a replica), and as joined once it has been
 * connected for `joinAfterMs` (partitions are then streamed to it and moved).
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
  mapsWritten = 0;

  constructor(options: BalancerOptions) {
    this.#o = options;
    this.settings = { ...DEFAULT_BALANCER_SETTINGS, ...options.settings };
  }

  setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#timer?.cancel();
    this.#timer = undefined;
    if (!leading) return;
    // A new leader trusts the connections it has now; the others get the departure grace from now.
    const now = this.#o.timers.now();
    this.#live.clear();
    this.#rejoined.clear();
    this.#seenDown.clear();
    this.#connectedSince.clear();
    this.#disconnectedSince.clear();
    for (const m of this.#o.members) {
      if (m === this.#o.self || this.#o.isConnected(m)) {
        this.#live.add(m);
        this.#connectedSince.set(m, now);
      } else {
        this.#live.add(m);
        this.#disconnectedSince.set(m, now);
      }
    }
    this.#schedule();
  }

  stop(): void {
    this.setLeading(false);
  }

  /** Members the leader counts as live now, sorted. */
  live(): NodeId[] {
    return [...this.#live].sort();
  }

  #schedule(): void {
    this.#timer = this.#o.timers.schedule(this.settings.intervalMs, () => {
      if (!this.#leading) return;
      try {
        this.tick();
      } catch (e) {
        this.#o.log.error("store balancer failed", { error: toAetherError(e).message });
      }
      this.#schedule();
    });
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
