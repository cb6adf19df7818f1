/**
 * The slice runtime: runs inside the sandbox (a Worker, or the child process in process isolation), loads the
 * bundle, builds each call's context and speaks the protocol of `protocol.ts` with the host. It is transport
 * neutral: `_worker_main.ts` wires it to postMessage, `runtime/sandbox/_child_main.ts` to stdio. `testing.ts`
 * drives `SliceInstance` in-process, so tests see the same contexts, errors and responses as production.
 *
 * This file and its imports must stay free of bare specifiers: the child process runs without a config file.
 */

import type {
  AnySliceDefinition,
  CallOptions,
  ConfigField,
  Context,
  JsonValue,
  LogFields,
  Logger,
  LogLevel,
  SecretsClient,
  SliceRef,
} from "./_types.ts";
import type {
  CallMeta,
  HostMessage,
  InvokeOutcome,
  RuntimeMessage,
  SliceDescription,
  SliceErrorInfo,
} from "./protocol.ts";
import { childTraceparent } from "../runtime/core/trace.ts";
import { type InfraClients, infraClients } from "./_infra.ts";
import { type RateLimitClients, rateLimitClients } from "./_ratelimit.ts";

/**
 * Where the runtime's messages go. `send` throws when a value cannot be serialized, and (through
 * `checkAnswerSize`) an `AnswerTooLarge` when `maxBytes` is given and the message's JSON is larger.
 */
export interface RuntimeSink {
  send(message: RuntimeMessage, maxBytes?: number): void;
}

/** A call's answer whose JSON text is over the host's `limits.maxResponseBytes`. */
export class AnswerTooLarge extends RangeError {
  /** The answer's size in bytes of UTF-8 JSON; a lower bound when `atLeast`. */
  readonly bytes: number;
  readonly atLeast: boolean;
  constructor(bytes: number, atLeast: boolean) {
    super(`the answer is ${atLeast ? "at least " : ""}${bytes} bytes`);
    this.name = "AnswerTooLarge";
    this.bytes = bytes;
    this.atLeast = atLeast;
  }
}

const utf8 = new TextEncoder();

/** How many values `jsonCharsAtLeast` looks at: a few microseconds, whatever the answer. */
const SIZE_WALK_BUDGET = 256;

/**
 * A lower bound on the length of `value`'s JSON from its first `SIZE_WALK_BUDGET` values (strings and keys
 * counted in full), stopping as soon as it passes `limit`. It finds an answer made of a few large strings (or
 * a large typed array, whose JSON is an object of at least 6 characters per element) before JSON.stringify
 * copies them; anything else is measured on its JSON. Reading the answer may run the slice's getters or
 * Proxy traps: whatever they throw, the estimate is then 0 and the JSON decides.
 */
export function jsonCharsAtLeast(value: unknown, limit: number): number {
  let total = 0;
  let visits = 0;
  const stack: unknown[] = [value];
  try {
    while (stack.length > 0 && visits++ < SIZE_WALK_BUDGET && total <= limit) {
      const item = stack.pop();
      if (typeof item === "string") total += item.length + 2;
      else if (typeof item === "number" || typeof item === "boolean" || item === null) total += 1;
      else if (typeof item !== "object") continue; // undefined, a function or a symbol: no JSON of its own
      else if (ArrayBuffer.isView(item)) total += 6 * ((item as { length?: number }).length ?? 0);
      else if (typeof (item as { toJSON?: unknown }).toJSON === "function") total += 2;
      else if (Array.isArray(item)) {
        total += 1 + item.length; // brackets and commas
        for (let i = Math.min(item.length, SIZE_WALK_BUDGET) - 1; i >= 0; i--) stack.push(item[i]);
      } else {
        total += 1; // braces, less the comma the first member does not have
        for (const key of Object.keys(item)) {
          const member = (item as Record<string, unknown>)[key];
          if (member === undefined || typeof member === "function" || typeof member === "symbol") continue;
          total += key.length + 4; // "key": and a comma
          stack.push(member);
          if (stack.length > SIZE_WALK_BUDGET) break;
        }
      }
    }
  } catch {
    return 0;
  }
  return total;
}

