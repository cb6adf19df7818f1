/**
 * Dynamic aspects (issue 21 item 6, seed 002's DynamicAspect): every slice method can be switched at run
 * time,
 * cluster-wide, between `none`, `log`, `metrics` and `log+metrics`. The mode lives in the consensus KV
 * (`aspects/{group}:{artifact}/{method}`, runtime/model/aspects.ts); every node keeps the records in a map
 * fed
 * by the KV's applied events, so a change holds on a node as soon as it applied the write (consensus delivers
 * it to every member, typically within tens of milliseconds), with no restart.
 *
 * Where: the executor the invoker runs local instances through is wrapped (`wrap`), so every call of a slice
 * method on this node passes here exactly once, whether it came from HTTP, the API, another slice or another
 * node. With no record for the method the wrapper costs one map lookup.
 *
 * - `log`: one structured record per call at info level, message `aspect call`, fields `requestId`, `slice`
 *   (`group:artifact:version`), `method`, `instance`, `durationMs`, `ok`, `caller` (the calling slice, when a
 *   slice called), `args` and `result` (or `error`):
 *   JSON text, each cut at MAX_LOGGED_BYTES with a `…[truncated N bytes]` marker, after redaction: values of
 *   object keys matching the defaults (any key containing password, passwd, secret, token, authorization,
 *   apikey, api_key, credential, cookie; case-insensitive) or the manifest's `redact` entries (a name: that
 *   key
 *   at any depth; a dotted path `card.number`: a `number` key inside a `card` object, at any depth) become
 *   `"[redacted]"`. The records land in the node's log (standard error) and its ring, so `aether logs` and
 *   GET /api/v1/logs?slice=... read them from every node.
 * - `metrics`: per slice method on this node, the calls measured, their errors, the JSON bytes of arguments
 *   and results (sums and maxima): what the always-on per-method metrics (calls, errors, latency) do not
 *   carry. They travel in the node's metrics sample (`aspects`) to the cluster snapshot and to Prometheus
 *   (`aether_aspect_*`).
 */

import { Hono } from "hono";
import { AetherError, type Logger } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import {
  aspectKey,
  type AspectMode,
  type AspectRecord,
  ASPECTS_PREFIX,
  decodeAspectRecord,
  decodeValue,
  encodeAspectRecord,
  isAspectMode,
  kvKeys,
  MAX_ASPECTS,
  parseAspectKey,
  parseAspectTarget,
} from "../model/mod.ts";
import type { InvokeOptions, InvokeOutcome } from "../sandbox/mod.ts";

/** Bytes of JSON a logged argument or result keeps before the truncation marker. */
export const MAX_LOGGED_BYTES = 4_096;
/** Slice methods whose size figures a node keeps (beyond: the least recently measured is dropped). */
export const MAX_ASPECT_SERIES_PER_NODE = 1_000;
/** Redaction lists a node caches (one per slice version). */
const MAX_CACHED_MANIFESTS = 1_000;
/** How deep redaction walks a value; deeper parts are replaced by a marker. */
const MAX_DEPTH = 32;
const REDACTED = "[redacted]";
const DEFAULT_SECRET_KEY = /password|passwd|secret|token|authorization|apikey|api_key|credential|cookie/i;

/** What `wrap` needs of the executor. */
export interface InvokingExecutor {
  invoke(
    instanceId: string,
    method: string,
    request: unknown,
    options?: InvokeOptions,
  ): Promise<InvokeOutcome>;
}

export interface AspectEntry {
  /** `group:artifact`. */
  slice: string;
  method: string;
  mode: AspectMode;
  updatedAt?: number;
  by?: string;
}

export interface AspectSizeStats {
  slice: string;
  method: string;
  calls: number;
  errors: number;
  argumentBytes: number;
  resultBytes: number;
  maxArgumentBytes: number;
  maxResultBytes: number;
}

export interface AspectsOptions {
  log: Logger;
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
}

