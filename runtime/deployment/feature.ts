/**
 * The node feature "deployment": the pure deployment core wired into a running node. The node builds it with
 * `startDeployment(options)`, handing it what it uses; it returns what later features use (the executor, the
 * endpoint registry) with its API routes, status and stop hook.
 *
 * - EndpointRegistry: built from the state at start, kept current with every applied batch, rebuilt after a
 *   snapshot install.
 * - NodeDeploymentManager, on every node: stepped when this node's instance keys (or artifacts) change, when
 *   an executor operation finishes, when a sandbox crashes, when one of its writes completes, when quorum or
 *   readiness changes, and at the time it asks for. Its actions run on the real sandbox executor (bundles come
 *   from `fetchArtifact`, the artifact repository's); its commands are replicated writes.
 * - ClusterDeploymentManager, while the `leader` record names this node: stepped after batches that touch
 *   what it reads, on membership changes, when its writes complete, and at the time it asks for.
 * - The management API of deployment (routes.ts).
 *
 * Quorum loss (`quorumLoss` option, default: keep serving): a node that loses its majority keeps its ACTIVE
 * instances running and serving whoever can still reach it, starts nothing, stops nothing and writes nothing;
 * operations already under way finish. The reasoning: without quorum it cannot learn what the cluster decided,
 * so any change it made would be a guess, and stopping healthy instances would turn a partition into an
 * outage of everything reachable on this side. When quorum returns it reconciles against the replicated state
 * (the leader may have replaced its instances meanwhile; surplus instances are then retired through the normal
 * lifecycle). Slices that must never run twice can set `quorumLoss.fenceAfterMs`: after that long without
 * quorum the node stops its instances, and reports them lost once quorum is back.
 */

import type { Hono } from "hono";
import { AetherError, type Clock, type Logger, type NodeId } from "../core/mod.ts";
import type { KvEvent } from "../kv/mod.ts";
import type { Mesh } from "../net/mod.ts";
import type { KvAccess, LeaderRecord } from "../cluster/mod.ts";
import { KEY_PREFIXES, kvPrefixes, LEADER_KEY } from "../model/mod.ts";
import type {
  ArtifactSource,
  OutboundCallHandler,
  SandboxStats,
  SliceLogEntry,
  SliceManifest,
  SliceSandboxSettings,
} from "../sandbox/mod.ts";
import { parseBlueprint } from "./blueprint.ts";
import {
  ClusterDeploymentManager,
  type ClusterManagerOptions,
  DEFAULT_CLUSTER_MANAGER_OPTIONS,
  type DeploymentCommand,
  reconcile,
  type WriteResult,
} from "./cluster_manager.ts";
import { NodeDeploymentManager, type NodeManagerOptions, type QuorumLossPolicy } from "./node_manager.ts";
import { type ExecutorCrash, type ExecutorOutcome, perform } from "./executor.ts";
import { EndpointRegistry } from "./endpoints.ts";
import { decodeValueMemo } from "./_memo.ts";
import { SandboxExecutor, type SandboxExecutorOptions } from "./sandbox_executor.ts";
import { type DeploymentService, instanceIdOf } from "./service.ts";
import { deploymentRoutes } from "./routes.ts";
import { type KvReader, type MemberStatus, ViewReader } from "./view.ts";
import { StepLoop } from "./_step_loop.ts";

/** What the deployment feature is built from. */
export interface DeploymentFeatureOptions {
  self: NodeId;
  /** Every core member, sorted. */
  members: readonly NodeId[];
  log: Logger;
  clock: Clock;
  /** Membership changes (the cluster manager places instances on connected members). */
  mesh: Pick<Mesh, "onPeerUp" | "onPeerDown">;
  /** This node, or a peer the mesh reaches now. */
  isConnected(node: NodeId): boolean;
  /** The reducers' commands are replicated writes. */
  kv: Pick<KvAccess, "write">;
  /** The node's current copy of the replicated state. */
  state(): KvReader;
  /** Called after every applied batch with its changes, in revision order. */
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  /** Called when a snapshot replaced the state wholesale. */
  onReset(listener: () => void): () => void;
  /** Caught up with the cluster and taking part in consensus. */
  ready(): boolean;
  /** A majority of members (this one included) is connected. */
  quorum(): boolean;
  /** The consensus-agreed leader record, if any. */
  leader(): LeaderRecord | null;
  /** Called whenever this node starts or stops being the leader. */
  onLeadership(listener: (leading: boolean) => void): () => void;
  /** A published artifact's bundle (the artifact repository's `fetchArtifact`). */
  fetchArtifact(coordinates: string): Promise<{ bundle: Uint8Array }>;
  /** Where calls that local slices make to other slices go (the invoker's handler). */
  onOutboundCall: OutboundCallHandler;
  /** Starts the infrastructure services a blueprint or slice `requires` (runtime/infra-host); none: unchecked. */
  resolveRequires?(names: readonly string[]): Promise<void>;
  /** An instance's configuration values set at run time (runtime/infra-host/config.ts); none: the defaults. */
  resolveConfig?(coordinates: string): Record<string, unknown>;
  /** Passed to the sandbox executor (policy, deadlines, host timeouts, warm processes). */
  sandbox?: SandboxExecutorOptions["sandbox"];
  cluster?: Partial<ClusterManagerOptions>;
  node?: Partial<Omit<NodeManagerOptions, "quorumLoss">>;
  /** What a node does with running instances when it loses quorum (see the module comment). */
  quorumLoss?: QuorumLossPolicy;
}

