/**
 * The infrastructure services for `testSlice` (slices/testing.ts): kv, cache and lock with the semantics of
 * runtime/infra-host's services (versions, compare-and-set, `add` with `min`, TTL, fencing tokens), kept in
 * this process's memory, so a slice's unit tests run without a cluster. One `TestInfra` is shared by a test
 * slice and the real slices it calls through `calls`, so they see the same data, as slices of one group do.
 * The cluster's own services are tested on real nodes (tests/integration/infra_*_test.ts).
 */

import type { InvokeOutcome } from "./protocol.ts";

interface Entry {
  value: string;
  version: number;
  expiresAtMs?: number;
}

function failure(name: string, message: string, status: number, details?: unknown): InvokeOutcome {
  return {
    ok: false,
    error: { name, message, status, ...(details === undefined ? {} : { details: details as never }) },
  };
}

export class TestInfra {
  readonly #entries = new Map<string, Entry>();
  #version = 0;

  #get(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry?.expiresAtMs !== undefined && entry.expiresAtMs <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  #put(key: string, value: string, ttlMs?: number): number {
    const version = ++this.#version;
    this.#entries.set(key, {
      value,
      version,
      ...(ttlMs === undefined ? {} : { expiresAtMs: Date.now() + ttlMs }),
    });
    return version;
  }

  /** Answers one `ctx.infra` call as the cluster would. */
  serve(service: string, method: string, payload: Record<string, unknown>): InvokeOutcome {
    try {
      switch (service) {
        case "kv":
          return { ok: true, value: this.#kv(method, payload) as never };
        case "cache":
          return { ok: true, value: this.#cache(method, payload) as never };
        case "lock":
          return { ok: true, value: this.#lock(method, payload) as never };
      }
      return failure("NotFound", `no infrastructure service ${service}`, 404);
    } catch (e) {
      if (e instanceof ServiceFailure) return e.outcome;
      throw e;
    }
  }

  #kv(method: string, p: Record<string, unknown>): unknown {
    if (method === "batch") return this.#kvBatch(p);
    const key = `kv/${p.map}/${p.key}`;
    const entry = this.#get(key);
    const current = entry === undefined ? undefined : JSON.parse(entry.value);
    switch (method) {
      case "get":
        return entry === undefined ? null : { value: current, version: entry.version };
      case "put":
        if (p.ifVersion !== undefined && (entry?.version ?? 0) !== p.ifVersion) {
          throw new ServiceFailure(
            "VersionMismatch",
            `kv.put: ${p.key} is not at version ${p.ifVersion}`,
            409,
            {
              current: entry?.version ?? 0,
            },
          );
        }
        return { version: this.#put(key, JSON.stringify(p.value), p.ttlMs as number | undefined) };
      case "delete":
        if (entry === undefined) return false;
        if (p.ifVersion !== undefined && entry.version !== p.ifVersion) return false;
        this.#entries.delete(key);
        return true;
      case "add": {
        const base = current ?? 0;
        if (typeof base !== "number") {
          throw new ServiceFailure(
            "BadRequest",
            `kv.add: ${p.key} holds a ${typeof base}, not a number`,
            400,
          );
        }
        const next = base + (p.delta as number);
        if (typeof p.min === "number" && next < p.min) {
          throw new ServiceFailure(
            "BelowMinimum",
            `kv.add: ${p.key} is ${base}; adding ${p.delta} would go below ${p.min}`,
            409,
            { current: base },
          );
        }
        return { value: next, version: this.#put(key, JSON.stringify(next)) };
      }
    }
    throw new ServiceFailure("NotFound", `kv has no method "${method}"`, 404);
  }

  /** `kv.batch`: each operation answered on its own, as runtime/infra-host/kv_service.ts does (not atomic). */
  #kvBatch(p: Record<string, unknown>): unknown {
    const ops = p.ops;
    if (!Array.isArray(ops) || ops.length === 0 || ops.length > 64) {
      throw new ServiceFailure("BadRequest", "kv.batch: ops must be an array of 1 to 64 operations", 400);
    }
    for (const [i, op] of ops.entries()) {
      if (op === null || typeof op !== "object" || !["get", "put", "delete", "add"].includes(op.op)) {
        throw new ServiceFailure("BadRequest", `kv.batch: ops[${i}] must be a get, put, delete or add`, 400);
      }
    }
    return ops.map((op) => {
      try {
        return { ok: true, result: this.#kv(op.op, { ...op, map: op.map ?? p.map }) };
      } catch (e) {
        if (!(e instanceof ServiceFailure) || e.outcome.ok) throw e;
        const { name, message, details, status } = e.outcome.error;
        const code = status === 409 ? "conflict" : status === 400 ? "bad_request" : "not_found";
        return {
          ok: false,
          error: { name, code, message, ...(details === undefined ? {} : { details }) },
        };
      }
    });
  }

  #cache(method: string, p: Record<string, unknown>): unknown {
    const key = `cache/${p.cache}/${p.key}`;
    switch (method) {
      case "get": {
        const entry = this.#get(key);
        return entry === undefined ? null : JSON.parse(entry.value);
      }
      case "put":
        this.#put(key, JSON.stringify(p.value), p.ttlMs as number | undefined);
        return null;
      case "remove":
        return this.#entries.delete(key);
      case "clear":
        for (const k of [...this.#entries.keys()]) {
          if (k.startsWith(`cache/${p.cache}/`)) this.#entries.delete(k);
        }
        return null;
      case "stats":
        return { hits: 0, misses: 0, puts: 0, removes: 0, clears: 0, defaultTtlMs: null };
    }
    throw new ServiceFailure("NotFound", `cache has no method "${method}"`, 404);
  }

  #lock(method: string, p: Record<string, unknown>): unknown {
    const key = `lock/${p.lock}`;
    const entry = this.#get(key);
    const ttlMs = (p.ttlMs as number | undefined) ?? 10_000;
    const token = entry === undefined ? undefined : Number(entry.value);
    switch (method) {
      case "acquire": {
        if (entry !== undefined) throw new ServiceFailure("LockBusy", `lock ${p.lock} is held`, 409);
        const version = this.#put(key, "0", ttlMs);
        this.#entries.get(key)!.value = String(version);
        return { name: p.lock, token: version, expiresAtMs: Date.now() + ttlMs };
      }
      case "renew":
        if (token !== p.token) {
          throw new ServiceFailure(
            "LockLost",
            `lock ${p.lock}: the lease with token ${p.token} has ended`,
            409,
          );
        }
        entry!.expiresAtMs = Date.now() + ttlMs;
        return { name: p.lock, token, expiresAtMs: entry!.expiresAtMs };
      case "release":
        if (token !== p.token) return false;
        return this.#entries.delete(key);
      case "holder":
        return entry === undefined ? null : { token, expiresAtMs: entry.expiresAtMs ?? null };
    }
    throw new ServiceFailure("NotFound", `lock has no method "${method}"`, 404);
  }
}

class ServiceFailure extends Error {
  readonly outcome: InvokeOutcome;
  constructor(name: string, message: string, status: number, details?: unknown) {
    super(message);
    this.outcome = failure(name, message, status, details);
  }
}
