/**
 * One cluster member, assembled: durable storage, the KV state rebuilt from it, the Rabia engine driven by the
 * replica, the authenticated mesh, leader election, the management API and the application HTTP server.
 */

import { LatencyHistogram, type Logger, LogRing, randomHex, systemClock } from "../core/mod.ts";
import { DEFAULT_ENGINE_TIMINGS, RabiaEngine } from "../consensus/mod.ts";
import {
  ConsensusStorage,
  type KvCommand,
  type KvEvent,
  type KvState,
  type LoadedState,
  restoreKvState,
  WatchHub,
} from "../kv/mod.ts";
import { Mesh } from "../net/mod.ts";
import {
  AuditLog,
  bootstrapAdminToken,
  createApiApp,
  type DashboardAssets,
  dashboardResponse,
  isDashboardPath,
  readBootstrapTokenFile,
  readDashboardAssets,
  TokenIndex,
} from "../api/mod.ts";
import type { ApiAccess, ApiDeps, NodeStatusView } from "../api/mod.ts";
import { readMasterKeyFile, type SecretReadAudit } from "../infra-host/mod.ts";
import type { AuditRecord } from "../model/mod.ts";
import { startLabelPublisher } from "../control/mod.ts";
import {
  CONSENSUS_CHANNEL,
  ELECTION_CHANNEL,
  ELECTION_CHECK_MS,
  Elections,
  type KvAccess,
  kvAccess,
  Replica,
  WRITE_CHANNEL,
  WriteForwarder,
} from "../cluster/mod.ts";
import { type NodeFlags, readTls, type TlsMaterial } from "./flags.ts";
import { createAppServer } from "./app_http.ts";
import { type GuardedServer, serveGuarded } from "./server_guard.ts";
import { type Feature, Listeners, type NodeContext } from "./context.ts";
import { type StartedFeatures, startFeatures } from "./features.ts";
import { ClusterLogs } from "./logs.ts";
import { DASHBOARD_DIR } from "./permissions.ts";
import { EventBus, startEventSources } from "../metrics/mod.ts";

const TICK_MS = 20;
const WRITE_TIMEOUT_MS = 5_000;
/** Largest answer to a peer's catch-up request (it asks again for the rest). */
const MAX_SYNC_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Writes waiting for a batch on this member, at most (beyond: overloaded with retry-after). */
const MAX_QUEUED_WRITE_BYTES = 64 * 1024 * 1024;

export interface RunningNode {
  ports: { cluster: number; api: number; http: number };
  /** The core the features were built from (for in-process tests that write through the node's own path). */
  core: NodeContext;
  /** Every endpoint the management API serves (tests check each has a role in runtime/api/roles.ts). */
  apiRoutes: { method: string; path: string }[];
  stop(): Promise<void>;
}

/**
 * Starts a member. `ring` holds the records `log` writes (nodeLogger in logs.ts makes both); the management API
 * serves it to GET /api/v1/logs. Without one (tests that bring their own logger), this node's ring stays empty.
 */
