/**
 * The metrics contract: what a node samples every second, the cluster snapshot the leader merges and
 * broadcasts, the history window, and the view the rest of the runtime (API, controller, rollouts, dashboard)
 * reads. Every counter here only grows while its node lives; rates come from two readings (see `invocations`
 * and the history). Times are epoch milliseconds unless a name says otherwise.
 */

import type { HistogramData, NodeId } from "../core/mod.ts";

/** The node process itself, sampled every second. */
export interface ProcessMetrics {
  /** Share of one CPU core the node process used over the last second (1 = one core busy). */
  cpuShare: number;
  /** CPU time the node process used since it started (user + system), seconds. */
  cpuSecondsTotal: number;
  rssBytes: number;
  heapUsedBytes: number;
  heapTotalBytes: number;
  /** How late a 100 ms timer fired, worst over the last second (event-loop lag), ms. */
  eventLoopLagMs: number;
}

/** One slice instance on a node. CPU and memory only under process isolation (a Worker is a node thread). */
export interface InstanceMetrics {
  /** The executor's id: `group:artifact:version/n`. */
  instanceId: string;
  /** `group:artifact:version`. */
  coordinates: string;
  state: string;
  /** The sandbox process (process isolation only). */
  pid?: number;
  cpuShare?: number;
  cpuSecondsTotal?: number;
  rssBytes?: number;
}

/** Calls of one method of one slice version, on one node (or merged over nodes). */
export interface MethodMetrics {
  /** `group:artifact` (without version). */
  artifact: string;
  version: string;
  method: string;
  /** Calls that ended (answered, failed or errored). */
  calls: number;
  /** Calls that ended in an error, by kind: `slice_error` (the slice threw), or the runtime's failure kind
   * (`deadline`, `crashed_by_call`, `instance_crashed`, `not_active`, `overloaded`, `rejected`, ...). */
  errors: Record<string, number>;
  inFlight: number;
  /** Fixed buckets (core's LATENCY_BOUNDS_MS): merges exactly by adding counts. */
  latency: HistogramData;
}

/** Requests of one application HTTP route (its template, never a raw path). */
export interface RouteMetrics {
  httpMethod: string;
  /** The route template (`/api/orders/{id}`), or `_unmatched` (404/405), or `_other` (over the bound). */
  route: string;
  /** Requests by status class: `"2xx"`, `"4xx"`, ... */
  requests: Record<string, number>;
  latency: HistogramData;
}

/** Consensus on this member (counters since it started). */
export interface ConsensusMetrics {
  /** Phases decided (with or without a batch). */
  phases: number;
  /** Phases that decided a batch of commands, and the commands in them (mean batch size = commands/batches). */
  batches: number;
  commands: number;
  /** KV writes this node submitted, from submit until applied here, ms. */
  commitLatency: HistogramData;
  /** Writes this member forwarded to the leader's batches, and served for others. */
  forwardedWrites: number;
  servedForwardedWrites: number;
  pendingBatches: number;
}

/** The mesh connection to one peer, as this node sees it. */
export interface PeerMetrics {
  peer: NodeId;
  connected: boolean;
  /** Smoothed heartbeat round trip, ms (absent before the first pong). */
  rttMs?: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  /** Bytes waiting in the outgoing queue now. */
  queuedBytes: number;
}

/**
 * One named cache of the cache service on one node (or summed over nodes): `{group}/{cache}`. Counters grow
 * while the node lives; entries and bytes are what the node's LRU index tracks now (keys put through it).
 */
export interface CacheMetrics {
  cache: string;
  hits: number;
  misses: number;
  evictions: number;
  entries: number;
  bytes: number;
}

/**
 * The outbound HTTP client (runtime/infra-host/http_client.ts) for one calling group and one `host:port` on
 * one node: counters since the node started, the circuit breaker's state now, the attempts' latency.
 */
export interface OutboundMetrics {
  group: string;
  host: string;
  requests: number;
  failures: number;
  retries: number;
  /** Calls refused at once because the circuit was open. */
  rejected: number;
  circuit: "closed" | "open" | "half-open";
  latency: HistogramData;
}

/**
 * What a dynamic aspect in `metrics` mode adds for one slice method on one node (runtime/infra-host/aspects.ts),
 * beyond the per-method calls, errors and latency always recorded: the sizes of arguments and results (JSON
 * bytes), counted while the mode is on.
 */
export interface AspectMetrics {
  /** `group:artifact`. */
  slice: string;
  method: string;
  calls: number;
  errors: number;
  argumentBytes: number;
  resultBytes: number;
  maxArgumentBytes: number;
  maxResultBytes: number;
}

/**
 * One consumer group of one pub/sub topic (runtime/infra-host/pubsub_service.ts) as a node's replica of the
 * consensus KV shows it: messages retained and not yet handled (delivered or dead-lettered), over all
 * partitions. Every node computes it from the same records; the snapshot keeps the largest.
 */
export interface TopicMetrics {
  /** `{group}/{topic}`. */
  topic: string;
  consumerGroup: string;
  lag: number;
}

