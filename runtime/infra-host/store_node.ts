/**
 * The store on one node: the client side (route a get, put, delete or add to the partition's primary, retry what
 * was refused before it applied), the primary's side (compare-and-set, versions, replication to a write quorum
 * of the owners and, during a move, of the new owners too), the owners' side (apply replicated entries, serve
 * pulls), streaming partitions to new owners and to new primaries, anti-entropy repair, expiry and tombstone
 * sweeps, and dropping partitions this node no longer owns.
 *
 * It runs on ports (transport, metadata, timers) so the same code runs in a node over the mesh and the
 * consensus KV, and in the seeded simulator (sim/).
 */

import { AetherError, type Logger, type NodeId, type Timers, toAetherError } from "../core/mod.ts";
import {
  type PartitionMapRecord,
  type StoreConfigRecord,
  type StoreEngineName,
  storeNameText,
  type SyncReportRecord,
} from "../model/mod.ts";
import { isLive, type StoredEntry, type StoreEngine } from "./engine.ts";
import { LocalStore } from "./_local.ts";
import { entryBytes, GroupQuota, MAX_GROUP_BYTES_PER_STORE, RECOUNT_AFTER_MS } from "./_group_quota.ts";
import { PARTITION_COUNT, partitionOf } from "./partitioning.ts";
import {
  fromWire,
  type OpKind,
  parseStoreMessage,
  type StoreMessage,
  toWire,
  wireBytes,
  type WireEntry,
} from "./_protocol.ts";

/** What the store needs of the mesh. */
export interface StoreTransport {
  /** False when not sent (peer down, queue full). */
  send(to: NodeId, message: unknown): boolean;
  onMessage(handler: (from: NodeId, message: unknown) => void): () => void;
  isConnected(node: NodeId): boolean;
  /** Called when a peer's connection is lost (calls waiting on it end at once instead of at their deadline). */
  onPeerDown?(handler: (node: NodeId) => void): () => void;
  /** Resolves once the peer's queue has room (flow control for streams); absent: always room. */
  writable?(node: NodeId): Promise<boolean>;
}

/** The store's records in the consensus KV (model/stores.ts), read locally, written through consensus. */
export interface StoreMeta {
  stores(): string[];
  config(store: string): StoreConfigRecord | undefined;
  map(store: string): PartitionMapRecord | undefined;
  /** Creates the config record unless one exists (create-only); resolves either way. */
  createConfig(store: string, config: StoreConfigRecord): Promise<void>;
  /** Every node's latest sync report of a store. */
  reports(store: string): Map<NodeId, SyncReportRecord>;
  writeSyncReport(store: string, report: SyncReportRecord): Promise<void>;
  /** Called when a store's config or map changed (or appeared). */
  onChange(listener: (store: string) => void): () => void;
}

export interface StoreSettings {
  /** A client call's default deadline. */
  opTimeoutMs: number;
  /** One attempt at the primary waits this long for an answer. */
  attemptTimeoutMs: number;
  /** A primary waits this long for a write quorum. */
  replicateTimeoutMs: number;
  /** Promotions, syncs, sync reports and drops are looked at this often. */
  tickMs: number;
  /** The primary sends digests to the other owners this often. */
  antiEntropyMs: number;
  /** At most this many partitions stream into this node at once. */
  maxConcurrentSyncs: number;
  /** At most this many partitions are repaired per digest received. */
  maxRepairsPerDigest: number;
  /** At most this many client calls wait for an answer, and as many writes for a quorum, at once (more:
   * "overloaded"). */
  maxInFlight: number;
  /** A partition this node no longer owns is dropped after this long. */
  dropAfterMs: number;
  /**
   * An operation reaching a primary that is still taking its partition over (streaming what the other owners
   * hold) waits this long for it before it is refused and retried: after a failover it is answered as soon as
   * the partition is promoted, not a retry backoff later.
   */
  promoteWaitMs: number;
  /** Expired entries are swept (and no longer replicated) this long after they expired. */
  expiryGraceMs: number;
  /** Tombstones (deletes) are kept this long, so a replica that was away cannot resurrect a deleted key. */
  tombstoneTtlMs: number;
  maxValueBytes: number;
  maxKeyBytes: number;
  /** A stream message carries at most about this many bytes of entries. */
  chunkBytes: number;
  /** A pull with no answer for this long fails (and is tried again). */
  pullIdleTimeoutMs: number;
  /**
   * Bytes one group (a key's text before its first '/') may keep in one store, enforced per partition by its
   * primary (_group_quota.ts); 0: unbounded.
   */
  maxGroupBytes: number;
  /** Per-store overrides of `maxGroupBytes`, by store name. */
  maxGroupBytesByStore: Readonly<Record<string, number>>;
  /** A group's count found over its share is recounted by scan (expired entries drop out) at most this often. */
  groupRecountAfterMs: number;
}

export const DEFAULT_STORE_SETTINGS: StoreSettings = {
  opTimeoutMs: 5_000,
  attemptTimeoutMs: 1_500,
  replicateTimeoutMs: 1_500,
  tickMs: 100,
  antiEntropyMs: 2_000,
  maxConcurrentSyncs: 64,
  maxRepairsPerDigest: 32,
  maxInFlight: 20_000,
  dropAfterMs: 10_000,
  promoteWaitMs: 1_000,
  expiryGraceMs: 30_000,
  tombstoneTtlMs: 3_600_000,
  maxValueBytes: 1024 * 1024,
  maxKeyBytes: 1024,
  chunkBytes: 256 * 1024,
  pullIdleTimeoutMs: 3_000,
  maxGroupBytes: MAX_GROUP_BYTES_PER_STORE,
  maxGroupBytesByStore: {},
  groupRecountAfterMs: RECOUNT_AFTER_MS,
};

export interface StoreOptions {
  replicas?: number;
  writeQuorum?: number;
  engine?: StoreEngineName;
  /** Partitions of a new store (default PARTITION_COUNT, 1024); the simulator uses fewer. */
  partitions?: number;
}

export interface CallOptions {
  timeoutMs?: number;
}

export interface PutOptions extends CallOptions {
  /** The entry expires this long after the put. */
  ttlMs?: number;
  /** Compare-and-set: the current version must equal this (0: the key must be absent). */
  ifVersion?: number;
}

export interface DeleteOptions extends CallOptions {
  ifVersion?: number;
}

export interface AddOptions extends CallOptions {
  /** The result must not go below this: the add is refused (BelowMinimum) and nothing is written. */
  min?: number;
  /**
   * The add's id (1 to 64 characters): sending the same add again (after an unknown outcome) with the same id
   * does not add twice while the entry still remembers the id (the last ADD_IDS_KEPT adds of the key).
   */
  op?: string;
  /** The entry expires this long after this add; absent: the entry keeps its expiry (none for a new key). */
  ttlMs?: number;
}

