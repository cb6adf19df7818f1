/**
 * The metrics feature of a node: every second it samples itself (collector.ts) and pushes the sample to the
 * leader over mesh channel "m"; the leader merges every node's sample into the cluster table (aggregate.ts),
 * marks nodes it stopped hearing from stale, and broadcasts the table; every node keeps the latest cluster
 * snapshot, the recent checkpoints for windowed figures (window.ts) and two hours of history (history.ts).
 * Nothing about metrics touches the KV store.
 *
 * Traffic: a node's update and the leader's broadcast carry only the series that changed since the previous
 * message, and everything every FULL_EVERY-th second, on a change of leader, and (the broadcast) when a peer
 * connects, so an idle slice costs nothing on the wire, a node that (re)joins gets the whole picture at once,
 * and anything lost otherwise (the mesh is ordered and reliable per connection) is repaired within FULL_EVERY s.
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
import { type Checkpoint, RecentWindow } from "./window.ts";
import { MetricsHistory } from "./history.ts";
import { histogramQuantileMs } from "../core/mod.ts";
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
export const FULL_EVERY = 30;
const STALE_CHECK_MS = 250;
/** Subscribers to new snapshots at most (the dashboard feed, alerts, the controller, ...). */
export const MAX_SNAPSHOT_SUBSCRIBERS = 1_000;

