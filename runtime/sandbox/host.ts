/**
 * SliceHost: one slice instance in its sandbox (a Worker or a child process, same API). It loads the bundle,
 * runs the start/stop hooks and calls methods, each under a deadline, and turns everything that can go wrong
 * inside the sandbox into a failure of this instance only:
 *
 * - a method that throws: the caller gets `{ ok: false, error }` (name, message, status) and the instance
 *   stays healthy;
 * - a call past its deadline: the caller gets a 504 at once; the host then probes the sandbox, and if the
 *   probe is not answered within `probeMs` (an endless loop, a stuck isolate) the sandbox is terminated, the
 *   instance becomes failed and every other call in flight fails at once with a 503. A sandbox that is
 *   merely slow (awaiting a slow downstream) answers the probe and keeps serving;
 * - a hook past its deadline or throwing, a crash, `Deno.exit`, the memory limit: failed, sandbox released.
 */

import { AetherError } from "../core/errors.ts";
import { type Deadline, deadlineTimers } from "../core/deadline_timers.ts";
import { randomHex } from "../core/ids.ts";
import { parseCoordinates } from "../core/artifact.ts";
import { resolveConfig } from "../../slices/config.ts";
import { sha256Hex, type SliceManifest, statusForError } from "../../slices/manifest.ts";
import type {
  HostMessage,
  InvokeOutcome,
  RuntimeMessage,
  SliceDescription,
  SliceErrorInfo,
} from "../../slices/protocol.ts";
import type { JsonValue, LogLevel } from "../../slices/mod.ts";
import { isTraceparent, newTraceparent } from "../core/mod.ts";
import type { FailureKind, SandboxChannel } from "./_channel.ts";
import { openWorkerChannel } from "./_worker_channel.ts";
import { discard, openProcessChannel, type SpawnedChild } from "./_process_channel.ts";
import type { ProcessPool } from "./_process_pool.ts";
import {
  DEFAULT_POLICY,
  grantPermissions,
  type IsolationMode,
  type PermissionGrant,
  type SandboxPolicy,
} from "./policy.ts";

export type { FailureKind } from "./_channel.ts";
export type { InvokeOutcome, SliceErrorInfo } from "../../slices/protocol.ts";

export type HostState =
  | "new"
  | "loading"
  | "loaded"
  | "starting"
  | "active"
  | "stopping"
  | "failed"
  | "unloaded";

export interface SliceFailure {
  kind: FailureKind;
  message: string;
  /** Epoch milliseconds. */
  atMs: number;
}

export interface HostTimeouts {
  /** Spawning the sandbox and importing the bundle. */
  loadMs: number;
  /** The start and stop hooks. */
  hookMs: number;
  /** A call without its own deadline. */
  callMs: number;
  /** After a call's deadline: how long the sandbox has to answer a liveness probe before it is terminated. */
  probeMs: number;
}

export const DEFAULT_HOST_TIMEOUTS: HostTimeouts = Object.freeze({
  loadMs: 120_000,
  hookMs: 5_000,
  callMs: 30_000,
  probeMs: 1_000,
});

export interface InvokeOptions {
  /** Propagated to every hop and log line; generated when absent. */
  requestId?: string;
  /** W3C trace context; a new trace is started when absent or malformed. */
  traceparent?: string;
  /** Relative deadline; defaults to `timeouts.callMs`. */
  timeoutMs?: number;
  /** Absolute deadline in epoch milliseconds; the earlier of this and `timeoutMs` applies. */
  deadlineMs?: number;
}

/** A call a slice makes to another slice, handed to `onOutboundCall`. */
export interface OutboundCall {
  /** The calling instance. */
  instanceId: string;
  from: string;
  /** The client's name in the caller's `calls` table. */
  name: string;
  /** `group:artifact` and the version range from the caller's manifest. */
  target: { artifact: string; range: string };
  method: string;
  payload: unknown;
  requestId: string;
  traceparent: string;
  /** Epoch milliseconds; never later than the deadline of the call that made it. */
  deadlineMs: number;
  fireAndForget: boolean;
}

/**
 * Delivers a slice-to-slice call (the invoker's job). Resolve with the callee's outcome; throw an AetherError
 * when the call could not be delivered (its status and message reach the calling slice as `SliceCallFailed`).
 */