/** How many of a counter's latest add ids its entry keeps (a retry behind more adds than this counts again). */
export const ADD_IDS_KEPT = 16;

/** A number written by `add`, as stored: the number and the ids of the latest adds that changed it. */
interface CounterText {
  $n: number;
  $ops: string[];
}

/**
 * The number a stored value holds and the add ids it remembers: a counter written by `add` (`{"$n", "$ops"}`,
 * or the kv service's older `{"$n", "$op"}`), or a plain JSON number. Anything else: a string naming what it
 * holds instead.
 */
export function readCounter(text: string | undefined): { n: number; ops: string[] } | string {
  if (text === undefined) return { n: 0, ops: [] };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "text that is not JSON";
  }
  if (typeof value === "number") return { n: value, ops: [] };
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    const keys = Object.keys(v);
    if (typeof v.$n === "number" && keys.length === 2) {
      if (Array.isArray(v.$ops) && v.$ops.every((o) => typeof o === "string")) {
        return { n: v.$n, ops: v.$ops as string[] };
      }
      if (typeof v.$op === "string") return { n: v.$n, ops: [v.$op] };
    }
    return "an object";
  }
  return value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`;
}

/** A live entry as a client sees it. */
export interface StoreEntry {
  key: string;
  value: string;
  version: number;
  /** Wall-clock ms when it expires; absent: never. */
  expiresAtMs?: number;
}

/** A named store: get, put (with TTL and compare-and-set), delete and an atomic add to numbers. */
export interface Store {
  readonly name: string;
  readonly config: StoreConfigRecord;
  get(key: string, options?: CallOptions): Promise<StoreEntry | undefined>;
  put(key: string, value: string, options?: PutOptions): Promise<{ version: number }>;
  delete(key: string, options?: DeleteOptions): Promise<boolean>;
  /**
   * Adds `delta` to the number the key holds (absent: 0), decided by the partition's primary on its copy in one
   * step and replicated to a write quorum like a put; resolves with the number after it and the entry's
   * version. Errors: `conflict` with errorName BelowMinimum (details.current) when the result would go below
   * `min`; `bad_request` with errorName NotANumber when the key holds something else; `unavailable` when the
   * outcome is unknown (send it again with the same `op`).
   */
  add(key: string, delta: number, options?: AddOptions): Promise<{ value: number; version: number }>;
}

export interface StoreNodeStats {
  opsServed: number;
  opsForwarded: number;
  retries: number;
  replicationFailures: number;
  pullsServed: number;
  partitionsSynced: number;
  promotions: number;
  repairsSent: number;
  entriesRepaired: number;
  partitionsDropped: number;
  badMessages: number;
}

export interface StoreNodeOptions {
  self: NodeId;
  transport: StoreTransport;
  meta: StoreMeta;
  timers: Timers;
  /** Durable engine for `engine: "sqlite"` stores; absent: such stores live in `memory`. */
  durable?: StoreEngine;
  memory: StoreEngine;
  log: Logger;
  settings?: Partial<StoreSettings>;
}

type OpRequest = Extract<StoreMessage, { t: "op" }>;
type OpReply = Extract<StoreMessage, { t: "op-r" }>;

interface Waiting<T> {
  peer: NodeId;
  resolve(value: T): void;
  timer: { cancel(): void };
}

interface Replication {
  quorum: number;
  owners: NodeId[];
  next: NodeId[];
  acked: Set<NodeId>;
  resolve(ok: boolean): void;
}

interface Pull {
  from: NodeId;
  store: LocalStore;
  p: number;
  idle: { cancel(): void };
  done(ok: boolean, reason?: string): void;
}

/** A partition with more entries is not repaired by key lists (one `sum` message must fit a mesh frame). */
const DIGEST_KEY_LIMIT = 20_000;

export class StoreNode {
  readonly self: NodeId;
  readonly settings: StoreSettings;
  readonly stats: StoreNodeStats = {
    opsServed: 0,
    opsForwarded: 0,
    retries: 0,
    replicationFailures: 0,
    pullsServed: 0,
    partitionsSynced: 0,
    promotions: 0,
    repairsSent: 0,
    entriesRepaired: 0,
    partitionsDropped: 0,
    badMessages: 0,
  };
  readonly #o: StoreNodeOptions;
  readonly #stores = new Map<string, LocalStore>();
  readonly #ops = new Map<number, Waiting<OpReply | undefined>>();
  readonly #replications = new Map<number, Replication>();
  readonly #pulls = new Map<number, Pull>();
  readonly #unsubscribe: (() => void)[] = [];
  /** Sync reports not written yet, by store. */
  readonly #reportDue = new Set<string>();
  readonly #reportsInFlight = new Set<string>();
  readonly #lastReported = new Map<string, string>();
  /** Operations waiting at this primary for their partition's promotion, by `store/p`. */
  readonly #promotionWaiters = new Map<string, Array<() => void>>();
  #promotionWaiting = 0;
  /** Client calls sleeping before a retry; a new partition map wakes them (it may name a new primary). */
  readonly #retrySleepers = new Set<() => void>();
  #kicked = false;
  #nextId = 1;
  #tickTimer: { cancel(): void } | undefined;
  #lastAntiEntropyMs = 0;
  #stopped = false;
  /** Each group's bytes per partition this node leads, counted lazily (the per-group storage bound). */
  readonly #quota: GroupQuota;

  constructor(options: StoreNodeOptions) {
    this.#o = options;
    this.self = options.self;
    this.settings = { ...DEFAULT_STORE_SETTINGS, ...options.settings };
    this.#quota = new GroupQuota(
      (store) =>
        Object.hasOwn(this.settings.maxGroupBytesByStore, store)
          ? this.settings.maxGroupBytesByStore[store]
          : this.settings.maxGroupBytes,
      { recountAfterMs: this.settings.groupRecountAfterMs },
    );
    this.#unsubscribe.push(
      options.transport.onMessage((from, message) => this.#receive(from, message)),
      options.meta.onChange((store) => this.#metaChanged(store)),
    );
    if (options.transport.onPeerDown) {
      this.#unsubscribe.push(options.transport.onPeerDown((peer) => this.#peerDown(peer)));
    }
    for (const store of options.meta.stores()) this.#metaChanged(store);
    this.#lastAntiEntropyMs = options.timers.now();
    this.#scheduleTick();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const off of this.#unsubscribe) off();
    this.#tickTimer?.cancel();
    for (const w of this.#ops.values()) {
      w.timer.cancel();
      w.resolve(undefined);
    }
    for (const r of this.#replications.values()) r.resolve(false);
    for (const pull of this.#pulls.values()) pull.done(false, "stopping");
    this.#wakePromotionWaiters();
    for (const wake of [...this.#retrySleepers]) wake();
    this.#ops.clear();
    this.#replications.clear();
    this.#pulls.clear();
  }

  // ------------------------------------------------------------------------------------------------ stores

  /** Opens (creating on first use) a named store; resolves once this node has its partition map. */
  async open(name: string, options: StoreOptions = {}, timeoutMs = 10_000): Promise<Store> {
    storeNameText(name, "store");
    const requested = checkStoreOptions(options);
    let config = this.#o.meta.config(name);
    if (!config) {
      const fresh: StoreConfigRecord = {
        replicas: requested.replicas ?? 3,
        writeQuorum: requested.writeQuorum ?? Math.min(2, requested.replicas ?? 3),
        engine: requested.engine ?? "sqlite",
        partitions: requested.partitions ?? PARTITION_COUNT,
        createdAt: Math.round(this.#o.timers.now()),
      };
      if (fresh.writeQuorum > fresh.replicas) {
        throw new AetherError(
          "bad_request",
          `store ${name}: writeQuorum (${fresh.writeQuorum}) must not exceed replicas (${fresh.replicas})`,
          { field: "writeQuorum" },
        );
      }
      await this.#o.meta.createConfig(name, fresh);
    }
    const deadline = this.#o.timers.now() + timeoutMs;
    for (;;) {
      config = this.#o.meta.config(name);
      if (config && this.#o.meta.map(name) && this.#stores.has(name)) break;
      if (this.#o.timers.now() >= deadline) {
        throw new AetherError(
          "unavailable",
          `store ${name}: no partition map within ${timeoutMs} ms (is there a leader?)`,
        );
      }
      await this.#sleep(20);
    }
    for (const field of ["replicas", "writeQuorum", "engine"] as const) {
      if (requested[field] !== undefined && requested[field] !== config[field]) {
        throw new AetherError(
          "conflict",
          `store ${name} exists with ${field} ${config[field]}, not ${requested[field]}`,
          { field },
        );
      }
    }
    return this.#handle(name, config);
  }

  /** A handle on a store that exists (its config is known here). */
  handle(name: string): Store | undefined {
    const config = this.#o.meta.config(name);
    return config ? this.#handle(name, config) : undefined;
  }

  local(name: string): LocalStore | undefined {
    return this.#stores.get(name);
  }

  status(): Record<string, unknown> {
    const stores: Record<string, unknown> = {};
    for (const [name, s] of this.#stores) {
      let primary = 0, owned = 0, adding = 0, complete = 0, promoted = 0, entries = 0;
      for (let p = 0; p < s.config.partitions; p++) {
        const role = s.role(p);
        if (role === "primary") primary++;
        if (role === "primary" || role === "owner") owned++;
        if (role === "adding") adding++;
        complete += s.complete[p];
        promoted += s.promoted[p];
        entries += s.count[p];
      }
      stores[name] = {
        ...s.config,
        epoch: s.epoch,
        moving: Object.keys(s.map?.moving ?? {}).length,
        primary,
        promoted,
        owned,
        adding,
        complete,
        entries,
      };
    }
    return { stores, stats: { ...this.stats } };
  }

  #handle(name: string, config: StoreConfigRecord): Store {
    return {
      name,
      config,
      get: async (key, options) => {
        const reply = await this.#call({ op: "get", s: name, key }, options?.timeoutMs);
        if (!reply.entry) return undefined;
        const e = fromWire(reply.entry);
        return {
          key: e.key,
          value: e.value!,
          version: e.version,
          ...(e.expiresAtMs ? { expiresAtMs: e.expiresAtMs } : {}),
        };
      },
      put: async (key, value, options) => {
        if (typeof value !== "string") {
          throw new AetherError("bad_request", `store ${name}: value must be a string, got ${typeof value}`, {
            field: "value",
          });
        }
        if (value.length > this.settings.maxValueBytes) {
          throw new AetherError(
            "too_large",
            `store ${name}: value of ${value.length} characters is over ${this.settings.maxValueBytes}`,
          );
        }
        const reply = await this.#call({
          op: "put",
          s: name,
          key,
          value,
          ttlMs: checkTtl(options?.ttlMs),
          ifVersion: checkIfVersion(options?.ifVersion),
        }, options?.timeoutMs);
        return { version: reply.version ?? 0 };
      },
      delete: async (key, options) => {
        const reply = await this.#call(
          { op: "del", s: name, key, ifVersion: checkIfVersion(options?.ifVersion) },
          options?.timeoutMs,
        );
        return reply.existed ?? false;
      },
      add: async (key, delta, options) => {
        const reply = await this.#call({
          op: "add",
          s: name,
          key,
          delta: checkFinite(delta, "delta"),
          ...(options?.min === undefined ? {} : { min: checkFinite(options.min, "min") }),
          ...(options?.op === undefined ? {} : { addId: checkAddId(options.op) }),
          ttlMs: checkTtl(options?.ttlMs),
        }, options?.timeoutMs);
        return { value: reply.n ?? 0, version: reply.version ?? 0 };
      },
    };
  }

  // ------------------------------------------------------------------------------------------------ client

  async #call(
    request: {
      op: OpKind;
      s: string;
      key: string;
      value?: string;
      ttlMs?: number;
      ifVersion?: number;
      delta?: number;
      min?: number;
      addId?: string;
    },
    timeoutMs = this.settings.opTimeoutMs,
  ): Promise<Extract<OpReply, { ok: true }>> {
    checkKey(request.key, request.s, this.settings.maxKeyBytes);
    const timers = this.#o.timers;
    const deadline = timers.now() + timeoutMs;
    let lastReason = "no attempt";
    for (let attempt = 0;; attempt++) {
      if (this.#stopped) throw new AetherError("unavailable", "the store is stopping");
      const local = this.#stores.get(request.s);
      const map = local?.map;
      let reply: OpReply | undefined;
      if (!local || !map) {
        lastReason = `store ${request.s} has no partition map on ${this.self} yet`;
      } else {
        const p = partitionOf(request.key, local.config.partitions);
        const primary = local.owners(p)[0];
        const op = { t: "op", id: 0, p, ...withoutUndefined(request) } as OpRequest;
        if (primary === this.self) {
          reply = await this.#serveOp(op);
        } else if (primary === undefined || !this.#o.transport.isConnected(primary)) {
          lastReason = `the primary of partition ${p} (${primary ?? "none"}) is not reachable`;
        } else {
          // A read that goes unanswered is simply sent again; a write cannot be (it may have been applied),
          // so it waits for its answer until the call's deadline.
          const remainingMs = deadline - timers.now();
          const waitMs = request.op === "get"
            ? Math.min(this.settings.attemptTimeoutMs, remainingMs)
            : remainingMs;
          reply = await this.#forward(primary, op, waitMs);
          if (reply === undefined && request.op !== "get") {
            throw new AetherError(
              "unavailable",
              `store ${request.s}: ${primary} did not answer the ${request.op} of "${request.key}" in time; ` +
                `it may or may not have been applied`,
            );
          }
          if (reply === undefined) lastReason = `${primary} did not answer in time`;
        }
      }
      if (reply?.ok) return reply;
      if (reply && !reply.ok) {
        if (!reply.retry) {
          throw new AetherError(reply.code, reply.message, {
            ...(reply.current !== undefined ? { version: reply.current } : {}),
            ...(reply.name !== undefined ? { errorName: reply.name, details: { current: reply.n } } : {}),
          });
        }
        lastReason = reply.message;
      }
      const waitMs = Math.min(10 * 2 ** Math.min(attempt, 5), 200);
      if (timers.now() + waitMs >= deadline) {
        throw new AetherError(
          "unavailable",
          `store ${request.s}: ${request.op} of "${request.key}" failed within ${timeoutMs} ms: ${lastReason}`,
        );
      }
      this.stats.retries++;
      await this.#sleepUntilRetry(waitMs);
    }
  }

  /** Sleeps `ms`, or less when a new partition map arrives meanwhile (the call's partition may have a new
   * primary: a failover is answered once it is done, not a backoff later). */
  #sleepUntilRetry(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        timer.cancel();
        this.#retrySleepers.delete(wake);
        resolve();
      };
      const timer = this.#o.timers.schedule(ms, wake);
      this.#retrySleepers.add(wake);
    });
  }

  #forward(primary: NodeId, op: OpRequest, timeoutMs: number): Promise<OpReply | undefined> {
    if (this.#ops.size >= this.settings.maxInFlight) {
      return Promise.resolve({
        t: "op-r",
        id: 0,
        ok: false,
        code: "overloaded",
        message: `store: ${this.#ops.size} calls are waiting for an answer already`,
        retry: false,
      });
    }
    const id = this.#nextId++;
    this.stats.opsForwarded++;
    return new Promise((resolve) => {
      const timer = this.#o.timers.schedule(Math.max(1, timeoutMs), () => {
        this.#ops.delete(id);
        resolve(undefined);
      });
      this.#ops.set(id, { peer: primary, resolve, timer });
      if (!this.#o.transport.send(primary, { ...op, id })) {
        timer.cancel();
        this.#ops.delete(id);
        resolve(refusal("unavailable", `could not send to ${primary}`));
      }
    });
  }

  /** Calls and streams waiting on a peer that went away end now: a read is retried, a write's outcome unknown. */
  #peerDown(peer: NodeId): void {
    for (const [id, w] of this.#ops) {
      if (w.peer !== peer) continue;
      this.#ops.delete(id);
      w.timer.cancel();
      w.resolve(undefined);
    }
    for (const pull of [...this.#pulls.values()]) {
      if (pull.from === peer) pull.done(false, `${peer} went away`);
    }
  }

  // ----------------------------------------------------------------------------------------------- primary

  async #serveOp(op: OpRequest, waited = false): Promise<OpReply> {
    const store = this.#stores.get(op.s);
    if (!store?.map) return refusal("unavailable", `store ${op.s} has no partition map on ${this.self} yet`);
    const p = op.p;
    if (p >= store.config.partitions || partitionOf(op.key, store.config.partitions) !== p) {
      return {
        t: "op-r",
        id: op.id,
        ok: false,
        code: "bad_request",
        message: `key is not in partition ${p}`,
        retry: false,
      };
    }
    if (store.role(p) !== "primary") {
      return refusal(
        "unavailable",
        `${this.self} is not the primary of partition ${p} at epoch ${store.epoch}`,
      );
    }
    if (!store.promoted[p]) {
      // Taking over after a failover: the caller waits here until the partition is promoted (every check above
      // runs again then: the map may have changed meanwhile) rather than a retry backoff longer.
      if (!waited && await this.#untilPromoted(store.name, p)) return await this.#serveOp(op, true);
      return refusal("unavailable", `partition ${p} is being taken over by ${this.self}`);
    }
    this.stats.opsServed++;
    const now = this.#o.timers.now();
    const current = store.get(op.key);
    const live = isLive(current, now) ? current : undefined;
    if (op.op === "get") {
      return { t: "op-r", id: op.id, ok: true, entry: live ? toWire(live) : null };
    }
    if (op.op === "add") return await this.#serveAdd(store, p, op, live, now);
    const currentVersion = live?.version ?? 0;
    if (op.ifVersion !== undefined && op.ifVersion !== currentVersion) {
      return {
        t: "op-r",
        id: op.id,
        ok: false,
        code: "compare_failed",
        message: `store ${op.s}: "${op.key}" is at version ${currentVersion}, not ${op.ifVersion}`,
        retry: false,
        current: currentVersion,
      };
    }
    if (op.op === "del" && !live) return { t: "op-r", id: op.id, ok: true, existed: false };
    const bytes = op.op === "put" ? entryBytes({ key: op.key, value: op.value ?? "" }) : 0;
    const overQuota = this.#overQuota(store, p, op, live, bytes, now);
    if (overQuota) return overQuota;
    if (this.#replications.size >= this.settings.maxInFlight) {
      return refusal("overloaded", `${this.self} has ${this.#replications.size} writes waiting for a quorum`);
    }
    const entry: StoredEntry = {
      key: op.key,
      value: op.op === "put" ? op.value ?? "" : null,
      version: store.nextVersion(p),
      origin: this.self,
      writtenAtMs: Math.round(now),
      expiresAtMs: op.op === "put" && op.ttlMs ? Math.round(now + op.ttlMs) : 0,
    };
    this.#quota.wrote(store, p, op.key, live, entry);
    if (!(await this.#replicate(store, p, entry))) return this.#notReplicated(op, p);
    return op.op === "put"
      ? { t: "op-r", id: op.id, ok: true, version: entry.version }
      : { t: "op-r", id: op.id, ok: true, existed: true };
  }

  /**
   * An add, decided here in one step: the primary is the only node that assigns versions in p and nothing
   * awaits between reading its copy and applying the new entry locally, so concurrent adds are serialized
   * (each builds on the one before, acknowledged or not yet) and none is lost or retried for contention.
   */
  async #serveAdd(
    store: LocalStore,
    p: number,
    op: OpRequest,
    live: StoredEntry | undefined,
    now: number,
  ): Promise<OpReply> {
    const fail = (code: "bad_request" | "conflict", name: string, message: string, n?: number): OpReply => ({
      t: "op-r",
      id: op.id,
      ok: false,
      code,
      message,
      retry: false,
      name,
      ...(n === undefined ? {} : { n }),
    });
    const counter = readCounter(live?.value ?? undefined);
    if (typeof counter === "string") {
      return fail("bad_request", "NotANumber", `store ${op.s}: "${op.key}" holds ${counter}, not a number`);
    }
    if (op.addId !== undefined && live && counter.ops.includes(op.addId)) {
      // A retry of an add this entry already counts: not added again. Its first attempt may not have reached a
      // quorum (its outcome was unknown), so the entry is replicated again before the answer says it is done.
      if (!(await this.#replicate(store, p, live))) return this.#notReplicated(op, p);
      return { t: "op-r", id: op.id, ok: true, version: live.version, n: counter.n };
    }
    const delta = op.delta ?? 0;
    const next = counter.n + delta;
    if (!Number.isFinite(next)) {
      return fail(
        "bad_request",
        "NotANumber",
        `store ${op.s}: "${op.key}" + ${delta} is not a finite number`,
      );
    }
    if (op.min !== undefined && next < op.min) {
      return fail(
        "conflict",
        "BelowMinimum",
        `store ${op.s}: "${op.key}" is ${counter.n}; adding ${delta} would go below ${op.min}`,
        counter.n,
      );
    }
    if (this.#replications.size >= this.settings.maxInFlight) {
      return refusal("overloaded", `${this.self} has ${this.#replications.size} writes waiting for a quorum`);
    }
    const ops = op.addId === undefined ? counter.ops : [...counter.ops, op.addId].slice(-ADD_IDS_KEPT);
    const value: CounterText = { $n: next, $ops: ops };
    const text = JSON.stringify(value);
    const overQuota = this.#overQuota(store, p, op, live, entryBytes({ key: op.key, value: text }), now);
    if (overQuota) return overQuota;
    const entry: StoredEntry = {
      key: op.key,
      value: text,
      version: store.nextVersion(p),
      origin: this.self,
      writtenAtMs: Math.round(now),
      expiresAtMs: op.ttlMs ? Math.round(now + op.ttlMs) : live?.expiresAtMs ?? 0,
    };
    this.#quota.wrote(store, p, op.key, live, entry);
    if (!(await this.#replicate(store, p, entry))) return this.#notReplicated(op, p);
    return { t: "op-r", id: op.id, ok: true, version: entry.version, n: next };
  }

  /**
   * The refusal of a write that would take its key's group over its share of partition p (QuotaExceeded,
   * 413); undefined when it fits. Nothing is written when refused, and the caller may not retry as is.
   */
  #overQuota(
    store: LocalStore,
    p: number,
    op: OpRequest,
    live: StoredEntry | undefined,
    bytes: number,
    now: number,
  ): OpReply | undefined {
    const refused = this.#quota.check(store, p, op.key, live, bytes, now);
    if (!refused) return undefined;
    return {
      t: "op-r",
      id: op.id,
      ok: false,
      code: "too_large",
      message: refused.message,
      retry: false,
      name: "QuotaExceeded",
      n: refused.bytes,
    };
  }

  /**
   * Resolves once partition p of `store` is promoted here, or the map changed, or promoteWaitMs passed; false
   * when no wait was possible (too many waiting already).
   */
  #untilPromoted(store: string, p: number): Promise<boolean> {
    if (this.#stopped || this.#promotionWaiting >= this.settings.maxInFlight) return Promise.resolve(false);
    const key = `${store}/${p}`;
    let list = this.#promotionWaiters.get(key);
    if (!list) this.#promotionWaiters.set(key, list = []);
    const waiters = list;
    this.#promotionWaiting++;
    return new Promise((resolve) => {
      const done = () => {
        timer.cancel();
        const i = waiters.indexOf(done);
        if (i < 0) return;
        waiters.splice(i, 1);
        this.#promotionWaiting--;
        if (waiters.length === 0 && this.#promotionWaiters.get(key) === waiters) {
          this.#promotionWaiters.delete(key);
        }
        resolve(true);
      };
      const timer = this.#o.timers.schedule(this.settings.promoteWaitMs, done);
      waiters.push(done);
    });
  }

  /** Wakes the operations waiting for partition p's promotion (every partition's when p is undefined). */
  #wakePromotionWaiters(store?: string, p?: number): void {
    const lists = store === undefined || p === undefined
      ? [...this.#promotionWaiters.values()]
      : [this.#promotionWaiters.get(`${store}/${p}`) ?? []];
    for (const list of lists) for (const done of [...list]) done();
  }

  #notReplicated(op: OpRequest, p: number): OpReply {
    this.stats.replicationFailures++;
    return {
      t: "op-r",
      id: op.id,
      ok: false,
      code: "unavailable",
      message:
        `store ${op.s}: the ${op.op} of "${op.key}" did not reach a write quorum of partition ${p}'s ` +
        `owners within ${this.settings.replicateTimeoutMs} ms; it may or may not have been applied`,
      retry: false,
    };
  }

  /** Applies locally and on the other owners (and new owners); true once a write quorum of each set has it. */
  #replicate(store: LocalStore, p: number, entry: StoredEntry): Promise<boolean> {
    const owners = store.owners(p);
    const next = store.next(p);
    const id = this.#nextId++;
    return new Promise<boolean>((resolve) => {
      const timer = this.#o.timers.schedule(this.settings.replicateTimeoutMs, () => finish(false));
      const finish = (ok: boolean) => {
        if (!this.#replications.delete(id)) return;
        timer.cancel();
        resolve(ok);
      };
      const replication: Replication = {
        quorum: store.config.writeQuorum,
        owners,
        next,
        acked: new Set(),
        resolve: finish,
      };
      this.#replications.set(id, replication);
      store.apply(p, entry).then(
        () => this.#acked(id, this.self),
        (e) => {
          this.#o.log.warn("store: local write failed", { store: store.name, error: String(e) });
          finish(false);
        },
      );
      const message = { t: "rep", id, s: store.name, p, epoch: store.epoch, e: [toWire(entry)] };
      for (const target of new Set([...owners, ...next])) {
        if (target !== this.self) this.#o.transport.send(target, message);
      }
    });
  }

  #acked(id: number, node: NodeId): void {
    const r = this.#replications.get(id);
    if (!r) return;
    r.acked.add(node);
    const enough = (set: NodeId[]) =>
      set.length === 0 || set.filter((n) => r.acked.has(n)).length >= Math.min(r.quorum, set.length);
    if (enough(r.owners) && enough(r.next)) r.resolve(true);
  }

  // ------------------------------------------------------------------------------------------------ inbound

  #receive(from: NodeId, raw: unknown): void {
    if (this.#stopped) return;
    const m = parseStoreMessage(raw);
    if (typeof m === "string") {
      this.stats.badMessages++;
      this.#o.log.debug("store: dropped a bad message", { from, problem: m });
      return;
    }
    switch (m.t) {
      case "op":
        this.#serveOp(m).then((reply) => this.#o.transport.send(from, { ...reply, id: m.id }));
        return;
      case "op-r": {
        const w = this.#ops.get(m.id);
        if (!w) return;
        this.#ops.delete(m.id);
        w.timer.cancel();
        w.resolve(m);
        return;
      }
      case "rep":
        this.#onReplicate(from, m);
        return;
      case "rep-r":
        if (m.ok) this.#acked(m.id, from);
        return;
      case "pull":
        this.#servePull(from, m);
        return;
      case "pull-r":
        this.#onPullData(from, m);
        return;
      case "dig":
        this.#onDigest(from, m);
        return;
      case "sum":
        this.#onSummary(from, m);
        return;
      case "fix":
        this.#onFix(from, m);
        return;
      case "want":
        this.#onWant(from, m);
        return;
    }
  }

  #onReplicate(from: NodeId, m: Extract<StoreMessage, { t: "rep" }>): void {
    const store = this.#stores.get(m.s);
    const answer = (ok: boolean, reason?: string) =>
      this.#o.transport.send(from, { t: "rep-r", id: m.id, ok, ...(reason ? { reason } : {}) });
    if (!store) return void answer(false, `store ${m.s} is not known on ${this.self} yet`);
    if (m.epoch < store.epoch) return void answer(false, `stale map epoch ${m.epoch} < ${store.epoch}`);
    if (m.p >= store.config.partitions) return void answer(false, `no partition ${m.p}`);
    const now = this.#o.timers.now();
    const writes = m.e.map(fromWire).filter((e) => this.#belongs(store, m.p, e) && this.#acceptable(e, now))
      .map((e) => store.apply(m.p, e));
    Promise.all(writes).then(() => answer(true), (e) => answer(false, String(e)));
  }

  /** A peer's entry for partition p whose key hashes elsewhere is dropped (it would corrupt the digests). */
  #belongs(store: LocalStore, p: number, e: StoredEntry): boolean {
    if (partitionOf(e.key, store.config.partitions) === p) return true;
    this.stats.badMessages++;
    return false;
  }

  /** Entries past their expiry grace or tombstone lifetime are not taken in (they would be swept at once). */
  #acceptable(e: StoredEntry, nowMs: number): boolean {
    if (e.value === null) return e.writtenAtMs >= nowMs - this.settings.tombstoneTtlMs;
    return e.expiresAtMs === 0 || e.expiresAtMs >= nowMs - this.settings.expiryGraceMs;
  }

  // ------------------------------------------------------------------------------------------ pull (stream)

  async #servePull(from: NodeId, m: Extract<StoreMessage, { t: "pull" }>): Promise<void> {
    const store = this.#stores.get(m.s);
    const refuse = (reason: string) =>
      this.#o.transport.send(from, { t: "pull-r", id: m.id, ok: false, reason });
    if (!store) return void refuse(`store ${m.s} is not known on ${this.self}`);
    if (store.epoch < m.epoch) return void refuse(`${this.self} is catching up (map epoch ${store.epoch})`);
    const role = store.role(m.p);
    if ((role !== "primary" && role !== "owner") || !store.complete[m.p]) {
      return void refuse(`${this.self} does not hold partition ${m.p} completely`);
    }
    this.stats.pullsServed++;
    const entries = store.engine.scan(store.name, m.p);
    let chunk: WireEntry[] = [];
    let bytes = 0;
    const flush = async (more: boolean) => {
      if (this.#o.transport.writable && !(await this.#o.transport.writable(from))) return false;
      this.#o.transport.send(from, { t: "pull-r", id: m.id, ok: true, e: chunk, more });
      chunk = [];
      bytes = 0;
      return true;
    };
    for (const entry of entries) {
      chunk.push(toWire(entry));
      bytes += wireBytes(entry);
      if (bytes >= this.settings.chunkBytes && !(await flush(true))) return;
    }
    await flush(false);
  }

  #onPullData(from: NodeId, m: Extract<StoreMessage, { t: "pull-r" }>): void {
    const pull = this.#pulls.get(m.id);
    if (!pull || pull.from !== from) return;
    if (!m.ok) return pull.done(false, m.reason ?? "refused");
    pull.idle.cancel();
    pull.idle = this.#o.timers.schedule(this.settings.pullIdleTimeoutMs, () => pull.done(false, "silent"));
    const now = this.#o.timers.now();
    const writes = (m.e ?? []).map(fromWire).filter((e) =>
      this.#belongs(pull.store, pull.p, e) && this.#acceptable(e, now)
    ).map((e) => pull.store.apply(pull.p, e));
    if (!m.more) Promise.all(writes).then(() => pull.done(true), (e) => pull.done(false, String(e)));
  }

  /** Streams partition p of `store` from `from`; resolves true once every entry is stored here durably. */
  #pull(store: LocalStore, p: number, from: NodeId): Promise<{ ok: boolean; reason?: string }> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const pull: Pull = {
        from,
        store,
        p,
        idle: this.#o.timers.schedule(this.settings.pullIdleTimeoutMs, () => pull.done(false, "silent")),
        done: (ok, reason) => {
          if (!this.#pulls.delete(id)) return;
          pull.idle.cancel();
          resolve({ ok, reason });
        },
      };
      this.#pulls.set(id, pull);
      if (!this.#o.transport.send(from, { t: "pull", id, s: store.name, p, epoch: store.epoch })) {
        pull.done(false, "not sent");
      }
    });
  }

  /**
   * Brings partition p here up to date from the other owners: for a new primary before it serves (promotion),
   * for a node being added, and for an owner that restarted empty. Needs `sourcesNeeded` owners that hold it
   * completely, or an answer from every other owner (some of them restarted empty too: a new store, or more
   * failures than the guarantee covers).
   */
  async #bringUp(store: LocalStore, p: number, kind: "promote" | "sync"): Promise<void> {
    const epoch = store.epoch;
    const need = store.sourcesNeeded(p, store.complete[p] === 1);
    const others = store.owners(p).filter((n) => n !== this.self);
    let ok = 0;
    let incomplete = 0;
    if (need > 0) {
      const results = await Promise.all(
        others.filter((n) => this.#o.transport.isConnected(n)).map((n) => this.#pull(store, p, n)),
      );
      ok = results.filter((r) => r.ok).length;
      incomplete = results.filter((r) => !r.ok && r.reason?.includes("completely")).length;
    }
    if (this.#stopped || store.epoch === 0) return;
    // Every other owner answered, some that they hold nothing completely (they restarted empty): with this
    // node that is more failures than the guarantee covers, so what they all had is what there is.
    const allAnswered = ok + incomplete === others.length;
    if (ok < need && !allAnswered) return;
    if (store.epoch !== epoch && store.role(p) === "none") return;
    store.complete[p] = 1;
    if (kind === "promote" && store.role(p) === "primary") {
      store.promoted[p] = 1;
      this.stats.promotions++;
      this.#wakePromotionWaiters(store.name, p);
    }
    if (kind === "sync") this.stats.partitionsSynced++;
    const since = store.moveSince(p);
    if (store.role(p) === "adding" && since !== undefined) {
      store.syncedSince.set(p, since);
      this.#reportDue.add(store.name);
    }
  }

  // ----------------------------------------------------------------------------------------- anti-entropy

  #sendDigests(): void {
    for (const store of this.#stores.values()) {
      if (!store.map) continue;
      const byTarget = new Map<NodeId, number[]>();
      for (let p = 0; p < store.config.partitions; p++) {
        if (store.role(p) !== "primary" || !store.promoted[p]) continue;
        for (const owner of store.owners(p)) {
          if (owner === this.self) continue;
          let d = byTarget.get(owner);
          if (!d) byTarget.set(owner, d = []);
          d.push(p, Math.max(0, store.count[p]), store.hash[p]);
        }
      }
      for (const [target, d] of byTarget) {
        this.#o.transport.send(target, { t: "dig", s: store.name, epoch: store.epoch, d });
      }
    }
  }

  #onDigest(from: NodeId, m: Extract<StoreMessage, { t: "dig" }>): void {
    const store = this.#stores.get(m.s);
    if (!store || store.epoch !== m.epoch) return;
    let repairs = 0;
    for (let i = 0; i < m.d.length && repairs < this.settings.maxRepairsPerDigest; i += 3) {
      const p = m.d[i];
      if (p >= store.config.partitions || store.role(p) !== "owner" || store.owners(p)[0] !== from) continue;
      if (!store.complete[p] || store.syncing.has(p)) continue;
      if (store.count[p] === m.d[i + 1] && store.hash[p] === m.d[i + 2]) continue;
      repairs++;
      const entries = store.engine.scan(store.name, p);
      if (entries.length > DIGEST_KEY_LIMIT) continue;
      this.stats.repairsSent++;
      this.#o.transport.send(from, {
        t: "sum",
        s: store.name,
        p,
        k: entries.map((e) => [e.key, e.version, e.origin]),
      });
    }
  }

  /** The primary's side: send what the owner lacks or holds older; ask for what it holds newer. */
  #onSummary(from: NodeId, m: Extract<StoreMessage, { t: "sum" }>): void {
    const store = this.#stores.get(m.s);
    if (!store || m.p >= store.config.partitions || store.role(m.p) !== "primary") return;
    const theirs = new Map(m.k.map(([key, version, origin]) => [key, { version, origin }]));
    const send: StoredEntry[] = [];
    for (const entry of store.engine.scan(store.name, m.p)) {
      const other = theirs.get(entry.key);
      if (
        !other || entry.version > other.version ||
        (entry.version === other.version && entry.origin > other.origin)
      ) {
        send.push(entry);
      }
    }
    const want: string[] = [];
    for (const [key, other] of theirs) {
      const own = store.get(key);
      if (
        !own || other.version > own.version || (other.version === own.version && other.origin > own.origin)
      ) {
        want.push(key);
      }
    }
    this.#sendEntries(from, store.name, m.p, send);
    if (want.length > 0) this.#o.transport.send(from, { t: "want", s: store.name, p: m.p, k: want });
  }

  #onWant(from: NodeId, m: Extract<StoreMessage, { t: "want" }>): void {
    const store = this.#stores.get(m.s);
    if (!store || m.p >= store.config.partitions) return;
    const entries = m.k.map((key) => store.get(key)).filter((e): e is StoredEntry => e !== undefined);
    this.#sendEntries(from, store.name, m.p, entries);
  }

  #sendEntries(to: NodeId, store: string, p: number, entries: StoredEntry[]): void {
    let chunk: WireEntry[] = [];
    let bytes = 0;
    for (const entry of entries) {
      chunk.push(toWire(entry));
      bytes += wireBytes(entry);
      if (bytes >= this.settings.chunkBytes) {
        this.#o.transport.send(to, { t: "fix", s: store, p, e: chunk });
        chunk = [];
        bytes = 0;
      }
    }
    if (chunk.length > 0) this.#o.transport.send(to, { t: "fix", s: store, p, e: chunk });
  }

  #onFix(from: NodeId, m: Extract<StoreMessage, { t: "fix" }>): void {
    const store = this.#stores.get(m.s);
    if (!store || m.p >= store.config.partitions || store.role(m.p) === "none") return;
    const owners = store.owners(m.p);
    if (!owners.includes(from) && !store.next(m.p).includes(from)) return;
    const now = this.#o.timers.now();
    for (const wire of m.e) {
      const entry = fromWire(wire);
      if (partitionOf(entry.key, store.config.partitions) !== m.p || !this.#acceptable(entry, now)) continue;
      this.stats.entriesRepaired++;
      store.apply(m.p, entry).catch((e) =>
        this.#o.log.warn("store: repair write failed", { error: String(e) })
      );
    }
  }

  // ------------------------------------------------------------------------------------------ maintenance

  #metaChanged(name: string): void {
    if (this.#stopped) return;
    const config = this.#o.meta.config(name);
    if (!config) return;
    let store = this.#stores.get(name);
    if (!store) {
      const engine = config.engine === "sqlite" ? this.#o.durable ?? this.#o.memory : this.#o.memory;
      store = new LocalStore(this.self, name, config, engine);
      this.#stores.set(name, store);
    }
    const map = this.#o.meta.map(name);
    if (map && map.epoch > store.epoch) {
      store.setMap(map, this.#o.timers.now());
      this.#quota.dropNotPrimary(store);
      this.#reportDue.add(name);
      // A new map may name new primaries: they start taking over now (not at the next tick), operations
      // waiting for a promotion look at the map again, and client calls waiting to retry retry now.
      this.#kick();
      this.#wakePromotionWaiters();
      for (const wake of [...this.#retrySleepers]) wake();
    }
  }

  /** Runs the maintenance tick as soon as possible (once, however many maps arrive in one turn). */
  #kick(): void {
    if (this.#kicked || this.#stopped) return;
    this.#kicked = true;
    this.#o.timers.schedule(0, () => {
      this.#kicked = false;
      if (this.#stopped) return;
      try {
        this.#tick();
      } catch (e) {
        this.#o.log.error("store: maintenance failed", { error: toAetherError(e).message });
      }
    });
  }

  #scheduleTick(): void {
    if (this.#stopped) return;
    this.#tickTimer = this.#o.timers.schedule(this.settings.tickMs, () => {
      try {
        this.#tick();
      } catch (e) {
        this.#o.log.error("store: maintenance failed", { error: toAetherError(e).message });
      }
      this.#scheduleTick();
    });
  }

  #tick(): void {
    const now = this.#o.timers.now();
    let running = 0;
    for (const store of this.#stores.values()) running += store.syncing.size;
    // Promotions first: operations wait for them (a failover), while a sync only adds a copy.
    for (const pass of ["promote", "sync"] as const) {
      for (const store of this.#stores.values()) {
        if (!store.map) continue;
        for (let p = 0; p < store.config.partitions && running < this.settings.maxConcurrentSyncs; p++) {
          if (store.syncing.has(p)) continue;
          const role = store.role(p);
          const kind = role === "primary" && !store.promoted[p]
            ? "promote"
            : (role === "owner" || role === "adding") && !store.complete[p]
            ? "sync"
            : undefined;
          if (kind !== pass) continue;
          running++;
          store.syncing.add(p);
          this.#bringUp(store, p, kind).catch((e) =>
            this.#o.log.warn("store: streaming a partition failed", {
              store: store.name,
              p,
              error: String(e),
            })
          ).finally(() => store.syncing.delete(p));
        }
      }
    }
    for (const name of [...this.#reportDue]) this.#report(name);
    if (now - this.#lastAntiEntropyMs >= this.settings.antiEntropyMs) {
      this.#lastAntiEntropyMs = now;
      this.#sendDigests();
      this.#sweepAndDrop(now);
    }
  }

  #sweepAndDrop(now: number): void {
    for (const store of this.#stores.values()) {
      store.sweep(now - this.settings.expiryGraceMs, now - this.settings.tombstoneTtlMs);
      if (!store.map) continue;
      for (let p = 0; p < store.config.partitions; p++) {
        if (store.role(p) !== "none" || store.count[p] <= 0) continue;
        const since = store.notOwnedSince.get(p);
        if (since === undefined) store.notOwnedSince.set(p, now);
        else if (now - since >= this.settings.dropAfterMs) {
          store.drop(p);
          this.stats.partitionsDropped++;
        }
      }
    }
  }

  /** Writes this node's sync report when the set of synced moving partitions changed. */
  #report(name: string): void {
    const store = this.#stores.get(name);
    if (!store?.map || this.#reportsInFlight.has(name)) return;
    this.#reportDue.delete(name);
    const partitions: number[] = [];
    for (const [p, since] of store.syncedSince) if (store.moveSince(p) === since) partitions.push(p);
    partitions.sort((a, b) => a - b);
    // The same partitions synced for a later move need a new report (the leader wants one from its epoch on).
    const text = partitions.map((p) => `${p}@${store.syncedSince.get(p)}`).join(",");
    if (this.#lastReported.get(name) === text) return;
    // Nothing synced: write only to clear a report this node left before it restarted (it may have lost
    // what that report promised).
    const stored = this.#o.meta.reports(name).get(this.self);
    if (partitions.length === 0 && (stored === undefined || stored.partitions.length === 0)) return;
    this.#reportsInFlight.add(name);
    this.#o.meta.writeSyncReport(name, { epoch: store.epoch, partitions }).then(
      () => this.#lastReported.set(name, text),
      (e) => {
        this.#reportDue.add(name);
        this.#o.log.debug("store: sync report not written", { store: name, error: String(e) });
      },
    ).finally(() => this.#reportsInFlight.delete(name));
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#o.timers.schedule(ms, resolve));
  }
}