export async function startNode(
  flags: NodeFlags,
  secret: Uint8Array,
  log: Logger,
  ring: LogRing = new LogRing(),
  /** The TLS files' contents when main.ts has read them already (else they are read here from flags.tls). */
  tlsMaterial?: TlsMaterial,
): Promise<RunningNode> {
  const startedAt = systemClock.now();
  const tls = flags.tls === undefined ? undefined : (tlsMaterial ?? await readTls(flags.tls));
  // Checked before anything starts: a bad file stops the node with the flag named, leaving nothing running.
  const bootstrapToken = flags.bootstrapTokenFile === undefined
    ? undefined
    : await readBootstrapTokenFile(flags.bootstrapTokenFile);
  const secretsKey = flags.secretsKeyFile === undefined
    ? undefined
    : await readMasterKeyFile(flags.secretsKeyFile);
  const members = flags.peers.map((p) => p.id).sort();
  const { storage, loaded, initialState } = await openState(flags, members, log);
  const hub = new WatchHub({ revision: initialState.revision });
  const listeners: CoreListeners = {
    events: new Listeners<[readonly KvEvent[]]>(log, "kv event"),
    reset: new Listeners<[]>(log, "state reset"),
    leadership: new Listeners<[boolean]>(log, "leadership"),
  };
  const mesh = new Mesh({
    self: flags.id,
    peers: flags.peers,
    secret,
    logger: log.with({ component: "mesh" }),
    // With the cluster CA the mesh runs over wss:// and both sides check the other's certificate against it.
    ...(tls?.ca === undefined ? {} : { tls: { cert: tls.cert, key: tls.key, ca: tls.ca } }),
  });
  await mesh.start();
  const shell = startShell({ flags, members, storage, loaded, initialState, mesh, hub, listeners, log });

  const core = coreContext(flags, members, shell, mesh, hub, listeners, log);
  // Slices' secret reads are audited in the API's audit log, which exists once the API's access is built.
  const audit: { log?: { record(entry: Omit<AuditRecord, "node">): void } } = {};
  const features = startFeatures(core, flags, {
    ...(secretsKey ? { secretsKey } : {}),
    auditSecretRead: (entry) => audit.log?.record(secretReadRecord(entry)),
  });
  const eventSources = startEventSources({
    self: flags.id,
    members,
    bus: core.events,
    mesh,
    kv: { range: (p) => core.state().range(p), get: (k) => core.state().get(k), ...core },
    log: log.with({ component: "events" }),
  });
  const logs = new ClusterLogs({ self: flags.id, members, mesh, ring, log: log.with({ component: "logs" }) });
  let ports = { cluster: mesh.port, api: 0, http: 0 };
  const status = (): NodeStatusView => ({
    ...shellStatus(shell, hub, ring),
    nodeId: flags.id,
    members: members.map((id) => ({ id, connected: core.isConnected(id) })),
    uptimeMs: systemClock.now() - startedAt,
    ports,
    features: statusOf(features.started),
  });
  // Clients' writes join the leader's batches; the runtime's own writes stay local (forward.ts).
  const apiKv = kvAccess(shell.replica, hub, WRITE_TIMEOUT_MS, shell.forwarder);
  const access = startAccess(flags, apiKv, log.with({ component: "auth" }), bootstrapToken);
  audit.log = access.options?.audit;
  const labelPublisher = startLabelPublisher({
    kv: apiKv,
    node: flags.id,
    labels: flags.labels,
    ready: () => shell.replica.ready && shell.replica.quorum,
    log: log.with({ component: "labels" }),
  });
  const dashboard = await loadDashboard(log);
  const servers = startServers(flags, tls, features, log, dashboard, {
    status,
    kv: apiKv,
    log: log.with({ component: "api" }),
    logs,
    events: core.events,
    alerts: features.alerts,
    metrics: features.metrics,
    clusterSnapshot: () => features.metrics.snapshot(),
    config: features.config,
  }, access);
  ports = { cluster: mesh.port, ...servers.ports };
  log.info("node started", { ...ports, members: members.join(","), tls: tls !== undefined });

  return {
    ports,
    core,
    apiRoutes: servers.apiRoutes,
    async stop() {
      labelPublisher.stop();
      // The ports close first and requests in flight finish while the invoker still forwards calls: a client
      // of a stopping node (a drained one, say) gets answers or a closed port, never "node is stopping".
      await servers.stop();
      shell.stop();
      access.stop();
      eventSources.stop();
      await stopFeatures(features.started, log);
      logs.stop();
      hub.close();
      await mesh.stop();
      storage.close();
    },
  };
}

/** A slice's secret read as an audit record: who (the slice), which secret, allowed (200) or refused (403). */
function secretReadRecord(entry: SecretReadAudit): Omit<AuditRecord, "node"> {
  return {
    time: Date.now(),
    tokenName: `slice ${entry.slice} (${entry.instanceId})`,
    method: "READ",
    path: `/secrets/${entry.secret}`,
    target: entry.version === undefined ? entry.secret : `${entry.secret}@${entry.version}`,
    status: entry.allowed ? 200 : 403,
    requestId: entry.requestId,
  };
}

/** Who hears of applied changes, snapshot installs and changes of leadership (the features subscribe). */
interface CoreListeners {
  events: Listeners<[readonly KvEvent[]]>;
  reset: Listeners<[]>;
  leadership: Listeners<[boolean]>;
}

/** The replicated-state shell of runtime/cluster, running: engine, replica, elections, write forwarding. */
interface Shell {
  engine: RabiaEngine<KvCommand>;
  replica: Replica;
  elections: Elections;
  forwarder: WriteForwarder;
  stop(): void;
}

