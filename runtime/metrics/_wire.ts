/**
 * The metrics messages on mesh channel "m", compact: series travel as arrays, histograms as their non-zero
 * buckets only (`[index, count, index, count, ...]`), and a series only when it changed since the sender's
 * previous message (plus in full every few seconds; see aggregate.ts).
 *
 * - `u` (node → leader, every second): the node's sample.
 * - `s` (leader → every node, every second): each node's sample as the leader holds it, with its stale flag.
 *
 * Peers are authenticated, but a message is still checked before it touches a table: a malformed one is
 * refused with an error naming the field (and logged by the receiver), never half applied.
 */

import { type HistogramData, LATENCY_BUCKETS, type NodeId } from "../core/mod.ts";
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

export const METRICS_CHANNEL = "m";

type WireHistogram = [sumMs: number, count: number, buckets: number[]];
type WireMethod = [
  artifact: string,
  version: string,
  method: string,
  calls: number,
  errors: Record<string, number>,
  inFlight: number,
  latency: WireHistogram,
];
type WireRoute = [
  httpMethod: string,
  route: string,
  requests: Record<string, number>,
  latency: WireHistogram,
];

interface WireSample {
  n: NodeId;
  at: number;
  q: number;
  st: number;
  p: ProcessMetrics;
  i: InstanceMetrics[];
  m: WireMethod[];
  r: WireRoute[];
  c: Omit<ConsensusMetrics, "commitLatency"> & { commitLatency: WireHistogram };
  x: PeerMetrics[];
  /** Caches: [name, hits, misses, evictions, entries, bytes]. */
  k?: [string, number, number, number, number, number][];
  /** Outbound HTTP: [group, host, requests, failures, retries, rejected, circuit, latency]. */
  o?: [string, string, number, number, number, number, string, WireHistogram][];
  /** Aspects: [slice, method, calls, errors, argumentBytes, resultBytes, maxArgumentBytes, maxResultBytes]. */
  a?: [string, string, number, number, number, number, number, number][];
  tp?: [string, string, number][];
}

export interface UpdateMessage {
  t: "u";
  full: boolean;
  sample: NodeMetrics;
}

export interface RelayedNode {
  sample: NodeMetrics;
  stale: boolean;
}

export interface SnapshotMessage {
  t: "s";
  leader: NodeId;
  seq: number;
  atMs: number;
  full: boolean;
  nodes: RelayedNode[];
}

export type MetricsMessage = UpdateMessage | SnapshotMessage;

export function encodeUpdate(sample: NodeMetrics, full: boolean): unknown {
  return { t: "u", f: full ? 1 : 0, s: encodeSample(sample) };
}

export function encodeSnapshot(m: Omit<SnapshotMessage, "t">): unknown {
  return {
    t: "s",
    l: m.leader,
    q: m.seq,
    at: m.atMs,
    f: m.full ? 1 : 0,
    n: m.nodes.map((r) => [r.stale ? 1 : 0, encodeSample(r.sample)]),
  };
}

/** Decodes and checks a message; throws an Error naming what was wrong. */
export function decodeMessage(raw: unknown): MetricsMessage {
  const m = record(raw, "message");
  if (m.t === "u") return { t: "u", full: m.f === 1, sample: decodeSample(m.s, "update") };
  if (m.t === "s") {
    const nodes = array(m.n, "snapshot.n").map((entry, i) => {
      const pair = array(entry, `snapshot.n[${i}]`);
      return { stale: pair[0] === 1, sample: decodeSample(pair[1], `snapshot.n[${i}]`) };
    });
    return {
      t: "s",
      leader: str(m.l, "snapshot.l"),
      seq: num(m.q, "snapshot.q"),
      atMs: num(m.at, "snapshot.at"),
      full: m.f === 1,
      nodes,
    };
  }
  throw new Error(`message.t: expected "u" or "s", got ${JSON.stringify(m.t)}`);
}

function encodeSample(s: NodeMetrics): WireSample {
  return {
    n: s.node,
    at: s.atMs,
    q: s.seq,
    st: s.startedAtMs,
    p: s.process,
    i: s.instances,
    m: s.methods.map((
      m,
    ) => [m.artifact, m.version, m.method, m.calls, m.errors, m.inFlight, encodeHist(m.latency)]),
    r: s.routes.map((r) => [r.httpMethod, r.route, r.requests, encodeHist(r.latency)]),
    c: { ...s.consensus, commitLatency: encodeHist(s.consensus.commitLatency) },
    x: s.mesh,
    ...(s.caches
      ? { k: s.caches.map((c) => [c.cache, c.hits, c.misses, c.evictions, c.entries, c.bytes]) }
      : {}),
    ...(s.outbound
      ? {
        o: s.outbound.map((
          o,
        ) => [
          o.group,
          o.host,
          o.requests,
          o.failures,
          o.retries,
          o.rejected,
          o.circuit,
          encodeHist(o.latency),
        ]),
      }
      : {}),
    ...(s.topics ? { tp: s.topics.map((t) => [t.topic, t.consumerGroup, t.lag]) } : {}),
    ...(s.aspects
      ? {
        a: s.aspects.map((a) => [
          a.slice,
          a.method,
          a.calls,
          a.errors,
          a.argumentBytes,
          a.resultBytes,
          a.maxArgumentBytes,
          a.maxResultBytes,
        ]),
      }
      : {}),
  };
}

