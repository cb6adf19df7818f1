/**
 * The kv service: a durable key-value map of JSON values per group, with compare-and-set on versions and an
 * atomic `add` to numbers (click counters, stock), kept in the store `infra.kv` (3 replicas, write quorum 2,
 * SQLite). `add` with `min` refuses to go below it, which is how the shop never oversells: the partition's
 * primary decides between concurrent orders (the store's atomic add).
 */

import { AetherError } from "../core/mod.ts";
import { readCounter, type Store } from "./store_node.ts";
import { type InfraService, optionalMs, remainingMs, type ServiceCall, stringField } from "./services.ts";

const MAX_VALUE_BYTES = 512 * 1024;
/** The longest time to live a put may ask for: 366 days. */
const MAX_TTL_MS = 366 * 24 * 3600_000;

function versionField(call: ServiceCall, field: string): number | undefined {
  const value = call.payload[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new AetherError("bad_request", `kv.${call.method}: ${field} must be a version (an integer >= 0)`, {
      field,
    });
  }
  return value;
}

function numberField(call: ServiceCall, field: string, required: boolean): number | undefined {
  const value = call.payload[field];
  if (value === undefined || value === null) {
    if (!required) return undefined;
    throw new AetherError("bad_request", `kv.${call.method}: ${field} is missing (a finite number)`, {
      field,
    });
  }
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new AetherError("bad_request", `kv.${call.method}: ${field} must be a finite number`, { field });
  }
  return value;
}

/** A stored value as callers see it (a counter written by `add` is its number). */
function decode(text: string): { value: unknown } {
  const counter = readCounter(text);
  return typeof counter === "string" ? { value: JSON.parse(text) } : { value: counter.n };
}

/** A write whose outcome is unknown (the primary went away after it was sent): it may have been applied. */
function outcomeUnknown(e: unknown): boolean {
  return e instanceof AetherError && (e.code === "unavailable" || e.code === "timeout");
}

/**
 * Adds `delta` with the store's atomic add (one round trip to the partition's primary, which decides it on its
 * copy). An add whose outcome is unknown (its primary died) is sent again with the same id: the entry remembers
 * the ids of its last ADD_IDS_KEPT adds, so a landed add is not counted twice (stated in
 * runtime/infra-host/README.md).
 */
async function add(
  store: Store,
  call: ServiceCall,
  key: string,
  storeKey: string,
  delta: number,
  min: number | undefined,
) {
  // The caller's id for this add (the SDK sends one), so a retried call is recognised; else a fresh one.
  const sent = call.payload.op;
  const op = typeof sent === "string" && /^[A-Za-z0-9-]{8,64}$/.test(sent) ? sent : crypto.randomUUID();
  try {
    return await retryUnknown(
      call,
      () =>
        store.add(storeKey, delta, {
          op,
          timeoutMs: remainingMs(call),
          ...(min === undefined ? {} : { min }),
        }),
    );
  } catch (e) {
    if (!(e instanceof AetherError)) throw e;
    const current = (e.extra.details as { current?: number } | undefined)?.current;
    if (e.extra.errorName === "BelowMinimum") {
      throw new AetherError(
        "conflict",
        `kv.add: ${key} is ${current}; adding ${delta} would go below ${min}`,
        {
          errorName: "BelowMinimum",
          details: { current },
        },
      );
    }
    if (e.extra.errorName === "NotANumber") {
      throw new AetherError("bad_request", `kv.add: ${key} does not hold a number (${e.message})`, {
        field: "key",
      });
    }
    throw e;
  }
}

/** Runs `write` again after an unknown outcome while the caller's deadline allows. */
async function retryUnknown<T>(call: ServiceCall, write: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await write();
    } catch (e) {
      if (!outcomeUnknown(e) || call.deadlineMs - Date.now() < 100) throw e;
    }
  }
}

function compareFailed(e: unknown): boolean {
  return e instanceof AetherError && e.code === "compare_failed";
}

/** A checked operation, ready to run on the store (every field checked before any operation of a batch runs). */
type Operation = () => Promise<unknown>;

/** Checks one call's fields (`call.method` is the operation) and returns what runs it. */
function operation(store: Store, call: ServiceCall, map: string): Operation {
  const key = stringField(call, "kv", "key");
  const storeKey = `${call.group}/${map}/${key}`;
  switch (call.method) {
    case "get":
      return async () => {
        const entry = await store.get(storeKey, { timeoutMs: remainingMs(call) });
        return entry === undefined ? null : { value: decode(entry.value).value, version: entry.version };
      };
    case "put":
      return putOperation(store, call, key, storeKey);
    case "delete": {
      const ifVersion = versionField(call, "ifVersion");
      return () =>
        store.delete(storeKey, {
          timeoutMs: remainingMs(call),
          ...(ifVersion === undefined ? {} : { ifVersion }),
        });
    }
    case "add": {
      const delta = numberField(call, "delta", true)!;
      const min = numberField(call, "min", false);
      return () => add(store, call, key, storeKey, delta, min);
    }
  }
  throw new AetherError("not_found", `kv has no method "${call.method}"`);
}

