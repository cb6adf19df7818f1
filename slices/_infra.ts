/**
 * `ctx.infra`: typed clients of the infrastructure services (runtime/infra-host serves them in every node, on
 * the partitioned replicated store). A slice reaches a service only when its manifest `requires` it; every
 * call travels like a call to another slice (the reserved client `@infra`, artifact `aether.infra:<service>`),
 * carrying the call's request id and deadline. Data is scoped to the slice's group: slices of one group share
 * a cache or a lock by name, a slice of another group never sees them.
 *
 * This file must stay free of bare specifiers (the child process runs without a config file).
 */

import type { CallOptions, JsonValue } from "./_types.ts";
import { type MachineClient, machineClient, type SchedulerClient, schedulerClient } from "./_scheduler.ts";
import { type TopicClient, topicClient } from "./_infra_pubsub.ts";
import { type DbClient, dbClient } from "./_infra_db.ts";

/** One named cache: JSON values under string keys, with an optional time to live. */
export interface CacheClient {
  /** The value, or `undefined` when absent or expired. */
  get<T = JsonValue>(key: string, options?: CallOptions): Promise<T | undefined>;
  /** Stores `value` with the cache's default time to live (none: until evicted). */
  put(key: string, value: unknown, options?: CallOptions): Promise<void>;
  putWithTtl(key: string, value: unknown, ttlMs: number, options?: CallOptions): Promise<void>;
  /** True when a live entry was removed. */
  remove(key: string, options?: CallOptions): Promise<boolean>;
  /** Drops every entry of this cache (a new generation: old entries are never read again). */
  clear(options?: CallOptions): Promise<void>;
  /** The cached value, else `compute()`'s, stored (with `ttlMs` when given) and returned. */
  getOrCompute<T>(
    key: string,
    compute: () => T | Promise<T>,
    options?: CallOptions & { ttlMs?: number },
  ): Promise<T>;
  /** This cache's counters as the serving node counts them, and its configuration. */
  stats(options?: CallOptions): Promise<CacheStats>;
  /**
   * Sets this cache's configuration for every node (absent or 0: no default TTL / unbounded): puts without a
   * TTL get `defaultTtlMs`; each node evicts its least recently used keys beyond `maxEntries` or `maxBytes`.
   */
  configure(config: CacheConfig, options?: CallOptions): Promise<CacheConfig>;
}

export interface CacheConfig {
  defaultTtlMs?: number | null;
  maxEntries?: number;
  maxBytes?: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  puts: number;
  removes: number;
  clears: number;
  /** Entries this node deleted to keep the cache within its bounds. */
  evictions: number;
  /** Entries and bytes (key + JSON value) put through this node and still held. */
  entries: number;
  bytes: number;
  defaultTtlMs: number | null;
  maxEntries: number;
  maxBytes: number;
}

/** A held lock: `token` grows with every acquisition of the lock (a fencing token). */
export interface LockLease {
  name: string;
  token: number;
  /** Epoch ms (the store primary's clock) when the lease ends unless renewed. */
  expiresAtMs: number;
}

export interface LockClient {
  /**
   * Acquires the lock for `ttlMs` (default 10 000), waiting up to `waitMs` (default 0: fail at once) for a
   * holder to release it or its lease to end. Throws `LockBusy` (409) when it stays held.
   */
  acquire(options?: CallOptions & { ttlMs?: number; waitMs?: number }): Promise<LockLease>;
  /** Extends a held lease by `ttlMs`; throws `LockLost` (409) when the lease ended or another holds it. */
  renew(token: number, options?: CallOptions & { ttlMs?: number }): Promise<LockLease>;
  /** Releases the lease; false when it had already ended. */
  release(token: number, options?: CallOptions): Promise<boolean>;
  /** The current holder's token and expiry, or null when free. */
  holder(options?: CallOptions): Promise<{ token: number; expiresAtMs: number } | null>;
}

/** A durable map of JSON values with versions (compare-and-set) and an atomic add for counters. */
export interface KvClient {
  get<T = JsonValue>(
    key: string,
    options?: CallOptions,
  ): Promise<{ value: T; version: number } | null>;
  /**
   * `ifVersion`: write only when the entry is at that version (0: only when absent); else `VersionMismatch`.
   * `ttlMs`: the entry disappears that long after the write.
   */
  put(
    key: string,
    value: unknown,
    options?: CallOptions & { ifVersion?: number; ttlMs?: number },
  ): Promise<{ version: number }>;
  delete(key: string, options?: CallOptions & { ifVersion?: number }): Promise<boolean>;
  /** Adds `delta` to a number (absent: 0); with `min`, refuses (`BelowMinimum`, 409) to go below it. */
  add(
    key: string,
    delta: number,
    options?: CallOptions & { min?: number },
  ): Promise<{ value: number; version: number }>;
  /**
   * Several operations (of this map, or of another map of the group) in one service call, run against the
   * store at the same time (at most 64). Not atomic: a malformed operation refuses the whole batch before any
   * runs (TypeError here, 400 from the service); after that each operation keeps its own guarantee and answers
   * for itself, in the order given:
   * `{ ok: true, result }` (what `get`, `put`, `delete` or `add` alone returns) or `{ ok: false, error }` (e.g.
   * `BelowMinimum`, `VersionMismatch`). A failed operation does not undo the others: undo them yourself (e.g.
   * give back the units other lines took). A key may be written by one operation of a batch only (adds apart).
   */
  batch(ops: readonly KvOperation[], options?: CallOptions): Promise<KvBatchResult[]>;
}

