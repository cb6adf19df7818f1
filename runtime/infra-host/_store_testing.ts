/**
 * In-process store nodes for this folder's tests: real `StoreNode`s on memory engines, joined by an in-memory
 * transport that copies every message (as the mesh would) and delivers it on a later turn. One store, "t",
 * whose every partition is owned by every node (first map: partition p's primary is node p % nodes).
 *
 * Faults: a node in `down` is disconnected (nothing to or from it is delivered, `isConnected` says no); a node
 * in `cut` still looks connected but loses every message (writes to it time out). `setMap` installs the next
 * map (epoch + 1) and tells every node, as a leader's map change does.
 */

import { type NodeId, silentLogger, systemClock } from "../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord } from "../model/mod.ts";
import { MemoryEngine } from "./engine.ts";
import { partitionOf } from "./partitioning.ts";
import {
  type Store,
  type StoreMeta,
  StoreNode,
  type StoreSettings,
  type StoreTransport,
} from "./store_node.ts";

export const TEST_STORE = "t";

export interface TestStoreOptions {
  nodes?: NodeId[];
  partitions?: number;
  /** Defaults to the number of nodes (every node an owner of every partition). */
  replicas?: number;
  writeQuorum?: number;
  settings?: Partial<StoreSettings>;
}

export interface TestStoreCluster {
  nodes: StoreNode[];
  partitions: number;
  down: Set<NodeId>;
  cut: Set<NodeId>;
  /** Node i's handle on the test store. */
  store(i: number): Store;
  /** The next partition map: epoch + 1, every node told. */
  setMap(next: Omit<PartitionMapRecord, "epoch" | "updatedAt" | "moving" | "nodes">): void;
  /** The index of the node that is primary of `key`'s partition in the first map. */
  primaryIndex(key: string): number;
  stop(): void;
}

export function testStoreCluster(options: TestStoreOptions = {}): TestStoreCluster {
  const names = options.nodes ?? ["n1", "n2", "n3"];
  const partitions = options.partitions ?? 4;
  const replicas = options.replicas ?? names.length;
  const handlers = new Map<NodeId, (from: NodeId, message: unknown) => void>();
  const down = new Set<NodeId>();
  const cut = new Set<NodeId>();
  const listeners = new Set<(store: string) => void>();
  const config: StoreConfigRecord = {
    replicas,
    writeQuorum: options.writeQuorum ?? Math.min(2, replicas),
    engine: "memory",
    partitions,
    createdAt: 1,
  };
  let map: PartitionMapRecord = {
    epoch: 1,
    nodes: names,
    owners: Array.from(
      { length: partitions },
      (_, p) => Array.from({ length: replicas }, (_, i) => (p + i) % names.length),
    ),
    moving: {},
    updatedAt: 1,
  };
  const meta: StoreMeta = {
    stores: () => [TEST_STORE],
    config: (s) => s === TEST_STORE ? config : undefined,
    map: (s) => s === TEST_STORE ? map : undefined,
    createConfig: () => Promise.resolve(),
    reports: () => new Map(),
    writeSyncReport: () => Promise.resolve(),
    onChange: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  const reachable = (from: NodeId, to: NodeId) => !down.has(to) && !down.has(from);
  const nodes = names.map((self) => {
    const transport: StoreTransport = {
      send(to, message) {
        const handler = handlers.get(to);
        if (!handler || !reachable(self, to)) return false;
        const copy = JSON.parse(JSON.stringify(message));
        setTimeout(() => {
          if (reachable(self, to) && !cut.has(to) && !cut.has(self)) handler(self, copy);
        }, 0);
        return true;
      },
      onMessage(handler) {
        handlers.set(self, handler);
        return () => handlers.delete(self);
      },
      isConnected: (node) => handlers.has(node) && reachable(self, node),
    };
    return new StoreNode({
      self,
      transport,
      meta,
      timers: systemClock,
      memory: new MemoryEngine((key) => partitionOf(key, partitions), { durable: true }),
      log: silentLogger,
      settings: { replicateTimeoutMs: 300, opTimeoutMs: 2_000, ...options.settings },
    });
  });
  return {
    nodes,
    partitions,
    down,
    cut,
    store: (i) => nodes[i].handle(TEST_STORE)!,
    setMap(next) {
      map = { ...map, ...next, epoch: map.epoch + 1, moving: {} };
      for (const listener of listeners) listener(TEST_STORE);
    },
    primaryIndex: (key) => partitionOf(key, partitions) % names.length,
    stop: () => nodes.forEach((n) => n.stop()),
  };
}