/** Builds the cluster shell over the restored state and the mesh, wires it, and starts its timers. */
function startShell(o: {
  flags: NodeFlags;
  members: string[];
  storage: ConsensusStorage<KvCommand>;
  loaded: LoadedState<KvCommand>;
  initialState: KvState;
  mesh: Mesh;
  hub: WatchHub;
  listeners: CoreListeners;
  log: Logger;
}): Shell {
  const { flags, members, mesh, hub, listeners, log } = o;
  const engine = new RabiaEngine<KvCommand>(
    { self: flags.id, members, ...DEFAULT_ENGINE_TIMINGS },
    o.loaded.restored,
  );
  const replica = new Replica({
    self: flags.id,
    members,
    incarnation: `${Date.now().toString(36)}${randomHex(3)}`,
    durable: flags.fsync === "always",
    clock: systemClock,
    log,
    storage: o.storage,
    transport: mesh,
    state: o.initialState,
    engine,
    maxSyncResponseBytes: MAX_SYNC_RESPONSE_BYTES,
    defaultWriteTimeoutMs: WRITE_TIMEOUT_MS,
    maxQueuedBytes: MAX_QUEUED_WRITE_BYTES,
    onEvents: (events: KvEvent[]) => {
      hub.publish(events);
      listeners.events.emit(events);
    },
    onFatal: (error) => {
      log.error("consensus engine halted on a broken invariant; stopping this node", { error: error.stack });
      Deno.exit(70);
    },
    onSnapshotInstalled: (revision) => {
      hub.reset(revision);
      listeners.reset.emit();
    },
  });
  const elections = new Elections({
    self: flags.id,
    members,
    replica,
    clock: systemClock,
    transport: mesh,
    log,
    onLeadership: (leading) => listeners.leadership.emit(leading),
  });
  const forwarder = new WriteForwarder({
    self: flags.id,
    transport: mesh,
    local: replica,
    target: () => (replica.ready ? elections.leader()?.nodeId : undefined),
    timers: systemClock,
    log: log.with({ component: "writes" }),
  });
  wireMesh(mesh, { replica, elections, forwarder }, log);
  replica.start();
  const ticker = setInterval(() => replica.tick(), TICK_MS);
  const electionTimer = setInterval(() => elections.check(), ELECTION_CHECK_MS);
  return {
    engine,
    replica,
    elections,
    forwarder,
    stop() {
      clearInterval(ticker);
      clearInterval(electionTimer);
    },
  };
}

/** What every feature is built from: the core's shared pieces, typed. */
function coreContext(
  flags: NodeFlags,
  members: string[],
  shell: Shell,
  mesh: Mesh,
  hub: WatchHub,
  listeners: CoreListeners,
  log: Logger,
): NodeContext {
  const { replica, elections, engine, forwarder } = shell;
  const commitLatency = new LatencyHistogram();
  return {
    self: flags.id,
    members,
    dataDir: flags.dataDir,
    log,
    clock: systemClock,
    mesh,
    isConnected: (id) => id === flags.id || mesh.isConnected(id),
    kv: timedWrites(kvAccess(replica, hub, WRITE_TIMEOUT_MS), commitLatency),
    state: () => replica.state,
    watches: hub,
    onEvents: (listener) => listeners.events.add(listener),
    onReset: (listener) => listeners.reset.add(listener),
    ready: () => replica.ready,
    quorum: () => replica.quorum,
    leader: () => elections.leader(),
    isLeader: () => elections.isLeader(),
    onLeadership: (listener) => listeners.leadership.add(listener),
    // Ids start at the boot time so they grow across restarts (a resume from before one is answered "gone").
    events: new EventBus({
      node: flags.id,
      firstId: Math.floor(Date.now()),
      log: log.with({ component: "events" }),
    }),
    consensusStats: () => {
      const e = engine.stats;
      const f = forwarder.stats;
      return {
        phases: e.decided,
        batches: e.decided - e.empty,
        commands: e.decidedCommands,
        forwardedWrites: f.forwarded,
        servedForwardedWrites: f.served,
        pendingBatches: e.pendingBatches,
      };
    },
    commitLatency,
  };
}

/** The access with every write's time from submit until applied recorded (the commit latency metric). */
function timedWrites(access: KvAccess, latency: LatencyHistogram): KvAccess {
  return {
    ...access,
    write(command, options) {
      const startedAt = performance.now();
      const done = () => latency.observe(performance.now() - startedAt);
      const written = access.write(command, options);
      written.then(done, () => {});
      return written;
    },
  };
}

/** The shell's part of GET /api/v1/status (with the log ring among the bounded queues). */
function shellStatus(shell: Shell, hub: WatchHub, ring: LogRing) {
  const { engine, replica, elections, forwarder } = shell;
  return {
    ready: replica.ready,
    quorum: replica.quorum,
    leader: elections.leader(),
    revision: replica.state.revision,
    phase: replica.phase,
    consensus: engine.stats,
    writeForwarding: forwarder.stats,
    elections: elections.stats,
    limits: {
      watches: hub.stats,
      revisionWaiters: replica.revisionWaiterStats,
      writeQueueRefused: replica.writeQueueRefused,
      logRing: ring.stats,
    },
  };
}

/** Opens the member's durable storage and rebuilds its state from the latest snapshot and the log after it. */
async function openState(flags: NodeFlags, members: string[], log: Logger) {
  await Deno.mkdir(flags.dataDir, { recursive: true });
  const storage = ConsensusStorage.openInDir<KvCommand>(flags.dataDir, {
    nodeId: flags.id,
    members,
    fsync: flags.fsync,
    snapshotEveryDecisions: flags.snapshotEveryPhases,
    retainDecisions: flags.retainedLogPhases,
  });
  const loaded = storage.load();
  const initialState = restoreKvState(loaded);
  log.info("state restored", {
    phase: loaded.restored.lastDecided,
    revision: initialState.revision,
    keys: initialState.size,
  });
  return { storage, loaded, initialState };
}