/** The running feature: what later features use, its API routes, status and stop hook. */
export interface DeploymentFeature extends DeploymentService {
  readonly name: "deployment";
  readonly api: Hono;
  status(): DeploymentStatus;
  stop(): Promise<void>;
}

export interface DeploymentStatus {
  leading: boolean;
  quorumLoss: string;
  endpoints: number;
  waiting: string[];
  /** Calls this node's instances refused at their `maxPendingRequests` bound, since the node started. */
  refusedRequests: number;
  instances: {
    instance: string;
    state: string;
    reason?: string;
    pid?: number;
    refusedRequests: number;
    /** The slice's log lines dropped over its log limits (`limits.log` of the sandbox host). */
    droppedLogLines: number;
    /** Where its sandbox runs: untrusted slices of a worker-isolation node run in a process. */
    isolation?: "process" | "worker";
    /** Process isolation: the share of a core its sandbox used over the last CPU window. */
    cpuShare?: number;
    /** Why it is retiring (over its soft CPU limit): it takes no new calls and is replaced soon. */
    retiring?: string;
  }[];
}

/** The CPU figures of a host's stats for the status (none in worker isolation). */
function cpuOf(stats: SandboxStats | undefined): { cpuShare?: number; retiring?: string } {
  if (stats === undefined) return {};
  return {
    ...(stats.cpuShare !== undefined ? { cpuShare: Math.round(stats.cpuShare * 1000) / 1000 } : {}),
    ...(stats.retiring !== undefined ? { retiring: stats.retiring } : {}),
  };
}

/** How often readiness, quorum and leadership are checked for changes that raise no event of their own. */
const CONDITION_CHECK_MS = 250;

export function startDeployment(options: DeploymentFeatureOptions): DeploymentFeature {
  const log = options.log.with({ component: "deployment" });
  const endpoints = EndpointRegistry.fromKv(options.state());
  // The executor reports crashes to the node manager, which drives the executor: the loop is looked up when
  // a crash is reported, which cannot happen before anything was loaded.
  const executor = createExecutor(options, log, (crash) => nodeLoop.crashed(crash));
  const nodeLoop = new NodeManagerLoop(options, executor, log);
  const clusterLoop = new ClusterManagerLoop(options, log);
  const stopTriggers = startTriggers(options, endpoints, nodeLoop, clusterLoop);
  nodeLoop.schedule();
  clusterLoop.schedule();
  return {
    name: "deployment",
    executor: executor.slices,
    endpoints,
    instanceIdOf,
    api: deploymentRoutes({
      state: () => options.state(),
      write: (command) => options.kv.write(command),
      isConnected: options.isConnected,
      nowMs: () => nowMs(options.clock),
      ...(options.resolveRequires ? { resolveRequires: options.resolveRequires } : {}),
      placementWaiting: () => clusterLoop.placementWaiting(),
    }),
    status: () => deploymentStatus(options, endpoints, executor, clusterLoop),
    async stop() {
      stopTriggers();
      nodeLoop.stop();
      clusterLoop.stop();
      // Instance records stay as they are: a node that comes back reports what it no longer runs as lost.
      await executor.close();
    },
  };
}

function nowMs(clock: Clock): number {
  return Math.floor(clock.now());
}

function hasQuorum(options: Pick<DeploymentFeatureOptions, "ready" | "quorum">): boolean {
  return options.ready() && options.quorum();
}