function putOperation(store: Store, call: ServiceCall, key: string, storeKey: string): Operation {
  if (!Object.hasOwn(call.payload, "value") || call.payload.value === undefined) {
    throw new AetherError("bad_request", `kv.${call.method}: value is missing (any JSON value)`, {
      field: "value",
    });
  }
  const json = JSON.stringify(call.payload.value);
  if (json.length > MAX_VALUE_BYTES) {
    throw new AetherError(
      "bad_request",
      `kv.${call.method}: value is over ${MAX_VALUE_BYTES} bytes of JSON`,
      {
        field: "value",
      },
    );
  }
  const ifVersion = versionField(call, "ifVersion");
  const ttlMs = optionalMs(call, "kv", "ttlMs", MAX_TTL_MS);
  return async () => {
    try {
      const write = () =>
        store.put(storeKey, json, {
          timeoutMs: remainingMs(call),
          ...(ifVersion === undefined ? {} : { ifVersion }),
          ...(ttlMs === undefined ? {} : { ttlMs }),
        });
      // A plain put is idempotent: after an unknown outcome (its primary died) it is simply written again.
      const { version } = ifVersion === undefined ? await retryUnknown(call, write) : await write();
      return { version };
    } catch (e) {
      if (!compareFailed(e)) throw e;
      throw new AetherError("conflict", `kv.put: ${key} is not at version ${ifVersion}`, {
        errorName: "VersionMismatch",
        details: { current: (e as AetherError).extra.version ?? 0 },
      });
    }
  };
}

/** A map's name, as `ctx.infra.kv(name)` accepts it (no '/': one map's keys never alias another's). */
const MAP_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;

/** An operation's own `map` (another map of the caller's group). */
function mapField(call: ServiceCall): string {
  const value = call.payload.map;
  if (typeof value !== "string" || !MAP_NAME.test(value)) {
    throw new AetherError(
      "bad_request",
      `kv.${call.method}: map must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(value)}`,
      { field: "map" },
    );
  }
  return value;
}

/** Operations one batch may carry. */
export const MAX_BATCH_OPS = 64;
const BATCH_OPS = new Set(["get", "put", "delete", "add"]);

/** One operation's outcome in a batch's answer: its result, or the error it alone failed with. */
export type BatchResult =
  | { ok: true; result: unknown }
  | { ok: false; error: { name: string; code: string; message: string; details?: unknown } };

/**
 * `batch`: several operations on maps of the caller's group in one call (an operation's `map`, default the
 * call's), run against the store at the same time. Not atomic: every
 * field of every operation is checked first (a bad one refuses the whole batch, nothing runs), then each
 * operation runs on its own with the guarantee it has alone (an add with `min` never goes below it, a put with
 * `ifVersion` is a compare-and-set, ...); one that fails does not undo the others, and operations of one batch
 * have no order among themselves (so a key may be written by one operation of a batch only, adds apart).
 */
async function batch(store: Store, call: ServiceCall, map: string): Promise<BatchResult[]> {
  const ops = call.payload.ops;
  if (!Array.isArray(ops) || ops.length === 0 || ops.length > MAX_BATCH_OPS) {
    throw new AetherError(
      "bad_request",
      `kv.batch: ops must be an array of 1 to ${MAX_BATCH_OPS} operations`,
      {
        field: "ops",
      },
    );
  }
  const writers = new Map<string, { index: number; op: string }>();
  const operations = ops.map((raw, i) => {
    const where = `ops[${i}]`;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      throw new AetherError(
        "bad_request",
        `kv.batch: ${where} must be an object like {"op": "get", "key": "k"}`,
        {
          field: where,
        },
      );
    }
    const payload = raw as Record<string, unknown>;
    const op = payload.op;
    if (typeof op !== "string" || !BATCH_OPS.has(op)) {
      throw new AetherError(
        "bad_request",
        `kv.batch: ${where}.op must be one of get, put, delete, add, got ${JSON.stringify(op)}`,
        { field: `${where}.op` },
      );
    }
    // `id`: the add's id (the SDK sends one per add; a retried batch sends the same).
    const fields = { ...payload, op: payload.id };
    try {
      const opCall = { ...call, method: op, payload: fields };
      const opMap = payload.map === undefined ? map : mapField(opCall);
      const run = operation(store, opCall, opMap);
      const key = `${opMap}/${payload.key}`;
      const other = writers.get(key);
      if (other && (op !== "get" && other.op !== "get") && !(op === "add" && other.op === "add")) {
        throw new AetherError(
          "bad_request",
          `kv.batch: ${where} (${op}) and ops[${other.index}] (${other.op}) both write ${
            JSON.stringify(payload.key)
          } of map ${opMap}; ` +
            "a batch's operations run at the same time, in no order",
          { field: `${where}.key` },
        );
      }
      if (op !== "get") writers.set(key, { index: i, op });
      return run;
    } catch (e) {
      if (!(e instanceof AetherError) || e.code !== "bad_request" || e.message.startsWith("kv.batch:")) {
        throw e;
      }
      const field = typeof e.extra.field === "string" ? `${where}.${e.extra.field}` : where;
      throw new AetherError("bad_request", e.message.replace(/^kv\.\w+: /, `kv.batch: ${where} (${op}): `), {
        field,
      });
    }
  });
  return await Promise.all(operations.map(async (run): Promise<BatchResult> => {
    try {
      return { ok: true, result: await run() };
    } catch (e) {
      if (!(e instanceof AetherError)) {
        return {
          ok: false,
          error: { name: "Error", code: "internal", message: (e as Error)?.message ?? String(e) },
        };
      }
      const name = typeof e.extra.errorName === "string" ? e.extra.errorName : e.code;
      const details = (e.extra as { details?: unknown }).details;
      return {
        ok: false,
        error: { name, code: e.code, message: e.message, ...(details === undefined ? {} : { details }) },
      };
    }
  }));
}

async function serve(store: Store, call: ServiceCall): Promise<unknown> {
  const map = stringField(call, "kv", "map", 64);
  if (call.method === "batch") return await batch(store, call, map);
  return await operation(store, call, map)();
}

export const KV_SERVICE: InfraService = {
  name: "kv",
  version: "1.0.0",
  description: "a durable key-value map with compare-and-set and atomic add, on the replicated store",
  store: { name: "infra.kv", engine: "sqlite" },
  methods: ["get", "put", "delete", "add", "batch"],
  serve,
};
