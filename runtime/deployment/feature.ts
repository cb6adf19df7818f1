/**
 * The node feature "deployment": the pure deployment core wired into a running node.
 *
 * - EndpointRegistry: built from the state at start, kept current with every applied batch, rebuilt after a
 *   snapshot install.
 * - NodeDeploymentManager, on every node: stepped when this node's instance keys (or artifacts) change, when
 *   an executor operation finishes, when a sandbox crashes, when one of its writes completes, when quorum or
 *   readiness changes, and at the time it asks for. Its actions run on the real sandbox executor (bundles come
 *   from the artifact repository's `fetchArtifact`); its commands are replicated writes.
 * - ClusterDeploymentManager, while the `leader` record names this node: stepped after batches that touch
 *   what it reads, on membership changes, when its writes complete, and at the time it asks for.
 * - The management API of deployment (routes.ts) and the "deployment" service (service.ts).
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

import type { NodeId } from "../core/ids.ts";
import type { Logger } from "../core/log.ts";
import type { KvEvent } from "../kv/commands.ts";
import { KEY_PREFIXES, kvPrefixes, LEADER_KEY } from "../model/mod.ts";
import { type Feature, type FeatureFactory, Listeners, type NodeContext } from "../node/context.ts";
import {
  type ArtifactSource,
  DEFAULT_POLICY,
  type SliceExecutorOptions,
  type SliceLogEntry,
  type SliceManifest,
} from "../sandbox/mod.ts";
import { AetherError } from "../core/errors.ts";
import {
  ClusterDeploymentManager,
  type ClusterManagerOptions,
  type DeploymentCommand,
  type WriteResult,
} from "./cluster_manager.ts";
import { NodeDeploymentManager, type NodeManagerOptions, type QuorumLossPolicy } from "./node_manager.ts";
import { type ExecutorCrash, type ExecutorOutcome, perform } from "./executor.ts";
import { EndpointRegistry, ENDPOINTS_PREFIX } from "./endpoints.ts";
import { decodeValueMemo } from "./_memo.ts";
import { SandboxExecutor } from "./sandbox_executor.ts";
import { DEPLOYMENT_SERVICE, type DeploymentService, instanceIdOf } from "./service.ts";
import { deploymentRoutes } from "./routes.ts";
import type { MemberStatus } from "./view.ts";
import { StepLoop } from "./_step_loop.ts";
import { repositoryOf } from "../repository/mod.ts";

/** What the deployment feature needs from the artifact repository (the node service "repository"). */
export interface ArtifactFetcher {
  fetchArtifact(coordinates: string): Promise<{ manifest: SliceManifest; bundle: Uint8Array }>;
}

export const REPOSITORY_SERVICE = "repository";

export interface DeploymentFeatureOptions {
  cluster?: Partial<ClusterManagerOptions>;
  node?: Partial<Omit<NodeManagerOptions, "quorumLoss">>;
  /** What a node does with running instances when it loses quorum (see the module comment). */
  quorumLoss?: QuorumLossPolicy;
  /** Passed to the sandbox executor (policy, deadlines, host timeouts, warm processes). */
  sandbox?: Omit<SliceExecutorOptions, "onStateChange" | "onOutboundCall" | "onLog">;
  /** Where bundles come from; by default the node service "repository", else the node's repository. */
  fetcher?: ArtifactFetcher;
}

/** How often readiness, quorum and leadership are checked for changes that raise no event of their own. */
const CONDITION_CHECK_MS = 250;

/** The feature factory to list in runtime/node/features.ts. */
export function deploymentFeature(options: DeploymentFeatureOptions = {}): FeatureFactory {
  return (ctx) => startDeployment(ctx, options);
}