export type OutboundCallHandler = (call: OutboundCall) => Promise<InvokeOutcome>;

export interface SliceLogEntry {
  /** Epoch milliseconds. */
  ts: number;
  level: LogLevel;
  message: string;
  requestId?: string;
  fields?: Record<string, JsonValue>;
  instanceId: string;
  coordinates: string;
}

export interface SliceHostOptions {
  instanceId: string;
  manifest: SliceManifest;
  bundle: Uint8Array;
  /** Configuration values from the deployment; checked against the manifest's schema, defaults applied. */
  config?: Record<string, unknown>;
  /** The node's policy; its `mode` is the default isolation. */
  policy?: SandboxPolicy;
  /** Overrides `policy.mode`. */
  mode?: IsolationMode;
  timeouts?: Partial<HostTimeouts>;
  onOutboundCall?: OutboundCallHandler;
  onLog?: (entry: SliceLogEntry) => void;
  /** Called once when the instance fails, whatever the cause (also during load, start and stop). */
  onFailure?: (failure: SliceFailure) => void;
  /** Process isolation: take started children from this pool (the executor keeps one per node). */
  processPool?: ProcessPool;
  /**
   * Process isolation: a child already started for this instance's grant (the executor starts it when the
   * LOAD arrives, so it boots while the bundle is fetched and checked). The host owns it from here on.
   */
  processChild?: SpawnedChild;
}

type Timer = ReturnType<typeof setTimeout>;

interface Pending {
  resolve(outcome: InvokeOutcome): void;
  reject(error: AetherError): void;
  /** A method call's deadline (on the shared deadline timer). */
  deadline?: Deadline;
  /** A hook's deadline. */
  timer?: Timer;
  /** A method call (not a hook). */
  call: boolean;
  /** The method, or the hook's name. */
  name: string;
  requestId: string;
}

const encoder = new TextEncoder();

function defaultLog(entry: SliceLogEntry): void {
  const fields = entry.fields ? ` ${JSON.stringify(entry.fields)}` : "";
  const request = entry.requestId ? ` requestId=${entry.requestId}` : "";
  const line = `${new Date(entry.ts).toISOString()} ${
    entry.level.toUpperCase().padEnd(5)
  } [${entry.coordinates}#${entry.instanceId}]${request} ${entry.message}${fields}\n`;
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch {
    // stderr closed: nothing left to do with a log line.
  }
}