/** The mesh's channels and peer events, to the cluster shell's parts that use them. */
function wireMesh(
  mesh: Mesh,
  shell: { replica: Replica; elections: Elections; forwarder: WriteForwarder },
  log: Logger,
): void {
  const { replica, elections, forwarder } = shell;
  mesh.onMessage(CONSENSUS_CHANNEL, (from, message) => replica.receive(from, message));
  mesh.onMessage(ELECTION_CHANNEL, (from, message) => elections.receive(from, message));
  mesh.onMessage(WRITE_CHANNEL, (from, message) => forwarder.receive(from, message));
  mesh.onPeerUp((id) => {
    elections.peerUp(id);
    log.info("peer up", { peer: id });
    replica.peerConnected(id);
  });
  mesh.onPeerDown((id, reason) => {
    elections.peerDown(id);
    log.warn("peer down", { peer: id, reason });
    forwarder.peerDown(id);
  });
}

/** Each feature's status under its name. */
function statusOf(features: readonly Feature[]): Record<string, unknown> {
  return Object.fromEntries(features.filter((f) => f.status).map((f) => [f.name, f.status!()]));
}

/** Stops the features in reverse start order; a failing stop is logged and the rest still stop. */
async function stopFeatures(features: readonly Feature[], log: Logger): Promise<void> {
  for (const feature of [...features].reverse()) {
    await feature.stop?.().catch((e) =>
      log.error("feature stop failed", { feature: feature.name, error: e })
    );
  }
}

interface Servers {
  ports: { api: number; http: number };
  apiRoutes: { method: string; path: string }[];
  stop(): Promise<void>;
}

/**
 * The API's token index, and the first admin token of a new cluster: from --bootstrap-token-file, else a random
 * one printed once on standard error (never into the log ring that GET /api/v1/logs serves).
 */
function startAccess(
  flags: NodeFlags,
  kv: ApiDeps["kv"],
  log: Logger,
  token: string | undefined,
): ApiAccess & { stop(): void } {
  const tokens = new TokenIndex(kv, log, { bootstrapToken: token });
  const audit = new AuditLog(kv, flags.id, log.with({ component: "audit" }));
  const bootstrap = bootstrapAdminToken({
    kv,
    log,
    token,
    announce: (text) => Deno.stderr.writeSync(new TextEncoder().encode(text)),
  });
  return {
    tokens,
    options: {
      closedProbes: flags.closedProbes,
      hostNames: [flags.apiHost, ...flags.apiNames],
      corsOrigins: flags.corsOrigins,
      audit,
    },
    stop: () => {
      audit.stop();
      bootstrap.stop();
      tokens.stop();
    },
  };
}

/**
 * The built dashboard (dashboard/dist), read once. Without it the node still runs and `/` answers 503 naming
 * the build command: the API does not depend on the dashboard.
 */
async function loadDashboard(log: Logger): Promise<DashboardAssets | Error> {
  try {
    return await readDashboardAssets(DASHBOARD_DIR);
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    log.warn("dashboard not served", { reason: error.message });
    return error;
  }
}

/** The management API (with every feature's routes), the dashboard at `/`, and the application HTTP server. */
function startServers(
  flags: NodeFlags,
  tls: TlsMaterial | undefined,
  features: StartedFeatures,
  log: Logger,
  dashboard: DashboardAssets | Error,
  deps: ApiDeps,
  access: ApiAccess,
): Servers {
  const api = createApiApp(deps, features.started.flatMap((f) => (f.api ? [f.api] : [])), access);
  const apiServer = serveGuarded(
    { name: "api", hostname: flags.apiHost, port: flags.apiPort, limits: flags.serverLimits, log, tls },
    (request, info) =>
      isDashboardPath(new URL(request.url).pathname)
        ? dashboardResponse(dashboard, request)
        : api.fetch(request, info),
  );
  const appServer = createAppServer({
    hostname: flags.appHost,
    port: flags.httpPort,
    limits: flags.serverLimits,
    guard: flags.appGuard,
    log,
    tls,
    handler: features.app,
  });
  return {
    ports: { api: apiServer.addr.port, http: appServer.addr.port },
    // Handlers only: middleware (the auth check) is registered as ALL.
    apiRoutes: api.routes.filter((r) => r.method !== "ALL").map(({ method, path }) => ({ method, path })),
    stop: async () => {
      await Promise.all([shutdown(apiServer), shutdown(appServer)]);
    },
  };
}

/** Stops accepting and waits briefly for in-flight requests (long-lived streams are cut after that). */
async function shutdown(server: GuardedServer): Promise<void> {
  await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 1_000))]);
}
