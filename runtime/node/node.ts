/**
 * One cluster member, assembled: durable storage, the KV state rebuilt from it, the Rabia engine driven by the
 * replica, the authenticated mesh, leader election, the management API and the application HTTP server.
 */

import { systemClock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import { randomHex } from "../core/ids.ts";
import { DEFAULT_ENGINE_TIMINGS, RabiaEngine } from "../consensus/mod.ts";
import type { KvCommand, KvEvent } from "../kv/commands.ts";
import { ConsensusStorage, restoreKvState } from "../kv/storage.ts";
import { WatchHub } from "../kv/watch.ts";
import { Mesh } from "../net/mod.ts";
import { createApiApp } from "../api/mod.ts";
import type { ApiDeps, NodeStatusView } from "../api/mod.ts";
import {
  CONSENSUS_CHANNEL,
  ELECTION_CHANNEL,
  ELECTION_CHECK_MS,
  Elections,
  kvAccess,
  Replica,
  WRITE_CHANNEL,
  WriteForwarder,
} from "../cluster/mod.ts";
import type { NodeFlags } from "./flags.ts";
import { createAppServer } from "./app_http.ts";
import { type Feature, Listeners, type NodeContext, ServiceRegistry } from "./context.ts";
import { FEATURES } from "./features.ts";

const TICK_MS = 20;
const WRITE_TIMEOUT_MS = 5_000;

export interface RunningNode {
  ports: { cluster: number; api: number; http: number };
  stop(): Promise<void>;
}

export async function startNode(flags: NodeFlags, secret: Uint8Array, log: Logger): Promise<RunningNode> {
  const startedAt = systemClock.now();
  const members = flags.peers.map((p) => p.id).sort();
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
  const hub = new WatchHub({ revision: initialState.revision });
  const eventListeners = new Listeners<[readonly KvEvent[]]>(log, "kv event");
  const resetListeners = new Listeners<[]>(log, "state reset");
  const leadershipListeners = new Listeners<[boolean]>(log, "leadership");
  const mesh = new Mesh({
    self: flags.id,
    peers: flags.peers,
    secret,
    logger: log.with({ component: "mesh" }),
  });
  await mesh.start();

  const engine = new RabiaEngine<KvCommand>(
    { self: flags.id, members, ...DEFAULT_ENGINE_TIMINGS },
    loaded.restored,
  );
  const replica = new Replica({
    self: flags.id,
    members,
    incarnation: `${Date.now().toString(36)}${randomHex(3)}`,
    durable: flags.fsync === "always",
    clock: systemClock,
    log,
    storage,
    transport: mesh,
    state: initialState,
    engine,
    maxSyncResponseBytes: 4 * 1024 * 1024,
    defaultWriteTimeoutMs: WRITE_TIMEOUT_MS,
    maxQueuedBytes: 64 * 1024 * 1024,
    onEvents: (events: KvEvent[]) => {
      hub.publish(events);
      eventListeners.emit(events);
    },
    onFatal: (error) => {
      log.error("consensus engine halted on a broken invariant; stopping this node", { error: error.stack });
      Deno.exit(70);
    },
    onSnapshotInstalled: (revision) => {
      hub.reset(revision);
      resetListeners.emit();
    },
  });

  const forwarder = new WriteForwarder({
    self: flags.id,
    transport: mesh,
    local: replica,
    target: () => (replica.ready ? leader()?.nodeId : undefined),
    log: log.with({ component: "writes" }),
  });
  mesh.onMessage(WRITE_CHANNEL, (from, message) => forwarder.receive(from, message));

  const elections = new Elections({
    self: flags.id,
    members,
    replica,
    clock: systemClock,
    transport: mesh,
    log,
    onLeadership: (leading) => leadershipListeners.emit(leading),
  });
  const leader = () => elections.leader();
  const isLeader = () => elections.isLeader();
  mesh.onMessage(ELECTION_CHANNEL, (from, message) => elections.receive(from, message));
  mesh.onMessage(CONSENSUS_CHANNEL, (from, message) => replica.receive(from, message));
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
  replica.start();
  const ticker = setInterval(() => replica.tick(), TICK_MS);
  const electionTimer = setInterval(() => elections.check(), ELECTION_CHECK_MS);

  const kv = kvAccess(replica, hub, WRITE_TIMEOUT_MS);
  let ports = { cluster: mesh.port, api: 0, http: 0 };
  const ctx: NodeContext = {
    self: flags.id,
    members,
    dataDir: flags.dataDir,
    flags,
    log,
    clock: systemClock,
    mesh,
    kv,
    state: () => replica.state,
    watches: hub,
    onEvents: (listener) => eventListeners.add(listener),
    onReset: (listener) => resetListeners.add(listener),
    ready: () => replica.ready,
    quorum: () => replica.quorum,
    leader,
    isLeader,
    onLeadership: (listener) => leadershipListeners.add(listener),
    ports: () => ports,
    services: new ServiceRegistry(),
  };
  const features: Feature[] = [];
  for (const factory of FEATURES) features.push(await factory(ctx));
  const status = (): NodeStatusView => ({
    nodeId: flags.id,
    ready: replica.ready,
    quorum: replica.quorum,
    leader: leader(),
    members: members.map((id) => ({ id, connected: id === flags.id || mesh.isConnected(id) })),
    revision: replica.state.revision,
    phase: replica.phase,
    consensus: engine.stats,
    writeForwarding: forwarder.stats,
    elections: elections.stats,
    uptimeMs: systemClock.now() - startedAt,
    ports,
    features: Object.fromEntries(features.filter((f) => f.status).map((f) => [f.name, f.status!()])),
  });
  // Clients' writes join the leader's batches; the runtime's own writes stay local (forward.ts).
  const deps: ApiDeps = {
    status,
    kv: kvAccess(replica, hub, WRITE_TIMEOUT_MS, forwarder),
    log: log.with({ component: "api" }),
  };
  const api = createApiApp(deps, features.flatMap((f) => (f.api ? [f.api] : [])));
  const apiServer = Deno.serve(
    { hostname: flags.host, port: flags.apiPort, onListen: () => {} },
    api.fetch,
  );
  const appServer = createAppServer({
    hostname: flags.host,
    port: flags.httpPort,
    log,
    handler: features.find((f) => f.app)?.app,
  });
  ports = { cluster: mesh.port, api: apiServer.addr.port, http: appServer.addr.port };
  log.info("node started", { ...ports, members: members.join(",") });

  return {
    ports,
    async stop() {
      clearInterval(ticker);
      clearInterval(electionTimer);
      for (const feature of [...features].reverse()) {
        await feature.stop?.().catch((e) =>
          log.error("feature stop failed", { feature: feature.name, error: e })
        );
      }
      hub.close();
      await Promise.all([shutdown(apiServer), shutdown(appServer)]);
      await mesh.stop();
      storage.close();
    },
  };
}

/** Stops accepting and waits briefly for in-flight requests (long-lived streams are cut after that). */
async function shutdown(server: Deno.HttpServer): Promise<void> {
  await Promise.race([server.shutdown(), new Promise((r) => setTimeout(r, 1_000))]);
}
