/**
 * The cache service: named caches of JSON values with an optional time to live, kept in the durable store
 * `infra.cache` (replicated 3 ways, written to 2 before a put is acknowledged). Keys are
 * `{group}/{cache}/{generation}/{key}`. One record per cache, `{group}/{cache}/gen`, holds its generation and
 * its configuration (default TTL, max entries, max bytes): every call reads it, so a `configure` or `clear`
 * through one node holds for the next call through any node. `clear` starts a new generation, so entries of
 * an old one are never read again and expire or are overwritten later.
 *
 * Eviction (LRU, _cache_lru.ts) is per node: each node tracks the keys put through it and, once they exceed
 * `maxEntries` or `maxBytes`, deletes its least recently used ones (at the version it wrote, so a newer put
 * of that key through another node survives) before the put that went over is acknowledged. Hence, cluster
 * wide, a cache holds at most nodes × maxEntries entries (nodes × maxBytes bytes) of the current generation;
 * with slices spread evenly, about maxEntries in all. Keys put through a node before it restarted are no
 * longer tracked by it: they leave by their TTL, a clear, or a later put of the same key.
 *
 * Counters (hits, misses, puts, removes, clears, evictions, and the tracked entries and bytes) are this
 * node's; `cacheStats()` reads them for the metrics, which merge them across nodes. "entries" and "bytes"
 * (key + JSON value) are those of the keys put through this node in the current generation and not since
 * removed, evicted or found absent by a get here; the same for every cache, bounded or not. An unbounded
 * cache never evicts, and its index counts at most MAX_TRACKED_UNBOUNDED keys: beyond, the least recently
 * used leave the index (not the store), so the figures then count only the most recently used ones. Keys
 * that expired by their TTL count until a get through this node finds them absent.
 */

import { AetherError } from "../core/mod.ts";
import type { Store } from "./store_node.ts";
import { type InfraService, optionalMs, remainingMs, type ServiceCall, stringField } from "./services.ts";
import { type CacheLimits, type Evicted, LruIndex } from "./_cache_lru.ts";

/** The longest time to live a put may ask for: 30 days. */
const MAX_TTL_MS = 30 * 24 * 3600_000;
/** Caches whose counters and LRU index one node keeps; beyond, the oldest are forgotten. */
const MAX_COUNTED_CACHES = 10_000;
/** Largest value, as JSON. */
const MAX_VALUE_BYTES = 512 * 1024;
/** The largest maxEntries a cache may be given, and the count bound of a cache bounded by bytes only. */
export const MAX_CACHE_ENTRIES = 1_000_000;
/** The largest maxBytes a cache may be given: 4 GiB. */
export const MAX_CACHE_BYTES = 4 * 1024 ** 3;
/** Keys one node's index of an unbounded cache counts (memory bound: ~100 B + the key each). */
export const MAX_TRACKED_UNBOUNDED = 100_000;

/** A cache's configuration; 0 / null: unbounded / no default TTL. */
export interface CacheConfig {
  defaultTtlMs: number | null;
  maxEntries: number;
  maxBytes: number;
}

interface CacheMeta extends CacheConfig {
  gen: number;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  puts: number;
  removes: number;
  clears: number;
  evictions: number;
}

interface CacheState {
  counters: CacheCounters;
  lru: LruIndex;
  /** The generation the LRU index tracks keys of. */
  gen: number;
}

const caches = new Map<string, CacheState>();

function stateOf(scope: string): CacheState {
  let state = caches.get(scope);
  if (!state) {
    if (caches.size >= MAX_COUNTED_CACHES) caches.delete(caches.keys().next().value!);
    state = {
      counters: { hits: 0, misses: 0, puts: 0, removes: 0, clears: 0, evictions: 0 },
      lru: new LruIndex({ maxEntries: 0, maxBytes: 0 }, MAX_TRACKED_UNBOUNDED),
      gen: 0,
    };
    caches.set(scope, state);
  }
  return state;
}

/** This node's counters and tracked size of every cache it served, keyed `{group}/{cache}` (metrics). */
export function cacheStats(): Array<CacheCounters & { cache: string; entries: number; bytes: number }> {
  return [...caches].map(([cache, s]) => ({ cache, ...s.counters, entries: s.lru.size, bytes: s.lru.bytes }));
}