/** The real sandbox executor; bundles come from the repository, manifests from the replicated records. */
function createExecutor(
  options: DeploymentFeatureOptions,
  log: Logger,
  onCrash: (crash: ExecutorCrash) => void,
): SandboxExecutor {
  const sliceLog = options.log.with({ component: "slice" });
  return new SandboxExecutor({
    resolveArtifact: (coordinates) => resolveArtifact(options, coordinates),
    resolveSettings: (coordinates) => sandboxSettingsOf(options, coordinates, log),
    ...(options.resolveConfig ? { resolveConfig: options.resolveConfig } : {}),
    onCrash: (crash) => {
      log.warn("instance crashed", { instance: crash.instanceId, reason: crash.reason });
      onCrash(crash);
    },
    onStateChange: (change) => {
      const fields = { instance: change.instanceId, from: change.from, to: change.to, reason: change.reason };
      if (change.to === "FAILED") log.warn("instance failed", fields);
      else log.debug("instance state", fields);
    },
    onLog: (entry) => logSliceLine(sliceLog, entry),
    onOutboundCall: options.onOutboundCall,
    sandbox: options.sandbox,
  });
}

/** The manifest from the replicated artifact record; the bundle from the repository, fetched inside LOADING. */
function resolveArtifact(
  options: Pick<DeploymentFeatureOptions, "state" | "fetchArtifact">,
  coordinates: string,
): ArtifactSource {
  const key = `${KEY_PREFIXES.artifacts}${coordinates}`;
  const entry = options.state().get(key);
  if (!entry) throw new AetherError("not_found", `${coordinates} is not published (no ${key} record)`);
  const manifest: SliceManifest = decodeValueMemo("artifact", entry.value, `value of "${key}"`).manifest;
  return {
    manifest,
    bundle: async () => (await options.fetchArtifact(coordinates)).bundle,
  };
}

/** Blueprint sources parsed for their sandbox settings, by source text (bounded: a few blueprints are live). */
const settingsBySource = new Map<string, Map<string, SliceSandboxSettings>>();
const MAX_PARSED_BLUEPRINTS = 64;

/**
 * A slice's sandbox settings (`trusted`, CPU limits) from the first blueprint, in key order, whose own
 * `[[slices]]` entry for it sets any (read from the published TOML: the stored record keeps the placement
 * only). None: the node's defaults, also for a slice only added because another one calls it.
 */
function sandboxSettingsOf(
  options: Pick<DeploymentFeatureOptions, "state">,
  coordinates: string,
  log: Logger,
): SliceSandboxSettings | undefined {
  for (const entry of options.state().range(KEY_PREFIXES.blueprints)) {
    try {
      const record = decodeValueMemo("blueprint", entry.value, `value of "${entry.key}"`);
      if (record.source === undefined) continue;
      if (!record.slices.some((s) => s.artifact === coordinates && !s.transitive)) continue;
      const settings = parsedSettings(record.source).get(coordinates);
      if (settings !== undefined) return settings;
    } catch (e) {
      log.warn("blueprint sandbox settings unreadable", { key: entry.key, error: (e as Error).message });
    }
  }
  return undefined;
}

function parsedSettings(source: string): Map<string, SliceSandboxSettings> {
  let settings = settingsBySource.get(source);
  if (settings === undefined) {
    settings = new Map();
    for (const spec of parseBlueprint(source).slices) {
      if (spec.sandbox !== undefined) settings.set(spec.artifact, spec.sandbox);
    }
    if (settingsBySource.size >= MAX_PARSED_BLUEPRINTS) settingsBySource.clear();
    settingsBySource.set(source, settings);
  }
  return settings;
}

/**
 * A slice's `ctx.log` record, written by the node (so it carries the node) with the slice's coordinates, its
 * instance, the request it served and `component=slice`; the slice's own fields cannot overwrite those four
 * (the logger escapes what the slice wrote, so it cannot forge a line either).
 */
function logSliceLine(log: Logger, entry: SliceLogEntry): void {
  if (!log.enabled(entry.level)) return;
  log[entry.level](entry.message, {
    ...entry.fields,
    component: "slice",
    slice: entry.coordinates,
    instance: entry.instanceId,
    requestId: entry.requestId,
  });
}

/** Replicates one reducer command; the result is `{ id, ok }` for its reducer's next step (never rejects). */
function replicate(
  kv: Pick<KvAccess, "write">,
  log: Logger,
  command: DeploymentCommand,
  level: "info" | "debug",
): Promise<WriteResult> {
  log[level]("deployment write", { id: command.id, reason: command.reason });
  return kv.write(command.command).then(
    (outcome) => {
      const ok = outcome.succeeded !== false;
      if (!ok) log.debug("deployment write lost a race", { id: command.id });
      return { id: command.id, ok };
    },
    (e) => {
      log.debug("deployment write failed", { id: command.id, error: (e as Error).message });
      return { id: command.id, ok: false };
    },
  );
}

