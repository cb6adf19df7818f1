/**
 * SliceHost: one slice instance in its sandbox (a Worker or a child process, same API). It loads the bundle,
 * runs the start/stop hooks and calls methods, each under a deadline, and turns everything that can go wrong
 * inside the sandbox into a failure of this instance only.
 *
 * Its state is the sandbox's (`SandboxState`: idle → booting → running → exited), not the instance's
 * lifecycle: whether the instance is ACTIVE (may take calls) is the lifecycle's question, answered once by the
 * node's `SliceExecutor`, which owns the LOAD…UNLOAD states and drives the host through `load`, `start`
 * (the start hook), `stop` (the stop hook) and `unload`. The host only refuses calls its sandbox cannot take
 * (it is not running) or cannot hold (`limits.maxPendingRequests`). Every exit of the sandbox other than
 * `unload` is reported once, as an event, through `onFailure`:
 *
 * - a method that throws: the caller gets `{ ok: false, error }` (name, message, status) and the instance
 *   stays healthy;
 * - a call past its deadline: the caller gets a 504 at once; the host then probes the sandbox, and if the
 *   probe is not answered within `probeMs` (an endless loop, a stuck isolate) the sandbox is terminated, the
 *   instance becomes failed and every other call in flight fails at once with a 503. A sandbox that is
 *   merely slow (awaiting a slow downstream) answers the probe and keeps serving;
 * - a hook past its deadline or throwing, a crash, `Deno.exit`, the memory limit: failed, sandbox released.
 */

import {
  AetherError,
  assert,
  type Deadline,
  deadlineTimers,
  isTraceparent,
  newTraceparent,
  parseCoordinates,
  randomHex,
} from "../core/mod.ts";
import {
  type HostMessage,
  type InvokeOutcome,
  resolveConfig,
  type RuntimeMessage,
  sha256Hex,
  type SliceDescription,
  type SliceErrorInfo,
  type SliceManifest,
  statusForError,
} from "../../slices/host.ts";
import type { JsonValue, LogLevel } from "../../slices/mod.ts";
import type { FailureKind, SandboxChannel } from "./_channel.ts";
import { openWorkerChannel } from "./_worker_channel.ts";
import { discard, openProcessChannel, type SpawnedChild } from "./_process_channel.ts";
import type { ProcessPool } from "./_process_pool.ts";
import { CpuWindow } from "./_cpu_watch.ts";
import { MAX_MESSAGE_CHARS } from "./_lines.ts";
import { DEFAULT_SLICE_LOG_LIMITS, SliceLogLimiter, type SliceLogLimits } from "./_log_limit.ts";
import {
  DEFAULT_POLICY,
  grantPermissions,
  type IsolationMode,
  type PermissionGrant,
  type SandboxPolicy,
} from "./policy.ts";

export type { FailureKind } from "./_channel.ts";
export type { InvokeOutcome, SliceErrorInfo } from "../../slices/host.ts";

/**
 * The sandbox's own state (its Worker or child process), a different thing from the instance's lifecycle
 * (`LifecycleState`, LOAD…UNLOAD, owned by the SliceExecutor):
 * - `idle`: created, nothing started yet;
 * - `booting`: the sandbox starts and imports the bundle (`load`);
 * - `running`: the bundle is loaded; the sandbox takes hooks and calls;
 * - `exited`: the sandbox is gone, for good: it failed (`failure` says why) or was released (`unload`).
 */
export type SandboxState = "idle" | "booting" | "running" | "exited";

/** The edges a sandbox's state may take; the host asserts every change against them. */
export const SANDBOX_TRANSITIONS: Readonly<Record<SandboxState, readonly SandboxState[]>> = Object.freeze({
  idle: ["booting", "exited"],
  booting: ["running", "exited"],
  running: ["exited"],
  exited: [],
});

export interface SliceFailure {
  kind: FailureKind;
  message: string;
  /** Epoch milliseconds. */
  atMs: number;
  /**
   * The request ids of the method calls in flight when the sandbox ended (at most `MAX_REPORTED_REQUESTS`):
   * a crash during a call is likely that call's doing, so it is reported with the instance.
   */
  requestIds?: string[];
}

/** How many request ids of the calls in flight a failure names. */
export const MAX_REPORTED_REQUESTS = 8;

export interface HostTimeouts {
  /** Spawning the sandbox and importing the bundle. */
  loadMs: number;
  /** The start and stop hooks. */
  hookMs: number;
  /** A call without its own deadline. */
  callMs: number;
  /** After a call's deadline: how long the sandbox has to answer a liveness probe before it is terminated. */
  probeMs: number;
  /**
   * How often a running sandbox is pinged, calls or not: a sandbox that stopped reading its messages (its
   * runtime wedged) looks alive and would otherwise only be found out by each call's deadline. 0 turns it off.
   */
  livenessIntervalMs: number;
  /**
   * How long a periodic ping may go unanswered before the sandbox is terminated (its instance fails and is
   * replaced). Generous: a method that computes synchronously delays the answer for as long as it runs.
   */
  livenessTimeoutMs: number;
}

export const DEFAULT_HOST_TIMEOUTS: HostTimeouts = Object.freeze({
  loadMs: 120_000,
  hookMs: 5_000,
  callMs: 30_000,
  probeMs: 1_000,
  livenessIntervalMs: 5_000,
  livenessTimeoutMs: 10_000,
});