export interface Aspects {
  readonly name: "aspects";
  /** GET /aspects, PUT /aspects (mounted under /api/v1). */
  readonly api: Hono;
  /** The executor calls of local instances go through, with the aspects applied. */
  wrap<E extends InvokingExecutor>(executor: E): InvokingExecutor;
  /** The mode of one method now, on this node. */
  modeOf(slice: string, method: string): AspectMode;
  /** Every switched method (mode other than none), sorted. */
  list(): AspectEntry[];
  /** Writes a mode through consensus (`none` deletes the record); resolves once applied here. */
  set(target: string, mode: AspectMode, by?: string): Promise<AspectEntry>;
  /** The `metrics` mode's figures on this node. */
  stats(): AspectSizeStats[];
  status(): { switched: number; measured: number };
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------------
// Redaction and truncation (pure)

/**
 * A parsed redaction list: names match a key at any depth, dotted paths the keys ending a path (any depth).
 */
export interface RedactionRules {
  names: Set<string>;
  paths: string[][];
}

export function redactionRules(entries: readonly string[]): RedactionRules {
  const names = new Set<string>();
  const paths: string[][] = [];
  for (const entry of entries) {
    if (entry.includes(".")) paths.push(entry.toLowerCase().split("."));
    else names.add(entry.toLowerCase());
  }
  return { names, paths };
}

/** Both lists' names and paths: a service's log of a call redacts what the service and its caller declare. */
export function mergeRedactionRules(a: RedactionRules, b: RedactionRules): RedactionRules {
  return { names: new Set([...a.names, ...b.names]), paths: [...a.paths, ...b.paths] };
}

/** A copy of `value` with secret fields replaced by "[redacted]" (defaults plus `rules`). */
export function redact(value: unknown, rules: RedactionRules): unknown {
  const walk = (v: unknown, path: string[], depth: number): unknown => {
    if (v === null || typeof v !== "object") return v;
    if (depth >= MAX_DEPTH) return "[too deep]";
    if (Array.isArray(v)) return v.map((item) => walk(item, path, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(v as Record<string, unknown>)) {
      const lower = key.toLowerCase();
      const here = [...path, lower];
      const secret = DEFAULT_SECRET_KEY.test(key) || rules.names.has(lower) ||
        rules.paths.some((p) =>
          p.length <= here.length && p.every((part, i) => part === here[here.length - p.length + i])
        );
      out[key] = secret ? REDACTED : walk(item, here, depth + 1);
    }
    return out;
  };
  return walk(value, [], 0);
}

/** JSON text of `value`, cut at `maxBytes` (UTF-8) with a marker saying how much was left out. */
export function boundedJson(value: unknown, maxBytes = MAX_LOGGED_BYTES): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? "undefined";
  } catch (e) {
    return `[not JSON: ${(e as Error).message}]`;
  }
  const bytes = utf8.encode(text);
  if (bytes.byteLength <= maxBytes) return text;
  // Cut on a character boundary: the decoder drops a split sequence at the end.
  const kept = new TextDecoder().decode(bytes.subarray(0, maxBytes)).replace(/\uFFFD$/, "");
  return `${kept}…[truncated ${bytes.byteLength - utf8.encode(kept).byteLength} bytes]`;
}

const utf8 = new TextEncoder();