function startDeployment(ctx: NodeContext, options: DeploymentFeatureOptions): Feature {
  const log = ctx.log.with({ component: "deployment" });
  const self = ctx.self;
  const now = () => Math.floor(ctx.clock.now());
  const unsubscribe: (() => void)[] = [];

  // -- endpoints ---------------------------------------------------------------------------------------------
  const endpoints = EndpointRegistry.fromKv(ctx.state());
  const endpointListeners = new Listeners<[]>(log, "endpoints changed");

  // -- the executor ------------------------------------------------------------------------------------------
  const outcomes: ExecutorOutcome[] = [];
  const crashes: ExecutorCrash[] = [];
  const ndmResults: WriteResult[] = [];
  const cdmResults: WriteResult[] = [];
  const sliceLog = ctx.log.with({ component: "slice" });
  const executor = new SandboxExecutor({
    resolveArtifact: (coordinates) => resolveArtifact(ctx, options.fetcher, coordinates),
    onCrash: (crash) => {
      log.warn("instance crashed", { instance: crash.instanceId, reason: crash.reason });
      crashes.push(crash);
      ndmLoop.schedule();
    },
    onStateChange: (change) => {
      const fields = { instance: change.instanceId, from: change.from, to: change.to, reason: change.reason };
      if (change.to === "FAILED") log.warn("instance failed", fields);
      else log.debug("instance state", fields);
    },
    onLog: (entry) => logSliceLine(sliceLog, entry),
    // The node's --sandbox flag picks the isolation unless the feature was given a whole sandbox setup.
    sandbox: options.sandbox ??
      { policy: { ...DEFAULT_POLICY, mode: ctx.flags.sandbox ?? DEFAULT_POLICY.mode } },
  });

  // -- node manager ------------------------------------------------------------------------------------------
  const ndm = new NodeDeploymentManager(self, { ...options.node, quorumLoss: options.quorumLoss ?? {} });
  const hasQuorum = () => ctx.ready() && ctx.quorum();
  const ndmLoop: StepLoop = new StepLoop(
    () => {
      const out = ndm.step({
        kv: ctx.state(),
        nowMs: now(),
        hasQuorum: hasQuorum(),
        outcomes: outcomes.splice(0),
        crashes: crashes.splice(0),
        results: ndmResults.splice(0),
      });
      for (const action of out.actions) {
        log.debug("instance action", { op: action.op, instance: action.instanceId });
        perform(executor, action).then((outcome) => {
          if (!outcome.ok) {
            log.warn("instance action failed", {
              op: outcome.op,
              instance: outcome.instanceId,
              reason: outcome.reason,
            });
          }
          outcomes.push(outcome);
          ndmLoop.schedule();
        });
      }
      for (const command of out.commands) submit(command, ndmResults, ndmLoop, "debug");
      return out.wakeAtMs;
    },
    ctx.clock,
    (e) => log.error("node deployment step failed", { error: (e as Error).stack ?? String(e) }),
  );

  // -- cluster manager (leader) ------------------------------------------------------------------------------
  const cdm = new ClusterDeploymentManager(self, options.cluster);
  const startedAt = now();
  const since = new Map<NodeId, number>(ctx.members.map((id) => [id, startedAt]));
  const members = (): MemberStatus[] =>
    ctx.members.map((id) => ({
      id,
      connected: id === self || ctx.mesh.isConnected(id),
      sinceMs: since.get(id) ?? startedAt,
    }));
  let waiting: string[] = [];
  const cdmLoop: StepLoop = new StepLoop(
    () => {
      if (ctx.leader()?.nodeId !== self) {
        // Not this node's term: results of an earlier term can no longer matter (a new term clears them).
        cdmResults.length = 0;
        waiting = [];
        return undefined;
      }
      const out = cdm.step({
        kv: ctx.state(),
        members: members(),
        nowMs: now(),
        results: cdmResults.splice(0),
        hasQuorum: hasQuorum(),
      });
      for (const command of out.commands) submit(command, cdmResults, cdmLoop, "info");
      if (out.waiting.join("\n") !== waiting.join("\n")) {
        waiting = out.waiting;
        if (waiting.length > 0) log.debug("deployment waiting", { on: waiting.join("; ") });
      }
      return out.wakeAtMs;
    },
    ctx.clock,
    (e) => log.error("cluster deployment step failed", { error: (e as Error).stack ?? String(e) }),
  );

  /** Replicates one reducer command and reports `{ id, ok }` to its reducer's next step. */
  function submit(
    command: DeploymentCommand,
    results: WriteResult[],
    loop: StepLoop,
    level: "info" | "debug",
  ) {
    log[level]("deployment write", { id: command.id, reason: command.reason });
    ctx.kv.write(command.command).then(
      (outcome) => {
        const ok = outcome.succeeded !== false;
        if (!ok) log.debug("deployment write lost a race", { id: command.id });
        results.push({ id: command.id, ok });
      },
      (e) => {
        log.debug("deployment write failed", { id: command.id, error: (e as Error).message });
        results.push({ id: command.id, ok: false });
      },
    ).finally(() => loop.schedule());
  }

  // -- triggers ----------------------------------------------------------------------------------------------
  const ownPrefix = kvPrefixes.instancesOfNode(self);
  const leaderPrefixes = [
    KEY_PREFIXES.targets,
    KEY_PREFIXES.instances,
    KEY_PREFIXES.endpoints,
    KEY_PREFIXES.routes,
    KEY_PREFIXES.routing,
    KEY_PREFIXES.artifacts,
  ];
  unsubscribe.push(ctx.onEvents((events: readonly KvEvent[]) => {
    endpoints.apply(events);
    let endpointsChanged = false, forNode = false, forLeader = false;
    for (const { key } of events) {
      if (key.startsWith(ENDPOINTS_PREFIX)) endpointsChanged = true;
      if (key.startsWith(ownPrefix) || key.startsWith(KEY_PREFIXES.artifacts)) forNode = true;
      if (key === LEADER_KEY || leaderPrefixes.some((p) => key.startsWith(p))) forLeader = true;
    }
    if (endpointsChanged) endpointListeners.emit();
    if (forNode) ndmLoop.schedule();
    if (forLeader) cdmLoop.schedule();
  }));
  unsubscribe.push(ctx.onReset(() => {
    endpoints.reset(ctx.state());
    endpointListeners.emit();
    ndmLoop.schedule();
    cdmLoop.schedule();
  }));
  const membershipChanged = (id: NodeId) => {
    since.set(id, now());
    ndmLoop.schedule();
    cdmLoop.schedule();
  };
  unsubscribe.push(ctx.mesh.onPeerUp(membershipChanged));
  unsubscribe.push(ctx.mesh.onPeerDown(membershipChanged));
  unsubscribe.push(ctx.onLeadership((leading) => {
    if (leading) cdmLoop.schedule();
    else cdmLoop.clearWake();
  }));
  // Readiness has no event, and quorum follows connections only indirectly: look for changes now and then.
  let condition = "";
  const conditionTimer = setInterval(() => {
    const next = `${hasQuorum()}/${ctx.leader()?.nodeId ?? ""}`;
    if (next === condition) return;
    condition = next;
    ndmLoop.schedule();
    cdmLoop.schedule();
  }, CONDITION_CHECK_MS);
  ndmLoop.schedule();
  cdmLoop.schedule();

  // -- services and API --------------------------------------------------------------------------------------
  const isConnected = (node: NodeId) => node === self || ctx.mesh.isConnected(node);
  const service: DeploymentService = {
    executor: executor.slices,
    endpoints,
    instanceIdOf,
    isConnected,
    onEndpointsChanged: (listener) => endpointListeners.add(listener),
    setOutboundCallHandler: (handler) => executor.setOutboundCallHandler(handler),
    setLogHandler: (handler) => executor.setLogHandler(handler),
  };
  ctx.services.provide(DEPLOYMENT_SERVICE, service);

  const api = deploymentRoutes({
    state: () => ctx.state(),
    write: (command) => ctx.kv.write(command),
    isConnected,
    nowMs: now,
  });

  return {
    name: "deployment",
    api,
    status: () => ({
      leading: ctx.leader()?.nodeId === self && hasQuorum(),
      quorumLoss: options.quorumLoss?.fenceAfterMs === undefined
        ? "keep serving"
        : `stop instances after ${options.quorumLoss.fenceAfterMs} ms`,
      endpoints: endpoints.size,
      waiting,
      instances: executor.slices.list().map((i) => ({
        instance: i.instanceId,
        state: i.state,
        ...(i.reason !== undefined ? { reason: i.reason } : {}),
        ...(i.host?.pid !== undefined ? { pid: i.host.pid } : {}),
      })),
    }),
    async stop() {
      clearInterval(conditionTimer);
      ndmLoop.stop();
      cdmLoop.stop();
      for (const off of unsubscribe) off();
      // Instance records stay as they are: a node that comes back reports what it no longer runs as lost.
      await executor.close();
    },
  };
}

/** The manifest from the replicated artifact record; the bundle from the repository, fetched inside LOADING. */
function resolveArtifact(
  ctx: NodeContext,
  fetcher: ArtifactFetcher | undefined,
  coordinates: string,
): ArtifactSource {
  const key = `${KEY_PREFIXES.artifacts}${coordinates}`;
  const entry = ctx.state().get(key);
  if (!entry) throw new AetherError("not_found", `${coordinates} is not published (no ${key} record)`);
  const manifest = decodeValueMemo("artifact", entry.value, `value of "${key}"`).manifest;
  return {
    manifest,
    bundle: async () => {
      const repository = fetcher ?? ctx.services.find<ArtifactFetcher>(REPOSITORY_SERVICE) ??
        repositoryOf(ctx);
      return (await repository.fetchArtifact(coordinates)).bundle;
    },
  };
}

function logSliceLine(log: Logger, entry: SliceLogEntry): void {
  log[entry.level](entry.message, {
    slice: entry.coordinates,
    instance: entry.instanceId,
    requestId: entry.requestId,
    ...entry.fields,
  });
}
