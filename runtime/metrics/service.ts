/**
 * The metrics feature of a node: every second it samples itself (collector.ts) and pushes the sample to the
 * leader over mesh channel "m"; the leader merges every node's sample into the cluster table (aggregate.ts),
 * marks nodes it stopped hearing from stale, and broadcasts the table; every node keeps the latest cluster
 * snapshot, the recent checkpoints for windowed figures (window.ts) and two hours of history (history.ts).
 * Nothing about metrics touches the KV store.
 *
 * Traffic: a node's update and the leader's broadcast carry only the series that changed since the previous
 * message, and everything every FULL_EVERY-th second (and on a change of leader), so an idle slice costs
 * nothing on the wire and a lost message is repaired within seconds.
 *
 * Staleness: the leader checks every STALE_CHECK_MS and marks a node stale STALE_AFTER_MS after its last
 * update, or at once when the mesh reports it down; a change is broadcast at once. With updates every second,
 * a node that stops is excluded within 3 s.
 */

import type { Logger, NodeId } from "../core/mod.ts";
import { type Collector } from "./collector.ts";
import { ClusterTable, errorCount, methodKey, routeKey } from "./aggregate.ts";
import {
  decodeMessage,
  encodeSnapshot,
  encodeUpdate,
  METRICS_CHANNEL,
  type SnapshotMessage,
} from "./_wire.ts";
import { type Checkpoint, checkpointOf, RecentWindow, seriesDeltas } from "./window.ts";
import { MetricsHistory } from "./history.ts";
import { histogramDelta, histogramQuantileMs } from "../core/mod.ts";
import type {
  ClusterSnapshot,
  HistoryAnswer,
  HistoryQuery,
  InvocationSummary,
  MethodMetrics,
  MetricsView,
  NodeMetrics,
  RouteMetrics,
} from "./types.ts";

export const DEFAULT_INTERVAL_MS = 1_000;
/** Every this many samples a node sends all its series (and the leader broadcasts its whole table). */
export const FULL_EVERY = 5;
const STALE_CHECK_MS = 250;
/** Subscribers to new snapshots at most (the dashboard feed, alerts, the controller, ...). */
export const MAX_SNAPSHOT_SUBSCRIBERS = 1_000;

/** The mesh as the metrics feature uses it. */
export interface MetricsMesh {
  onMessage(channel: string, handler: (from: NodeId, message: unknown) => void): () => void;
  send(to: NodeId, channel: string, message: unknown): boolean;
  broadcast(channel: string, message: unknown): NodeId[];
  onPeerDown(handler: (id: NodeId, reason: string) => void): () => void;
}

export interface MetricsServiceOptions {
  self: NodeId;
  log: Logger;
  mesh: MetricsMesh;
  /** The consensus-agreed leader, if any. */
  leader(): { nodeId: NodeId } | null;
  collector: Collector;
  intervalMs?: number;
  /** Epoch ms. */
  now?: () => number;
  history?: MetricsHistory;
}

export interface MetricsServiceStats {
  leading: boolean;
  samples: number;
  updatesSent: number;
  updatesReceived: number;
  snapshotsBroadcast: number;
  snapshotsReceived: number;
  malformedMessages: number;
  /** Bytes of the last update this node sent and the last snapshot it broadcast (JSON length, an estimate). */
  history: ReturnType<MetricsHistory["stats"]>;
  subscribers: number;
}