const DEFAULT_META: CacheMeta = { gen: 0, defaultTtlMs: null, maxEntries: 0, maxBytes: 0 };

/** The record: a bare number (a generation, from before caches had a configuration) or JSON. */
function parseMeta(value: string | undefined): CacheMeta {
  if (value === undefined) return { ...DEFAULT_META };
  if (!value.startsWith("{")) return { ...DEFAULT_META, gen: Number(value) || 0 };
  return { ...DEFAULT_META, ...JSON.parse(value) as Partial<CacheMeta> };
}

async function readMeta(store: Store, scope: string, timeoutMs: number) {
  const entry = await store.get(`${scope}/gen`, { timeoutMs });
  return { meta: parseMeta(entry?.value), version: entry?.version ?? 0 };
}

/** Compare-and-set on the record: concurrent clears and configures each apply in turn. */
async function updateMeta(
  store: Store,
  scope: string,
  timeoutMs: number,
  change: (meta: CacheMeta) => CacheMeta,
): Promise<CacheMeta> {
  for (;;) {
    const { meta, version } = await readMeta(store, scope, timeoutMs);
    const next = change(meta);
    try {
      await store.put(`${scope}/gen`, JSON.stringify(next), { timeoutMs, ifVersion: version });
      return next;
    } catch (e) {
      if (!(e instanceof AetherError && e.code === "compare_failed")) throw e;
    }
  }
}

function limitsOf(meta: CacheMeta): CacheLimits {
  // A cache bounded by bytes only is still bounded by count, so the index cannot grow without limit.
  return { maxEntries: meta.maxEntries || (meta.maxBytes ? MAX_CACHE_ENTRIES : 0), maxBytes: meta.maxBytes };
}

/** Brings the node's index in line with the record: a new generation empties it, new limits apply. */
function syncIndex(state: CacheState, meta: CacheMeta): Evicted[] {
  if (state.gen !== meta.gen) {
    state.lru.clear();
    state.gen = meta.gen;
  }
  const limits = limitsOf(meta);
  const current = state.lru.limits;
  if (current.maxEntries === limits.maxEntries && current.maxBytes === limits.maxBytes) return [];
  return state.lru.setLimits(limits);
}

async function evict(
  store: Store,
  scope: string,
  gen: number,
  state: CacheState,
  evicted: Evicted[],
  timeoutMs: number,
) {
  await Promise.all(evicted.map(async ({ key, version }) => {
    try {
      // At the version this node wrote: a newer put of the key (through another node) stays.
      if (await store.delete(`${scope}/${gen}/${key}`, { timeoutMs, ifVersion: version })) {
        state.counters.evictions++;
      }
    } catch (e) {
      if (!(e instanceof AetherError && e.code === "compare_failed")) throw e;
    }
  }));
}

function configField(call: ServiceCall, field: keyof CacheConfig, max: number): number {
  const value = call.payload[field];
  if (value === undefined || value === null) return 0;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > max) {
    throw new AetherError(
      "bad_request",
      `cache.configure: ${field} must be an integer from 0 (${
        field === "defaultTtlMs" ? "no default" : "unbounded"
      }) to ${max}, got ${JSON.stringify(value)}`,
      { field },
    );
  }
  return value;
}

function configOf(call: ServiceCall): CacheConfig {
  const known = new Set(["cache", "defaultTtlMs", "maxEntries", "maxBytes"]);
  const unknown = Object.keys(call.payload).find((k) => !known.has(k));
  if (unknown !== undefined) {
    throw new AetherError(
      "bad_request",
      `cache.configure: unknown field ${
        JSON.stringify(unknown)
      } (fields: defaultTtlMs, maxEntries, maxBytes)`,
      { field: unknown },
    );
  }
  return {
    defaultTtlMs: configField(call, "defaultTtlMs", MAX_TTL_MS) || null,
    maxEntries: configField(call, "maxEntries", MAX_CACHE_ENTRIES),
    maxBytes: configField(call, "maxBytes", MAX_CACHE_BYTES),
  };
}