function decodeSample(raw: unknown, where: string): NodeMetrics {
  const s = record(raw, where);
  const c = record(s.c, `${where}.c`);
  const p = record(s.p, `${where}.p`);
  return {
    node: str(s.n, `${where}.n`),
    atMs: num(s.at, `${where}.at`),
    seq: num(s.q, `${where}.q`),
    startedAtMs: num(s.st, `${where}.st`),
    process: {
      cpuShare: num(p.cpuShare, `${where}.p.cpuShare`),
      cpuSecondsTotal: num(p.cpuSecondsTotal, `${where}.p.cpuSecondsTotal`),
      rssBytes: num(p.rssBytes, `${where}.p.rssBytes`),
      heapUsedBytes: num(p.heapUsedBytes, `${where}.p.heapUsedBytes`),
      heapTotalBytes: num(p.heapTotalBytes, `${where}.p.heapTotalBytes`),
      eventLoopLagMs: num(p.eventLoopLagMs, `${where}.p.eventLoopLagMs`),
    },
    instances: array(s.i, `${where}.i`).map((x, i) => decodeInstance(x, `${where}.i[${i}]`)),
    methods: array(s.m, `${where}.m`).map((x, i) => decodeMethod(x, `${where}.m[${i}]`)),
    routes: array(s.r, `${where}.r`).map((x, i) => decodeRoute(x, `${where}.r[${i}]`)),
    consensus: {
      phases: num(c.phases, `${where}.c.phases`),
      batches: num(c.batches, `${where}.c.batches`),
      commands: num(c.commands, `${where}.c.commands`),
      commitLatency: decodeHist(c.commitLatency, `${where}.c.commitLatency`),
      forwardedWrites: num(c.forwardedWrites, `${where}.c.forwardedWrites`),
      servedForwardedWrites: num(c.servedForwardedWrites, `${where}.c.servedForwardedWrites`),
      pendingBatches: num(c.pendingBatches, `${where}.c.pendingBatches`),
    },
    mesh: array(s.x, `${where}.x`).map((x, i) => decodePeer(x, `${where}.x[${i}]`)),
    ...(s.k === undefined
      ? {}
      : { caches: array(s.k, `${where}.k`).map((x, i) => decodeCache(x, `${where}.k[${i}]`)) }),
    ...(s.o === undefined
      ? {}
      : { outbound: array(s.o, `${where}.o`).map((x, i) => decodeOutbound(x, `${where}.o[${i}]`)) }),
    ...(s.a === undefined
      ? {}
      : { aspects: array(s.a, `${where}.a`).map((x, i) => decodeAspect(x, `${where}.a[${i}]`)) }),
    ...(s.tp === undefined
      ? {}
      : { topics: array(s.tp, `${where}.tp`).map((x, i) => decodeTopic(x, `${where}.tp[${i}]`)) }),
  };
}

function decodeTopic(raw: unknown, where: string): TopicMetrics {
  const r = array(raw, where);
  return {
    topic: str(r[0], `${where}[0]`),
    consumerGroup: str(r[1], `${where}[1]`),
    lag: num(r[2], `${where}[2]`),
  };
}

const CIRCUITS = ["closed", "open", "half-open"] as const;

function decodeOutbound(raw: unknown, where: string): OutboundMetrics {
  const r = array(raw, where);
  const circuit = str(r[6], `${where}[6]`);
  if (!(CIRCUITS as readonly string[]).includes(circuit)) {
    throw new Error(`${where}[6]: expected closed, open or half-open, got ${JSON.stringify(circuit)}`);
  }
  return {
    group: str(r[0], `${where}[0]`),
    host: str(r[1], `${where}[1]`),
    requests: num(r[2], `${where}[2]`),
    failures: num(r[3], `${where}[3]`),
    retries: num(r[4], `${where}[4]`),
    rejected: num(r[5], `${where}[5]`),
    circuit: circuit as OutboundMetrics["circuit"],
    latency: decodeHist(r[7], `${where}[7]`),
  };
}

function decodeAspect(raw: unknown, where: string): AspectMetrics {
  const r = array(raw, where);
  return {
    slice: str(r[0], `${where}[0]`),
    method: str(r[1], `${where}[1]`),
    calls: num(r[2], `${where}[2]`),
    errors: num(r[3], `${where}[3]`),
    argumentBytes: num(r[4], `${where}[4]`),
    resultBytes: num(r[5], `${where}[5]`),
    maxArgumentBytes: num(r[6], `${where}[6]`),
    maxResultBytes: num(r[7], `${where}[7]`),
  };
}