export class MetricsService implements MetricsView {
  readonly #o: MetricsServiceOptions;
  readonly #now: () => number;
  readonly #table = new ClusterTable();
  readonly #window = new RecentWindow();
  readonly #history: MetricsHistory;
  readonly #subscribers = new Set<(snapshot: ClusterSnapshot) => void>();
  readonly #down = new Set<NodeId>();
  #local?: NodeMetrics;
  #snapshot?: ClusterSnapshot;
  #lastRecorded?: Checkpoint;
  /** Per series key, what the last update carried (to send only what changed). */
  #sentMethods = new Map<string, string>();
  #sentRoutes = new Map<string, string>();
  #samples = 0;
  #lastLeader?: NodeId;
  #broadcastSeq = 0;
  #sinceFullBroadcast = FULL_EVERY;
  #timers: ReturnType<typeof setInterval>[] = [];
  #unsubscribe: (() => void)[] = [];
  readonly #stats = {
    updatesSent: 0,
    updatesReceived: 0,
    snapshotsBroadcast: 0,
    snapshotsReceived: 0,
    malformedMessages: 0,
  };

  constructor(options: MetricsServiceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#history = options.history ?? new MetricsHistory();
  }

  start(): void {
    const o = this.#o;
    o.collector.start();
    this.#unsubscribe.push(
      o.mesh.onMessage(METRICS_CHANNEL, (from, message) => this.receive(from, message)),
      o.mesh.onPeerDown((id) => {
        this.#down.add(id);
        if (this.#leading()) this.#checkStale();
      }),
    );
    const interval = o.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.#timers.push(setInterval(() => this.tick(), interval));
    this.#timers.push(setInterval(() => {
      if (this.#leading()) this.#checkStale();
    }, Math.min(STALE_CHECK_MS, interval)));
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
    for (const off of this.#unsubscribe) off();
    this.#unsubscribe = [];
    this.#o.collector.stop();
    this.#subscribers.clear();
  }

  // ------------------------------------------------------------------------------------------------ view

  snapshot(): ClusterSnapshot | undefined {
    return this.#snapshot;
  }

  local(): NodeMetrics | undefined {
    return this.#local;
  }

  subscribe(listener: (snapshot: ClusterSnapshot) => void): () => void {
    if (this.#subscribers.size >= MAX_SNAPSHOT_SUBSCRIBERS) {
      throw new Error(`at most ${MAX_SNAPSHOT_SUBSCRIBERS} metrics subscribers; unsubscribe one first`);
    }
    this.#subscribers.add(listener);
    return () => this.#subscribers.delete(listener);
  }

  invocations(windowSeconds = 60): InvocationSummary[] {
    return this.#window.invocations(windowSeconds);
  }

  history(query: HistoryQuery): HistoryAnswer {
    return this.#history.query(query, this.#now());
  }

  seriesNames(): string[] {
    return this.#history.names();
  }

  stats(): MetricsServiceStats {
    return {
      leading: this.#leading(),
      samples: this.#samples,
      ...this.#stats,
      history: this.#history.stats(),
      subscribers: this.#subscribers.size,
    };
  }

  // ------------------------------------------------------------------------------------------------ loop

  /** One second: sample, push to the leader (or merge and broadcast when leading). */
  tick(): void {
    const o = this.#o;
    const sample = o.collector.sample();
    this.#local = sample;
    this.#samples++;
    const leader = o.leader()?.nodeId;
    const leaderChanged = leader !== this.#lastLeader;
    this.#lastLeader = leader;
    const full = leaderChanged || this.#samples % FULL_EVERY === 0;
    if (leader === undefined) return;
    if (leader === o.self) {
      this.#table.apply(sample, true, this.#now());
      this.#down.delete(o.self);
      this.#checkStale(false);
      this.#broadcast(leaderChanged);
      return;
    }
    const update = full ? sample : this.#changedOnly(sample);
    if (full) this.#rememberSent(sample);
    if (o.mesh.send(leader, METRICS_CHANNEL, encodeUpdate(update, full))) this.#stats.updatesSent++;
  }

  /** A message on channel "m". */
  receive(from: NodeId, raw: unknown): void {
    let message;
    try {
      message = decodeMessage(raw);
    } catch (e) {
      this.#stats.malformedMessages++;
      this.#o.log.warn("malformed metrics message refused", { from, error: (e as Error).message });
      return;
    }
    if (message.t === "u") {
      if (message.sample.node !== from) {
        this.#stats.malformedMessages++;
        this.#o.log.warn("metrics update for another node refused", { from, node: message.sample.node });
        return;
      }
      if (!this.#leading()) return; // Sent to a former leader: the new one gets the next.
      this.#stats.updatesReceived++;
      this.#down.delete(from);
      this.#table.apply(message.sample, message.full, this.#now());
      return;
    }
    if (message.leader !== from || this.#leading()) return;
    this.#stats.snapshotsReceived++;
    this.#applySnapshot(message);
  }

  #leading(): boolean {
    return this.#o.leader()?.nodeId === this.#o.self;
  }

  /** The leader: marks nodes stale; when any turned stale, broadcasts at once. */
  #checkStale(broadcastChange = true): void {
    const newly = this.#table.markStale(this.#now(), this.#down);
    if (newly.length > 0) {
      this.#o.log.info("metrics: nodes stale (no update)", { nodes: newly.join(",") });
      if (broadcastChange) this.#broadcast(false);
    }
  }

  #broadcast(forceFull: boolean): void {
    const o = this.#o;
    const full = forceFull || ++this.#sinceFullBroadcast >= FULL_EVERY;
    if (full) this.#sinceFullBroadcast = 0;
    const atMs = this.#now();
    const seq = ++this.#broadcastSeq;
    const nodes = this.#table.takeChanges(full).map((n) => ({ sample: n.sample, stale: n.stale }));
    o.mesh.broadcast(METRICS_CHANNEL, encodeSnapshot({ leader: o.self, seq, atMs, full, nodes }));
    this.#stats.snapshotsBroadcast++;
    this.#publish(this.#table.snapshot(o.self, seq, atMs));
  }

  #applySnapshot(message: SnapshotMessage): void {
    const now = this.#now();
    if (message.full) this.#table.retainOnly(new Set(message.nodes.map((n) => n.sample.node)));
    for (const n of message.nodes) {
      this.#table.apply(n.sample, message.full, now, n.stale);
    }
    // Stale flags travel with every relayed node; a node without news keeps its flag.
    this.#publish(this.#table.snapshot(message.leader, message.seq, message.atMs));
  }

  /** A new cluster snapshot on this node: keep it, checkpoint it, record a second of history, tell listeners. */
  #publish(snapshot: ClusterSnapshot): void {
    this.#snapshot = snapshot;
    const nowMs = this.#now();
    const checkpoint = checkpointOf(snapshot, nowMs);
    this.#window.add(checkpoint);
    const second = Math.floor(nowMs / 1000);
    if (this.#lastRecorded === undefined || Math.floor(this.#lastRecorded.atMs / 1000) < second) {
      this.#history.record(second, historyValues(snapshot, checkpoint, this.#lastRecorded));
      this.#lastRecorded = checkpoint;
    }
    for (const listener of this.#subscribers) {
      try {
        listener(snapshot);
      } catch (e) {
        this.#o.log.error("metrics subscriber failed", { error: (e as Error).stack ?? String(e) });
      }
    }
  }

  /** The sample with only the series that changed since the last update carried them. */
  #changedOnly(sample: NodeMetrics): NodeMetrics {
    const methods: MethodMetrics[] = [];
    for (const m of sample.methods) {
      const key = methodKey(m);
      const mark = methodMark(m);
      if (this.#sentMethods.get(key) !== mark) {
        methods.push(m);
        this.#sentMethods.set(key, mark);
      }
    }
    const routes: RouteMetrics[] = [];
    for (const r of sample.routes) {
      const key = routeKey(r);
      const mark = routeMark(r);
      if (this.#sentRoutes.get(key) !== mark) {
        routes.push(r);
        this.#sentRoutes.set(key, mark);
      }
    }
    return { ...sample, methods, routes };
  }

  #rememberSent(sample: NodeMetrics): void {
    this.#sentMethods = new Map(sample.methods.map((m) => [methodKey(m), methodMark(m)]));
    this.#sentRoutes = new Map(sample.routes.map((r) => [routeKey(r), routeMark(r)]));
  }
}

