/**
 * The cache service: named caches of JSON values with an optional time to live, kept in the durable store
 * `infra.cache` (replicated 3 ways, written to 2 before a put is acknowledged). Keys are
 * `{group}/{cache}/{generation}/{key}`; `clear` starts a new generation (`{group}/{cache}/gen`), so entries of
 * an old one are never read again and expire or are overwritten later. Counters are this node's.
 */

import { AetherError } from "../core/mod.ts";
import type { Store } from "./store_node.ts";
import { type InfraService, optionalMs, remainingMs, type ServiceCall, stringField } from "./services.ts";

/** The longest time to live a put may ask for: 30 days. */
const MAX_TTL_MS = 30 * 24 * 3600_000;
/** Caches whose counters one node keeps; beyond, the oldest are forgotten. */
const MAX_COUNTED_CACHES = 10_000;
/** Largest value, as JSON. */
const MAX_VALUE_BYTES = 512 * 1024;

interface Counters {
  hits: number;
  misses: number;
  puts: number;
  removes: number;
  clears: number;
}

const counters = new Map<string, Counters>();

function countersOf(scope: string): Counters {
  let c = counters.get(scope);
  if (!c) {
    if (counters.size >= MAX_COUNTED_CACHES) counters.delete(counters.keys().next().value!);
    c = { hits: 0, misses: 0, puts: 0, removes: 0, clears: 0 };
    counters.set(scope, c);
  }
  return c;
}

async function generation(store: Store, scope: string, call: ServiceCall): Promise<string> {
  const entry = await store.get(`${scope}/gen`, { timeoutMs: remainingMs(call) });
  return entry?.value ?? "0";
}

async function serve(store: Store, call: ServiceCall): Promise<unknown> {
  const cache = stringField(call, "cache", "cache", 64);
  const scope = `${call.group}/${cache}`;
  const stats = countersOf(scope);
  const timeoutMs = remainingMs(call);
  switch (call.method) {
    case "get": {
      const key = stringField(call, "cache", "key");
      const entry = await store.get(`${scope}/${await generation(store, scope, call)}/${key}`, { timeoutMs });
      if (entry === undefined) {
        stats.misses++;
        return undefined;
      }
      stats.hits++;
      return JSON.parse(entry.value);
    }
    case "put": {
      const key = stringField(call, "cache", "key");
      if (!Object.hasOwn(call.payload, "value") || call.payload.value === undefined) {
        throw new AetherError("bad_request", "cache.put: value is missing (any JSON value)", {
          field: "value",
        });
      }
      const ttlMs = optionalMs(call, "cache", "ttlMs", MAX_TTL_MS);
      const json = JSON.stringify(call.payload.value);
      if (json.length > MAX_VALUE_BYTES) {
        throw new AetherError("bad_request", `cache.put: value is over ${MAX_VALUE_BYTES} bytes of JSON`, {
          field: "value",
        });
      }
      const gen = await generation(store, scope, call);
      await store.put(
        `${scope}/${gen}/${key}`,
        json,
        ttlMs === undefined ? { timeoutMs } : { timeoutMs, ttlMs },
      );
      stats.puts++;
      return null;
    }
    case "remove": {
      const key = stringField(call, "cache", "key");
      const removed = await store.delete(`${scope}/${await generation(store, scope, call)}/${key}`, {
        timeoutMs,
      });
      stats.removes++;
      return removed;
    }
    case "clear": {
      // Compare-and-set on the generation record: two concurrent clears give two new generations in turn.
      for (;;) {
        const entry = await store.get(`${scope}/gen`, { timeoutMs });
        const next = String(Number(entry?.value ?? "0") + 1);
        try {
          await store.put(`${scope}/gen`, next, { timeoutMs, ifVersion: entry?.version ?? 0 });
          stats.clears++;
          return null;
        } catch (e) {
          if (!(e instanceof AetherError && e.code === "compare_failed")) throw e;
        }
      }
    }
    case "stats":
      return { ...stats, defaultTtlMs: null };
  }
  throw new AetherError("not_found", `cache has no method "${call.method}"`);
}

export const CACHE_SERVICE: InfraService = {
  name: "cache",
  version: "1.0.0",
  description: "named caches of JSON values with a time to live, on the replicated store",
  store: { name: "infra.cache", engine: "sqlite" },
  methods: ["get", "put", "remove", "clear", "stats"],
  serve,
};