function refusal(code: "unavailable" | "overloaded", message: string): OpReply {
  return { t: "op-r", id: 0, ok: false, code, message, retry: true };
}

function checkKey(key: unknown, store: string, maxKeyBytes: number): void {
  if (typeof key !== "string" || key.length === 0) {
    throw new AetherError("bad_request", `store ${store}: key must be a non-empty string`, { field: "key" });
  }
  if (new TextEncoder().encode(key).length > maxKeyBytes) {
    throw new AetherError("too_large", `store ${store}: key is over ${maxKeyBytes} bytes`, { field: "key" });
  }
}

function checkTtl(ttlMs: unknown): number | undefined {
  if (ttlMs === undefined) return undefined;
  if (typeof ttlMs !== "number" || !Number.isSafeInteger(ttlMs) || ttlMs < 1) {
    throw new AetherError(
      "bad_request",
      `ttlMs must be a positive integer (ms), got ${JSON.stringify(ttlMs)}`,
      {
        field: "ttlMs",
      },
    );
  }
  return ttlMs;
}

function checkFinite(value: unknown, field: string): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new AetherError(
      "bad_request",
      `add: ${field} must be a finite number, got ${JSON.stringify(value)}`,
      {
        field,
      },
    );
  }
  return value;
}

function checkAddId(op: unknown): string {
  if (typeof op !== "string" || op.length < 1 || op.length > 64) {
    throw new AetherError("bad_request", `add: op must be a string of 1 to 64 characters (the add's id)`, {
      field: "op",
    });
  }
  return op;
}