/** What identifies a method series' reading (its counters only grow, so these change with any news). */
function methodMark(m: MethodMetrics): string {
  return `${m.calls}/${m.inFlight}/${errorCount(m)}/${m.latency.count}`;
}

function routeMark(r: RouteMetrics): string {
  return `${r.latency.count}/${Object.values(r.requests).join(",")}`;
}

/**
 * One second of history from a new snapshot: node gauges, and per slice version and method the calls and
 * errors per second and latency quantiles of what happened since the previously recorded checkpoint.
 */
export function historyValues(
  snapshot: ClusterSnapshot,
  now: Checkpoint,
  previous: Checkpoint | undefined,
): Map<string, number> {
  const values = new Map<string, number>();
  for (const n of snapshot.nodes) {
    if (n.stale) continue;
    values.set(`node.cpu:${n.node}`, n.process.cpuShare);
    values.set(`node.rss:${n.node}`, n.process.rssBytes);
    values.set(`node.heap:${n.node}`, n.process.heapUsedBytes);
    values.set(`node.lag:${n.node}`, n.process.eventLoopLagMs);
  }
  if (!previous) return values;
  const seconds = Math.max(0.001, (now.atMs - previous.atMs) / 1000);
  const grouped = new Map<
    string,
    { calls: number; errors: number; latency: ReturnType<typeof histogramDelta> }
  >();
  let clusterCalls = 0;
  let clusterErrors = 0;
  for (const { now: m, then } of seriesDeltas(now, previous)) {
    const name = `${m.artifact}:${m.version}/${m.method}`;
    const calls = Math.max(0, m.calls - (then?.calls ?? 0));
    const errors = Math.max(0, errorCount(m) - (then ? errorCount(then) : 0));
    const latency = histogramDelta(m.latency, then?.latency);
    const g = grouped.get(name);
    if (!g) grouped.set(name, { calls, errors, latency });
    else {
      g.calls += calls;
      g.errors += errors;
      for (let i = 0; i < latency.counts.length; i++) g.latency.counts[i] += latency.counts[i];
      g.latency.count += latency.count;
      g.latency.sumMs += latency.sumMs;
    }
    clusterCalls += calls;
    clusterErrors += errors;
  }
  for (const [name, g] of grouped) {
    values.set(`calls:${name}`, g.calls / seconds);
    values.set(`errors:${name}`, g.errors / seconds);
    if (g.latency.count > 0) {
      values.set(`p50:${name}`, histogramQuantileMs(g.latency, 0.5)!);
      values.set(`p95:${name}`, histogramQuantileMs(g.latency, 0.95)!);
      values.set(`p99:${name}`, histogramQuantileMs(g.latency, 0.99)!);
    }
  }
  values.set("cluster.calls", clusterCalls / seconds);
  values.set("cluster.errors", clusterErrors / seconds);
  return values;
}
