/**
 * The cluster core's shared pieces that the node builds its features from (artifact repository, deployment,
 * invocation and HTTP routing, ...). The node passes each feature the pieces it declares in its own options,
 * together with what earlier features returned (features.ts); a feature never sees this bag as a whole, so it
 * cannot discover other features through it.
 */

import type { Hono } from "hono";
import type { Clock, LatencyHistogram, Logger, NodeId } from "../core/mod.ts";
import type { KvEvent, KvState, WatchHub } from "../kv/mod.ts";
import type { Mesh } from "../net/mod.ts";
import type { KvAccess, LeaderRecord } from "../cluster/mod.ts";
import type { EventBus } from "../metrics/mod.ts";

export interface NodeContext {
  self: NodeId;
  /** Every core member, sorted. */
  members: readonly NodeId[];
  dataDir: string;
  log: Logger;
  clock: Clock;
  mesh: Mesh;
  /** This node, or a peer the mesh reaches now. */
  isConnected(node: NodeId): boolean;
  /** Replicated writes and reads (the same access the management API has, without the app/ rule). */
  kv: KvAccess;
  /** The node's current copy of the replicated state (replaced when a snapshot is installed). */
  state(): KvState;
  watches: WatchHub;
  /** Called after every applied batch with its changes, once they are durable; in revision order. */
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  /** Called when the state was replaced wholesale by a snapshot: rebuild caches from `state()`. */
  onReset(listener: () => void): () => void;
  /** Caught up with the cluster and taking part in consensus. */
  ready(): boolean;
  /** A majority of members (this one included) is connected. */
  quorum(): boolean;
  /** The consensus-agreed leader record, if any. */
  leader(): LeaderRecord | null;
  /** This node is the recorded leader and can act as one (ready, with quorum). */
  isLeader(): boolean;
  /** Called whenever isLeader() changes. */
  onLeadership(listener: (leading: boolean) => void): () => void;
  /** The node's cluster event bus: features publish what they decide (controller, rollouts, alerts). */
  events: EventBus;
  /** Consensus counters of this member (for the metrics feature). */
  consensusStats(): {
    phases: number;
    batches: number;
    commands: number;
    forwardedWrites: number;
    servedForwardedWrites: number;
    pendingBatches: number;
  };
  /** Latency of the KV writes made through `kv`, from submit until applied here. */
  commitLatency: LatencyHistogram;
}

/** What the node itself uses of every started feature. */
export interface Feature {
  name: string;
  /** Routes mounted under /api/v1 on the management API. */
  api?: Hono;
  /** Merged into GET /api/v1/status under the feature's name. */
  status?(): unknown;
  stop?(): Promise<void>;
}

/** A tiny listener set (synchronous fan-out; a failing listener is logged and the rest still run). */
export class Listeners<A extends unknown[]> {
  readonly #listeners = new Set<(...args: A) => void>();

  constructor(private readonly log: Logger, private readonly what: string) {}

  add(listener: (...args: A) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit(...args: A): void {
    for (const listener of this.#listeners) {
      try {
        listener(...args);
      } catch (e) {
        this.log.error(`${this.what} listener failed`, { error: (e as Error).stack ?? String(e) });
      }
    }
  }
}
