/**
 * SliceExecutor: the node-side lifecycle executor (the original's SliceStore). It takes lifecycle commands for
 * this node's instances, drives their SliceHosts, enforces the deadline of every in-progress state (the host
 * enforces the hook deadlines), and reports every state change it makes through `onStateChange` (the
 * deployment layer writes them to KV). Decisions come from the pure reducer in `lifecycle.ts`; this class only
 * carries out its effects. Unloading an instance releases its sandbox, timers and streams.
 *
 * It owns the instance's lifecycle state on this node, so it alone answers "is it ACTIVE?" on the request
 * path (`invoke`), and it alone tells a crash from a failed operation: its host reports a sandbox exit as an
 * event, the reducer decides, and a crash goes to `onCrash`.
 */

import { AetherError, assert, type Clock, systemClock } from "../core/mod.ts";
import type { SliceManifest } from "../../slices/host.ts";
import {
  type HostLimits,
  type HostLimitsOptions,
  type HostTimeouts,
  type InvokeOptions,
  type InvokeOutcome,
  type OutboundCallHandler,
  SliceHost,
  type SliceLogEntry,
} from "./host.ts";
import {
  canTransition,
  DEFAULT_DEADLINES,
  type ExecutorRecord,
  type LifecycleCommand,
  type LifecycleDeadlines,
  type LifecycleEffect,
  type LifecycleEvent,
  type LifecycleState,
  type Operation,
  REMOVED,
  type Removed,
  step,
} from "./lifecycle.ts";
import {
  DEFAULT_POLICY,
  grantPermissions,
  type IsolationMode,
  type SandboxPolicy,
  validatePolicy,
} from "./policy.ts";
import { discard, type SpawnedChild } from "./_process_channel.ts";
import { ProcessPool } from "./_process_pool.ts";

/** Where LOAD gets the artifact: its manifest, and its bundle (or a way to fetch it, inside LOADING). */
export interface ArtifactSource {
  manifest: SliceManifest;
  bundle: Uint8Array | (() => Promise<Uint8Array>);
}

/** The CPU limits a slice may set for itself (over the executor's `hostLimits`). */
export type SliceCpuLimits = Partial<
  Pick<HostLimits, "maxCpuShare" | "softCpuShare" | "cpuWindowMs" | "maxCallCpuMs">
>;

/** What the deployment says about one slice's sandbox (its blueprint's `[[slices]]` entry). */
export interface SliceSandboxSettings {
  /**
   * The operator vouches for the slice's code: only then may it run in worker isolation, which bounds neither
   * memory nor CPU (see `SliceExecutorOptions.trustAllSlices`).
   */
  trusted?: boolean;
  limits?: SliceCpuLimits;
}

export type ExecutorCommand =
  | {
    type: "LOAD";
    instanceId: string;
    artifact: ArtifactSource;
    /** Configuration values from the deployment (checked against the manifest's schema). */
    config?: Record<string, unknown>;
    /**
     * Overrides the policy's isolation for this instance, trusted or not (tests and embedders choose
     * explicitly; the node never sets it).
     */
    mode?: IsolationMode;
    /** The slice's own sandbox settings: trusted, CPU limits. */
    settings?: SliceSandboxSettings;
  }
  | { type: "ACTIVATE" | "DEACTIVATE" | "UNLOAD"; instanceId: string };

export interface StateChange {
  instanceId: string;
  coordinates: string;
  from: LifecycleState;
  to: LifecycleState | Removed;
  /** Why, when `to` is FAILED. */
  reason?: string;
  /** Epoch milliseconds. */
  atMs: number;
}

export interface InstanceInfo {
  instanceId: string;
  coordinates: string;
  state: LifecycleState;
  reason?: string;
  /** The sandbox; present while it boots or runs (from LOADING until the instance is removed or has failed). */
  host?: SliceHost;
  /** Calls its host refused at `maxPendingRequests` (since the instance was loaded). */
  refusedRequests: number;
  /** Log lines of the slice dropped over its host's log limits (since the instance was loaded). */
  droppedLogLines: number;
}

/** An instance whose sandbox exited on its own while no operation ran on it (it is FAILED now). */
export interface InstanceCrash {
  instanceId: string;
  coordinates: string;
  reason: string;
  /** The request ids of the method calls in flight when it crashed (a crash during a call), if any. */
  requestIds?: string[];
}