/** One node's sample: what it pushes to the leader every second. */
export interface NodeMetrics {
  node: NodeId;
  /** When the node took the sample (its clock). */
  atMs: number;
  /** Increments with every sample the node takes (a node restart starts again at 1). */
  seq: number;
  /** When the node process started (a change means a restart: its counters started again from 0). */
  startedAtMs: number;
  process: ProcessMetrics;
  instances: InstanceMetrics[];
  methods: MethodMetrics[];
  routes: RouteMetrics[];
  consensus: ConsensusMetrics;
  mesh: PeerMetrics[];
  /** The caches this node served (at most MAX_CACHE_SERIES, the busiest); absent without the service. */
  caches?: CacheMetrics[];
  /** Outbound HTTP per (group, host) on this node (at most MAX_OUTBOUND_SERIES, the busiest). */
  outbound?: OutboundMetrics[];
  /** Dynamic aspects' size figures per slice method (at most MAX_ASPECT_SERIES). */
  aspects?: AspectMetrics[];
  /** Pub/sub lag per (topic, consumer group) (at most MAX_TOPIC_SERIES, the largest lag). */
  topics?: TopicMetrics[];
}

/** A node in the cluster snapshot. */
export interface NodeEntry extends NodeMetrics {
  /** No update reached the leader for STALE_AFTER_MS: left out of every merged figure. */
  stale: boolean;
  /** When the leader last heard from it (the leader's clock). */
  lastSeenMs: number;
}

/** One slice version merged over the live (non-stale) nodes. */
export interface SliceMetrics {
  /** `group:artifact`. */
  artifact: string;
  version: string;
  methods: MergedMethodMetrics[];
}

export interface MergedMethodMetrics extends Omit<MethodMetrics, "artifact" | "version"> {
  /** The same figures per live node that ran calls of it. */
  nodes: Record<NodeId, { calls: number; errors: number; inFlight: number }>;
}

/** The whole cluster, as merged by the leader and broadcast every second; every node holds the latest. */
export interface ClusterSnapshot {
  /** When the leader merged it (the leader's clock). */
  atMs: number;
  leader: NodeId;
  /** Increments with every snapshot this leader broadcasts. */
  seq: number;
  /** Every node the leader heard from, stale ones flagged. */
  nodes: NodeEntry[];
  /** Merged over the non-stale nodes, by slice version, sorted. */
  slices: SliceMetrics[];
  /** Each cache's counters summed over the non-stale nodes, sorted by name. */
  caches?: CacheMetrics[];
  /** Each (topic, consumer group)'s lag: the largest any non-stale node reports, sorted. */
  topics?: TopicMetrics[];
}

/** Per slice version and method over a recent window: what `GET /api/v1/invocations` answers. */
export interface InvocationSummary {
  artifact: string;
  version: string;
  method: string;
  /** Calls per second over the window. */
  rate: number;
  /** Share of calls that ended in an error over the window (0..1; 0 without calls). */
  errorRate: number;
  /** Latency quantiles over the window, ms (absent without calls). */
  p50Ms?: number;
  p95Ms?: number;
  p99Ms?: number;
  /** Totals since each node started. */
  calls: number;
  errors: number;
  inFlight: number;
  nodes: Record<NodeId, { rate: number; errorRate: number; p99Ms?: number; calls: number }>;
}

/** A query of the history window. */
export interface HistoryQuery {
  /** Series names (see `seriesNames` / HISTORY_SERIES in history.ts); empty = every series. */
  series: readonly string[];
  /** Epoch ms; default 15 minutes ago. */
  fromMs?: number;
  /** Epoch ms; default now. */
  toMs?: number;
  /** Seconds between points (1 within the last 15 minutes, multiples of 10 beyond); default the finest kept. */
  stepSeconds?: number;
}

export interface HistorySeries {
  name: string;
  /** `[epoch ms, value]`, oldest first; value null where nothing was recorded. */
  points: [number, number | null][];
}

export interface HistoryAnswer {
  fromMs: number;
  toMs: number;
  stepSeconds: number;
  series: HistorySeries[];
}

/** What other features read: the API, the controller, rollouts, alerts, the dashboard feed. */
export interface MetricsView {
  /** The latest cluster snapshot this node holds (the leader's own merge on the leader); undefined at first. */
  snapshot(): ClusterSnapshot | undefined;
  /** This node's latest own sample. */
  local(): NodeMetrics | undefined;
  /** Called with every new cluster snapshot this node receives (about once a second). Returns unsubscribe. */
  subscribe(listener: (snapshot: ClusterSnapshot) => void): () => void;
  /** Per slice version and method over the last `windowSeconds` (default 60), from this node's history. */
  invocations(windowSeconds?: number): InvocationSummary[];
  /** Points of the named series (the history this node keeps: 2 h). Throws AetherError bad_request. */
  history(query: HistoryQuery): HistoryAnswer;
  /** Names of the series the history holds now. */
  seriesNames(): string[];
}