function noInvoker(call: OutboundCall): Promise<InvokeOutcome> {
  return Promise.reject(
    new AetherError(
      "unavailable",
      `no invoker is connected: cannot call ${call.target.artifact}.${call.method}`,
    ),
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join("\n") === [...b].sort().join("\n");
}

/** Why a loaded bundle does not match its manifest, or undefined. */
function mismatch(description: SliceDescription, manifest: SliceManifest): string | undefined {
  const own = parseCoordinates(manifest.coordinates);
  let described: string;
  try {
    const c = parseCoordinates(description.coordinates);
    described = `${c.group}:${c.artifact}`;
  } catch {
    described = description.coordinates;
  }
  if (described !== `${own.group}:${own.artifact}`) {
    return `the bundle defines ${description.coordinates}, the manifest ${manifest.coordinates}`;
  }
  if (!sameList(description.methods, manifest.methods)) {
    return `the bundle has methods [${description.methods}], the manifest [${manifest.methods}]`;
  }
  if (!sameList(description.permissions.net, manifest.permissions.net)) {
    return `the bundle asks for net [${description.permissions.net}], the manifest [${manifest.permissions.net}]`;
  }
  if (!sameList(description.permissions.env, manifest.permissions.env)) {
    return `the bundle asks for env [${description.permissions.env}], the manifest [${manifest.permissions.env}]`;
  }
  const calls = (c: SliceDescription["calls"]) =>
    Object.entries(c).map(([k, v]) => `${k}=${v.artifact}@${v.range}`);
  if (!sameList(calls(description.calls), calls(manifest.calls))) {
    return `the bundle calls [${calls(description.calls)}], the manifest [${calls(manifest.calls)}]`;
  }
  return undefined;
}

export class SliceHost {
  readonly instanceId: string;
  readonly manifest: SliceManifest;
  readonly mode: IsolationMode;
  /** What the sandbox may do: the manifest's request narrowed by the node's policy. */
  readonly grant: PermissionGrant;
  readonly timeouts: Readonly<HostTimeouts>;

  readonly #bundle: Uint8Array;
  readonly #configValues: Record<string, unknown>;
  readonly #policy: SandboxPolicy;
  readonly #methods: Set<string>;
  readonly #onOutboundCall: OutboundCallHandler;
  readonly #onLog: (entry: SliceLogEntry) => void;
  readonly #onFailure?: (failure: SliceFailure) => void;
  readonly #processPool?: ProcessPool;
  #processChild?: SpawnedChild;
  readonly #pending = new Map<number, Pending>();
  #state: HostState = "new";
  #failure?: SliceFailure;
  #channel?: SandboxChannel;
  #nextId = 1;
  #probe?: { id: number; timer: Timer; reason: string };
  #loadWaiter?: { resolve(d: SliceDescription): void; reject(e: AetherError): void };

  constructor(options: SliceHostOptions) {
    this.instanceId = options.instanceId;
    this.manifest = options.manifest;
    this.#policy = options.policy ?? DEFAULT_POLICY;
    this.mode = options.mode ?? this.#policy.mode;
    this.grant = grantPermissions(options.manifest.permissions, this.#policy);
    this.timeouts = { ...DEFAULT_HOST_TIMEOUTS, ...options.timeouts };
    this.#bundle = options.bundle;
    this.#configValues = options.config ?? {};
    this.#methods = new Set(options.manifest.methods);
    this.#onOutboundCall = options.onOutboundCall ?? noInvoker;
    this.#onLog = options.onLog ?? defaultLog;
    this.#onFailure = options.onFailure;
    this.#processPool = options.processPool;
    this.#processChild = options.processChild;
  }

  get state(): HostState {
    return this.#state;
  }

  /** Why the instance failed; set once the state is `failed`. */
  get failure(): SliceFailure | undefined {
    return this.#failure;
  }

  /** The sandbox process's id in process isolation, while it runs. */
  get pid(): number | undefined {
    return this.#state === "unloaded" ? undefined : this.#channel?.pid;
  }

  /** Calls and hooks waiting for the sandbox. */
  get inFlight(): number {
    return this.#pending.size;
  }

  get #label(): string {
    return `${this.manifest.coordinates}#${this.instanceId}`;
  }

  /** Starts the sandbox and imports the bundle. Rejects (and the instance fails) on any problem. */
  async load(): Promise<void> {
    this.#expect("load", ["new"]);
    this.#state = "loading";
    try {
      const sha = await sha256Hex(this.#bundle);
      if (sha !== this.manifest.sha256) {
        throw new AetherError(
          "bad_request",
          `bundle sha-256 ${sha} does not match the manifest's ${this.manifest.sha256}`,
        );
      }
      const config = resolveConfig(this.manifest.config.schema, this.#configValues, "config");
      if (this.#state !== "loading") throw this.#notNow("load");
      this.#channel = this.#open();
      const description = await this.#awaitLoaded(config);
      if (this.#state !== "loading") throw this.#notNow("load"); // unloaded meanwhile
      const problem = mismatch(description, this.manifest);
      if (problem) throw new AetherError("bad_request", `bundle and manifest disagree: ${problem}`);
      this.#state = "loaded";
    } catch (e) {
      const error = e instanceof AetherError
        ? e
        : new AetherError("internal", String((e as Error)?.message ?? e));
      this.#fail("load", `load failed: ${error.message}`);
      throw new AetherError(error.code, `${this.#label}: ${error.message}`, error.extra);
    }
  }

  /** Runs the start hook under `timeouts.hookMs`; the instance is then active. */
  async start(): Promise<void> {
    this.#expect("start", ["loaded"]);
    this.#state = "starting";
    await this.#hook("start");
    if (this.#state !== "starting") throw this.#notNow("start"); // unloaded meanwhile
    this.#state = "active";
  }

  /**
   * Refuses new calls, lets the calls in flight finish (for at most `timeouts.hookMs`), then runs the stop
   * hook under `timeouts.hookMs`; the instance is loaded again.
   */
  async stop(): Promise<void> {
    this.#expect("stop", ["active"]);
    this.#state = "stopping";
    await this.#drain(this.timeouts.hookMs);
    if (this.#state !== "stopping") throw this.#notNow("stop");
    await this.#hook("stop");
    if (this.#state !== "stopping") throw this.#notNow("stop");
    this.#state = "loaded";
  }

  /** Resolves when no call is in flight, or after `limitMs`. */
  #drain(limitMs: number): Promise<void> {
    if (this.#callsInFlight() === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, limitMs);
      const poll = setInterval(() => {
        if (this.#callsInFlight() === 0 || this.#state !== "stopping") done();
      }, 5);
      function done() {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      }
    });
  }

  #callsInFlight(): number {
    let calls = 0;
    for (const pending of this.#pending.values()) if (pending.call) calls++;
    return calls;
  }

  /**
   * Calls a method. Resolves with the method's outcome (its value, or the error it threw with a status);
   * rejects with an AetherError only when the call could not be made or answered: 503 (not active, or the
   * instance failed meanwhile), 404 (no such method), 504 (deadline), 400 (request not serializable).
   */
  invoke(method: string, request: unknown, options: InvokeOptions = {}): Promise<InvokeOutcome> {
    if (this.#state !== "active") {
      const why = this.#failure ? `: ${this.#failure.message}` : "";
      return Promise.reject(
        new AetherError("unavailable", `${this.#label} is ${this.#state}, not active${why}`, {
          state: this.#state,
        }),
      );
    }
    if (!this.#methods.has(method)) {
      return Promise.reject(
        new AetherError("not_found", `${this.manifest.coordinates} has no method "${method}"`),
      );
    }
    const now = Date.now();
    const timeoutMs = options.timeoutMs ?? this.timeouts.callMs;
    const deadline = Math.min(options.deadlineMs ?? Infinity, now + timeoutMs);
    const requestId = options.requestId ?? randomHex(8);
    const traceparent = isTraceparent(options.traceparent) ? options.traceparent : newTraceparent();
    if (deadline <= now) {
      // Nothing to send: the caller has already given up. Not a sign of a stuck sandbox either.
      return Promise.reject(
        new AetherError(
          "timeout",
          `${this.manifest.coordinates} ${method} (request ${requestId}): its deadline had passed before the call`,
        ),
      );
    }
    const id = this.#nextId++;
    return new Promise<InvokeOutcome>((resolve, reject) => {
      const budgetMs = deadline - now;
      this.#pending.set(id, {
        resolve,
        reject,
        deadline: deadlineTimers.schedule(deadline, () => this.#callOverran(id, budgetMs)),
        call: true,
        name: method,
        requestId,
      });
      this.#send(id, { t: "call", id, method, payload: request, requestId, traceparent, deadline });
    });
  }

  /** Ends the sandbox and releases everything (worker or process, timers, streams). Safe to call twice. */
  async unload(): Promise<void> {
    if (this.#state === "unloaded") return;
    this.#state = "unloaded";
    if (this.#probe) clearTimeout(this.#probe.timer);
    this.#probe = undefined;
    this.#rejectAll((what) =>
      new AetherError("unavailable", `${what} was cut off: ${this.#label} was unloaded`)
    );
    this.#loadWaiter?.reject(new AetherError("unavailable", `${this.#label} was unloaded while loading`));
    deadlineTimers.settle(); // no call of any host left: nothing should stay armed
    await this.#closeChannel();
  }

  // -------------------------------------------------------------------------------------------------------

  #expect(action: string, states: HostState[]): void {
    if (!states.includes(this.#state)) throw this.#notNow(action);
  }

  #notNow(action: string): AetherError {
    const why = this.#failure ? ` (${this.#failure.message})` : "";
    return new AetherError("conflict", `cannot ${action} ${this.#label}: it is ${this.#state}${why}`);
  }

  #open(): SandboxChannel {
    const events = {
      message: (message: RuntimeMessage) => this.#onMessage(message),
      ended: (kind: FailureKind, message: string) => this.#fail(kind, message),
      undeliverable: (message: HostMessage, error: Error) => this.#undeliverable(message, error),
    };
    const name = `slice ${this.#label}`;
    if (this.mode === "worker") return openWorkerChannel(name, this.grant, events);
    const memoryLimitMb = this.#policy.memoryLimitMb;
    const spawned = this.#processChild ?? this.#processPool?.take(this.grant, memoryLimitMb);
    this.#processChild = undefined;
    return openProcessChannel({ name, grant: this.grant, memoryLimitMb, spawned }, events);
  }

  #awaitLoaded(config: Record<string, JsonValue>): Promise<SliceDescription> {
    return new Promise<SliceDescription>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new AetherError("timeout", `the bundle did not load within ${this.timeouts.loadMs} ms`)),
        this.timeouts.loadMs,
      );
      this.#loadWaiter = {
        resolve: (d) => {
          clearTimeout(timer);
          resolve(d);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.#channel!.send({
        t: "load",
        bundle: this.#bundle,
        config,
        coordinates: this.manifest.coordinates,
        instanceId: this.instanceId,
      });
    }).finally(() => this.#loadWaiter = undefined);
  }

  async #hook(hook: "start" | "stop"): Promise<void> {
    const id = this.#nextId++;
    const requestId = `${hook}-${randomHex(6)}`;
    const deadline = Date.now() + this.timeouts.hookMs;
    const outcome = await new Promise<InvokeOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#fail("deadline", `the ${hook} hook did not finish within ${this.timeouts.hookMs} ms`);
      }, this.timeouts.hookMs);
      this.#pending.set(id, { resolve, reject, timer, call: false, name: hook, requestId });
      this.#send(id, { t: "hook", id, hook, requestId, traceparent: newTraceparent(), deadline });
    });
    if (!outcome.ok) {
      const message = `the ${hook} hook threw ${outcome.error.name}: ${outcome.error.message}`;
      this.#fail("hook", message);
      throw new AetherError("internal", `${this.#label}: ${message}`);
    }
  }

  #send(id: number, message: HostMessage): void {
    try {
      this.#channel!.send(message);
    } catch (e) {
      const pending = this.#take(id);
      pending?.reject(new AetherError("bad_request", `request could not be sent: ${(e as Error).message}`));
    }
  }

  #undeliverable(message: HostMessage, error: Error): void {
    if (message.t === "call" || message.t === "hook") {
      this.#take(message.id)?.reject(
        new AetherError("bad_request", `request could not be sent: ${error.message}`),
      );
    } else if (message.t === "reply") {
      this.#channel?.send({
        t: "reply",
        id: message.id,
        outcome: {
          ok: false,
          error: { name: "UnserializableResult", message: `result could not be sent: ${error.message}` },
        },
      });
    } else if (message.t === "load") {
      this.#loadWaiter?.reject(new AetherError("internal", `the bundle could not be sent: ${error.message}`));
    }
  }

  #take(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (pending) {
      this.#pending.delete(id);
      pending.deadline?.cancel();
      if (pending.timer !== undefined) clearTimeout(pending.timer);
    }
    return pending;
  }

  /** What a pending call or hook is, for error messages. */
  #what(pending: Pending): string {
    return pending.call
      ? `${this.manifest.coordinates} ${pending.name} (request ${pending.requestId})`
      : `the ${pending.name} hook of ${this.#label}`;
  }

  #callOverran(id: number, budgetMs: number): void {
    const pending = this.#take(id);
    if (!pending) return;
    const what = this.#what(pending);
    pending.reject(
      new AetherError("timeout", `${what} did not answer within its deadline of ${budgetMs} ms`, {
        instanceId: this.instanceId,
      }),
    );
    this.#startProbe(`${what} overran its deadline of ${budgetMs} ms`);
  }

  /** Asks the sandbox for a sign of life; no answer within `probeMs` means it is stuck and must go. */
  #startProbe(reason: string): void {
    if (this.#probe || this.#state === "failed" || this.#state === "unloaded") return;
    const id = this.#nextId++;
    const timer = setTimeout(() => {
      this.#probe = undefined;
      // Deno 2.9 cannot interrupt a Worker stuck in a synchronous loop: terminate() returns, the thread spins on.
      const fate = this.mode === "worker"
        ? "it was terminated, but a Worker stuck in a loop keeps its thread busy until the node restarts"
        : "its process was killed";
      this.#fail(
        "deadline",
        `${reason} and the sandbox did not answer a liveness probe within ${this.timeouts.probeMs} ms ` +
          `(stuck in a loop?); ${fate}`,
      );
    }, this.timeouts.probeMs);
    this.#probe = { id, timer, reason };
    try {
      this.#channel?.send({ t: "ping", id });
    } catch {
      // Unreachable for a ping; the timer decides.
    }
  }

  /** Everything from the sandbox is untrusted: a malformed message fails this instance, never the node. */
  #onMessage(message: RuntimeMessage): void {
    try {
      this.#handle(message);
    } catch (e) {
      const shown = (() => {
        try {
          return JSON.stringify(message)?.slice(0, 100);
        } catch {
          return String(message);
        }
      })();
      this.#fail("protocol", `the sandbox sent a malformed message (${(e as Error).message}): ${shown}`);
    }
  }

  #handle(message: RuntimeMessage): void {
    if (message === null || typeof message !== "object") throw new TypeError("not an object");
    switch (message.t) {
      case "done": {
        const outcome = checkOutcome(message.outcome);
        const pending = this.#take(message.id);
        if (!pending) return; // Answered after its deadline: the caller has had its 504.
        if (!outcome.ok) outcome.error.status = statusForError(this.manifest.routes, outcome.error);
        pending.resolve(outcome);
        return;
      }
      case "call-out":
        for (const field of ["name", "artifact", "range", "method", "requestId", "traceparent"] as const) {
          if (typeof message[field] !== "string") throw new TypeError(`call-out.${field} is not a string`);
        }
        if (!Number.isInteger(message.id) || typeof message.deadline !== "number") {
          throw new TypeError("call-out without id or deadline");
        }
        this.#callOut(message);
        return;
      case "log":
        this.#onLog({
          ts: typeof message.ts === "number" ? message.ts : Date.now(),
          level: LOG_LEVELS.includes(message.level) ? message.level : "info",
          message: String(message.message),
          requestId: typeof message.requestId === "string" ? message.requestId : undefined,
          fields: message.fields !== null && typeof message.fields === "object" ? message.fields : undefined,
          instanceId: this.instanceId,
          coordinates: this.manifest.coordinates,
        });
        return;
      case "pong":
        if (this.#probe?.id === message.id) {
          clearTimeout(this.#probe.timer);
          this.#probe = undefined;
        }
        return;
      case "loaded":
        this.#loadWaiter?.resolve(message.description);
        return;
      case "load-failed":
        this.#loadWaiter?.reject(
          new AetherError(
            "bad_request",
            `the bundle failed to load: ${message.error.name}: ${message.error.message}`,
          ),
        );
        return;
      case "exit":
        this.#fail("exit", `the slice called Deno.exit(${message.code})`);
        return;
      default:
        this.#fail(
          "protocol",
          `the sandbox sent an unknown message ${JSON.stringify(message)?.slice(0, 100)}`,
        );
    }
  }

  #callOut(message: Extract<RuntimeMessage, { t: "call-out" }>): void {
    const call: OutboundCall = {
      instanceId: this.instanceId,
      from: this.manifest.coordinates,
      name: message.name,
      target: { artifact: message.artifact, range: message.range },
      method: message.method,
      payload: message.payload,
      requestId: message.requestId,
      traceparent: message.traceparent,
      deadlineMs: message.deadline,
      fireAndForget: message.fireAndForget,
    };
    const declared = Object.hasOwn(this.manifest.calls, message.name)
      ? this.manifest.calls[message.name]
      : undefined;
    const result = !declared || declared.artifact !== message.artifact || declared.range !== message.range
      ? Promise.reject(
        new AetherError("forbidden", `${message.artifact} is not among the slices this slice calls`),
      )
      : this.#deliver(call);
    if (message.fireAndForget) {
      result.catch((e) =>
        this.#logHost("warn", `fire-and-forget ${call.name}.${call.method} failed: ${e}`, call)
      );
      return;
    }
    result.then(
      (outcome) => this.#reply(message.id, outcome),
      (e) => this.#reply(message.id, { ok: false, error: callFailure(e) }),
    );
  }

  /** Hands a call to the invoker, bounded by the call's deadline whatever the handler does. */
  #deliver(call: OutboundCall): Promise<InvokeOutcome> {
    const budgetMs = call.deadlineMs - Date.now();
    if (budgetMs <= 0) {
      return Promise.reject(
        new AetherError("timeout", `the deadline of ${call.name}.${call.method} had passed`),
      );
    }
    return new Promise<InvokeOutcome>((resolve, reject) => {
      const deadline = deadlineTimers.schedule(
        call.deadlineMs,
        () =>
          reject(
            new AetherError("timeout", `${call.name}.${call.method} did not answer within ${budgetMs} ms`),
          ),
      );
      let result: Promise<InvokeOutcome>;
      try {
        result = this.#onOutboundCall(call);
      } catch (e) {
        result = Promise.reject(e);
      }
      result.then(
        (outcome) => {
          deadline.cancel();
          resolve(outcome);
        },
        (e) => {
          deadline.cancel();
          reject(e);
        },
      );
    });
  }

  #reply(id: number, outcome: InvokeOutcome): void {
    if (this.#state === "failed" || this.#state === "unloaded") return;
    try {
      this.#channel?.send({ t: "reply", id, outcome });
    } catch (e) {
      this.#channel?.send({
        t: "reply",
        id,
        outcome: {
          ok: false,
          error: { name: "UnserializableResult", message: String((e as Error).message) },
        },
      });
    }
  }

  #logHost(level: LogLevel, message: string, call?: OutboundCall): void {
    this.#onLog({
      ts: Date.now(),
      level,
      message,
      requestId: call?.requestId,
      instanceId: this.instanceId,
      coordinates: this.manifest.coordinates,
    });
  }

  #rejectAll(error: (what: string) => AetherError): void {
    for (const id of [...this.#pending.keys()]) {
      const pending = this.#take(id);
      if (pending) pending.reject(error(this.#what(pending)));
    }
  }

  #fail(kind: FailureKind, message: string): void {
    if (this.#state === "failed" || this.#state === "unloaded") return;
    this.#state = "failed";
    this.#failure = { kind, message, atMs: Date.now() };
    if (this.#probe) clearTimeout(this.#probe.timer);
    this.#probe = undefined;
    this.#rejectAll((what) =>
      new AetherError("unavailable", `${what} failed: instance ${this.#label} failed: ${message}`, {
        instanceId: this.instanceId,
        failure: kind,
      })
    );
    this.#loadWaiter?.reject(new AetherError("internal", message));
    this.#closeChannel();
    this.#logHost("error", `instance failed (${kind}): ${message}`);
    try {
      this.#onFailure?.(this.#failure);
    } catch {
      // A listener's bug must not stop the failure from being recorded.
    }
  }

  #closing?: Promise<void>;
  #closeChannel(): Promise<void> {
    if (this.#processChild) {
      // Failed or unloaded before the sandbox was opened: the child started for it goes.
      this.#closing ??= discard(this.#processChild);
      this.#processChild = undefined;
      return this.#closing;
    }
    if (!this.#channel) return Promise.resolve();
    this.#closing ??= this.#channel.close();
    return this.#closing;
  }
}

const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];