/** The mesh as the metrics feature uses it. */
export interface MetricsMesh {
  onMessage(channel: string, handler: (from: NodeId, message: unknown) => void): () => void;
  send(to: NodeId, channel: string, message: unknown): boolean;
  broadcast(channel: string, message: unknown): NodeId[];
  onPeerDown(handler: (id: NodeId, reason: string) => void): () => void;
  onPeerUp(handler: (id: NodeId) => void): () => void;
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
  /** The latest snapshot's leader, seq and time; the snapshot itself is built when first asked for. */
  #snapshotMeta?: { leader: NodeId; seq: number; atMs: number };
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
      o.mesh.onPeerUp((id) => {
        this.#down.delete(id);
        // The peer may have missed changes while it was away (or be new): the next broadcast is whole.
        this.#sinceFullBroadcast = FULL_EVERY;
        this.#forgetSent();
      }),
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
    const meta = this.#snapshotMeta;
    if (this.#snapshot === undefined && meta !== undefined) {
      // Built on demand (once per new snapshot): a node nobody asks spends nothing on merging.
      this.#snapshot = this.#table.snapshot(meta.leader, meta.seq, meta.atMs);
    }
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
    // Only what changed, like every node's update: the leader relays the series its table saw change.
    const update = full ? sample : this.#changedOnly(sample);
    if (full) this.#rememberSent(sample);
    if (leader === o.self) {
      this.#table.apply(update, full, this.#now());
      this.#down.delete(o.self);
      this.#checkStale(false);
      this.#broadcast(leaderChanged);
      return;
    }
    if (o.mesh.send(leader, METRICS_CHANNEL, encodeUpdate(update, full))) this.#stats.updatesSent++;
    // Not sent (the leader unreachable right now): everything goes in the next update.
    else this.#forgetSent();
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
    this.#publish(o.self, seq, atMs);
  }

  #applySnapshot(message: SnapshotMessage): void {
    const now = this.#now();
    if (message.full) this.#table.retainOnly(new Set(message.nodes.map((n) => n.sample.node)));
    for (const n of message.nodes) {
      this.#table.apply(n.sample, message.full, now, n.stale);
    }
    // Stale flags travel with every relayed node; a node without news keeps its flag.
    this.#publish(message.leader, message.seq, message.atMs);
  }

  /** A new cluster snapshot on this node: checkpoint it, record a second of history, tell listeners. */
  #publish(leader: NodeId, seq: number, atMs: number): void {
    this.#snapshotMeta = { leader, seq, atMs };
    this.#snapshot = undefined;
    const nowMs = this.#now();
    const checkpoint: Checkpoint = { atMs: nowMs, nodes: this.#table.liveSeries() };
    this.#window.add(checkpoint);
    const second = Math.floor(nowMs / 1000);
    if (this.#lastRecorded === undefined || Math.floor(this.#lastRecorded.atMs / 1000) < second) {
      this.#history.record(second, historyValues(this.#table.nodes(), checkpoint, this.#lastRecorded));
      this.#lastRecorded = checkpoint;
    }
    if (this.#subscribers.size === 0) return;
    const snapshot = this.snapshot()!;
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

  #forgetSent(): void {
    this.#sentMethods.clear();
    this.#sentRoutes.clear();
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

interface SeriesNames {
  calls: string;
  errors: string;
  p50: string;
  p95: string;
  p99: string;
}

/** History names by series key (`g:a:v method` → `calls:g:a:v/method`, ...), so a second builds no strings. */
const historyNames = new Map<string, SeriesNames>();
const MAX_CACHED_NAMES = 50_000;

function historyNamesOf(key: string): SeriesNames {
  let names = historyNames.get(key);
  if (names === undefined) {
    if (historyNames.size >= MAX_CACHED_NAMES) historyNames.clear();
    const name = key.replace(" ", "/");
    names = {
      calls: `calls:${name}`,
      errors: `errors:${name}`,
      p50: `p50:${name}`,
      p95: `p95:${name}`,
      p99: `p99:${name}`,
    };
    historyNames.set(key, names);
  }
  return names;
}

interface SecondOf {
  calls: number;
  errors: number;
  /** Allocated once a series of the group changed this second. */
  counts?: number[];
  sumMs: number;
  count: number;
}

/**
 * One second of history: node gauges of the live nodes, and per slice version and method the calls and errors
 * per second and latency quantiles of what happened since the previously recorded checkpoint. A series that
 * is the same object in both checkpoints did not change (updates replace series, never edit them): it adds
 * nothing, so a quiet cluster costs a map lookup per series.
 */
export function historyValues(
  nodes: Iterable<{ sample: NodeMetrics; stale: boolean }>,
  now: Checkpoint,
  previous: Checkpoint | undefined,
): Map<string, number> {
  const values = new Map<string, number>();
  for (const { sample: n, stale } of nodes) {
    if (stale) continue;
    values.set(`node.cpu:${n.node}`, n.process.cpuShare);
    values.set(`node.rss:${n.node}`, n.process.rssBytes);
    values.set(`node.heap:${n.node}`, n.process.heapUsedBytes);
    values.set(`node.lag:${n.node}`, n.process.eventLoopLagMs);
  }
  if (!previous) return values;
  const seconds = Math.max(0.001, (now.atMs - previous.atMs) / 1000);
  const groups = new Map<string, SecondOf>();
  let clusterCalls = 0;
  let clusterErrors = 0;
  for (const [node, current] of now.nodes) {
    const old = previous.nodes.get(node);
    const sameRun = old !== undefined && old.startedAtMs === current.startedAtMs;
    for (const [key, m] of current.methods) {
      let g = groups.get(key);
      if (g === undefined) {
        g = { calls: 0, errors: 0, sumMs: 0, count: 0 };
        groups.set(key, g);
      }
      const then = sameRun ? old.methods.get(key) : undefined;
      if (then === m) continue;
      const calls = Math.max(0, m.calls - (then?.calls ?? 0));
      const errors = Math.max(0, errorCount(m) - (then ? errorCount(then) : 0));
      g.calls += calls;
      g.errors += errors;
      clusterCalls += calls;
      clusterErrors += errors;
      const count = m.latency.count - (then?.latency.count ?? 0);
      if (count <= 0) continue;
      const counts = g.counts ??= new Array(m.latency.counts.length).fill(0);
      for (let i = 0; i < counts.length; i++) {
        counts[i] += Math.max(0, m.latency.counts[i] - (then?.latency.counts[i] ?? 0));
      }
      g.count += count;
      g.sumMs += m.latency.sumMs - (then?.latency.sumMs ?? 0);
    }
  }
  for (const [key, g] of groups) {
    const names = historyNamesOf(key);
    values.set(names.calls, g.calls / seconds);
    values.set(names.errors, g.errors / seconds);
    if (g.counts !== undefined && g.count > 0) {
      const h = { counts: g.counts, sumMs: g.sumMs, count: g.count };
      values.set(names.p50, histogramQuantileMs(h, 0.5)!);
      values.set(names.p95, histogramQuantileMs(h, 0.95)!);
      values.set(names.p99, histogramQuantileMs(h, 0.99)!);
    }
  }
  values.set("cluster.calls", clusterCalls / seconds);
  values.set("cluster.errors", clusterErrors / seconds);
  return values;
}