function decodeCache(raw: unknown, where: string): CacheMetrics {
  const r = array(raw, where);
  return {
    cache: str(r[0], `${where}[0]`),
    hits: num(r[1], `${where}[1]`),
    misses: num(r[2], `${where}[2]`),
    evictions: num(r[3], `${where}[3]`),
    entries: num(r[4], `${where}[4]`),
    bytes: num(r[5], `${where}[5]`),
  };
}

function decodeInstance(raw: unknown, where: string): InstanceMetrics {
  const r = record(raw, where);
  const out: InstanceMetrics = {
    instanceId: str(r.instanceId, `${where}.instanceId`),
    coordinates: str(r.coordinates, `${where}.coordinates`),
    state: str(r.state, `${where}.state`),
  };
  for (const key of ["pid", "cpuShare", "cpuSecondsTotal", "rssBytes"] as const) {
    if (r[key] !== undefined && r[key] !== null) out[key] = num(r[key], `${where}.${key}`);
  }
  return out;
}

function decodeMethod(raw: unknown, where: string): MethodMetrics {
  const a = array(raw, where);
  return {
    artifact: str(a[0], `${where}[0] (artifact)`),
    version: str(a[1], `${where}[1] (version)`),
    method: str(a[2], `${where}[2] (method)`),
    calls: num(a[3], `${where}[3] (calls)`),
    errors: counts(a[4], `${where}[4] (errors)`),
    inFlight: num(a[5], `${where}[5] (inFlight)`),
    latency: decodeHist(a[6], `${where}[6] (latency)`),
  };
}

function decodeRoute(raw: unknown, where: string): RouteMetrics {
  const a = array(raw, where);
  return {
    httpMethod: str(a[0], `${where}[0] (httpMethod)`),
    route: str(a[1], `${where}[1] (route)`),
    requests: counts(a[2], `${where}[2] (requests)`),
    latency: decodeHist(a[3], `${where}[3] (latency)`),
  };
}

function decodePeer(raw: unknown, where: string): PeerMetrics {
  const r = record(raw, where);
  const out: PeerMetrics = {
    peer: str(r.peer, `${where}.peer`),
    connected: r.connected === true,
    bytesIn: num(r.bytesIn, `${where}.bytesIn`),
    bytesOut: num(r.bytesOut, `${where}.bytesOut`),
    messagesIn: num(r.messagesIn, `${where}.messagesIn`),
    messagesOut: num(r.messagesOut, `${where}.messagesOut`),
    queuedBytes: num(r.queuedBytes, `${where}.queuedBytes`),
  };
  if (r.rttMs !== undefined && r.rttMs !== null) out.rttMs = num(r.rttMs, `${where}.rttMs`);
  return out;
}

function encodeHist(h: HistogramData): WireHistogram {
  const buckets: number[] = [];
  for (let i = 0; i < h.counts.length; i++) if (h.counts[i] !== 0) buckets.push(i, h.counts[i]);
  return [h.sumMs, h.count, buckets];
}

function decodeHist(raw: unknown, where: string): HistogramData {
  const a = array(raw, where);
  const buckets = array(a[2], `${where}[2] (buckets)`);
  const counts = new Array(LATENCY_BUCKETS).fill(0);
  if (buckets.length % 2 !== 0) throw new Error(`${where}: buckets must be index/count pairs`);
  for (let i = 0; i < buckets.length; i += 2) {
    const index = buckets[i];
    if (!Number.isInteger(index) || (index as number) < 0 || (index as number) >= LATENCY_BUCKETS) {
      throw new Error(`${where}: bucket index ${JSON.stringify(index)} is not 0..${LATENCY_BUCKETS - 1}`);
    }
    counts[index as number] = num(buckets[i + 1], `${where}: bucket ${index}`);
  }
  return { counts, sumMs: num(a[0], `${where}[0] (sum)`), count: num(a[1], `${where}[1] (count)`) };
}

function counts(raw: unknown, where: string): Record<string, number> {
  const r = record(raw, where);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) out[k] = num(v, `${where}.${k}`);
  return out;
}

function record(raw: unknown, where: string): Record<string, unknown> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new Error(`${where}: expected an object`);
  }
  return raw as Record<string, unknown>;
}

function array(raw: unknown, where: string): unknown[] {
  if (!Array.isArray(raw)) throw new Error(`${where}: expected an array`);
  return raw;
}

function str(raw: unknown, where: string): string {
  if (typeof raw !== "string" || raw.length > 1024) throw new Error(`${where}: expected a string`);
  return raw;
}

function num(raw: unknown, where: string): number {
  if (typeof raw !== "number" || !Number.isFinite(raw)) throw new Error(`${where}: expected a finite number`);
  return raw;
}