/** The request without fields set to undefined (they would not survive the wire's JSON anyway). */
function withoutUndefined<T extends Record<string, unknown>>(request: T): T {
  return Object.fromEntries(Object.entries(request).filter(([, v]) => v !== undefined)) as T;
}

function checkIfVersion(ifVersion: unknown): number | undefined {
  if (ifVersion === undefined) return undefined;
  if (typeof ifVersion !== "number" || !Number.isSafeInteger(ifVersion) || ifVersion < 0) {
    throw new AetherError(
      "bad_request",
      `ifVersion must be a version (an integer >= 0; 0 = absent), got ${JSON.stringify(ifVersion)}`,
      { field: "ifVersion" },
    );
  }
  return ifVersion;
}

function checkStoreOptions(options: StoreOptions): StoreOptions {
  const int = (name: "replicas" | "writeQuorum", v: unknown) => {
    if (v === undefined) return undefined;
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1 || v > 7) {
      throw new AetherError(
        "bad_request",
        `store option ${name} must be an integer from 1 to 7, got ${JSON.stringify(v)}`,
        {
          field: name,
        },
      );
    }
    return v;
  };
  const engine = options.engine;
  if (engine !== undefined && engine !== "sqlite" && engine !== "memory") {
    throw new AetherError(
      "bad_request",
      `store option engine must be "sqlite" or "memory", got ${JSON.stringify(engine)}`,
      {
        field: "engine",
      },
    );
  }
  const partitions = options.partitions;
  if (
    partitions !== undefined && (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > 65_536)
  ) {
    throw new AetherError("bad_request", `store option partitions must be an integer from 1 to 65536`, {
      field: "partitions",
    });
  }
  return {
    replicas: int("replicas", options.replicas),
    writeQuorum: int("writeQuorum", options.writeQuorum),
    engine,
    partitions,
  };
}