function jsonBytes(value: unknown): number {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? 0 : utf8.encode(text).byteLength;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The feature

export function startAspects(options: AspectsOptions): Aspects {
  const log = options.log.with({ component: "aspects" });
  const modes = new Map<string, AspectRecord>();
  const sizes = new Map<string, AspectSizeStats>();
  const redactions = new Map<string, RedactionRules>();
  const waiters = new Set<{ key: string; resolve: () => void }>();

  const load = () => {
    modes.clear();
    for (const entry of options.state().range(ASPECTS_PREFIX, MAX_ASPECTS * 2)) {
      apply({ type: "put", key: entry.key, value: entry.value, revision: entry.modRevision });
    }
  };
  const apply = (event: KvEvent) => {
    const parsed = parseAspectKey(event.key);
    if (!parsed) return;
    const key = `${parsed.slice}/${parsed.method}`;
    if (event.type === "delete" || !event.value) {
      modes.delete(key);
    } else {
      try {
        modes.set(key, decodeAspectRecord(event.value, event.key));
      } catch (e) {
        log.warn("aspect record ignored", { key: event.key, error: (e as Error).message });
        modes.delete(key);
      }
    }
    for (const w of waiters) if (w.key === event.key) w.resolve();
  };
  load();
  const offEvents = options.onEvents((events) => {
    for (const e of events) if (e.key.startsWith(ASPECTS_PREFIX)) apply(e);
  });
  const offReset = options.onReset(load);

  const rulesOf = (coordinates: string): RedactionRules => {
    let rules = redactions.get(coordinates);
    if (rules) return rules;
    rules = redactionRules(declaredRedact(options.state(), coordinates));
    if (redactions.size >= MAX_CACHED_MANIFESTS) redactions.delete(redactions.keys().next().value!);
    redactions.set(coordinates, rules);
    return rules;
  };

  const measure = (slice: string, method: string, request: unknown, outcome: InvokeOutcome | undefined) => {
    const key = `${slice}/${method}`;
    let s = sizes.get(key);
    if (s) sizes.delete(key);
    else {
      if (sizes.size >= MAX_ASPECT_SERIES_PER_NODE) sizes.delete(sizes.keys().next().value!);
      s = {
        slice,
        method,
        calls: 0,
        errors: 0,
        argumentBytes: 0,
        resultBytes: 0,
        maxArgumentBytes: 0,
        maxResultBytes: 0,
      };
    }
    sizes.set(key, s);
    const argumentBytes = jsonBytes(request);
    const resultBytes = outcome?.ok ? jsonBytes(outcome.value) : 0;
    s.calls++;
    if (!outcome?.ok) s.errors++;
    s.argumentBytes += argumentBytes;
    s.resultBytes += resultBytes;
    s.maxArgumentBytes = Math.max(s.maxArgumentBytes, argumentBytes);
    s.maxResultBytes = Math.max(s.maxResultBytes, resultBytes);
  };

  const logCall = (
    coordinates: string,
    instanceId: string,
    method: string,
    request: unknown,
    options: InvokeOptions | undefined,
    durationMs: number,
    outcome: InvokeOutcome | undefined,
    thrown: unknown,
  ) => {
    // The calling slice, when a slice called (taken by its sandbox host from its manifest, never its
    // request). A service (`aether.infra:http`, `:db`, ...) logs what its caller sent, so the caller's
    // declared secrets are redacted too, not only the service's own list.
    const caller = options?.caller;
    const rules = typeof caller === "string"
      ? mergeRedactionRules(rulesOf(coordinates), rulesOf(caller))
      : rulesOf(coordinates);
    const fields: Record<string, unknown> = {
      requestId: options?.requestId ?? "",
      slice: coordinates,
      method,
      instance: instanceId,
      durationMs: Math.round(durationMs * 100) / 100,
      ok: outcome?.ok === true,
      args: boundedJson(redact(request, rules)),
    };
    if (typeof caller === "string") fields.caller = caller;
    if (outcome?.ok) fields.result = boundedJson(redact(outcome.value, rules));
    else if (outcome) fields.error = boundedJson(redact(outcome.error, rules));
    else {fields.error = boundedJson({
        name: "InvokeFailed",
        message: String((thrown as Error)?.message ?? thrown),
      });}
    log.info("aspect call", fields);
  };

  const aspects: Aspects = {
    name: "aspects",
    get api() {
      return api ??= aspectsRoutes(aspects);
    },
    wrap(executor) {
      return {
        invoke(instanceId, method, request, invokeOptions) {
          const slash = instanceId.indexOf("/");
          const coordinates = slash < 0 ? instanceId : instanceId.slice(0, slash);
          const slice = coordinates.slice(0, coordinates.lastIndexOf(":"));
          const record = modes.size === 0 ? undefined : modes.get(`${slice}/${method}`);
          if (!record) return executor.invoke(instanceId, method, request, invokeOptions);
          const logs = record.mode !== "metrics";
          const measures = record.mode !== "log";
          const startedAt = performance.now();
          const done = (outcome: InvokeOutcome | undefined, thrown?: unknown) => {
            try {
              if (logs) {
                logCall(
                  coordinates,
                  instanceId,
                  method,
                  request,
                  invokeOptions,
                  performance.now() - startedAt,
                  outcome,
                  thrown,
                );
              }
              if (measures) measure(slice, method, request, outcome);
            } catch (e) {
              log.warn("aspect failed", { slice, method, error: (e as Error).message });
            }
          };
          return executor.invoke(instanceId, method, request, invokeOptions).then(
            (outcome) => {
              done(outcome);
              return outcome;
            },
            (e) => {
              done(undefined, e);
              throw e;
            },
          );
        },
      };
    },
    modeOf: (slice, method) => modes.get(`${slice}/${method}`)?.mode ?? "none",
    list: () =>
      [...modes].map(([key, r]) => {
        const slash = key.lastIndexOf("/");
        return {
          slice: key.slice(0, slash),
          method: key.slice(slash + 1),
          mode: r.mode,
          updatedAt: r.updatedAt,
          ...(r.by ? { by: r.by } : {}),
        };
      }).sort((a, b) => `${a.slice}/${a.method}`.localeCompare(`${b.slice}/${b.method}`)),
    async set(target, mode, by) {
      const { slice, method } = parseAspectTarget(target, "target");
      if (!isAspectMode(mode)) {
        throw new AetherError(
          "bad_request",
          `mode: expected one of none, log, metrics, log+metrics, got ${JSON.stringify(mode)}`,
          { field: "mode" },
        );
      }
      const key = aspectKey(slice, method);
      // Resolves once this node applied the write (or after 10 s: the write itself was acknowledged).
      const applied = new Promise<void>((resolve) => {
        const timer = setTimeout(() => waiter.resolve(), 10_000);
        const waiter = {
          key,
          resolve: () => {
            clearTimeout(timer);
            waiters.delete(waiter);
            resolve();
          },
        };
        waiters.add(waiter);
      });
      if (mode === "none") {
        if (!modes.has(`${slice}/${method}`)) {
          for (const w of waiters) if (w.key === key) w.resolve();
        } else await options.kv.write({ type: "delete", key }, { timeoutMs: 10_000 });
        await applied;
        return { slice, method, mode: "none" };
      }
      if (!modes.has(`${slice}/${method}`) && modes.size >= MAX_ASPECTS) {
        throw new AetherError(
          "conflict",
          `at most ${MAX_ASPECTS} methods may have an aspect at once; set some to none first`,
        );
      }
      const record: AspectRecord = { mode, updatedAt: Date.now(), ...(by ? { by } : {}) };
      await options.kv.write({ type: "put", key, value: encodeAspectRecord(record) }, { timeoutMs: 10_000 });
      await applied;
      return { slice, method, ...record };
    },
    stats: () => [...sizes.values()].map((s) => ({ ...s })),
    status: () => ({ switched: modes.size, measured: sizes.size }),
    stop() {
      offEvents();
      offReset();
      for (const w of waiters) w.resolve();
      return Promise.resolve();
    },
  };
  let api: Hono | undefined;
  return aspects;
}

/** The `redact` list a published artifact's manifest declares (none when unknown). */
export function declaredRedact(state: KvState, coordinates: string): string[] {
  try {
    const entry = state.get(kvKeys.artifact(coordinates));
    if (!entry) return [];
    const manifest = decodeValue("artifact", entry.value).manifest as { redact?: unknown };
    return Array.isArray(manifest.redact) ? manifest.redact.filter((s) => typeof s === "string") : [];
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------------------
// API

/**
 *   GET /aspects                 every switched method: [{slice, method, mode, updatedAt, by}]
 *   PUT /aspects                 {"target":"group:artifact/method","mode":"log"} (mode none removes it)
 */
export function aspectsRoutes(aspects: Aspects): Hono {
  const app = new Hono();
  app.get("/aspects", (c) => c.json({ items: aspects.list() }));
  app.put("/aspects", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new AetherError(
        "bad_request",
        'body: expected JSON like {"target":"org.example:orders/placeOrder","mode":"log"}',
      );
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new AetherError("bad_request", `body: expected a JSON object, got ${JSON.stringify(body)}`);
    }
    const { target, mode } = body as { target?: unknown; mode?: unknown };
    for (const key of Object.keys(body)) {
      if (key !== "target" && key !== "mode") {
        throw new AetherError("bad_request", `body.${key}: not a field (target, mode)`, { field: key });
      }
    }
    if (!isAspectMode(mode)) {
      throw new AetherError(
        "bad_request",
        `body.mode: expected one of none, log, metrics, log+metrics, got ${JSON.stringify(mode)}`,
        { field: "mode" },
      );
    }
    parseAspectTarget(target, "body.target");
    // The API's auth middleware keeps the caller under this name (runtime/api/auth.ts, above this layer).
    const caller = c.get("aether.caller" as never) as { tokenName?: string } | undefined;
    return c.json(await aspects.set(target as string, mode, caller?.tokenName));
  });
  return app;
}