export interface HostLimits {
  /**
   * Method calls waiting for the sandbox's answer at once; one more is refused with "overloaded" (HTTP 503,
   * `retryAfterSeconds`) instead of queueing without bound behind a slow or stuck slice.
   */
  maxPendingRequests: number;
  /**
   * The largest answer a method may give, in bytes of UTF-8 JSON. The sandbox's runtime measures the answer
   * before it leaves the sandbox and sends a `ResponseTooLarge` error (HTTP 500, naming the slice, the method
   * and this limit) instead; the instance keeps serving. A sandbox that bypasses its runtime is stopped by
   * the channel's bound on one message (`MAX_MESSAGE_CHARS`, 64 Mi characters) and fails.
   */
  maxResponseBytes: number;
  /**
   * Process isolation, the hard CPU limit: the share of one CPU core (1 = a core busy all the time) the
   * sandbox process may use over `cpuWindowMs`; above it the process is killed at once and the instance fails
   * (kind "cpu"). A slice that keeps a core busy still answers every liveness ping, so only its CPU time finds
   * it out. 0 turns it off. Worker isolation is not watched: a Worker is a thread of the node, its CPU time is
   * not counted apart (worker isolation is for trusted slices only, see the executor).
   */
  maxCpuShare: number;
  /**
   * Process isolation, the soft CPU limit: above this share over `cpuWindowMs` the instance is retired: it
   * takes no new call (503 with `sandbox: "retiring"`, so the invoker goes elsewhere at once), finishes the
   * calls it has (for at most `timeouts.callMs`), then ends (kind "retired") and is replaced. 0 turns it off;
   * at or above `maxCpuShare` the hard limit comes first.
   */
  softCpuShare: number;
  /** The window both CPU shares are measured over; the process's CPU time is sampled ten times per window. */
  cpuWindowMs: number;
  /**
   * Process isolation: the CPU time one call may use, in ms. The sandbox's CPU time is sampled (at least four
   * times per budget) and each sample's growth is shared among the calls in flight; a call over its budget
   * cannot be stopped alone, so the process is killed (kind "cpu") and the call answered 503 naming the
   * budget. 0 turns it off.
   */
  maxCallCpuMs: number;
  /** What the slice may write to the node's log (lines per second, burst, size of a line). */
  log: SliceLogLimits;
}

/** Host limits as options: any of them, and any of the log limits. */
export type HostLimitsOptions = Partial<Omit<HostLimits, "log">> & { log?: Partial<SliceLogLimits> };

/**
 * 4096: sixteen times the 256 connections a busy load test keeps open, and as many as the mesh serves for
 * other nodes at once (`DEFAULT_FLOW_LIMITS.maxServing`); a pending call costs well under a kilobyte here.
 */
export const DEFAULT_HOST_LIMITS: HostLimits = Object.freeze({
  maxPendingRequests: 4096,
  // 16 MiB: far above any answer meant for an HTTP client or another slice, and small enough that a few of
  // them in flight do not threaten the node (a sandbox's memory limit is 256 MiB by default).
  maxResponseBytes: 16 * 1024 * 1024,
  // 90% of a core for 10 s: a slice busy that long is a runaway or belongs on a machine of its own; a burst of
  // calls that fills a core for a few seconds is not.
  maxCpuShare: 0.9,
  // Below the hard limit, so that a slice that is merely busy is replaced gracefully before it is killed.
  softCpuShare: 0.8,
  cpuWindowMs: 10_000,
  // A third of the default call deadline (30 s): no request-response call should compute this long.
  maxCallCpuMs: 10_000,
  log: DEFAULT_SLICE_LOG_LIMITS,
});

/**
 * The largest `limits.maxResponseBytes`: an answer must fit in one message of the channel (`MAX_MESSAGE_CHARS`,
 * 64 Mi characters), with room for the rest of the message.
 */
const MAX_RESPONSE_BYTES = MAX_MESSAGE_CHARS - 1024 * 1024;
/** The largest `limits.maxCpuShare`: a sandbox process rarely keeps more than this many cores busy. */
const MAX_CPU_SHARE = 64;
/** The shortest `limits.cpuWindowMs`: the kernel counts CPU time in 10 ms ticks, sampled ten times a window. */
const MIN_CPU_WINDOW_MS = 500;
/** The smallest `limits.maxCallCpuMs` (other than 0): four samples of the 10 ms kernel ticks at least. */
const MIN_CALL_CPU_MS = 100;
/** The largest `limits.maxCallCpuMs`: an hour of CPU. */
const MAX_CALL_CPU_MS = 3_600_000;
/** The CPU watch never samples more often than the sandbox's watchdog reports (every 50 ms). */
const MIN_CPU_SAMPLE_MS = 50;

/** How long after a log line was dropped the node reports the lines dropped meanwhile (one line a second). */
const DROPPED_LOG_REPORT_MS = 1_000;

/** How long a caller refused for `maxPendingRequests` is told to wait before trying again. */
const OVERLOADED_RETRY_AFTER_SECONDS = 1;

