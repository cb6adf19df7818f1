/**
 * The node's own sample, taken once a second: the node process (CPU, memory, event-loop lag), its slice
 * instances, the method and route series the recorders hold, consensus and the mesh peers.
 *
 * Nothing here runs per call: the invoker and the HTTP router record into core's MetricsRecorder (a counter
 * and a histogram bucket per call), and sandbox processes report their own CPU time and memory on the host's
 * periodic liveness ping (the instances' `usage`), so reading a second's worth is a walk over the tables.
 */

import process from "node:process";
import { type HistogramData, type LatencyHistogram, type MetricsRecorder, type NodeId } from "../core/mod.ts";
import type {
  AspectMetrics,
  CacheMetrics,
  ConsensusMetrics,
  InstanceMetrics,
  MethodMetrics,
  NodeMetrics,
  OutboundMetrics,
  PeerMetrics,
  ProcessMetrics,
  RouteMetrics,
  TopicMetrics,
} from "./types.ts";

/** An instance as the collector needs it (the deployment's executor has these). */
export interface InstanceSource {
  instanceId: string;
  coordinates: string;
  state: string;
  pid?: number;
  /** The sandbox process's own report (process isolation): CPU time and resident memory. */
  usage?: { cpuMs: number; rssBytes: number };
}

/** Mesh peers as the collector needs them (net's PeerStats has these). */
export interface PeerSource {
  id: NodeId;
  connected: boolean;
  rttMs: number | undefined;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
  queuedBytes: number;
}

export interface CollectorSources {
  self: NodeId;
  /** Absent: method and route series are not recorded (`--metrics off`). */
  recorder?: MetricsRecorder;
  instances?(): readonly InstanceSource[];
  peers?(): readonly PeerSource[];
  consensus?(): Omit<ConsensusMetrics, "commitLatency">;
  /** Latency of this node's KV writes, from submit until applied. */
  commitLatency?: LatencyHistogram;
  /** The cache service's counters per cache on this node (runtime/infra-host cacheStats). */
  caches?(): readonly CacheMetrics[];
  /** The outbound HTTP client's series on this node (runtime/infra-host http_client.ts). */
  outbound?(): readonly OutboundMetrics[];
  /** Dynamic aspects' size figures on this node (runtime/infra-host aspects.ts). */
  aspects?(): readonly AspectMetrics[];
  /** Pub/sub lag per (topic, consumer group) (runtime/infra-host pubsub_service.ts). */
  topics?(): readonly TopicMetrics[];
  /** Epoch ms. */
  now?: () => number;
}

const LAG_PROBE_MS = 100;
/** Caches one sample carries (the busiest by hits + misses): bounds the message and the Prometheus series. */
export const MAX_CACHE_SERIES = 100;
/** Outbound (group, host) series one sample carries (the busiest by requests). */
export const MAX_OUTBOUND_SERIES = 100;
/** (topic, consumer group) series one sample carries (the largest lag first). */
export const MAX_TOPIC_SERIES = 200;
/** Aspect series one sample carries (the busiest by calls). */
export const MAX_ASPECT_SERIES = 100;

export class Collector {
  readonly startedAtMs: number;
  readonly #sources: CollectorSources;
  readonly #now: () => number;
  #seq = 0;
  #lastCpuMicros: number;
  #lastAtMs: number;
  #worstLagMs = 0;
  #lagTimer?: ReturnType<typeof setInterval>;
  #lagExpected = 0;
  readonly #instanceCpu = new Map<string, { cpuMs: number; atMs: number; share: number }>();

  constructor(sources: CollectorSources) {
    this.#sources = sources;
    this.#now = sources.now ?? Date.now;
    this.startedAtMs = this.#now();
    this.#lastAtMs = performance.now();
    this.#lastCpuMicros = cpuMicros();
  }

