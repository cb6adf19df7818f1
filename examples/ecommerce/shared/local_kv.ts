/**
 * A map in this instance's memory with the API of the cluster's kv service (`ctx.infra.kv(name)`): versions,
 * compare-and-set, `add` with a minimum, TTL. The shop's slices keep their state in one of these when
 * `sharedState` is off (the default: each instance has its own shelf and orders, and the shop sustains the
 * load tests' rate), and in the kv service when it is on (one shop for every node, durable).
 */

import { type KvClient, SliceError } from "@aether/slices";

class VersionMismatch extends SliceError {}
class BelowMinimum extends SliceError {}

interface Entry {
  value: unknown;
  version: number;
  expiresAtMs?: number;
}

/** Entries one local map keeps; beyond, the oldest are forgotten (a bounded demo, as before). */
const MAX_ENTRIES = 20_000;

export function localKv(): KvClient {
  const entries = new Map<string, Entry>();
  let version = 0;
  const live = (key: string): Entry | undefined => {
    const entry = entries.get(key);
    if (entry?.expiresAtMs !== undefined && entry.expiresAtMs <= Date.now()) {
      entries.delete(key);
      return undefined;
    }
    return entry;
  };
  const write = (key: string, value: unknown, ttlMs?: number): number => {
    entries.delete(key); // re-inserted last: Map order is write order, the oldest first
    entries.set(key, {
      value: structuredClone(value),
      version: ++version,
      ...(ttlMs === undefined ? {} : { expiresAtMs: Date.now() + ttlMs }),
    });
    for (const oldest of entries.keys()) {
      if (entries.size <= MAX_ENTRIES) break;
      entries.delete(oldest);
    }
    return version;
  };
  return {
    get: (key) => {
      const entry = live(key);
      return Promise.resolve(
        entry ? { value: structuredClone(entry.value) as never, version: entry.version } : null,
      );
    },
    put: (key, value, options) => {
      const current = live(key)?.version ?? 0;
      if (options?.ifVersion !== undefined && options.ifVersion !== current) {
        return Promise.reject(new VersionMismatch(`kv.put: ${key} is not at version ${options.ifVersion}`));
      }
      return Promise.resolve({ version: write(key, value, options?.ttlMs) });
    },
    delete: (key, options) => {
      const entry = live(key);
      if (!entry || (options?.ifVersion !== undefined && options.ifVersion !== entry.version)) {
        return Promise.resolve(false);
      }
      return Promise.resolve(entries.delete(key));
    },
    add: (key, delta, options) => {
      const current = (live(key)?.value as number | undefined) ?? 0;
      const next = current + delta;
      if (options?.min !== undefined && next < options.min) {
        return Promise.reject(
          new BelowMinimum(`kv.add: ${key} is ${current}; adding ${delta} would go below ${options.min}`),
        );
      }
      return Promise.resolve({ value: next, version: write(key, next) });
    },
  };
}
