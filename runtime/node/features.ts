/**
 * The features a node runs on top of the cluster core, built in order with typed arguments: each one gets the
 * core pieces it declares and what the features before it returned. Add a feature by starting it here and
 * listing it in `started`.
 */

import type { AppHandler } from "../http/mod.ts";
import { startInvoke } from "../http/mod.ts";
import { startDeployment } from "../deployment/mod.ts";
import { startRepository } from "../repository/mod.ts";
import {
  cacheStats,
  type ConfigFeature,
  databaseRoutes,
  NODE_SERVED_SERVICES,
  pubsubRoutes,
  schedulerRoutes,
  type SecretReadAudit,
  startConfigFeature,
  startInfraServices,
  startInfraStore,
  startLockService,
  startPubsubService,
  startScheduler,
  startServiceSlices,
  startSqlDatabases,
  startStateMachines,
} from "../infra-host/mod.ts";
import { type AlertBoard, snapshotMetrics, startAlerts, startRollouts } from "../control/mod.ts";
import { DEFAULT_POLICY } from "../sandbox/mod.ts";
import {
  createHttpClient,
  declaredOutbound,
  outboundRoutes,
  parseAllowList,
  startAspects,
} from "../infra-host/mod.ts";
import type { Feature, NodeContext } from "./context.ts";
import type { NodeFlags } from "./flags.ts";
import { startTraces } from "./traces.ts";
import { liveSettings } from "./live_settings.ts";
import { startActivator, startControllerFeature } from "./controller.ts";
import { type InstanceSource, type MetricsView, startMetrics } from "../metrics/mod.ts";
import type { InstanceInfo } from "../sandbox/mod.ts";

export interface StartedFeatures {
  /** In start order; stopped in reverse. */
  started: readonly Feature[];
  /** Handles requests on the application HTTP port. */
  app: AppHandler;
  /** The cluster's metrics as this node holds them (the API's /metrics and /api/v1/metrics read it). */
  metrics: MetricsView;
  /** The alerts pending and firing in the cluster, as this node knows them (GET /api/v1/alerts). */
  alerts: AlertBoard;
  /** Dynamic configuration, secrets and rate limits (the API's /config, /secrets and /ratelimits). */
  config: ConfigFeature;
}

/** What the node gives the features besides its core and flags. */
export interface FeatureExtras {
  /** The secrets' master key read from --secrets-key-file. */
  secretsKey?: CryptoKey;
  /** Records a slice's secret read in the audit log (bound once the API's audit log exists). */
  auditSecretRead?(entry: SecretReadAudit): void;
}

