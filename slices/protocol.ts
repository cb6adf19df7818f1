/**
 * The messages between a slice host (runtime/sandbox) and the slice runtime inside the sandbox. The same
 * messages travel as JSON text in both isolations: batches over `postMessage` (worker isolation; a `load` goes
 * as an object, its `bundle` as bytes) and newline-delimited lines over stdio (process isolation). So every
 * field is a JSON value, and a value JSON cannot carry (a BigInt, a cycle) fails the call that sends it.
 */

import type { ConfigField, JsonValue, LogLevel } from "./_types.ts";

/** What a loaded bundle says about itself; the build turns it into the manifest. */
export interface SliceDescription {
  coordinates: string;
  methods: string[];
  http: {
    prefix: string;
    routes: Record<string, string>;
    errors: Record<string, string[]>;
  } | null;
  calls: Record<string, { artifact: string; range: string }>;
  requires: string[];
  /** Declared state machines and jobs (slices/_machines.ts), as written; absent when none. */
  machines?: Record<string, JsonValue>;
  jobs?: Record<string, JsonValue>;
  /** Declared pub/sub subscriptions (slices/_subscriptions.ts); absent when none. */
  subscriptions?: JsonValue[];
  /** Secret names the slice reads with `ctx.secrets.get` (absent from bundles built before secrets). */
  secrets?: string[];
  /** Hosts `ctx.infra.http` may reach (absent from bundles built before it). */
  outbound?: string[];
  /** Fields dynamic aspects redact in logged arguments and results (absent from bundles built before it). */
  redact?: string[];
  permissions: { net: string[]; env: string[] };
  config: Record<string, ConfigField>;
  hooks: { start: boolean; stop: boolean };
}

/** An error a slice method threw (or a call it made failed with), as its caller sees it. */
export interface SliceErrorInfo {
  /** The error's class name, e.g. `OrderNotFound`; matched against `http.errors` patterns. */
  name: string;
  message: string;
  /** HTTP status: the error's own `status`, else the slice's error mapping, else 500. */
  status?: number;
  details?: JsonValue;
}

/** The result of one call: a value (with an optional status and headers) or the error the method threw. */
export type InvokeOutcome =
  | { ok: true; value: unknown; status?: number; headers?: Record<string, string> }
  | { ok: false; error: SliceErrorInfo };

export interface CallMeta {
  requestId: string;
  traceparent: string;
  /** Epoch milliseconds. */
  deadline: number;
  /**
   * On a call: the calling slice's coordinates, set by the runtime (the caller's sandbox host takes them from
   * the caller's manifest), never by the caller's request. Absent for calls from HTTP or the API.
   */
  caller?: string;
}

export type HostMessage =
  | {
    t: "load";
    /** The bundle: bytes in worker mode, UTF-8 text in process mode. */
    bundle: Uint8Array | string;
    /** Resolved configuration; null when the bundle is only being described (build). */
    config: Record<string, JsonValue> | null;
    coordinates: string;
    instanceId: string;
    /** The host's bound on a call's answer, in bytes of UTF-8 JSON; an answer over it becomes an error. */
    maxResponseBytes?: number;
  }
  | ({ t: "hook"; id: number; hook: "start" | "stop" } & CallMeta)
  | ({ t: "call"; id: number; method: string; payload: unknown } & CallMeta)
  | { t: "reply"; id: number; outcome: InvokeOutcome }
  /** New configuration at run time (resolved and checked by the host): `ctx.config` changes to it. */
  | { t: "config"; config: Record<string, JsonValue> }
  | { t: "ping"; id: number };

export type RuntimeMessage =
  | { t: "loaded"; description: SliceDescription }
  | { t: "load-failed"; error: SliceErrorInfo }
  | { t: "done"; id: number; outcome: InvokeOutcome }
  | ({
    t: "call-out";
    id: number;
    /** The key in the slice's `calls` table. */
    name: string;
    artifact: string;
    range: string;
    method: string;
    payload: unknown;
    fireAndForget: boolean;
  } & CallMeta)
  | {
    t: "log";
    level: LogLevel;
    message: string;
    requestId?: string;
    fields?: Record<string, JsonValue>;
    /** Epoch milliseconds. */
    ts: number;
  }
  /** The answer to a ping; a process sandbox adds its own CPU time and resident memory (the metrics). */
  | { t: "pong"; id: number; cpuMs?: number; rssBytes?: number }
  | { t: "exit"; code: number };