async function serve(store: Store, call: ServiceCall): Promise<unknown> {
  const cache = stringField(call, "cache", "cache", 64);
  const scope = `${call.group}/${cache}`;
  const state = stateOf(scope);
  const stats = state.counters;
  const timeoutMs = remainingMs(call);
  switch (call.method) {
    case "get": {
      const key = stringField(call, "cache", "key");
      // The record and the value are read at once, the value under the generation this node saw last; only
      // when the record names another generation (a clear since) is the value read again.
      const guessedGen = state.gen;
      const [{ meta }, guessed] = await Promise.all([
        readMeta(store, scope, timeoutMs),
        store.get(`${scope}/${guessedGen}/${key}`, { timeoutMs }),
      ]);
      await evict(store, scope, meta.gen, state, syncIndex(state, meta), timeoutMs);
      const entry = meta.gen === guessedGen
        ? guessed
        : await store.get(`${scope}/${meta.gen}/${key}`, { timeoutMs });
      if (entry === undefined) {
        stats.misses++;
        state.lru.forget(key);
        return undefined;
      }
      stats.hits++;
      state.lru.touch(key);
      return JSON.parse(entry.value);
    }
    case "put": {
      const key = stringField(call, "cache", "key");
      if (!Object.hasOwn(call.payload, "value") || call.payload.value === undefined) {
        throw new AetherError("bad_request", "cache.put: value is missing (any JSON value)", {
          field: "value",
        });
      }
      const askedTtlMs = optionalMs(call, "cache", "ttlMs", MAX_TTL_MS);
      const json = JSON.stringify(call.payload.value);
      const bytes = new TextEncoder().encode(json).byteLength;
      if (bytes > MAX_VALUE_BYTES) {
        throw new AetherError("bad_request", `cache.put: value is over ${MAX_VALUE_BYTES} bytes of JSON`, {
          field: "value",
        });
      }
      const { meta } = await readMeta(store, scope, timeoutMs);
      const evicted = syncIndex(state, meta);
      const ttlMs = askedTtlMs ?? meta.defaultTtlMs ?? undefined;
      const { version } = await store.put(
        `${scope}/${meta.gen}/${key}`,
        json,
        ttlMs === undefined ? { timeoutMs } : { timeoutMs, ttlMs },
      );
      stats.puts++;
      // Unbounded caches too (their size is in the metrics); only a bounded one evicts.
      evicted.push(...state.lru.admit(key, new TextEncoder().encode(key).byteLength + bytes, version));
      await evict(store, scope, meta.gen, state, evicted, timeoutMs);
      return null;
    }
    case "remove": {
      const key = stringField(call, "cache", "key");
      const { meta } = await readMeta(store, scope, timeoutMs);
      const removed = await store.delete(`${scope}/${meta.gen}/${key}`, { timeoutMs });
      state.lru.forget(key);
      stats.removes++;
      return removed;
    }
    case "clear": {
      const meta = await updateMeta(store, scope, timeoutMs, (m) => ({ ...m, gen: m.gen + 1 }));
      syncIndex(state, meta);
      stats.clears++;
      return null;
    }
    case "configure": {
      const config = configOf(call);
      const meta = await updateMeta(store, scope, timeoutMs, (m) => ({ ...m, ...config }));
      await evict(store, scope, meta.gen, state, syncIndex(state, meta), timeoutMs);
      return config;
    }
    case "stats": {
      const { meta } = await readMeta(store, scope, timeoutMs);
      return {
        ...stats,
        entries: state.lru.size,
        bytes: state.lru.bytes,
        defaultTtlMs: meta.defaultTtlMs,
        maxEntries: meta.maxEntries,
        maxBytes: meta.maxBytes,
      };
    }
  }
  throw new AetherError("not_found", `cache has no method "${call.method}"`);
}

export const CACHE_SERVICE: InfraService = {
  name: "cache",
  version: "1.0.0",
  description: "named caches of JSON values with a time to live and LRU bounds, on the replicated store",
  store: { name: "infra.cache", engine: "sqlite" },
  methods: ["get", "put", "remove", "clear", "configure", "stats"],
  serve,
};
