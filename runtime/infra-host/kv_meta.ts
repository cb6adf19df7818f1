/**
 * The store's metadata port over the node's replicated KV: the `stores/` family of runtime/model (configs,
 * partition maps, sync reports), decoded once per change and cached, with a listener per store change.
 * Reads are this node's local copy; writes go through consensus.
 */

import { AetherError, type Logger, type NodeId } from "../core/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import {
  parseStoreKey,
  type PartitionMapRecord,
  storeCodec,
  type StoreConfigRecord,
  storeKeys,
  STORES_PREFIX,
  type SyncReportRecord,
} from "../model/mod.ts";
import type { LeaderMeta } from "./balancer.ts";

export interface KvMetaOptions {
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  log: Logger;
}

interface Cached<T> {
  revision: number;
  record: T;
}

export class KvStoreMeta implements LeaderMeta {
  readonly #o: KvMetaOptions;
  readonly #configs = new Map<string, Cached<StoreConfigRecord>>();
  readonly #maps = new Map<string, Cached<PartitionMapRecord>>();
  readonly #reports = new Map<string, Map<NodeId, SyncReportRecord>>();
  readonly #listeners = new Set<(store: string) => void>();
  readonly #unsubscribe: (() => void)[];

  constructor(options: KvMetaOptions) {
    this.#o = options;
    this.#reload();
    this.#unsubscribe = [
      options.onEvents((events) => this.#apply(events)),
      options.onReset(() => {
        this.#reload();
        for (const store of this.stores()) this.#emit(store);
      }),
    ];
  }

  stop(): void {
    for (const off of this.#unsubscribe) off();
  }

  stores(): string[] {
    return [...this.#configs.keys()].sort();
  }

  config(store: string): StoreConfigRecord | undefined {
    return this.#configs.get(store)?.record;
  }

  map(store: string): PartitionMapRecord | undefined {
    return this.#maps.get(store)?.record;
  }

  reports(store: string): Map<NodeId, SyncReportRecord> {
    return this.#reports.get(store) ?? new Map();
  }

  async createConfig(store: string, config: StoreConfigRecord): Promise<void> {
    try {
      await this.#o.kv.write({
        type: "put",
        key: storeKeys.config(store),
        value: storeCodec.encodeConfig(config),
        ifRevision: 0,
      });
    } catch (e) {
      // Someone created it first: the caller reads theirs.
      if (!(e instanceof AetherError && e.code === "compare_failed")) throw e;
    }
  }

  async writeSyncReport(store: string, report: SyncReportRecord): Promise<void> {
    // Written by this node only: the key names it.
    const self = this.#self;
    if (!self) throw new AetherError("internal", "store metadata: the node id is not set");
    await this.#o.kv.write({
      type: "put",
      key: storeKeys.synced(store, self),
      value: storeCodec.encodeSync(report),
    });
  }

  /** Set by the feature: whose sync reports this node writes. */
  #self: NodeId | undefined;
  setSelf(self: NodeId): void {
    this.#self = self;
  }

  async writeMap(store: string, map: PartitionMapRecord, previousEpoch: number): Promise<void> {
    const current = this.#maps.get(store);
    if ((current?.record.epoch ?? 0) !== previousEpoch) {
      throw new AetherError("compare_failed", `store ${store}: the map moved on from epoch ${previousEpoch}`);
    }
    await this.#o.kv.write({
      type: "put",
      key: storeKeys.map(store),
      value: storeCodec.encodeMap(map),
      ifRevision: current?.revision ?? 0,
    });
  }

  onChange(listener: (store: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #reload(): void {
    this.#configs.clear();
    this.#maps.clear();
    this.#reports.clear();
    const state = this.#o.state();
    for (const entry of state.range(STORES_PREFIX, Infinity)) {
      this.#put(entry.key, entry.value, entry.modRevision);
    }
  }

  #apply(events: readonly KvEvent[]): void {
    const changed = new Set<string>();
    for (const event of events) {
      if (!event.key.startsWith(STORES_PREFIX)) continue;
      const store = event.type === "put"
        ? this.#put(event.key, event.value!, event.revision)
        : this.#delete(event.key);
      if (store) changed.add(store);
    }
    for (const store of changed) this.#emit(store);
  }

  #emit(store: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(store);
      } catch (e) {
        this.#o.log.error("store metadata listener failed", {
          store,
          error: (e as Error).stack ?? String(e),
        });
      }
    }
  }

  /** Caches one record; returns its store (undefined for a key or record that does not parse). */
  #put(key: string, value: Uint8Array, revision: number): string | undefined {
    const parsed = parseStoreKey(key);
    if (!parsed) return undefined;
    try {
      switch (parsed.kind) {
        case "config":
          this.#configs.set(parsed.store, { revision, record: storeCodec.decodeConfig(value, key) });
          break;
        case "map":
          this.#maps.set(parsed.store, { revision, record: storeCodec.decodeMap(value, key) });
          break;
        case "synced": {
          let reports = this.#reports.get(parsed.store);
          if (!reports) this.#reports.set(parsed.store, reports = new Map());
          reports.set(parsed.node, storeCodec.decodeSync(value, key));
          break;
        }
      }
    } catch (e) {
      this.#o.log.warn("store metadata: a record does not parse; ignored", {
        key,
        error: (e as Error).message,
      });
      return undefined;
    }
    return parsed.store;
  }

  #delete(key: string): string | undefined {
    const parsed = parseStoreKey(key);
    if (!parsed) return undefined;
    if (parsed.kind === "config") this.#configs.delete(parsed.store);
    if (parsed.kind === "map") this.#maps.delete(parsed.store);
    if (parsed.kind === "synced") this.#reports.get(parsed.store)?.delete(parsed.node);
    return parsed.store;
  }
}