export function startFeatures(
  core: NodeContext,
  flags: NodeFlags,
  extras: FeatureExtras = {},
): StartedFeatures {
  const repository = startRepository({
    ...core,
    fsync: flags.fsync !== "never",
    replicas: flags.artifactReplicas,
    maxBundleBytes: flags.artifactMaxBytes,
  });
  // The partitioned store for infrastructure services (runtime/infra-host): data over the mesh, maps in KV.
  const store = startInfraStore({ ...core, fsync: flags.fsync !== "never" });
  // Infrastructure services (cache, lock, kv) answered by the node itself on the store: `ctx.infra` calls.
  // The lock keeps its leases in the consensus KV (lock_service.ts); the leader expires them.
  const locks = startLockService(core);
  // Pub/sub keeps its topics in the consensus KV; the leader delivers through the invoker (bound late).
  const pubsub = startPubsubService({
    ...core,
    invoke: (target, method, request, options) => invoke.invoker.invoke(target, method, request, options),
  });
  // Outbound HTTP for slices (ctx.infra.http): hosts the slice's manifest declares AND --outbound-allow names.
  // The live setting outbound.allow (aether config set) replaces the flag's list without a restart.
  let outboundAllowed = parseAllowList((flags.outboundAllow ?? []).join(","));
  // Dynamic aspects (log / metrics per slice method, switched cluster-wide through the KV): applied where
  // local instances are invoked (the executor the invoker is given below).
  const aspects = startAspects(core);
  const outbound = createHttpClient({
    allowed: () => outboundAllowed,
    declared: (coordinates) => declaredOutbound(core.state(), coordinates),
  });
  // The scheduler keeps its jobs in the consensus KV and fires them on the leader through the invoker,
  // which starts below (bound late, like the executor's outbound calls).
  const scheduler = startScheduler({
    ...core,
    invoke: (target, method, request, options) => invoke.invoker.invoke(target, method, request, options),
  });
  // State machines: instances in the consensus KV, transitions by compare-and-set, timeouts as jobs.
  const machines = startStateMachines({
    ...core,
    scheduler,
    invoke: (target, method, request, options) => invoke.invoker.invoke(target, method, request, options),
  });
  // SQL databases for slices (`ctx.infra.db`): SQLite replicated through consensus, or an operator's PostgreSQL.
  // A database set to PostgreSQL takes its password from the secrets (the config feature, built below).
  const sqldb = startSqlDatabases({
    ...core,
    readSecret: (name) => config.secrets.readForRuntime(name, "aether.runtime:db"),
  });
  const infra = startInfraServices({
    stores: store.stores,
    kvServed: {
      http: outbound.serve,
      lock: locks.serve,
      scheduler: scheduler.serve,
      statemachine: machines.serve,
      pubsub: pubsub.serve,
      db: sqldb.serve,
    },
    // The bundled service slices (infra/): published and deployed when `requires` names them, then called
    // through the invoker (bound late, like the executor's outbound calls).
    slices: startServiceSlices({ ...core, repository }),
    invoke: (call, options) => invoke.invoker.outboundHandler(call, options),
  });
  const deployment = startDeployment({
    ...core,
    fetchArtifact: repository.fetchArtifact,
    // A cycle: slices' calls to other slices go through the invoker, and the invoker calls local slices
    // through this executor. So the executor is built first and reaches the invoker when a slice calls, which
    // is after this function returned (no slice is loaded before the deployment's first step, a later task).
    onOutboundCall: (call) =>
      config.handles(call)
        ? config.serve(call)
        : infra.handles(call)
        ? infra.serve(call)
        : invoke.invoker.outboundHandler(call),
    // secrets and ratelimit are served by the config feature, always present: nothing to start for them.
    resolveRequires: (names) =>
      infra.ensure(names.filter((n) => !(NODE_SERVED_SERVICES as readonly string[]).includes(n))),
    resolveConfig: (coordinates) => config.valuesFor(coordinates),
    sandbox: {
      policy: { ...DEFAULT_POLICY, mode: flags.sandbox },
      hostLimits: flags.sliceLimits,
      trustAllSlices: flags.trustAllSlices,
    },
  });
  // Dynamic configuration, secrets and the cluster-wide rate limiter (runtime/infra-host/config_feature.ts).
  // Node settings changed live reach the logger, the HTTP limits and (once built) the invoker.
  const live = liveSettings(flags, (level) => core.log.setLevel?.(level));
  const config = startConfigFeature({
    ...core,
    leader: () => core.leader(),
    instances: () => deployment.executor.list(),
    flagSettings: { ...live.flagSettings, "outbound.allow": (flags.outboundAllow ?? []).join(",") },
    applySetting: (name, value) => {
      // Checked when written (config.ts runs parseAllowList), so it parses here.
      if (name === "outbound.allow") outboundAllowed = parseAllowList(String(value));
      else live.apply(name, value);
    },
    ...(extras.secretsKey ? { secretsKey: extras.secretsKey } : {}),
    auditSecretRead: (entry) => extras.auditSecretRead?.(entry),
  });
  const traces = startTraces(core, flags);
  const metrics = startMetrics({
    ...core,
    enabled: flags.metrics,
    instances: () => deployment.executor.list().map(instanceSource),
    consensus: core.consensusStats,
    commitLatency: core.commitLatency,
    caches: cacheStats,
    topics: () => pubsub.lagSeries(),
    outbound: () => outbound.stats(),
    aspects: () => aspects.stats(),
  });
  // Scale to zero: a call for a slice at zero is held while an instance starts (runtime/control).
  const activator = startActivator(core);
  const invoke = startInvoke({
    ...core,
    activate: (slice, deadlineMs) => activator.activate(slice, deadlineMs),
    spans: traces.spans,
    metrics: metrics.recorder,
    executor: aspects.wrap(deployment.executor),
    endpoints: deployment.endpoints,
    instanceIdOf: deployment.instanceIdOf,
    maxBodyBytes: flags.httpMaxBodyBytes,
    previewSecret: flags.previewSecret,
  });
  live.bindInvoker(invoke.invoker);
  // The leader drives rollouts (runtime/control/rollout.ts); canary analysis reads the metrics feature.
  const alertHolder: { board?: AlertBoard } = {};
  const rollouts = startRollouts({
    ...core,
    rolloutMetrics: snapshotMetrics(() => metrics.view.snapshot()),
    // Canary analysis may name alert rules; the alert board starts just below (read only when stepping).
    firingRules: () =>
      new Set(alertHolder.board?.active().filter((a) => a.state === "firing").map((a) => a.rule) ?? []),
  });
  // The leader scales slices within their min/max; the forecaster may only add capacity ahead of load.
  const controller = startControllerFeature(core, metrics.view, activator);
  // The leader evaluates the alert rules over the metrics; every node keeps the alerts it announced.
  const alerts = startAlerts({
    ...core,
    metrics: metrics.view,
    alertmanagers: flags.alertmanagers,
    webhooks: flags.alertWebhooks,
  });
  alertHolder.board = alerts.board;
  metrics.start();
  return {
    started: [
      repository,
      store,
      infra,
      { name: "locks", status: () => ({ held: locks.size() }), stop: () => Promise.resolve(locks.stop()) },
      {
        name: "scheduler",
        api: schedulerRoutes(scheduler, machines),
        status: () => scheduler.stats(),
        stop: () => Promise.resolve(scheduler.stop()),
      },
      {
        name: "pubsub",
        api: pubsubRoutes(pubsub),
        status: () => pubsub.counters(),
        stop: () => Promise.resolve(pubsub.stop()),
      },
      {
        name: "databases",
        api: databaseRoutes(sqldb),
        status: () => sqldb.status(),
        stop: () => sqldb.stop(),
      },
      {
        name: "outbound",
        api: outboundRoutes(core.self, outbound, () =>
          (metrics.view.snapshot()?.nodes ?? []).map((n) => ({
            node: n.node,
            stale: n.stale,
            hosts: n.outbound ?? [],
          }))),
        status: () => ({ allowed: outbound.allowedText(), hosts: outbound.stats().length }),
      },
      aspects,
      deployment,
      config,
      traces,
      metrics,
      invoke,
      rollouts,
      alerts,
      controller,
    ],
    app: invoke.app,
    metrics: metrics.view,
    alerts: alerts.board,
    config,
  };
}

/** An instance as the metrics collector reads it: its sandbox's pid and own CPU and memory report. */
function instanceSource(info: InstanceInfo): InstanceSource {
  const source: InstanceSource = {
    instanceId: info.instanceId,
    coordinates: info.coordinates,
    state: info.state,
  };
  const pid = info.host?.pid;
  if (pid !== undefined) source.pid = pid;
  const usage = info.host?.usage;
  if (usage !== undefined) source.usage = usage;
  return source;
}