  /** Starts the event-loop lag probe (a timer every 100 ms that measures how late it fires). */
  start(): void {
    if (this.#lagTimer !== undefined) return;
    this.#lagExpected = performance.now() + LAG_PROBE_MS;
    this.#lagTimer = setInterval(() => {
      const now = performance.now();
      const late = Math.max(0, now - this.#lagExpected);
      if (late > this.#worstLagMs) this.#worstLagMs = late;
      this.#lagExpected = now + LAG_PROBE_MS;
    }, LAG_PROBE_MS);
    Deno.unrefTimer(this.#lagTimer);
  }

  stop(): void {
    if (this.#lagTimer !== undefined) clearInterval(this.#lagTimer);
    this.#lagTimer = undefined;
  }

  /** Takes the node's sample now. */
  sample(): NodeMetrics {
    const sources = this.#sources;
    return {
      node: sources.self,
      atMs: this.#now(),
      seq: ++this.#seq,
      startedAtMs: this.startedAtMs,
      process: this.#process(),
      instances: this.#instances(),
      methods: sources.recorder ? methodsOf(sources.recorder) : [],
      routes: sources.recorder ? routesOf(sources.recorder) : [],
      consensus: {
        ...(sources.consensus?.() ??
          {
            phases: 0,
            batches: 0,
            commands: 0,
            forwardedWrites: 0,
            servedForwardedWrites: 0,
            pendingBatches: 0,
          }),
        commitLatency: sources.commitLatency?.data() ?? { counts: [], sumMs: 0, count: 0 },
      },
      mesh: (sources.peers?.() ?? []).map(peerOf),
      ...(sources.caches ? { caches: cachesOf(sources.caches()) } : {}),
      ...(sources.outbound
        ? { outbound: busiest(sources.outbound(), MAX_OUTBOUND_SERIES, (o) => o.requests) }
        : {}),
      ...(sources.aspects ? { aspects: busiest(sources.aspects(), MAX_ASPECT_SERIES, (a) => a.calls) } : {}),
      ...(sources.topics ? { topics: busiest(sources.topics(), MAX_TOPIC_SERIES, (t) => t.lag) } : {}),
    };
  }

  #process(): ProcessMetrics {
    const atMs = performance.now();
    const micros = cpuMicros();
    const elapsedMs = atMs - this.#lastAtMs;
    const share = elapsedMs > 0 ? (micros - this.#lastCpuMicros) / 1000 / elapsedMs : 0;
    this.#lastAtMs = atMs;
    this.#lastCpuMicros = micros;
    const memory = Deno.memoryUsage();
    const lag = this.#worstLagMs;
    this.#worstLagMs = 0;
    return {
      cpuShare: Math.max(0, share),
      cpuSecondsTotal: micros / 1e6,
      rssBytes: memory.rss,
      heapUsedBytes: memory.heapUsed,
      heapTotalBytes: memory.heapTotal,
      eventLoopLagMs: lag,
    };
  }

  #instances(): InstanceMetrics[] {
    const list = this.#sources.instances?.() ?? [];
    const seen = new Set<string>();
    const out: InstanceMetrics[] = [];
    for (const i of list) {
      seen.add(i.instanceId);
      const m: InstanceMetrics = { instanceId: i.instanceId, coordinates: i.coordinates, state: i.state };
      if (i.pid !== undefined) m.pid = i.pid;
      if (i.usage) {
        m.cpuSecondsTotal = i.usage.cpuMs / 1000;
        m.rssBytes = i.usage.rssBytes;
        m.cpuShare = this.#instanceShare(i.instanceId, i.usage.cpuMs);
      }
      out.push(m);
    }
    for (const id of this.#instanceCpu.keys()) if (!seen.has(id)) this.#instanceCpu.delete(id);
    return out;
  }

  /** CPU share of an instance between its two latest different reports (they come every few seconds). */
  #instanceShare(id: string, cpuMs: number): number {
    const atMs = performance.now();
    const last = this.#instanceCpu.get(id);
    if (!last) {
      this.#instanceCpu.set(id, { cpuMs, atMs, share: 0 });
      return 0;
    }
    if (cpuMs === last.cpuMs) return last.share;
    const share = atMs > last.atMs ? Math.max(0, cpuMs - last.cpuMs) / (atMs - last.atMs) : 0;
    this.#instanceCpu.set(id, { cpuMs, atMs, share });
    return share;
  }
}

/** CPU time (user + system) of this process, microseconds. */
function cpuMicros(): number {
  const usage = process.cpuUsage();
  return usage.user + usage.system;
}

function methodsOf(recorder: MetricsRecorder): MethodMetrics[] {
  const out: MethodMetrics[] = [];
  for (const s of recorder.methods()) {
    const last = s.coordinates.lastIndexOf(":");
    out.push({
      artifact: last < 0 ? s.coordinates : s.coordinates.slice(0, last),
      version: last < 0 ? "" : s.coordinates.slice(last + 1),
      method: s.method,
      calls: s.calls,
      errors: Object.fromEntries(s.errors),
      inFlight: s.inFlight,
      latency: s.latency.data(),
    });
  }
  return out;
}

const CLASSES = ["", "1xx", "2xx", "3xx", "4xx", "5xx"];

function routesOf(recorder: MetricsRecorder): RouteMetrics[] {
  const out: RouteMetrics[] = [];
  for (const s of recorder.routes()) {
    const requests: Record<string, number> = {};
    for (let c = 1; c <= 5; c++) if (s.byClass[c] > 0) requests[CLASSES[c]] = s.byClass[c];
    out.push({ httpMethod: s.httpMethod, route: s.route, requests, latency: s.latency.data() });
  }
  return out;
}

/** At most `max` of `all`, the largest by `weight` (copies: the sample must not change under the sender). */
function busiest<T extends object>(all: readonly T[], max: number, weight: (t: T) => number): T[] {
  const picked = all.length <= max ? all : [...all].sort((a, b) => weight(b) - weight(a)).slice(0, max);
  return picked.map((t) => ({ ...t }));
}

function cachesOf(all: readonly CacheMetrics[]): CacheMetrics[] {
  const pick = (c: CacheMetrics): CacheMetrics => ({
    cache: c.cache,
    hits: c.hits,
    misses: c.misses,
    evictions: c.evictions,
    entries: c.entries,
    bytes: c.bytes,
  });
  if (all.length <= MAX_CACHE_SERIES) return all.map(pick);
  return [...all].sort((a, b) => b.hits + b.misses - a.hits - a.misses).slice(0, MAX_CACHE_SERIES).map(pick);
}

function peerOf(p: PeerSource): PeerMetrics {
  const out: PeerMetrics = {
    peer: p.id,
    connected: p.connected,
    bytesIn: p.bytesIn,
    bytesOut: p.bytesOut,
    messagesIn: p.messagesIn,
    messagesOut: p.messagesOut,
    queuedBytes: p.queuedBytes,
  };
  if (p.rttMs !== undefined) out.rttMs = Math.round(p.rttMs * 1000) / 1000;
  return out;
}

/** Whether two histograms hold the same readings (a series unchanged since the last message). */
export function sameHistogram(a: HistogramData, b: HistogramData): boolean {
  return a.count === b.count && a.sumMs === b.sumMs;
}
