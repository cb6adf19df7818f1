/**
 * The lock service: named leases with a time to live and a fencing token, in the store `infra.lock`
 * (3 replicas, write quorum 2). A lease is the entry `{group}/{lock}` written with compare-and-set "only if
 * absent" and the lease's TTL; its token is the version the store gave that write, which grows with every
 * write to the key (epoch × 2³² + counter, README "Consistency"), so a later holder always has a larger token
 * and a resource can refuse a write carrying a smaller one. Renewal rewrites the entry (compare-and-set on its
 * version) keeping the token in the value. A holder whose node departs stops renewing and its lease ends with
 * its TTL. Waiting acquirers poll with a growing pause (25 ms to 250 ms) until their `waitMs` ends.
 */

import { AetherError } from "../core/mod.ts";
import type { Store } from "./store_node.ts";
import { type InfraService, optionalMs, remainingMs, type ServiceCall, stringField } from "./services.ts";

const DEFAULT_TTL_MS = 10_000;
const MAX_TTL_MS = 3600_000;
const MAX_WAIT_MS = 600_000;

interface LeaseValue {
  token: number;
  /** The acquisition that wrote the entry, until its token is written. */
  by?: string;
}

function tokenField(call: ServiceCall): number {
  const value = call.payload.token;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
    throw new AetherError("bad_request", `lock.${call.method}: token must be the token acquire returned`, {
      field: "token",
    });
  }
  return value;
}

function compareFailed(e: unknown): boolean {
  return e instanceof AetherError && e.code === "compare_failed";
}

/** A write or read whose outcome is unknown or that found no primary in time: worth another try. */
function retryable(e: unknown): boolean {
  return e instanceof AetherError && (e.code === "unavailable" || e.code === "timeout");
}

/**
 * One attempt: create the entry only if absent (tagged with this acquisition's id), then write the token into
 * it. After a write whose outcome is unknown (its primary went away), the entry is read again: carrying this
 * id, it is this acquisition's lease.
 */
async function tryAcquire(store: Store, key: string, ttlMs: number, call: ServiceCall, id: string) {
  const options = () => ({ ttlMs, timeoutMs: remainingMs(call) });
  let version: number;
  try {
    ({ version } = await store.put(key, JSON.stringify({ token: 0, by: id }), {
      ...options(),
      ifVersion: 0,
    }));
  } catch (e) {
    if (!compareFailed(e) && !retryable(e)) throw e;
    const entry = await store.get(key, { timeoutMs: remainingMs(call) });
    const value = entry === undefined ? undefined : JSON.parse(entry.value) as LeaseValue;
    if (entry === undefined || value?.by !== id || value.token !== 0) return undefined;
    version = entry.version;
  }
  await store.put(key, JSON.stringify({ token: version }), { ...options(), ifVersion: version });
  return { token: version, expiresAtMs: Date.now() + ttlMs };
}

async function holding(store: Store, key: string, token: number, call: ServiceCall) {
  const entry = await store.get(key, { timeoutMs: remainingMs(call) });
  if (entry === undefined) return undefined;
  const value = JSON.parse(entry.value) as LeaseValue;
  // A lease whose token is still 0 belongs to its acquirer, which is about to write the token.
  const held = value.token === 0 ? entry.version : value.token;
  return held === token ? entry : undefined;
}

async function serve(store: Store, call: ServiceCall): Promise<unknown> {
  const name = stringField(call, "lock", "lock", 128);
  const key = `${call.group}/${name}`;
  switch (call.method) {
    case "acquire": {
      const ttlMs = optionalMs(call, "lock", "ttlMs", MAX_TTL_MS) ?? DEFAULT_TTL_MS;
      const waitMs = call.payload.waitMs === 0 ? 0 : optionalMs(call, "lock", "waitMs", MAX_WAIT_MS) ?? 0;
      const giveUpAtMs = Math.min(Date.now() + waitMs, call.deadlineMs - 50);
      const id = crypto.randomUUID();
      for (let pauseMs = 25;; pauseMs = Math.min(250, pauseMs * 2)) {
        let lease;
        try {
          lease = await tryAcquire(store, key, ttlMs, call, id);
        } catch (e) {
          // No primary in time (a node that holds the partition froze or died): the store fails over.
          if (!retryable(e) || Date.now() + pauseMs > giveUpAtMs) throw e;
        }
        if (lease) return { name, ...lease };
        if (Date.now() + pauseMs > giveUpAtMs) break;
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
      throw new AetherError("conflict", `lock ${name} is held by another holder (waited ${waitMs} ms)`, {
        errorName: "LockBusy",
      });
    }
    case "renew": {
      const token = tokenField(call);
      const ttlMs = optionalMs(call, "lock", "ttlMs", MAX_TTL_MS) ?? DEFAULT_TTL_MS;
      const entry = await holding(store, key, token, call);
      try {
        if (entry === undefined) throw new AetherError("compare_failed", "gone");
        await store.put(key, JSON.stringify({ token }), {
          ifVersion: entry.version,
          ttlMs,
          timeoutMs: remainingMs(call),
        });
        return { name, token, expiresAtMs: Date.now() + ttlMs };
      } catch (e) {
        if (!compareFailed(e)) throw e;
        throw new AetherError("conflict", `lock ${name}: the lease with token ${token} has ended`, {
          errorName: "LockLost",
        });
      }
    }
    case "release": {
      const token = tokenField(call);
      const entry = await holding(store, key, token, call);
      if (entry === undefined) return false;
      try {
        return await store.delete(key, { ifVersion: entry.version, timeoutMs: remainingMs(call) });
      } catch (e) {
        if (compareFailed(e)) return false;
        throw e;
      }
    }
    case "holder": {
      const entry = await store.get(key, { timeoutMs: remainingMs(call) });
      if (entry === undefined) return null;
      const value = JSON.parse(entry.value) as LeaseValue;
      return {
        token: value.token === 0 ? entry.version : value.token,
        expiresAtMs: entry.expiresAtMs ?? null,
      };
    }
  }
  throw new AetherError("not_found", `lock has no method "${call.method}"`);
}

export const LOCK_SERVICE: InfraService = {
  name: "lock",
  version: "1.0.0",
  description: "named leases with a time to live and a monotonic fencing token, on the replicated store",
  store: { name: "infra.lock", engine: "sqlite" },
  methods: ["acquire", "renew", "release", "holder"],
  serve,
};