/** One operation of `kv.batch`; `map`: another map of the slice's group (default: the client's). */
export type KvOperation =
  & { map?: string }
  & (
    | { op: "get"; key: string }
    | { op: "put"; key: string; value: unknown; ifVersion?: number; ttlMs?: number }
    | { op: "delete"; key: string; ifVersion?: number }
    | { op: "add"; key: string; delta: number; min?: number }
  );

/** One operation's answer in `kv.batch`. */
export type KvBatchResult =
  // deno-lint-ignore no-explicit-any
  | { ok: true; result: any }
  | { ok: false; error: { name: string; code: string; message: string; details?: JsonValue } };

/** `ctx.infra.http.request(...)`: what to send (only `url` is required). */
export interface HttpRequest {
  /** http: or https:, to a host the manifest declares (`outbound`) and the operator allows. */
  url: string;
  /** GET (default), HEAD, PUT, DELETE, OPTIONS (retried on failure), POST, PATCH (never retried). */
  method?: string;
  headers?: Record<string, string>;
  /** The request body as text (JSON.stringify objects); at most 1 MiB. */
  body?: string;
  /** Per request, default 10 000; never beyond the call's deadline. */
  timeoutMs?: number;
  /** Default 1 MiB, at most 8 MiB: a larger response fails with `ResponseTooLarge`. */
  maxResponseBytes?: number;
  /** Retries of an idempotent method after a network error, timeout or 502/503/504 (default 2, at most 5). */
  retries?: number;
  /** `text` (default, UTF-8) or `base64` for binary bodies. */
  responseType?: "text" | "base64";
}

export interface HttpResult {
  status: number;
  statusText: string;
  /** Lower-case names. */
  headers: Record<string, string>;
  body: string;
  /** The final URL after redirects. */
  url: string;
  redirects: number;
  attempts: number;
}

/**
 * Outbound HTTP through the node: errors are `HostNotAllowed` (403), `CircuitOpen` (503), `Timeout` (504),
 * `ConnectionFailed` (503), `ResponseTooLarge` (413), `TooManyRequests` (503: too many in flight),
 * `TooManyRedirects`; an HTTP error status is a result.
 */
export interface HttpClient {
  request(request: HttpRequest, options?: CallOptions): Promise<HttpResult>;
  /** `request` with fetch's argument order: `fetch(url, { method, headers, body })`. */
  fetch(url: string, init?: Omit<HttpRequest, "url">, options?: CallOptions): Promise<HttpResult>;
}

export interface InfraClients {
  cache(name: string): CacheClient;
  lock(name: string): LockClient;
  kv(name: string): KvClient;
  /** A job of the cluster scheduler (`requires: ["scheduler"]`), scoped to the slice's group. */
  scheduler(job: string): SchedulerClient;
  /** Instances of a state machine the group's slices declare (`requires: ["statemachine"]`). */
  machine(name: string): MachineClient;
  /** A durable pub/sub topic (`requires: ["pubsub"]`): publish, subscribe a consumer group, replay. */
  topic(name: string): TopicClient;
  /** A SQL database (`requires: ["db"]`): `query(sql, params)`, `transaction(fn)`, scoped to the group. */
  db(name: string): DbClient;
  /** Outbound HTTP (`requires: ["http"]`, `outbound: ["api.example.com"]`). */
  readonly http: HttpClient;
}

/** Sends one service call: `service` names the service, `method` its method. */
export type InfraCall = (
  service: string,
  method: string,
  payload: Record<string, JsonValue>,
  options: CallOptions | undefined,
) => Promise<unknown>;

function checkName(kind: string, name: unknown): string {
  if (typeof name !== "string" || !/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(name)) {
    throw new TypeError(
      `ctx.infra.${kind}(name): the name must be 1-64 letters, digits, '.', '_' or '-', got ${
        JSON.stringify(name)
      }`,
    );
  }
  return name;
}

function callOptions(options: CallOptions | undefined): CallOptions | undefined {
  return options?.timeoutMs === undefined ? undefined : { timeoutMs: options.timeoutMs };
}