/**
 * Throws `AnswerTooLarge` when `text` is more than `maxBytes` bytes of UTF-8. Called by the transports on the
 * JSON text of an answer before it is queued, so an oversized answer never leaves the sandbox. A UTF-16 unit
 * is 1 to 3 bytes, so only texts between a third of the limit and the limit are encoded to be measured.
 */
export function checkAnswerSize(text: string, maxBytes: number): void {
  if (text.length > maxBytes) throw new AnswerTooLarge(text.length, true);
  if (text.length * 3 <= maxBytes) return;
  const bytes = utf8.encode(text).byteLength;
  if (bytes > maxBytes) throw new AnswerTooLarge(bytes, false);
}

/** An error another slice's method threw (or the call failing), rethrown in the caller under the same name. */
export class RemoteSliceError extends Error {
  readonly status?: number;
  readonly details?: unknown;
  constructor(info: SliceErrorInfo) {
    super(info.message);
    this.name = info.name;
    if (info.status !== undefined) this.status = info.status;
    if (info.details !== undefined) this.details = info.details;
  }
}

/**
 * Turns anything thrown into what crosses the boundary: name, message, explicit status, JSON details. Never
 * throws: a thrown value is the slice's, so any of its property reads, `toString` or Proxy traps may throw
 * (or return something odd); each is read once, guarded, and replaced by a placeholder when it misbehaves, so
 * every call gets an answer.
 */
export function errorInfo(e: unknown): SliceErrorInfo {
  try {
    return errorInfoOf(e);
  } catch {
    return { name: "Error", message: `a thrown ${safeTypeOf(e)} that could not be read` };
  }
}

const UNREADABLE = "(unreadable: reading it threw)";

function errorInfoOf(e: unknown): SliceErrorInfo {
  if (e === null || (typeof e !== "object" && typeof e !== "function")) {
    return { name: "Error", message: safeString(e) };
  }
  const read = (field: string): unknown => {
    try {
      return (e as Record<string, unknown>)[field];
    } catch {
      return UNREADABLE;
    }
  };
  const message = read("message");
  if (message === undefined && !isError(e)) return { name: "Error", message: safeString(e) };
  const name = read("name");
  const info: SliceErrorInfo = {
    name: typeof name === "string" && name !== "" && name !== UNREADABLE ? name.slice(0, 200) : "Error",
    message: safeString(message),
  };
  const status = read("status");
  if (typeof status === "number" && Number.isInteger(status) && status >= 400 && status <= 599) {
    info.status = status;
  }
  const details = read("details");
  if (details !== undefined) info.details = jsonSafe(details);
  return info;
}

function isError(e: unknown): boolean {
  try {
    return e instanceof Error;
  } catch {
    return false; // a Proxy whose getPrototypeOf trap throws
  }
}

function safeTypeOf(e: unknown): string {
  return e === null ? "null" : typeof e;
}

/** `String(value)`, or a placeholder when converting it throws or yields no string. */
function safeString(value: unknown): string {
  try {
    const text = String(value);
    return typeof text === "string" ? text : `(a ${safeTypeOf(value)})`;
  } catch {
    return `(a ${safeTypeOf(value)} whose conversion to a string threw)`;
  }
}

function jsonSafe(value: unknown): JsonValue {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? null : JSON.parse(text);
  } catch {
    return safeString(value);
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}

/** The outcome for a method's value; a value whose reading throws (a hostile Proxy) is the method's error. */
function okOutcome(value: unknown): InvokeOutcome {
  try {
    return readOkOutcome(value);
  } catch (e) {
    return {
      ok: false,
      error: { name: "UnserializableResult", message: `result could not be read: ${errorInfo(e).message}` },
    };
  }
}