/** Checks an outcome from the sandbox; throws on anything that is not one. */
function checkOutcome(outcome: unknown): InvokeOutcome {
  if (outcome === null || typeof outcome !== "object") throw new TypeError("outcome is not an object");
  const o = outcome as Record<string, unknown>;
  if (o.ok === true) return o as InvokeOutcome;
  const error = o.error as Record<string, unknown> | undefined;
  if (o.ok !== false || error === null || typeof error !== "object") {
    throw new TypeError("outcome is neither ok nor an error");
  }
  const status = typeof error.status === "number" && Number.isInteger(error.status) && error.status >= 400 &&
      error.status <= 599
    ? error.status
    : undefined;
  const info: SliceErrorInfo = { name: String(error.name ?? "Error"), message: String(error.message ?? "") };
  if (status !== undefined) info.status = status;
  if (error.details !== undefined) info.details = error.details as SliceErrorInfo["details"];
  return { ok: false, error: info };
}

/** What a calling slice sees when its call could not be delivered. */
function callFailure(e: unknown): SliceErrorInfo {
  if (e instanceof AetherError) {
    return {
      name: e.code === "timeout" ? "DeadlineExceeded" : "SliceCallFailed",
      message: e.message,
      status: e.status,
    };
  }
  return { name: "SliceCallFailed", message: String((e as Error)?.message ?? e), status: 502 };
}