export interface SliceExecutorOptions {
  policy?: SandboxPolicy;
  deadlines?: Partial<LifecycleDeadlines>;
  /** Host timeouts other than the hooks' (those come from `deadlines.hookMs`). */
  hostTimeouts?: Partial<Omit<HostTimeouts, "hookMs">>;
  /** Bounds of every host (pending calls, the slice's log lines, CPU); a slice's settings override the CPU ones. */
  hostLimits?: HostLimitsOptions;
  /**
   * With a policy in worker isolation: run every slice in a Worker, trusted or not. Without it (the default)
   * only slices marked trusted run in Workers and the others in process isolation: a Worker is a thread of the
   * node whose memory and CPU Deno cannot bound, so code the operator does not vouch for never runs there.
   */
  trustAllSlices?: boolean;
  onStateChange?: (change: StateChange) => void;
  /** A crash: an instance's sandbox exited outside any operation (reported after its change to FAILED). */
  onCrash?: (crash: InstanceCrash) => void;
  onOutboundCall?: OutboundCallHandler;
  onLog?: (entry: SliceLogEntry) => void;
  /** Runs inside ACTIVATING after the start hook (e.g. publish endpoints and routes). */
  afterStart?: (instance: InstanceInfo) => Promise<void>;
  /** Runs inside DEACTIVATING before the stop hook (e.g. withdraw endpoints and routes). */
  beforeStop?: (instance: InstanceInfo) => Promise<void>;
  /** Runs inside UNLOADING after the sandbox is released (e.g. drop a local copy of the bundle). */
  afterUnload?: (instance: InstanceInfo) => Promise<void>;
  clock?: Clock;
  /**
   * Process isolation: keep started children warm so LOAD does not wait for a Deno process to boot. `true`
   * (the default) keeps up to DEFAULT_WARM_PROCESSES, a number up to that many, `false` or 0 none. The pool
   * follows demand (see _process_pool.ts); a warm child costs about 17-20 MiB of private memory and no CPU.
   */
  warmProcesses?: boolean | number;
}

/** The most warm sandbox processes an executor keeps by default (all grants together). */
export const DEFAULT_WARM_PROCESSES = 4;
/** Warm children started for the policy's plain grant (no net, no env) when the executor starts. */
const PREWARM_PROCESSES = 2;

interface Entry {
  record: ExecutorRecord;
  coordinates: string;
  load?: Extract<ExecutorCommand, { type: "LOAD" }>;
  host?: SliceHost;
  timer?: ReturnType<typeof setTimeout>;
  waiters: Array<(state: LifecycleState | Removed) => void>;
  /** Teardown in progress (abort or unload). */
  releasing?: Promise<void>;
  /** Process isolation: the child started when the LOAD arrived, until a SliceHost takes it over. */
  child?: SpawnedChild;
}

export class SliceExecutor {
  readonly #options: SliceExecutorOptions;
  readonly #deadlines: LifecycleDeadlines;
  readonly #clock: Clock;
  readonly #entries = new Map<string, Entry>();
  readonly #releases = new Set<Promise<void>>();
  readonly #pool?: ProcessPool;
  /** Refusals of hosts already gone, so `refusedRequests` counts since the executor started. */
  #refusedByRemoved = 0;
  #closed = false;

  constructor(options: SliceExecutorOptions = {}) {
    if (options.policy) validatePolicy(options.policy);
    const maxPending = options.hostLimits?.maxPendingRequests;
    if (maxPending !== undefined && (!Number.isInteger(maxPending) || maxPending < 1)) {
      throw new AetherError(
        "bad_request",
        `hostLimits.maxPendingRequests must be a positive integer, got ${maxPending}`,
      );
    }
    this.#options = options;
    const warm = options.warmProcesses ?? true;
    const maxWarm = warm === true ? DEFAULT_WARM_PROCESSES : warm === false ? 0 : Math.max(0, warm);
    if (maxWarm > 0) this.#pool = new ProcessPool({ maxWarm });
    this.#deadlines = { ...DEFAULT_DEADLINES, ...options.deadlines };
    this.#clock = options.clock ?? systemClock;
    const policy = options.policy ?? DEFAULT_POLICY;
    if (policy.mode === "process" && this.#pool) {
      // Most slices ask for no permission at all: have children ready for them before the first LOAD.
      const plain = grantPermissions({ net: [], env: [] }, policy);
      this.#pool.prewarm(plain, policy.memoryLimitMb, Math.min(PREWARM_PROCESSES, maxWarm));
    }
  }