function readOkOutcome(value: unknown): InvokeOutcome {
  if (
    value !== null && typeof value === "object" && (value as { kind?: unknown }).kind === "aether.response"
  ) {
    const r = value as { status: number; headers: Record<string, string>; body: unknown };
    return { ok: true, value: r.body, status: r.status, headers: { ...r.headers } };
  }
  return { ok: true, value };
}

/** Reads a definition as plain JSON data (what the manifest is derived from). */
export function describeDefinition(def: AnySliceDefinition): SliceDescription {
  const http = def.http
    ? {
      prefix: def.http.prefix,
      routes: { ...(def.http.routes ?? {}) } as Record<string, string>,
      errors: Object.fromEntries(
        Object.entries(def.http.errors ?? {}).map(([status, patterns]) => [status, [...patterns]]),
      ),
    }
    : null;
  const calls: SliceDescription["calls"] = {};
  for (const [name, ref] of Object.entries(def.calls as Record<string, SliceRef>)) {
    calls[name] = { artifact: ref.artifact, range: ref.range };
  }
  return {
    coordinates: def.coordinates,
    methods: Object.keys(def.methods as object),
    http,
    calls,
    requires: [...def.requires],
    ...(def.machines ? { machines: jsonSafe(def.machines) as never } : {}),
    ...(def.jobs ? { jobs: jsonSafe(def.jobs) as never } : {}),
    ...(def.subscriptions?.length ? { subscriptions: jsonSafe(def.subscriptions) as never } : {}),
    ...(def.secrets?.length ? { secrets: [...def.secrets] } : {}),
    ...(def.outbound?.length ? { outbound: [...def.outbound] } : {}),
    ...(def.redact?.length ? { redact: [...def.redact] } : {}),
    permissions: { net: [...(def.permissions.net ?? [])], env: [...(def.permissions.env ?? [])] },
    config: jsonSafe(def.config) as unknown as Record<string, ConfigField>,
    hooks: { start: typeof def.start === "function", stop: typeof def.stop === "function" },
  };
}

interface CallScope {
  run<R>(ctx: CallContext, fn: () => R): R;
  getStore(): CallContext | undefined;
}

/** Until async context tracking is loaded: only the synchronous part of a call is attributed. */
class SyncScope implements CallScope {
  #current: CallContext | undefined;
  run<R>(ctx: CallContext, fn: () => R): R {
    const previous = this.#current;
    this.#current = ctx;
    try {
      return fn();
    } finally {
      this.#current = previous;
    }
  }
  getStore(): CallContext | undefined {
    return this.#current;
  }
}

/** The context of the call or hook running now; console output is attributed through it. */
let currentCall: CallScope = new SyncScope();
let asyncScope: Promise<void> | undefined;
let asyncScopeReady = false;

/**
 * Switches attribution to AsyncLocalStorage, which follows a call across awaits. Loading `node:async_hooks`
 * costs a fresh isolate about 7-10 ms, and the `import()` does most of that work before it returns, blocking
 * the isolate: it starts in a microtask, after the one that sends a reply queued just before (the start
 * hook's). (Not in a timer: the first `setTimeout` in a fresh isolate costs about as much.) Worker sandboxes
 * start it once the start hook is done rather than on the LOAD → ACTIVE path; process sandboxes start it when
 * the process boots (a warm process has it ready). Calls arriving while it loads wait for it.
 */
export function enableAsyncScope(): Promise<void> {
  // A computed specifier keeps Deno from loading the module with the Worker's entry graph.
  const specifier = "node:async_hooks";
  return asyncScope ??= Promise.resolve()
    .then(() => import(specifier))
    .then((m: typeof import("node:async_hooks")) => {
      currentCall = new m.AsyncLocalStorage<CallContext>();
      asyncScopeReady = true;
    });
}

type Method = (request: unknown, ctx: Context<unknown, unknown>) => unknown;