/** The host's load and limits, for the instance's status. */
export interface SandboxStats {
  /** Method calls waiting for the sandbox now, and the bound on them. */
  pendingRequests: number;
  maxPendingRequests: number;
  /** Calls refused because `maxPendingRequests` were pending (since the host was created). */
  refusedRequests: number;
  /** The slice's log lines dropped over `limits.log` (since the host was created). */
  droppedLogLines: number;
  /** Process isolation: the share of a core the sandbox used over the last whole `limits.cpuWindowMs`. */
  cpuShare?: number;
  /** Why the instance is retiring (over `limits.softCpuShare`): it takes no new calls and ends soon. */
  retiring?: string;
}

export interface InvokeOptions {
  /** Propagated to every hop and log line; generated when absent. */
  requestId?: string;
  /** W3C trace context; a new trace is started when absent or malformed. */
  traceparent?: string;
  /** Relative deadline; defaults to `timeouts.callMs`. */
  timeoutMs?: number;
  /** Absolute deadline in epoch milliseconds; the earlier of this and `timeoutMs` applies. */
  deadlineMs?: number;
  /** The calling slice's coordinates (the invoker's `caller`): the slice reads them as `ctx.caller`. */
  caller?: string;
}

/**
 * `ctx.infra.<service>(...)` calls: the reserved client name `@infra`, artifact `aether.infra:<service>`, range
 * `*`, allowed only for a service the slice's manifest `requires` (runtime/infra-host serves them in the node).
 */
function infraRequired(
  manifest: SliceManifest,
  message: { name: string; artifact: string },
): { artifact: string; range: string } | undefined {
  if (message.name === "@service-host") return serviceHostAllowed(manifest, message);
  if (message.name !== "@infra" || !message.artifact.startsWith("aether.infra:")) return undefined;
  const service = message.artifact.slice("aether.infra:".length);
  // Secrets are declared by name (manifest `secrets`); the node checks the name against the stored manifest.
  const declared = service === "secrets"
    ? (manifest.secrets?.length ?? 0) > 0
    : manifest.requires.includes(service);
  return declared ? { artifact: message.artifact, range: "*" } : undefined;
}

/**
 * `@service-host` call-outs (runtime/infra-host, infra/README.md): only a slice of the reserved group
 * `aether.infra`, and only to its own service's engine (`aether.infra:<its artifact>`). The node then checks
 * that the caller's bundle digest (`OutboundCall.fromSha256`) is the bundled one before it answers.
 */
function serviceHostAllowed(
  manifest: SliceManifest,
  message: { artifact: string },
): { artifact: string; range: string } | undefined {
  const [group, artifact] = manifest.coordinates.split(":");
  return group === "aether.infra" && message.artifact === `aether.infra:${artifact}`
    ? { artifact: message.artifact, range: "*" }
    : undefined;
}

/**
 * A `calls` entry, unless it names an infrastructure service the manifest does not `requires`: a service is
 * reached only through `requires`, whichever way the slice addresses it.
 */
function reachableCall(
  manifest: SliceManifest,
  declared: { artifact: string; range: string },
): { artifact: string; range: string } | undefined {
  if (!declared.artifact.startsWith("aether.infra:")) return declared;
  return manifest.requires.includes(declared.artifact.slice("aether.infra:".length)) ? declared : undefined;
}

/** A call a slice makes to another slice, handed to `onOutboundCall`. */
export interface OutboundCall {
  /** The calling instance. */
  instanceId: string;
  from: string;
  /** The sha-256 of the calling instance's bundle (checked against its manifest when it loaded). */
  fromSha256?: string;
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
  limits?: HostLimitsOptions;
  onOutboundCall?: OutboundCallHandler;
  onLog?: (entry: SliceLogEntry) => void;
  /**
   * Called once when the sandbox exits other than by `unload`, whatever the cause (a crash, the memory limit,
   * a stuck sandbox, also a failed load or hook): the host's one report of its own end.
   */
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
  /** Set when it leaves `#pending` (answered, overran, cut off): an answer after that is dropped. */
  settled: boolean;
  /** A method call's share of the sandbox's CPU time so far (ms), against `limits.maxCallCpuMs`. */
  cpuMs?: number;
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
  readonly limits: Readonly<HostLimits>;

  readonly #bundle: Uint8Array;
  #configValues: Record<string, unknown>;
  readonly #policy: SandboxPolicy;
  readonly #methods: Set<string>;
  readonly #onOutboundCall: OutboundCallHandler;
  readonly #onLog: (entry: SliceLogEntry) => void;
  readonly #onFailure?: (failure: SliceFailure) => void;
  readonly #processPool?: ProcessPool;
  #processChild?: SpawnedChild;
  /** Calls and hooks sent to the sandbox and not answered yet, by message id. */
  readonly #pending = new Map<number, Pending>();
  /** How many entries of `#pending` are method calls (bounded by `limits.maxPendingRequests`). */
  #pendingCalls = 0;
  #refusedRequests = 0;
  readonly #logLimiter: SliceLogLimiter;
  /** Pending report of the log lines dropped in the last second. */
  #dropReport?: Timer;
  #state: SandboxState = "idle";
  #failure?: SliceFailure;
  #channel?: SandboxChannel;
  #nextId = 1;
  #probe?: { id: number; timer: Timer; reason: string };
  /** The latest CPU and memory report of the sandbox process (its liveness pongs). */
  #usage?: { cpuMs: number; rssBytes: number };
  /** The periodic liveness ping, while the sandbox runs. */
  #liveness?: ReturnType<typeof setInterval>;
  /** Samples the sandbox process's CPU time (process isolation, the CPU limits). */
  #cpuWatch?: ReturnType<typeof setInterval>;
  /** The CPU share over the last whole window (process isolation). */
  #cpuShare?: number;
  /** Why the instance is retiring (over `limits.softCpuShare`); set once. */
  #retiring?: string;
  #loadWaiter?: { resolve(d: SliceDescription): void; reject(e: AetherError): void };

