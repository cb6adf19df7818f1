/**
 * The partitioned, replicated store as a node feature (`"store"`): one StoreNode over the mesh channel
 * `STORE_CHANNEL` and the consensus KV's `stores/` family, the durable SQLite engine in the data directory
 * and the memory engine, and the leader's balancer switched on and off with leadership.
 *
 * Later features (the infrastructure services) receive `stores` (InfraStores) as a typed argument.
 */

import type { Hono } from "hono";
import { type Logger, type NodeId, systemClock, type Timers } from "../core/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { Mesh } from "../net/mod.ts";
import { type BalancerSettings, StoreBalancer } from "./balancer.ts";
import { MemoryEngine } from "./engine.ts";
import { SqliteEngine } from "./sqlite_engine.ts";
import { KvStoreMeta } from "./kv_meta.ts";
import { partitionOf } from "./partitioning.ts";
import { STORE_CHANNEL } from "./_protocol.ts";
import { type Store, StoreNode, type StoreOptions, type StoreSettings } from "./store_node.ts";
import { storeRoutes } from "./api.ts";

export interface InfraStoreOptions {
  self: NodeId;
  members: readonly NodeId[];
  dataDir: string;
  log: Logger;
  mesh: Mesh;
  isConnected(node: NodeId): boolean;
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  onLeadership(listener: (leading: boolean) => void): () => void;
  isLeader(): boolean;
  /** fsync every commit of the SQLite engine (default true). */
  fsync?: boolean;
  timers?: Timers;
  settings?: Partial<StoreSettings>;
  balancer?: Partial<BalancerSettings>;
}

/** What other features use: named stores. */
export interface InfraStores {
  /** Opens a store, creating it on first use (see store_node.ts `StoreOptions`). */
  open(name: string, options?: StoreOptions): Promise<Store>;
  /** A handle on an existing store without waiting (undefined when no such store). */
  get(name: string): Store | undefined;
  /** Names of every store. */
  list(): string[];
  status(): Record<string, unknown>;
}

export interface InfraStoreFeature {
  readonly name: "store";
  readonly stores: InfraStores;
  readonly api: Hono;
  status(): unknown;
  stop(): Promise<void>;
}

export function startInfraStore(options: InfraStoreOptions): InfraStoreFeature {
  const log = options.log.with({ component: "store" });
  const timers = options.timers ?? systemClock;
  const meta = new KvStoreMeta({ ...options, log });
  meta.setSelf(options.self);
  const durable = new SqliteEngine({ dataDir: options.dataDir, fsync: options.fsync ?? true });
  const memory = new MemoryEngine((key) => partitionOf(key));
  const node = new StoreNode({
    self: options.self,
    transport: {
      send: (to, message) => {
        try {
          return options.mesh.send(to, STORE_CHANNEL, message);
        } catch (e) {
          // Too large for one frame, or not encodable: a bug or a huge partition; the caller treats it as lost.
          log.warn("store: a message could not be sent", { to, error: (e as Error).message });
          return false;
        }
      },
      onMessage: (handler) =>
        options.mesh.onMessage(STORE_CHANNEL, (from, message) => handler(from, message)),
      isConnected: (peer) => options.isConnected(peer),
      onPeerDown: (handler) => options.mesh.onPeerDown((peer) => handler(peer)),
      writable: (peer) => options.mesh.writable(peer),
    },
    meta,
    timers,
    durable,
    memory,
    log,
    settings: options.settings,
  });
  const balancer = new StoreBalancer({
    self: options.self,
    members: options.members,
    meta,
    timers,
    log: log.with({ component: "store-balancer" }),
    isConnected: (peer) => options.isConnected(peer),
    settings: options.balancer,
  });
  const offLeadership = options.onLeadership((leading) => balancer.setLeading(leading));
  balancer.setLeading(options.isLeader());
  const stores: InfraStores = {
    open: (name, storeOptions) => node.open(name, storeOptions),
    get: (name) => node.handle(name),
    list: () => meta.stores(),
    status: () => node.status(),
  };
  return {
    name: "store",
    stores,
    api: storeRoutes(stores, log),
    status: () => ({ ...node.status(), balancer: { leading: options.isLeader(), live: balancer.live() } }),
    stop: () => {
      offLeadership();
      balancer.stop();
      node.stop();
      meta.stop();
      durable.close();
      memory.close();
      return Promise.resolve();
    },
  };
}