class CallContext implements Context<unknown, unknown> {
  readonly #owner: SliceInstance;
  readonly requestId: string;
  readonly traceparent: string;
  readonly deadline: number;
  readonly caller: string | undefined;
  #log?: Logger;
  #signal?: AbortSignal;
  #slices?: Record<string, unknown>;
  #infra?: InfraClients & RateLimitClients;

  constructor(owner: SliceInstance, meta: CallMeta) {
    this.#owner = owner;
    this.requestId = meta.requestId;
    this.traceparent = meta.traceparent;
    this.deadline = meta.deadline;
    this.caller = typeof meta.caller === "string" ? meta.caller : undefined;
  }

  serviceHost(method: string, payload: JsonValue, options?: CallOptions): Promise<unknown> {
    if (typeof method !== "string") {
      throw new TypeError("ctx.serviceHost(method): the method must be a string");
    }
    return this.#owner.callServiceHost(this, method, payload, options);
  }

  get remainingMs(): number {
    return Math.max(0, this.deadline - Date.now());
  }

  get signal(): AbortSignal {
    return this.#signal ??= AbortSignal.timeout(this.remainingMs);
  }

  get config(): unknown {
    return this.#owner.config;
  }

  get log(): Logger {
    return this.#log ??= this.#owner.loggerFor(this.requestId);
  }