  constructor(options: SliceHostOptions) {
    this.instanceId = options.instanceId;
    this.manifest = options.manifest;
    this.#policy = options.policy ?? DEFAULT_POLICY;
    this.mode = options.mode ?? this.#policy.mode;
    this.grant = grantPermissions(options.manifest.permissions, this.#policy);
    this.timeouts = { ...DEFAULT_HOST_TIMEOUTS, ...options.timeouts };
    this.limits = {
      ...DEFAULT_HOST_LIMITS,
      ...options.limits,
      log: { ...DEFAULT_HOST_LIMITS.log, ...options.limits?.log },
    };
    try {
      this.#logLimiter = new SliceLogLimiter(this.limits.log, Date.now());
    } catch (e) {
      throw new AetherError("bad_request", (e as Error).message);
    }
    const max = this.limits.maxPendingRequests;
    if (!Number.isInteger(max) || max < 1) {
      throw new AetherError(
        "bad_request",
        `limits.maxPendingRequests must be a positive integer, got ${max}`,
      );
    }
    const maxResponse = this.limits.maxResponseBytes;
    if (!Number.isSafeInteger(maxResponse) || maxResponse < 1 || maxResponse > MAX_RESPONSE_BYTES) {
      throw new AetherError(
        "bad_request",
        `limits.maxResponseBytes must be an integer from 1 to ${MAX_RESPONSE_BYTES} (bytes), got ${maxResponse}`,
      );
    }
    checkCpuLimits(this.limits);
    this.#bundle = options.bundle;
    this.#configValues = options.config ?? {};
    this.#methods = new Set(options.manifest.methods);
    this.#onOutboundCall = options.onOutboundCall ?? noInvoker;
    this.#onLog = options.onLog ?? defaultLog;
    this.#onFailure = options.onFailure;
    this.#processPool = options.processPool;
    this.#processChild = options.processChild;
  }

  /** The sandbox's state (not the instance's lifecycle: see `SandboxState`). */
  get state(): SandboxState {
    return this.#state;
  }

  /** Why the sandbox failed; set once it has exited other than by `unload`. */
  get failure(): SliceFailure | undefined {
    return this.#failure;
  }

  /**
   * The sandbox process's own report of its CPU time (ms) and resident memory, from its latest liveness pong
   * (process isolation only; every `timeouts.livenessIntervalMs`). Informational: the process reports it.
   */
  /**
   * New configuration values at run time (runtime/infra-host/config.ts): checked against the manifest's schema
   * (throws AetherError("bad_request") naming each problem, keeping the current values), then sent to a
   * running sandbox, whose `ctx.config` changes and whose `onConfigChange` listeners run. Before the load, the
   * values are the ones the load resolves.
   */
  updateConfig(values: Record<string, unknown>): void {
    const config = resolveConfig(this.manifest.config.schema, values, "config");
    this.#configValues = values;
    if (this.#state === "running") this.#channel?.send({ t: "config", config });
  }

  get usage(): { cpuMs: number; rssBytes: number } | undefined {
    return this.#usage;
  }

  /** Keeps a pong's usage figures when they are plausible numbers. */
  #takeUsage(message: { cpuMs?: unknown; rssBytes?: unknown }): void {
    const { cpuMs, rssBytes } = message;
    if (typeof cpuMs !== "number" || typeof rssBytes !== "number") return;
    if (!(Number.isFinite(cpuMs) && cpuMs >= 0 && Number.isFinite(rssBytes) && rssBytes >= 0)) return;
    this.#usage = { cpuMs, rssBytes };
  }

  /** The sandbox process's id in process isolation, while it runs. */
  get pid(): number | undefined {
    return this.#state === "booting" || this.#state === "running" ? this.#channel?.pid : undefined;
  }

  /** Calls and hooks waiting for the sandbox. */
  get inFlight(): number {
    return this.#pending.size;
  }

  get stats(): SandboxStats {
    return {
      pendingRequests: this.#pendingCalls,
      maxPendingRequests: this.limits.maxPendingRequests,
      refusedRequests: this.#refusedRequests,
      droppedLogLines: this.#logLimiter.dropped,
      ...(this.#cpuShare === undefined ? {} : { cpuShare: this.#cpuShare }),
      ...(this.#retiring === undefined ? {} : { retiring: this.#retiring }),
    };
  }

  get #label(): string {
    return `${this.manifest.coordinates}#${this.instanceId}`;
  }

  /** Starts the sandbox and imports the bundle. Rejects (and the sandbox fails) on any problem. */
  async load(): Promise<void> {
    this.#expect("load", "idle");
    this.#moveTo("booting");
    try {
      const sha = await sha256Hex(this.#bundle);
      if (sha !== this.manifest.sha256) {
        throw new AetherError(
          "bad_request",
          `bundle sha-256 ${sha} does not match the manifest's ${this.manifest.sha256}`,
        );
      }
      const config = resolveConfig(this.manifest.config.schema, this.#configValues, "config");
      if (this.#state !== "booting") throw this.#notNow("load");
      this.#channel = this.#open();
      const description = await this.#awaitLoaded(config);
      if (this.#state !== "booting") throw this.#notNow("load"); // unloaded meanwhile
      const problem = mismatch(description, this.manifest);
      if (problem) throw new AetherError("bad_request", `bundle and manifest disagree: ${problem}`);
      this.#moveTo("running");
      this.#startLiveness();
      this.#startCpuWatch();
    } catch (e) {
      const error = e instanceof AetherError
        ? e
        : new AetherError("internal", String((e as Error)?.message ?? e));
      this.#fail("load", `load failed: ${error.message}`);
      throw new AetherError(error.code, `${this.#label}: ${error.message}`, error.extra);
    } finally {
      this.#checkInvariants();
    }
  }

  /** Runs the slice's start hook under `timeouts.hookMs`. A hook that throws or overruns fails the sandbox. */
  async start(): Promise<void> {
    this.#expect("run the start hook of", "running");
    await this.#hook("start");
    this.#checkInvariants();
  }

  /**
   * Lets the calls in flight finish (for at most `timeouts.hookMs`), then runs the slice's stop hook under
   * `timeouts.hookMs`. Sending no new calls meanwhile is the caller's part: the SliceExecutor admits calls
   * only while the instance is ACTIVE, and it leaves ACTIVE before it stops the host.
   */
  async stop(): Promise<void> {
    this.#expect("run the stop hook of", "running");
    await this.#drain(this.timeouts.hookMs);
    if (this.#state !== "running") throw this.#notNow("run the stop hook of");
    await this.#hook("stop");
    this.#checkInvariants();
  }

  /** Resolves when no call is in flight, or after `limitMs`, or when the sandbox exits. */
  #drain(limitMs: number): Promise<void> {
    if (this.#pendingCalls === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, limitMs);
      const poll = setInterval(() => {
        if (this.#pendingCalls === 0 || this.#state !== "running") done();
      }, 5);
      function done() {
        clearTimeout(timer);
        clearInterval(poll);
        resolve();
      }
    });
  }

  /**
   * Calls a method. Resolves with the method's outcome (its value, or the error it threw with a status);
   * rejects with an AetherError only when the call could not be made or answered: 503 "unavailable" (the
   * sandbox is not running, or failed meanwhile), 503 "overloaded" (`limits.maxPendingRequests` calls are
   * pending), 404 (no such method), 504 (deadline), 400 (request not serializable).
   */
  invoke(method: string, request: unknown, options: InvokeOptions = {}): Promise<InvokeOutcome> {
    this.#checkInvariants();
    const refused = this.#refusal(method);
    if (refused) return Promise.reject(refused);
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
    const answer = new Promise<InvokeOutcome>((resolve, reject) => {
      const budgetMs = deadline - now;
      this.#admit(id, {
        resolve,
        reject,
        deadline: deadlineTimers.schedule(deadline, () => this.#callOverran(id, budgetMs)),
        call: true,
        name: method,
        requestId,
        settled: false,
      });
      const caller = options.caller === undefined ? {} : { caller: options.caller };
      this.#send(id, {
        t: "call",
        id,
        method,
        payload: request,
        requestId,
        traceparent,
        deadline,
        ...caller,
      });
    });
    this.#checkInvariants();
    return answer;
  }

  /** Why a call cannot be sent now (an error to reject with), or undefined. */
  #refusal(method: string): AetherError | undefined {
    if (this.#state !== "running") {
      const why = this.#failure ? `: ${this.#failure.message}` : "";
      // `sandbox` marks a refusal before anything ran (the invoker may retry at once elsewhere).
      return new AetherError(
        "unavailable",
        `${this.#label}: its sandbox is ${this.#state}, not running${why}`,
        { sandbox: this.#state, instanceId: this.instanceId },
      );
    }
    if (!this.#methods.has(method)) {
      return new AetherError("not_found", `${this.manifest.coordinates} has no method "${method}"`);
    }
    if (this.#retiring !== undefined) {
      // Like a sandbox that is not running: refused before anything ran, so the invoker goes elsewhere.
      return new AetherError(
        "unavailable",
        `${this.#label}: retiring, it takes no new calls (${this.#retiring})`,
        { sandbox: "retiring", instanceId: this.instanceId },
      );
    }
    const max = this.limits.maxPendingRequests;
    if (this.#pendingCalls >= max) {
      this.#refusedRequests++;
      return new AetherError(
        "overloaded",
        `${this.#label} ${method}: refused, ${this.#pendingCalls} calls are waiting for the slice already ` +
          `(limit maxPendingRequests ${max}); retry in ${OVERLOADED_RETRY_AFTER_SECONDS} s`,
        {
          retryAfterSeconds: OVERLOADED_RETRY_AFTER_SECONDS,
          maxPendingRequests: max,
          instanceId: this.instanceId,
        },
      );
    }
    return undefined;
  }

  /** Ends the sandbox and releases everything (worker or process, timers, streams). Safe to call twice. */
  async unload(): Promise<void> {
    if (this.#state === "exited") {
      // Failed before (its calls were cut off then), or unloaded already: release what is left, once.
      deadlineTimers.settle();
      return await this.#closeChannel();
    }
    this.#moveTo("exited");
    this.#stopLiveness();
    if (this.#probe) clearTimeout(this.#probe.timer);
    this.#probe = undefined;
    this.#rejectAll((what) =>
      new AetherError("unavailable", `${what} was cut off: ${this.#label} was unloaded`)
    );
    this.#loadWaiter?.reject(new AetherError("unavailable", `${this.#label} was unloaded while loading`));
    deadlineTimers.settle(); // no call of any host left: nothing should stay armed
    this.#checkInvariants();
    await this.#closeChannel();
  }

  // -------------------------------------------------------------------------------------------------------

  #expect(action: string, state: SandboxState): void {
    this.#checkInvariants();
    if (this.#state !== state) throw this.#notNow(action);
  }

  #notNow(action: string): AetherError {
    const why = this.#failure ? ` (${this.#failure.message})` : "";
    return new AetherError(
      "conflict",
      `cannot ${action} ${this.#label}: its sandbox is ${this.#state}${why}`,
    );
  }

  /** The one place the sandbox's state changes, along `SANDBOX_TRANSITIONS` only. */
  #moveTo(next: SandboxState): void {
    assert(
      SANDBOX_TRANSITIONS[this.#state].includes(next),
      `sandbox host ${this.#label}: ${this.#state} -> ${next} is not an allowed transition`,
    );
    this.#state = next;
  }

  /**
   * Cheap invariants, checked on entry and exit of the public methods: the pending calls stay within their
   * bound and agree with the pending table; nothing waits on, or probes, a sandbox that is not running (a
   * hook or call of a `booting` sandbox is impossible: they need `running`); a failure is recorded only with
   * the sandbox exited. On every call's path: the message is built only when one is broken.
   */
  #checkInvariants(): void {
    const problem = this.#brokenInvariant();
    if (problem !== undefined) assert(false, `sandbox host ${this.#label}: ${problem}`);
  }

  #brokenInvariant(): string | undefined {
    const calls = this.#pendingCalls;
    if (calls < 0) return "negative pending calls";
    if (calls > this.#pending.size) return `${calls} pending calls, ${this.#pending.size} pending entries`;
    if (calls > this.limits.maxPendingRequests) {
      return `${calls} pending calls, above maxPendingRequests ${this.limits.maxPendingRequests}`;
    }
    if (this.#state !== "running") {
      if (this.#pending.size > 0) return `${this.#pending.size} calls pending on a ${this.#state} sandbox`;
      if (this.#probe !== undefined) return `a liveness probe of a ${this.#state} sandbox`;
    }
    if (this.#failure !== undefined && this.#state !== "exited") {
      return `a failure recorded while ${this.#state}`;
    }
    return undefined;
  }

  /** Records a call or hook sent to the sandbox; `#take` is the only way out. */
  #admit(id: number, pending: Pending): void {
    if (this.#pending.has(id)) {
      assert(false, `sandbox host ${this.#label}: message id ${id} is pending twice`);
    }
    this.#pending.set(id, pending);
    if (pending.call) this.#pendingCalls++;
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
        maxResponseBytes: this.limits.maxResponseBytes,
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
      this.#admit(id, { resolve, reject, timer, call: false, name: hook, requestId, settled: false });
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

  /** Removes a call or hook from `#pending`: whoever takes it settles it, exactly once. */
  #take(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (pending) {
      if (pending.settled) {
        assert(false, `sandbox host ${this.#label}: message ${id} is both pending and answered`);
      }
      pending.settled = true;
      this.#pending.delete(id);
      if (pending.call) this.#pendingCalls--;
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

  /** Pings the running sandbox every `livenessIntervalMs`; see `#startProbe`. */
  #startLiveness(): void {
    const { livenessIntervalMs, livenessTimeoutMs } = this.timeouts;
    if (!(livenessIntervalMs > 0)) return;
    this.#liveness = setInterval(() => {
      this.#startProbe(
        `a periodic liveness ping went unanswered for ${livenessTimeoutMs} ms (the sandbox stopped answering)`,
        livenessTimeoutMs,
        "",
      );
    }, livenessIntervalMs);
    // The ping is the host's own business: it must not keep a process alive that has nothing else to do.
    Deno.unrefTimer(this.#liveness);
  }