export function infraClients(
  call: InfraCall,
  databases?: Readonly<Record<string, { migrations?: readonly string[] }>>,
): InfraClients {
  const request = async (req: HttpRequest, options?: CallOptions) => {
    if (req === null || typeof req !== "object" || typeof req.url !== "string") {
      throw new TypeError("ctx.infra.http.request(request): request.url must be a string");
    }
    return (await call(
      "http",
      "request",
      { ...req } as Record<string, JsonValue>,
      callOptions(options),
    )) as never;
  };
  return {
    scheduler(name: string): SchedulerClient {
      const job = checkName("scheduler", name);
      return schedulerClient((method, payload, options) =>
        call("scheduler", method, { job, ...payload }, callOptions(options))
      );
    },
    machine(name: string): MachineClient {
      const machine = checkName("machine", name);
      return machineClient((method, payload, options) =>
        call("statemachine", method, { machine, ...payload }, callOptions(options))
      );
    },
    db(name: string): DbClient {
      const db = checkName("db", name);
      return dbClient(
        (method, payload, options) => call("db", method, { db, ...payload }, callOptions(options)),
        databases?.[db]?.migrations,
      );
    },
    topic(name: string): TopicClient {
      const topic = checkName("topic", name);
      return topicClient((method, payload, options) =>
        call("pubsub", method, { topic, ...payload }, callOptions(options))
      );
    },
    http: {
      request,
      fetch: (url, init, options) => request({ ...init, url }, options),
    },
    cache(name: string): CacheClient {
      const cache = checkName("cache", name);
      const send = (method: string, payload: Record<string, JsonValue>, options?: CallOptions) =>
        call("cache", method, { cache, ...payload }, callOptions(options));
      const client: CacheClient = {
        // The service answers null for a miss (JSON has no undefined).
        get: async (key, options) => ((await send("get", { key }, options)) ?? undefined) as never,
        put: async (key, value, options) =>
          void await send("put", { key, value: value as JsonValue }, options),
        putWithTtl: async (key, value, ttlMs, options) =>
          void await send("put", { key, value: value as JsonValue, ttlMs }, options),
        remove: async (key, options) => (await send("remove", { key }, options)) as boolean,
        clear: async (options) => void await send("clear", {}, options),
        getOrCompute: async (key, compute, options) => {
          const cached = await client.get(key, options);
          if (cached !== undefined) return cached as never;
          const value = await compute();
          const put: Record<string, JsonValue> = { key, value: value as JsonValue };
          if (options?.ttlMs !== undefined) put.ttlMs = options.ttlMs;
          await send("put", put, options);
          return value;
        },
        stats: async (options) => (await send("stats", {}, options)) as CacheStats,
        configure: async (config, options) =>
          (await send("configure", { ...config } as Record<string, JsonValue>, options)) as never,
      };
      return client;
    },
    lock(name: string): LockClient {
      const lock = checkName("lock", name);
      const send = (method: string, payload: Record<string, JsonValue>, options?: CallOptions) =>
        call("lock", method, { lock, ...payload }, callOptions(options));
      const lease = (options: { ttlMs?: number; waitMs?: number } | undefined) => {
        const fields: Record<string, JsonValue> = {};
        if (options?.ttlMs !== undefined) fields.ttlMs = options.ttlMs;
        if (options?.waitMs !== undefined) fields.waitMs = options.waitMs;
        return fields;
      };
      return {
        acquire: async (options) => (await send("acquire", lease(options), options)) as LockLease,
        renew: async (token, options) =>
          (await send("renew", { token, ...lease(options) }, options)) as LockLease,
        release: async (token, options) => (await send("release", { token }, options)) as boolean,
        holder: async (options) => (await send("holder", {}, options)) as never,
      };
    },
    kv(name: string): KvClient {
      const map = checkName("kv", name);
      const send = (method: string, payload: Record<string, JsonValue>, options?: CallOptions) =>
        call("kv", method, { map, ...payload }, callOptions(options));
      const version = (
        options: { ifVersion?: number; ttlMs?: number } | undefined,
      ): Record<string, JsonValue> => ({
        ...(options?.ifVersion === undefined ? {} : { ifVersion: options.ifVersion }),
        ...(options?.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
      });
      return {
        get: async (key, options) => (await send("get", { key }, options)) as never,
        put: async (key, value, options) =>
          (await send("put", { key, value: value as JsonValue, ...version(options) }, options)) as never,
        delete: async (key, options) =>
          (await send("delete", { key, ...version(options) }, options)) as boolean,
        add: async (key, delta, options) =>
          (await send(
            "add",
            // `op` names this add: a retry of the call (the invoker's, after a service instance died) finds
            // its own write and does not add twice.
            {
              key,
              delta,
              op: crypto.randomUUID(),
              ...(options?.min === undefined ? {} : { min: options.min }),
            },
            options,
          )) as never,
        batch: async (ops, options) => {
          if (!Array.isArray(ops)) throw new TypeError("ctx.infra.kv(name).batch(ops): ops must be an array");
          const sent = ops.map((op, i) => {
            if (op === null || typeof op !== "object") {
              throw new TypeError(`ctx.infra.kv(name).batch(ops): ops[${i}] must be an object`);
            }
            // Each add gets an id, kept by retries of this call: an add that landed is not counted twice.
            return (op.op === "add" ? { ...op, id: crypto.randomUUID() } : { ...op }) as JsonValue;
          });
          return (await send("batch", { ops: sent }, options)) as KvBatchResult[];
        },
      };
    },
  };
}