  /**
   * Applies a command. Throws a 409 AetherError at once when the command is not valid in the instance's
   * state; otherwise resolves when the in-progress state it starts has ended, with the state reached
   * (LOADED, ACTIVE, FAILED, or REMOVED).
   */
  submit(command: ExecutorCommand): Promise<LifecycleState | Removed> {
    if (this.#closed) throw new AetherError("unavailable", "the slice executor is closed");
    const existing = this.#entries.get(command.instanceId);
    if (command.type === "LOAD" && existing === undefined) {
      const coordinates = command.artifact.manifest.coordinates;
      const placeholder: Entry = {
        record: { instanceId: command.instanceId, state: "LOAD", sinceMs: this.#clock.now(), epoch: 0 },
        coordinates,
        load: command,
        waiters: [],
      };
      this.#entries.set(command.instanceId, placeholder);
    }
    const entry = this.#entries.get(command.instanceId);
    const record = command.type === "LOAD" && existing === undefined ? undefined : entry?.record;
    const result = step(
      record,
      command.instanceId,
      { type: "command", command: command.type as LifecycleCommand },
      this.#clock.now(),
      this.#deadlines,
    );
    if (result.rejected) {
      if (command.type === "LOAD" && existing === undefined) this.#entries.delete(command.instanceId);
      throw new AetherError("conflict", result.rejected, { instanceId: command.instanceId });
    }
    const settled = new Promise<LifecycleState | Removed>((resolve) => entry!.waiters.push(resolve));
    if (command.type === "LOAD") this.#startChild(entry!, command);
    this.#apply(entry!, result.record, result.effects);
    return settled;
  }

  /**
   * Like `submit`, for callers that want a plain success or error: resolves when the command succeeded,
   * rejects with the failure reason when it ended in FAILED (or was refused).
   */
  async run(command: ExecutorCommand): Promise<void> {
    const state = await this.submit(command);
    if (state === "FAILED") {
      const reason = this.get(command.instanceId)?.reason ?? "failed";
      throw new AetherError("unavailable", `${command.type} ${command.instanceId} failed: ${reason}`, {
        instanceId: command.instanceId,
      });
    }
  }

  /** The instance as the node sees it now, or undefined. */
  get(instanceId: string): InstanceInfo | undefined {
    const entry = this.#entries.get(instanceId);
    return entry ? this.#info(entry) : undefined;
  }

  /** Every instance on this node. */
  list(): InstanceInfo[] {
    return [...this.#entries.values()].map((e) => this.#info(e));
  }

  /** Process ids of the warm sandbox processes waiting for a LOAD (process isolation). */
  warmProcesses(): number[] {
    return this.#pool?.warmPids() ?? [];
  }

  /** Calls refused by this executor's hosts at their `maxPendingRequests` bound, since it started. */
  get refusedRequests(): number {
    let refused = this.#refusedByRemoved;
    for (const entry of this.#entries.values()) refused += entry.host?.stats.refusedRequests ?? 0;
    return refused;
  }

  /**
   * Calls a method of an ACTIVE instance (the invoker's local path, for local and remote callers alike). The
   * request path's one "is it ACTIVE?" check: anything else is refused with 503 and `extra.state`, before
   * anything ran (so the invoker retries at once elsewhere).
   */
  invoke(
    instanceId: string,
    method: string,
    request: unknown,
    options?: InvokeOptions,
  ): Promise<InvokeOutcome> {
    const entry = this.#entries.get(instanceId);
    if (entry?.record.state !== "ACTIVE") {
      const state = entry?.record.state ?? "unknown";
      return Promise.reject(
        new AetherError("unavailable", `instance ${instanceId} is ${state}, not ACTIVE`, {
          state,
          instanceId,
        }),
      );
    }
    // ACTIVE means the start hook ran on a running sandbox, and a sandbox that exits fails the instance first.
    if (entry.host?.state !== "running") {
      assert(false, `instance ${instanceId} is ACTIVE without a running sandbox`);
    }
    return entry.host.invoke(method, request, options);
  }

  /** Unloads every instance at once (node shutdown) and waits until every sandbox is released. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.timer);
      this.#release(entry);
      for (const wake of entry.waiters.splice(0)) wake(REMOVED);
      this.#refusedByRemoved += entry.host?.stats.refusedRequests ?? 0;
    }
    this.#entries.clear();
    while (this.#releases.size > 0) await Promise.all([...this.#releases]);
    await this.#pool?.close();
  }

  // -------------------------------------------------------------------------------------------------------

  /**
   * Process isolation: takes the instance's child now (a warm one, or one started now), so that it boots
   * while LOADING fetches and checks the bundle instead of after.
   */
  #startChild(entry: Entry, command: Extract<ExecutorCommand, { type: "LOAD" }>): void {
    const policy = this.#options.policy ?? DEFAULT_POLICY;
    if (this.#isolationOf(command) !== "process" || !this.#pool) return;
    const grant = grantPermissions(command.artifact.manifest.permissions, policy);
    entry.child = this.#pool.take(grant, policy.memoryLimitMb);
  }

  /**
   * The isolation of a LOAD's instance: its explicit `mode`, else the policy's, except that worker isolation
   * is only for trusted slices (`settings.trusted`, or `trustAllSlices`): the others run in process isolation.
   */
  #isolationOf(command: Extract<ExecutorCommand, { type: "LOAD" }>): IsolationMode {
    if (command.mode !== undefined) return command.mode;
    const mode = (this.#options.policy ?? DEFAULT_POLICY).mode;
    if (mode === "worker" && !this.#options.trustAllSlices && command.settings?.trusted !== true) {
      return "process";
    }
    return mode;
  }

  /** Ends the child started for a LOAD that never reached a SliceHost. */
  #dropChild(entry: Entry): Promise<void> {
    const child = entry.child;
    if (!child) return Promise.resolve();
    entry.child = undefined;
    const dropping = discard(child).finally(() => this.#releases.delete(dropping));
    this.#releases.add(dropping);
    return dropping;
  }

  #info(entry: Entry): InstanceInfo {
    const info: InstanceInfo = {
      instanceId: entry.record.instanceId,
      coordinates: entry.coordinates,
      state: entry.record.state,
      refusedRequests: entry.host?.stats.refusedRequests ?? 0,
      droppedLogLines: entry.host?.stats.droppedLogLines ?? 0,
    };
    if (entry.record.reason !== undefined) info.reason = entry.record.reason;
    if (entry.host?.state === "booting" || entry.host?.state === "running") info.host = entry.host;
    return info;
  }

  #dispatch(instanceId: string, event: LifecycleEvent): void {
    const entry = this.#entries.get(instanceId);
    if (!entry || this.#closed) return;
    const result = step(entry.record, instanceId, event, this.#clock.now(), this.#deadlines);
    this.#apply(entry, result.record, result.effects);
  }

  #apply(entry: Entry, next: ExecutorRecord | undefined, effects: LifecycleEffect[]): void {
    const previous = entry.record;
    if (next) entry.record = next;
    if (next?.deadlineAtMs === undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    for (const effect of effects) {
      switch (effect.type) {
        case "report":
          this.#report(entry, effect.from, effect.to, effect.reason);
          break;
        case "run":
          this.#run(entry, effect.operation, effect.epoch);
          break;
        case "schedule": {
          clearTimeout(entry.timer);
          const id = entry.record.instanceId;
          const delayMs = Math.max(0, effect.atMs - this.#clock.now()) + 1;
          entry.timer = setTimeout(() => this.#dispatch(id, { type: "tick" }), delayMs);
          break;
        }
        case "abort":
          this.#release(entry);
          break;
        case "crashed":
          this.#crashed(entry, effect.reason);
          break;
        case "forget":
          clearTimeout(entry.timer);
          this.#dropChild(entry);
          this.#refusedByRemoved += entry.host?.stats.refusedRequests ?? 0;
          this.#entries.delete(previous.instanceId);
          break;
      }
    }
    const state: LifecycleState | Removed = next ? next.state : REMOVED;
    if (state === REMOVED || state === "LOADED" || state === "ACTIVE" || state === "FAILED") {
      for (const wake of entry.waiters.splice(0)) wake(state);
    }
  }

  #report(entry: Entry, from: LifecycleState, to: LifecycleState | Removed, reason?: string): void {
    // Every change the reducer reports follows the one table (removal only ends UNLOADING).
    if (to === REMOVED ? from !== "UNLOADING" : !canTransition(from, to)) {
      assert(false, `instance ${entry.record.instanceId}: ${from} -> ${to} is not in the lifecycle table`);
    }
    const change: StateChange = {
      instanceId: entry.record.instanceId,
      coordinates: entry.coordinates,
      from,
      to,
      atMs: Date.now(),
    };
    if (reason !== undefined) change.reason = reason;
    try {
      this.#options.onStateChange?.(change);
    } catch {
      // A listener's bug must not wedge the lifecycle.
    }
  }

  #crashed(entry: Entry, reason: string): void {
    const crash: InstanceCrash = {
      instanceId: entry.record.instanceId,
      coordinates: entry.coordinates,
      reason,
    };
    const requestIds = entry.host?.failure?.requestIds;
    if (requestIds !== undefined) crash.requestIds = [...requestIds];
    try {
      this.#options.onCrash?.(crash);
    } catch {
      // A listener's bug must not wedge the lifecycle.
    }
  }

  #run(entry: Entry, operation: Operation, epoch: number): void {
    const id = entry.record.instanceId;
    this.#perform(entry, operation).then(
      () => this.#dispatch(id, { type: "completed", epoch }),
      (e) => this.#dispatch(id, { type: "failed", epoch, reason: (e as Error)?.message ?? String(e) }),
    );
  }

  async #perform(entry: Entry, operation: Operation): Promise<void> {
    switch (operation) {
      case "load": {
        const command = entry.load!;
        let bundle: Uint8Array;
        try {
          bundle = typeof command.artifact.bundle === "function"
            ? await command.artifact.bundle()
            : command.artifact.bundle;
        } catch (e) {
          this.#dropChild(entry);
          throw e;
        }
        const id = entry.record.instanceId;
        const policy = this.#options.policy ?? DEFAULT_POLICY;
        const mode = this.#isolationOf(command);
        const host = new SliceHost({
          instanceId: id,
          manifest: command.artifact.manifest,
          bundle,
          config: command.config,
          policy,
          mode,
          timeouts: { ...this.#options.hostTimeouts, hookMs: this.#deadlines.hookMs },
          limits: { ...this.#options.hostLimits, ...command.settings?.limits },
          onOutboundCall: this.#options.onOutboundCall,
          onLog: this.#options.onLog,
          onFailure: (failure) => this.#dispatch(id, { type: "exited", reason: failure.message }),
          processPool: this.#pool,
          processChild: entry.child,
        });
        if (entry.record.state !== "LOADING" || this.#closed) {
          // Failed or closed while the bundle was fetched: nothing to start.
          this.#dropChild(entry);
          return;
        }
        entry.child = undefined; // the host owns it now
        entry.host = host;
        if (command.mode === undefined && mode !== policy.mode) this.#untrustedInProcess(host);
        await host.load();
        return;
      }
      case "start":
        await this.#host(entry).start();
        await this.#options.afterStart?.(this.#info(entry));
        return;
      case "stop":
        await this.#options.beforeStop?.(this.#info(entry));
        await this.#host(entry).stop();
        return;
      case "unload":
        await this.#release(entry);
        await this.#options.afterUnload?.(this.#info(entry));
        return;
    }
  }

  /** Says once per instance why a slice of a worker-isolation node runs in a process. */
  #untrustedInProcess(host: SliceHost): void {
    this.#options.onLog?.({
      ts: Date.now(),
      level: "info",
      message: "runs in process isolation although the node's is worker: worker isolation is for slices " +
        "marked trusted (blueprint: trusted = true; node: --trust-all-slices)",
      instanceId: host.instanceId,
      coordinates: host.manifest.coordinates,
    });
  }

  #host(entry: Entry): SliceHost {
    if (!entry.host) throw new AetherError("internal", `instance ${entry.record.instanceId} has no sandbox`);
    return entry.host;
  }

  /** Terminates and releases the instance's sandbox; tracked so `close()` can wait for it. */
  #release(entry: Entry): Promise<void> {
    if (!entry.host) return this.#dropChild(entry);
    const host = entry.host;
    const releasing = host.unload().finally(() => this.#releases.delete(releasing));
    this.#releases.add(releasing);
    return releasing;
  }
}