  #stopLiveness(): void {
    if (this.#liveness !== undefined) clearInterval(this.#liveness);
    this.#liveness = undefined;
    if (this.#cpuWatch !== undefined) clearInterval(this.#cpuWatch);
    this.#cpuWatch = undefined;
  }

  /**
   * Process isolation: samples the sandbox process's CPU time (ten times per `cpuWindowMs`, and at least four
   * times per `maxCallCpuMs`) and applies the CPU limits: a call over its budget or a share over the hard
   * limit kills the process (kind "cpu"); a share over the soft limit retires the instance.
   */
  #startCpuWatch(): void {
    const { maxCpuShare, softCpuShare, cpuWindowMs, maxCallCpuMs } = this.limits;
    const channel = this.#channel;
    if (!(maxCpuShare > 0 || softCpuShare > 0 || maxCallCpuMs > 0)) return;
    if (channel?.cpuMs === undefined) return; // Worker isolation: no CPU time of its own.
    const window = new CpuWindow(cpuWindowMs);
    let lastCpuMs: number | undefined;
    const intervalMs = Math.max(
      MIN_CPU_SAMPLE_MS,
      Math.floor(Math.min(cpuWindowMs / 10, maxCallCpuMs > 0 ? maxCallCpuMs / 4 : Infinity)),
    );
    this.#cpuWatch = setInterval(() => {
      const cpuMs = channel.cpuMs!();
      if (cpuMs === undefined || this.#state !== "running") return; // Exited: the channel reports it.
      const usedMs = lastCpuMs === undefined ? 0 : cpuMs - lastCpuMs;
      lastCpuMs = cpuMs;
      if (maxCallCpuMs > 0 && this.#chargeCalls(usedMs, maxCallCpuMs)) return;
      const share = window.add(performance.now(), cpuMs);
      if (share === undefined) return;
      this.#cpuShare = share;
      this.#checkCpuShare(share);
    }, intervalMs);
    Deno.unrefTimer(this.#cpuWatch);
  }

  /**
   * Shares `usedMs` of the sandbox's CPU time among the calls in flight; the first call over `budgetMs` kills
   * the sandbox (a call cannot be stopped alone). Answers whether it did.
   */
  #chargeCalls(usedMs: number, budgetMs: number): boolean {
    if (this.#pendingCalls === 0 || usedMs <= 0) return false;
    const shareMs = usedMs / this.#pendingCalls;
    for (const pending of this.#pending.values()) {
      if (!pending.call) continue;
      pending.cpuMs = (pending.cpuMs ?? 0) + shareMs;
      if (pending.cpuMs <= budgetMs) continue;
      this.#fail(
        "cpu",
        `${pending.name} (request ${pending.requestId}) used ${
          Math.round(pending.cpuMs)
        } ms of CPU, over its ` +
          `budget of ${budgetMs} ms per call (limits.maxCallCpuMs); its process was killed`,
      );
      return true;
    }
    return false;
  }

