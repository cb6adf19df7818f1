/**
 * What a node offers the features built on the cluster core (artifact repository, deployment, invocation,
 * HTTP routing, metrics, ...). A feature is started with a NodeContext and returns a Feature: its management
 * API routes, an application HTTP handler, a status contribution and a stop hook. Features talk to each other
 * only through what they are given here and through the replicated KV store.
 */

import type { Hono } from "hono";
import type { Clock } from "../core/clock.ts";
import type { NodeId } from "../core/ids.ts";
import type { Logger } from "../core/log.ts";
import type { KvEvent } from "../kv/commands.ts";
import type { KvState } from "../kv/state.ts";
import type { WatchHub } from "../kv/watch.ts";
import type { Mesh } from "../net/mod.ts";
import type { KvAccess, LeaderRecord } from "../cluster/mod.ts";
import type { NodeFlags } from "./flags.ts";

export interface NodeContext {
  self: NodeId;
  /** Every core member, sorted. */
  members: readonly NodeId[];
  dataDir: string;
  /** The node's command-line flags (feature settings such as --artifact-replicas live here). */
  flags: NodeFlags;
  log: Logger;
  clock: Clock;
  mesh: Mesh;
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
  /** The node's own bound ports. */
  ports(): { cluster: number; api: number; http: number };
  /**
   * Services features offer each other (e.g. "repository" offers fetchArtifact, "deployment" its executor and
   * endpoint registry). A feature provides while it starts; later features use what earlier ones provided.
   */
  services: ServiceRegistry;
}

export class ServiceRegistry {
  readonly #services = new Map<string, unknown>();

  provide<T>(name: string, service: T): void {
    if (this.#services.has(name)) throw new Error(`service "${name}" is provided twice`);
    this.#services.set(name, service);
  }

  /** The service, or an error naming what is missing (a feature started before the one providing it). */
  use<T>(name: string): T {
    if (!this.#services.has(name)) {
      throw new Error(
        `service "${name}" is not provided: check the feature order in runtime/node/features.ts`,
      );
    }
    return this.#services.get(name) as T;
  }

  find<T>(name: string): T | undefined {
    return this.#services.get(name) as T | undefined;
  }
}

export interface Feature {
  name: string;
  /** Routes mounted under /api/v1 on the management API. */
  api?: Hono;
  /** Handles requests on the application HTTP port (at most one feature provides it). */
  app?: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;
  /** Merged into GET /api/v1/status under the feature's name. */
  status?(): unknown;
  stop?(): Promise<void>;
}

export type FeatureFactory = (ctx: NodeContext) => Feature | Promise<Feature>;

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