  get slices(): never {
    return (this.#slices ??= this.#owner.clientsFor(this)) as never;
  }

  get instance() {
    return this.#owner.identity;
  }

  get secrets(): SecretsClient {
    return {
      get: async (name: string, options?: CallOptions) => {
        if (typeof name !== "string") throw new TypeError("ctx.secrets.get(name): the name must be a string");
        return String(await this.#owner.callInfra(this, "secrets", "get", { name }, options));
      },
    };
  }

  onConfigChange(listener: (config: never) => void): () => void {
    return this.#owner.onConfigChange(listener as (config: Readonly<Record<string, JsonValue>>) => void);
  }

  get infra(): InfraClients & RateLimitClients {
    return this.#infra ??= (() => {
      const call = (service: string, method: string, payload: unknown, options: CallOptions | undefined) =>
        this.#owner.callInfra(this, service, method, payload, options);
      return { ...infraClients(call, this.#owner.definition.databases), ...rateLimitClients(call) };
    })();
  }

  /** Console output written while this call runs, attributed to its request id. */
  static console(ctx: CallContext, level: LogLevel, args: unknown[]): void {
    ctx.#owner.log(level, formatArgs(args), undefined, ctx.requestId);
  }
}

const CONSOLE_LEVELS: Array<[keyof Console, LogLevel]> = [
  ["log", "info"],
  ["info", "info"],
  ["debug", "debug"],
  ["trace", "debug"],
  ["warn", "warn"],
  ["error", "error"],
];

let consoleRouted = false;

/**
 * Routes console output written during a call or hook to that instance's log (with the request id); output
 * outside any call goes to `elsewhere`, by default the original console. Installed once per isolate.
 */
export function routeConsole(elsewhere?: (level: LogLevel, args: unknown[]) => void): void {
  if (consoleRouted) return;
  consoleRouted = true;
  const target = console as unknown as Record<string, (...args: unknown[]) => void>;
  for (const [name, level] of CONSOLE_LEVELS) {
    const original = target[name].bind(console);
    target[name] = (...args: unknown[]) => {
      const ctx = currentCall.getStore();
      if (ctx) CallContext.console(ctx, level, args);
      else if (elsewhere) elsewhere(level, args);
      else original(...args);
    };
  }
}

/** The most `ctx.onConfigChange` listeners one instance keeps. */
const MAX_CONFIG_LISTENERS = 100;

/** One loaded slice: its definition, configuration and the calls it has out to other slices. */
export class SliceInstance {
  readonly definition: AnySliceDefinition;
  readonly identity: { coordinates: string; instanceId: string };
  #config: Readonly<Record<string, JsonValue>>;
  /** `ctx.onConfigChange` listeners; bounded so a slice that subscribes on every call cannot grow it forever. */
  readonly #configListeners = new Set<(config: Readonly<Record<string, JsonValue>>) => void>();
  readonly #sink: RuntimeSink;
  /** The host's bound on an answer's JSON (`limits.maxResponseBytes`); none when the host sent none. */
  readonly #maxResponseBytes: number | undefined;
  readonly #pendingOut = new Map<number, { resolve(v: unknown): void; reject(e: unknown): void }>();
  #nextOutId = 1;

  constructor(
    definition: AnySliceDefinition,
    identity: { coordinates: string; instanceId: string },
    config: Record<string, JsonValue>,
    sink: RuntimeSink,
    maxResponseBytes?: number,
  ) {
    this.definition = definition;
    this.identity = Object.freeze({ ...identity });
    this.#config = Object.freeze({ ...config });
    this.#sink = sink;
    this.#maxResponseBytes = Number.isSafeInteger(maxResponseBytes) && maxResponseBytes! > 0
      ? maxResponseBytes
      : undefined;
  }

  get config(): Readonly<Record<string, JsonValue>> {
    return this.#config;
  }

  /** New configuration from the host (an operator's `aether config set`): then every listener runs. */
  setConfig(config: Record<string, JsonValue>): void {
    this.#config = Object.freeze({ ...config });
    for (const listener of [...this.#configListeners]) {
      try {
        const result = listener(this.#config) as unknown;
        if (isThenable(result)) {
          Promise.resolve(result).catch((e) =>
            this.log("error", "a config change listener failed", { error: errorInfo(e) }, undefined)
          );
        }
      } catch (e) {
        this.log("error", "a config change listener failed", { error: errorInfo(e) }, undefined);
      }
    }
  }

  onConfigChange(listener: (config: Readonly<Record<string, JsonValue>>) => void): () => void {
    if (typeof listener !== "function") throw new TypeError("ctx.onConfigChange(listener): not a function");
    if (this.#configListeners.size >= MAX_CONFIG_LISTENERS) {
      throw new RangeError(
        `ctx.onConfigChange: more than ${MAX_CONFIG_LISTENERS} listeners (subscribe in start)`,
      );
    }
    this.#configListeners.add(listener);
    return () => void this.#configListeners.delete(listener);
  }

  /**
   * Runs a method and sends its outcome; never throws. No async function around the method: a method that
   * returns a plain value is answered in the same task, a promise one step after it settles.
   */
  call(id: number, method: string, payload: unknown, meta: CallMeta): void {
    const fn = Object.hasOwn(this.definition.methods as object, method)
      ? (this.definition.methods as Record<string, Method>)[method]
      : undefined;
    if (typeof fn !== "function") {
      return this.#reply(id, {
        ok: false,
        error: { name: "MethodNotFound", message: `no method "${method}"`, status: 404 },
      });
    }
    if (!asyncScopeReady && asyncScope) {
      // Attribution is being switched to AsyncLocalStorage (right after the start hook): wait for it.
      asyncScope.catch(() => {/* stays synchronous */}).then(() => this.call(id, method, payload, meta));
      return;
    }
    const ctx = new CallContext(this, meta);
    let result: unknown;
    let thenable: boolean;
    try {
      result = currentCall.run(ctx, () => fn.call(this.definition.methods, payload, ctx));
      // Reading `then` runs the slice's code (a getter, a Proxy trap): it may throw too.
      thenable = isThenable(result);
    } catch (e) {
      return this.#reply(id, { ok: false, error: errorInfo(e) });
    }
    if (thenable) {
      new Promise((resolve) => resolve(result)).then(
        (value) => this.#answer(id, method, value),
        (e) => this.#reply(id, { ok: false, error: errorInfo(e) }),
      );
    } else {
      this.#answer(id, method, result);
    }
  }

  /** Sends a method's value, or a `ResponseTooLarge` error (HTTP 500) when its JSON is over the host's limit. */
  #answer(id: number, method: string, value: unknown): void {
    const max = this.#maxResponseBytes;
    if (max === undefined) return this.#reply(id, okOutcome(value));
    const outcome = okOutcome(value);
    // A value whose strings alone are over the limit is refused before it is copied into JSON (a 200 MB
    // string would be copied twice more on its way out, enough to pass a process sandbox's memory limit).
    const least = outcome.ok ? jsonCharsAtLeast(outcome.value, max) : 0;
    if (least > max) return this.#reply(id, this.#tooLarge(method, new AnswerTooLarge(least, true)));
    try {
      this.#sink.send({ t: "done", id, outcome }, max);
    } catch (e) {
      if (e instanceof AnswerTooLarge) return this.#reply(id, this.#tooLarge(method, e));
      this.#reply(id, {
        ok: false,
        error: { name: "UnserializableResult", message: `result could not be sent: ${errorInfo(e).message}` },
      });
    }
  }

  #tooLarge(method: string, e: AnswerTooLarge): InvokeOutcome {
    const max = this.#maxResponseBytes;
    return {
      ok: false,
      error: {
        name: "ResponseTooLarge",
        message: `the answer of ${this.identity.coordinates} method "${method}" is ${
          e.atLeast ? "at least " : ""
        }${e.bytes} bytes of JSON, over the response size limit of ${max} bytes (limits.maxResponseBytes)`,
        status: 500,
        details: { coordinates: this.identity.coordinates, method, maxResponseBytes: max!, bytes: e.bytes },
      },
    };
  }

  /** Runs the start or stop hook (if any) and sends its outcome; never throws. */
  async hook(id: number, hook: "start" | "stop", meta: CallMeta): Promise<void> {
    const fn = this.definition[hook] as ((ctx: Context<unknown, unknown>) => unknown) | undefined;
    const outcome: InvokeOutcome = typeof fn === "function"
      ? await this.#run((ctx) => fn.call(this.definition, ctx), meta)
      : { ok: true, value: null };
    this.#reply(id, outcome.ok ? { ok: true, value: null } : outcome);
    if (hook === "start") enableAsyncScope().catch(() => {/* attribution stays synchronous */});
  }

  async #run(body: (ctx: CallContext) => unknown, meta: CallMeta): Promise<InvokeOutcome> {
    if (!asyncScopeReady && asyncScope) await asyncScope.catch(() => {/* stays synchronous */});
    const ctx = new CallContext(this, meta);
    try {
      return okOutcome(await currentCall.run(ctx, () => body(ctx)));
    } catch (e) {
      return { ok: false, error: errorInfo(e) };
    }
  }

  #reply(id: number, outcome: InvokeOutcome): void {
    try {
      this.#sink.send({ t: "done", id, outcome });
    } catch (e) {
      // The result could not be serialized (a function, a BigInt, a cycle...): the caller still gets an answer.
      this.#sink.send({
        t: "done",
        id,
        outcome: {
          ok: false,
          error: {
            name: "UnserializableResult",
            message: `result could not be sent: ${errorInfo(e).message}`,
          },
        },
      });
    }
  }

  /** Delivers the outcome of a call this slice made. */
  settle(id: number, outcome: InvokeOutcome): void {
    const pending = this.#pendingOut.get(id);
    if (!pending) return;
    this.#pendingOut.delete(id);
    if (outcome.ok) pending.resolve(outcome.value);
    else pending.reject(new RemoteSliceError(outcome.error));
  }

  loggerFor(requestId: string | undefined): Logger {
    const write = (level: LogLevel) => (message: string, fields?: LogFields) =>
      this.log(level, String(message), fields, requestId);
    return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
  }

  log(level: LogLevel, message: string, fields: LogFields | undefined, requestId: string | undefined): void {
    const entry: RuntimeMessage = { t: "log", level, message, ts: Date.now() };
    if (requestId !== undefined) entry.requestId = requestId;
    if (fields !== undefined) entry.fields = jsonSafe(fields) as Record<string, JsonValue>;
    try {
      this.#sink.send(entry);
    } catch {
      // A log line must never break the call that wrote it.
    }
  }

  clientsFor(ctx: CallContext): Record<string, unknown> {
    const clients: Record<string, unknown> = {};
    for (const [name, ref] of Object.entries(this.definition.calls as Record<string, SliceRef>)) {
      const methods = new Map<string, unknown>();
      clients[name] = new Proxy(Object.create(null), {
        get: (_target, method) => {
          if (typeof method !== "string") return undefined;
          let client = methods.get(method);
          if (!client) {
            client = this.#methodClient(ctx, name, ref, method);
            methods.set(method, client);
          }
          return client;
        },
      });
    }
    return clients;
  }

  /** A call to an infrastructure service: the reserved client `@infra` (the host checks `requires`). */
  callInfra(
    ctx: CallContext,
    service: string,
    method: string,
    payload: unknown,
    options: CallOptions | undefined,
  ): Promise<unknown> {
    const ref = { artifact: `aether.infra:${service}`, range: "*" } as SliceRef;
    return this.#callOut(ctx, "@infra", ref, method, payload, options, false);
  }

  /** A call to this service's own node-side engine (bundled infrastructure services only: the host checks). */
  callServiceHost(
    ctx: CallContext,
    method: string,
    payload: unknown,
    options: CallOptions | undefined,
  ): Promise<unknown> {
    const [, artifact] = this.identity.coordinates.split(":");
    const ref = { artifact: `aether.infra:${artifact}`, range: "*" } as SliceRef;
    return this.#callOut(ctx, "@service-host", ref, method, payload, options, false);
  }

  #methodClient(ctx: CallContext, name: string, ref: SliceRef, method: string) {
    const call = (request: unknown, options?: CallOptions) =>
      this.#callOut(ctx, name, ref, method, request, options, false);
    call.fireAndForget = (request: unknown, options?: CallOptions) => {
      this.#callOut(ctx, name, ref, method, request, options, true).catch((e) =>
        this.log(
          "warn",
          `fire-and-forget ${name}.${method} could not be sent`,
          { error: errorInfo(e) },
          ctx.requestId,
        )
      );
    };
    return call;
  }

  #callOut(
    ctx: CallContext,
    name: string,
    ref: SliceRef,
    method: string,
    payload: unknown,
    options: CallOptions | undefined,
    fireAndForget: boolean,
  ): Promise<unknown> {
    const timeoutMs = options?.timeoutMs;
    const deadline = typeof timeoutMs === "number" && timeoutMs >= 0
      ? Math.min(ctx.deadline, Date.now() + timeoutMs)
      : ctx.deadline;
    const id = this.#nextOutId++;
    const message: RuntimeMessage = {
      t: "call-out",
      id,
      name,
      artifact: ref.artifact,
      range: ref.range,
      method,
      payload,
      fireAndForget,
      requestId: ctx.requestId,
      traceparent: childTraceparent(ctx.traceparent),
      deadline,
    };
    if (fireAndForget) {
      try {
        this.#sink.send(message);
        return Promise.resolve(undefined);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return new Promise((resolve, reject) => {
      this.#pendingOut.set(id, { resolve, reject });
      try {
        this.#sink.send(message);
      } catch (e) {
        this.#pendingOut.delete(id);
        reject(new RemoteSliceError({ name: "UnserializableRequest", message: errorInfo(e).message }));
      }
    });
  }
}

/** Finds the definition among a bundle's exports: the default export, else the only export that is one. */
export function definitionOf(mod: Record<string, unknown>): AnySliceDefinition {
  const isDef = (v: unknown): v is AnySliceDefinition =>
    v !== null && typeof v === "object" && (v as { kind?: unknown }).kind === "aether.slice";
  if (isDef(mod.default)) return mod.default;
  const found = Object.values(mod).filter(isDef);
  if (found.length === 1) return found[0];
  throw new Error(
    found.length === 0
      ? "the bundle exports no slice definition (expected `export default defineSlice({...})`)"
      : "the bundle exports several slice definitions; export exactly one as the default export",
  );
}

export interface RuntimeTransport extends RuntimeSink {
  /** Registers the handler for host messages. */
  listen(handler: (message: HostMessage) => void): void;
  /** Reports that the slice asked to exit, then ends the sandbox; never returns. */
  exit(code: number): never;
  /**
   * A process sandbox's own CPU time and resident memory, sent with every liveness pong so the node's metrics
   * have them without a message per call (a Worker shares the node's process: it has none).
   */
  usage?(): { cpuMs: number; rssBytes: number };
}

function formatArgs(args: unknown[]): string {
  return args.map((a) => typeof a === "string" ? a : Deno.inspect(a, { depth: 4, colors: false })).join(" ");
}

/**
 * Routes console output through the host as log lines carrying the current request id, keeps stray errors
 * from killing the sandbox (they are logged), and turns `Deno.exit` and `close` into a reported exit.
 */
function installGlobals(transport: RuntimeTransport): void {
  const emit = (level: LogLevel, args: unknown[]) => {
    const requestId = currentCall.getStore()?.requestId;
    try {
      transport.send({
        t: "log",
        level,
        message: formatArgs(args),
        ts: Date.now(),
        ...(requestId ? { requestId } : {}),
      });
    } catch {
      // Nothing sensible to do with an unserializable log line.
    }
  };
  routeConsole(emit);
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    emit("error", ["unhandled promise rejection:", event.reason]);
  });
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    emit("error", ["uncaught error:", (event as ErrorEvent).error ?? (event as ErrorEvent).message]);
  });
  const exit = (code?: number) => transport.exit(typeof code === "number" ? code : 0);
  Deno.exit = exit as typeof Deno.exit;
  (globalThis as { close?: unknown }).close = () => exit(0);
}