  /** The hard CPU limit kills the sandbox at once; the soft one retires the instance. */
  #checkCpuShare(share: number): void {
    const { maxCpuShare, softCpuShare, cpuWindowMs } = this.limits;
    const used = `the sandbox process used ${percent(share)} of a CPU core over the last ${
      cpuWindowMs / 1000
    } s`;
    if (maxCpuShare > 0 && share > maxCpuShare) {
      this.#fail(
        "cpu",
        `${used}, over its limit of ${percent(maxCpuShare)} (limits.maxCpuShare ${maxCpuShare} over ` +
          `limits.cpuWindowMs ${cpuWindowMs}); its process was killed`,
      );
    } else if (softCpuShare > 0 && share > softCpuShare) {
      this.#retire(
        `${used}, over its soft limit of ${percent(softCpuShare)} (limits.softCpuShare ` +
          `${softCpuShare} over limits.cpuWindowMs ${cpuWindowMs})`,
      );
    }
  }

  /**
   * Over the soft CPU limit: no new calls from now on; once the calls in flight are answered (or after
   * `timeouts.callMs`) the sandbox ends (kind "retired") and the instance is replaced like a failed one.
   */
  #retire(reason: string): void {
    if (this.#retiring !== undefined || this.#state !== "running") return;
    this.#retiring = reason;
    const calls = this.#pendingCalls;
    this.#logHost(
      "warn",
      `instance retiring: ${reason}; it takes no new calls and ends after ${calls} call(s)`,
    );
    this.#drain(this.timeouts.callMs).then(() =>
      this.#fail("retired", `${reason}; retired after its current calls, to be replaced`)
    );
  }

  /** Asks the sandbox for a sign of life; no answer within `timeoutMs` means it is stuck and must go. */
  #startProbe(reason: string, timeoutMs = this.timeouts.probeMs, suffix = " (stuck in a loop?)"): void {
    if (this.#probe || this.#state !== "running") return;
    const id = this.#nextId++;
    const timer = setTimeout(() => {
      this.#probe = undefined;
      // Deno 2.9 cannot interrupt a Worker stuck in a synchronous loop: terminate() returns, the thread spins on.
      const fate = this.mode === "worker"
        ? "it was terminated, but a Worker stuck in a loop keeps its thread busy until the node restarts"
        : "its process was killed";
      this.#fail(
        "deadline",
        suffix === ""
          ? `${reason}; ${fate}`
          : `${reason} and the sandbox did not answer a liveness probe within ${timeoutMs} ms${suffix}; ${fate}`,
      );
    }, timeoutMs);
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
        if (!this.#logLimiter.admit(Date.now())) return this.#scheduleDropReport();
        this.#onLog({
          ts: typeof message.ts === "number" ? message.ts : Date.now(),
          level: LOG_LEVELS.includes(message.level) ? message.level : "info",
          message: this.#logLimiter.message(String(message.message)),
          requestId: typeof message.requestId === "string" ? message.requestId : undefined,
          fields:
            message.fields !== null && typeof message.fields === "object" && !Array.isArray(message.fields)
              ? this.#logLimiter.fields(message.fields)
              : undefined,
          instanceId: this.instanceId,
          coordinates: this.manifest.coordinates,
        });
        return;
      case "pong":
        this.#takeUsage(message);
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
      fromSha256: this.manifest.sha256,
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
      ? reachableCall(this.manifest, this.manifest.calls[message.name])
      : infraRequired(this.manifest, message);
    const result = !declared || declared.artifact !== message.artifact || declared.range !== message.range
      ? Promise.reject(
        new AetherError(
          "forbidden",
          message.name === "@service-host"
            ? `${message.artifact}: @service-host is reserved for the bundled infrastructure services`
            : message.name === "@infra" || message.artifact.startsWith("aether.infra:")
            ? `${message.artifact} is not among the infrastructure services this slice requires (manifest requires)`
            : `${message.artifact} is not among the slices this slice calls`,
        ),
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
    if (this.#state === "exited") return;
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

  #scheduleDropReport(): void {
    this.#dropReport ??= setTimeout(() => {
      this.#dropReport = undefined;
      this.#reportDroppedLines();
    }, DROPPED_LOG_REPORT_MS);
  }

  /** One line of the node for the slice's lines dropped since the last report (none: no line). */
  #reportDroppedLines(): void {
    const count = this.#logLimiter.takeUnreported();
    if (count === 0) return;
    const { linesPerSecond, burstLines } = this.limits.log;
    this.#logHost(
      "warn",
      `${count} log lines of the slice dropped: over its limit of ${linesPerSecond} lines/s ` +
        `(burst ${burstLines}); ${this.#logLimiter.dropped} dropped since it started`,
    );
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

  /** The sandbox ended other than by `unload`: everything waiting on it fails now, and `onFailure` hears it. */
  #fail(kind: FailureKind, message: string): void {
    if (this.#state === "exited") return;
    this.#moveTo("exited");
    const calls = [...this.#pending.values()].filter((p) => p.call);
    this.#failure = { kind, message, atMs: Date.now() };
    if (calls.length > 0) {
      this.#failure.requestIds = calls.slice(0, MAX_REPORTED_REQUESTS).map((p) => p.requestId);
    }
    this.#stopLiveness();
    if (this.#probe) clearTimeout(this.#probe.timer);
    this.#probe = undefined;
    // `callsInFlight` tells the invoker whether the call could be the only one to blame (see runtime/invoke).
    this.#rejectAll((what) =>
      new AetherError("unavailable", `${what} failed: instance ${this.#label} failed: ${message}`, {
        instanceId: this.instanceId,
        failure: kind,
        callsInFlight: calls.length,
      })
    );
    this.#loadWaiter?.reject(new AetherError("internal", message));
    this.#closeChannel();
    const during = calls.length === 0
      ? ""
      : ` during ${calls.length} call(s): ${
        calls.slice(0, MAX_REPORTED_REQUESTS).map((p) => `${p.name} (request ${p.requestId})`).join(", ")
      }`;
    this.#logHost("error", `instance failed (${kind})${during}: ${message}`);
    try {
      this.#onFailure?.(this.#failure);
    } catch {
      // A listener's bug must not stop the failure from being recorded.
    }
  }

  #closing?: Promise<void>;
  #closeChannel(): Promise<void> {
    if (this.#dropReport !== undefined) {
      clearTimeout(this.#dropReport);
      this.#dropReport = undefined;
      this.#reportDroppedLines();
    }
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

/** A share of a core as a percentage, to a tenth (15.3% over a limit of 15% reads as more). */
function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}

/** Checks the CPU limits of `limits`; a bad one is a 400 naming it and its range. */
export function checkCpuLimits(
  limits: Pick<HostLimits, "maxCpuShare" | "softCpuShare" | "cpuWindowMs" | "maxCallCpuMs">,
): void {
  for (const name of ["maxCpuShare", "softCpuShare"] as const) {
    const share = limits[name];
    if (!(share >= 0 && share <= MAX_CPU_SHARE)) {
      throw new AetherError(
        "bad_request",
        `limits.${name} must be a share of one core from 0 (off) to ${MAX_CPU_SHARE}, got ${share}`,
      );
    }
  }
  const { cpuWindowMs, maxCallCpuMs } = limits;
  if (!Number.isSafeInteger(cpuWindowMs) || cpuWindowMs < MIN_CPU_WINDOW_MS) {
    throw new AetherError(
      "bad_request",
      `limits.cpuWindowMs must be an integer of at least ${MIN_CPU_WINDOW_MS} ms, got ${cpuWindowMs}`,
    );
  }
  const callOk = maxCallCpuMs === 0 ||
    (Number.isSafeInteger(maxCallCpuMs) && maxCallCpuMs >= MIN_CALL_CPU_MS &&
      maxCallCpuMs <= MAX_CALL_CPU_MS);
  if (!callOk) {
    throw new AetherError(
      "bad_request",
      `limits.maxCallCpuMs must be 0 (off) or an integer from ${MIN_CALL_CPU_MS} to ${MAX_CALL_CPU_MS} ms, ` +
        `got ${maxCallCpuMs}`,
    );
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