/** Steps the NodeDeploymentManager: its inputs queue here between steps; its actions run on the executor. */
class NodeManagerLoop {
  readonly #options: DeploymentFeatureOptions;
  readonly #executor: SandboxExecutor;
  readonly #log: Logger;
  readonly #manager: NodeDeploymentManager;
  readonly #loop: StepLoop;
  // Drained by every step, so each holds at most what finished since the last one (bounded by the actions
  // and writes in flight, which the manager's own state bounds).
  readonly #outcomes: ExecutorOutcome[] = [];
  readonly #crashes: ExecutorCrash[] = [];
  readonly #results: WriteResult[] = [];

  constructor(options: DeploymentFeatureOptions, executor: SandboxExecutor, log: Logger) {
    this.#options = options;
    this.#executor = executor;
    this.#log = log;
    this.#manager = new NodeDeploymentManager(options.self, {
      ...options.node,
      quorumLoss: options.quorumLoss ?? {},
    });
    this.#loop = new StepLoop(
      () => this.#step(),
      options.clock,
      (e) => log.error("node deployment step failed", { error: (e as Error).stack ?? String(e) }),
    );
  }

  schedule(): void {
    this.#loop.schedule();
  }

  crashed(crash: ExecutorCrash): void {
    this.#crashes.push(crash);
    this.#loop.schedule();
  }

  stop(): void {
    this.#loop.stop();
  }

  #step(): number | undefined {
    const out = this.#manager.step({
      kv: this.#options.state(),
      nowMs: nowMs(this.#options.clock),
      hasQuorum: hasQuorum(this.#options),
      outcomes: this.#outcomes.splice(0),
      crashes: this.#crashes.splice(0),
      results: this.#results.splice(0),
    });
    for (const action of out.actions) {
      this.#log.debug("instance action", { op: action.op, instance: action.instanceId });
      perform(this.#executor, action).then((outcome) => this.#performed(outcome));
    }
    for (const command of out.commands) {
      replicate(this.#options.kv, this.#log, command, "debug").then((result) => {
        this.#results.push(result);
        this.#loop.schedule();
      });
    }
    return out.wakeAtMs;
  }

  #performed(outcome: ExecutorOutcome): void {
    if (!outcome.ok) {
      this.#log.warn("instance action failed", {
        op: outcome.op,
        instance: outcome.instanceId,
        reason: outcome.reason,
      });
    }
    this.#outcomes.push(outcome);
    this.#loop.schedule();
  }
}

/** Steps the ClusterDeploymentManager while the leader record names this node. */
class ClusterManagerLoop {
  readonly #options: DeploymentFeatureOptions;
  readonly #log: Logger;
  readonly #manager: ClusterDeploymentManager;
  readonly #loop: StepLoop;
  readonly #results: WriteResult[] = [];
  readonly #startedAtMs: number;
  /** When each member last connected or disconnected (one entry per core member). */
  readonly #since: Map<NodeId, number>;
  /** What the last step said it waits on (status, and logged when it changes). */
  #waiting: string[] = [];

  constructor(options: DeploymentFeatureOptions, log: Logger) {
    this.#options = options;
    this.#log = log;
    this.#manager = new ClusterDeploymentManager(options.self, options.cluster);
    this.#startedAtMs = nowMs(options.clock);
    this.#since = new Map(options.members.map((id) => [id, this.#startedAtMs]));
    this.#loop = new StepLoop(
      () => this.#step(),
      options.clock,
      (e) => log.error("cluster deployment step failed", { error: (e as Error).stack ?? String(e) }),
    );
  }

  get waiting(): string[] {
    return this.#waiting;
  }

  /**
   * What placement waits on, for `slices` on any node: the leader's own list here; on another member the
   * same pure reconciliation as the leader's, run on this member's copy of the state with the leader as
   * `self` and this member's view of who is connected (its decisions are dropped, nothing is written).
   */
  placementWaiting(): readonly string[] {
    const leader = this.#options.leader()?.nodeId;
    if (leader === undefined) return [];
    if (leader === this.#options.self) return this.#waiting;
    const view = new ViewReader().read(this.#options.state());
    const options = { ...DEFAULT_CLUSTER_MANAGER_OPTIONS, ...this.#options.cluster };
    return reconcile(view, this.#members(), nowMs(this.#options.clock), leader, options).waiting;
  }

  schedule(): void {
    this.#loop.schedule();
  }

  /** Leadership ended: the pending wake-up no longer matters. */
  clearWake(): void {
    this.#loop.clearWake();
  }

  memberChanged(id: NodeId): void {
    this.#since.set(id, nowMs(this.#options.clock));
  }

  stop(): void {
    this.#loop.stop();
  }

  #step(): number | undefined {
    if (this.#options.leader()?.nodeId !== this.#options.self) {
      // Not this node's term: results of an earlier term can no longer matter (a new term clears them).
      this.#results.length = 0;
      this.#waiting = [];
      return undefined;
    }
    const out = this.#manager.step({
      kv: this.#options.state(),
      members: this.#members(),
      nowMs: nowMs(this.#options.clock),
      results: this.#results.splice(0),
      hasQuorum: hasQuorum(this.#options),
    });
    for (const command of out.commands) {
      replicate(this.#options.kv, this.#log, command, "info").then((result) => {
        this.#results.push(result);
        this.#loop.schedule();
      });
    }
    if (out.waiting.join("\n") !== this.#waiting.join("\n")) {
      this.#waiting = out.waiting;
      if (out.waiting.length > 0) this.#log.debug("deployment waiting", { on: out.waiting.join("; ") });
    }
    return out.wakeAtMs;
  }

  #members(): MemberStatus[] {
    return this.#options.members.map((id) => ({
      id,
      connected: this.#options.isConnected(id),
      sinceMs: this.#since.get(id) ?? this.#startedAtMs,
    }));
  }
}