/** Starts the runtime on a transport: waits for `load`, then serves calls, hooks, replies and pings. */
export function startRuntime(transport: RuntimeTransport): void {
  let instance: SliceInstance | undefined;
  installGlobals(transport);
  const notLoaded = (id: number) =>
    transport.send({
      t: "done",
      id,
      outcome: { ok: false, error: { name: "NotLoaded", message: "the slice is not loaded", status: 503 } },
    });

  transport.listen((message) => {
    switch (message.t) {
      case "load":
        load(message).then((loaded) => {
          instance = loaded;
        });
        return;
      case "call":
        if (instance) instance.call(message.id, message.method, message.payload, message);
        else notLoaded(message.id);
        return;
      case "hook":
        if (instance) instance.hook(message.id, message.hook, message);
        else notLoaded(message.id);
        return;
      case "reply":
        instance?.settle(message.id, message.outcome);
        return;
      case "config":
        instance?.setConfig(message.config);
        return;
      case "ping":
        transport.send({ t: "pong", id: message.id, ...transport.usage?.() });
        return;
    }
  });

  async function load(message: Extract<HostMessage, { t: "load" }>): Promise<SliceInstance | undefined> {
    try {
      const blob = new Blob([message.bundle as BlobPart], { type: "text/javascript" });
      const url = URL.createObjectURL(blob);
      let mod: Record<string, unknown>;
      try {
        // The specifier must not be a literal: Deno checks a literal dynamic import of the entry module against
        // the process's permissions while building the module graph, a computed one against the sandbox's.
        mod = await import(url);
      } finally {
        URL.revokeObjectURL(url);
      }
      const definition = definitionOf(mod);
      const loaded = message.config === null ? undefined : new SliceInstance(
        definition,
        { coordinates: message.coordinates, instanceId: message.instanceId },
        message.config,
        transport,
        message.maxResponseBytes,
      );
      transport.send({ t: "loaded", description: describeDefinition(definition) });
      return loaded;
    } catch (e) {
      transport.send({ t: "load-failed", error: errorInfo(e) });
      return undefined;
    }
  }
}