/** Steps the managers on what concerns them; returns the function that stops listening. */
function startTriggers(
  options: DeploymentFeatureOptions,
  endpoints: EndpointRegistry,
  nodeLoop: NodeManagerLoop,
  clusterLoop: ClusterManagerLoop,
): () => void {
  const both = () => {
    nodeLoop.schedule();
    clusterLoop.schedule();
  };
  const ownPrefix = kvPrefixes.instancesOfNode(options.self);
  const leaderPrefixes = [
    KEY_PREFIXES.targets,
    KEY_PREFIXES.instances,
    KEY_PREFIXES.endpoints,
    KEY_PREFIXES.routes,
    KEY_PREFIXES.routing,
    KEY_PREFIXES.artifacts,
  ];
  const membershipChanged = (id: NodeId) => {
    clusterLoop.memberChanged(id);
    both();
  };
  const unsubscribe = [
    options.onEvents((events) => {
      endpoints.apply(events);
      let forNode = false, forLeader = false;
      for (const { key } of events) {
        if (key.startsWith(ownPrefix) || key.startsWith(KEY_PREFIXES.artifacts)) forNode = true;
        if (key === LEADER_KEY || leaderPrefixes.some((p) => key.startsWith(p))) forLeader = true;
      }
      if (forNode) nodeLoop.schedule();
      if (forLeader) clusterLoop.schedule();
    }),
    options.onReset(() => {
      endpoints.reset(options.state());
      both();
    }),
    options.mesh.onPeerUp(membershipChanged),
    options.mesh.onPeerDown(membershipChanged),
    options.onLeadership((leading) => {
      if (leading) clusterLoop.schedule();
      else clusterLoop.clearWake();
    }),
  ];
  // Readiness has no event, and quorum follows connections only indirectly: look for changes now and then.
  let condition = "";
  const conditionTimer = setInterval(() => {
    const next = `${hasQuorum(options)}/${options.leader()?.nodeId ?? ""}`;
    if (next === condition) return;
    condition = next;
    both();
  }, CONDITION_CHECK_MS);
  return () => {
    clearInterval(conditionTimer);
    for (const off of unsubscribe) off();
  };
}

function deploymentStatus(
  options: DeploymentFeatureOptions,
  endpoints: EndpointRegistry,
  executor: SandboxExecutor,
  clusterLoop: ClusterManagerLoop,
): DeploymentStatus {
  return {
    leading: options.leader()?.nodeId === options.self && hasQuorum(options),
    quorumLoss: options.quorumLoss?.fenceAfterMs === undefined
      ? "keep serving"
      : `stop instances after ${options.quorumLoss.fenceAfterMs} ms`,
    endpoints: endpoints.size,
    waiting: clusterLoop.waiting,
    refusedRequests: executor.slices.refusedRequests,
    instances: executor.slices.list().map((i) => ({
      instance: i.instanceId,
      state: i.state,
      ...(i.reason !== undefined ? { reason: i.reason } : {}),
      ...(i.host?.pid !== undefined ? { pid: i.host.pid } : {}),
      ...(i.host !== undefined ? { isolation: i.host.mode } : {}),
      ...cpuOf(i.host?.stats),
      refusedRequests: i.refusedRequests,
      droppedLogLines: i.droppedLogLines,
    })),
  };
}
