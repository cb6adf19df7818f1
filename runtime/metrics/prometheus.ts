/**
 * The Prometheus text exposition format (version 0.0.4) of node samples: `GET /metrics` serves this node's
 * latest sample, `?scope=cluster` every live node of the cluster snapshot (each sample labelled with its node).
 *
 * Rules kept (and checked by prometheus_test.ts with the format's own rules and `promtool check metrics`):
 * names `aether_...` in base units (seconds, bytes), counters end in `_total`, histograms have cumulative
 * `_bucket{le}` series ending with `le="+Inf"` equal to `_count`, plus `_sum`; every family has one HELP and
 * TYPE line and its samples together; label values escaped. Labels have bounded cardinality: node, slice,
 * version, method, error kind, instance number, route template, status class, peer; never request ids or raw
 * paths (unmatched requests are `route="_unmatched"`).
 */

import { type HistogramData, LATENCY_BOUNDS_MS } from "../core/mod.ts";
import type { NodeMetrics } from "./types.ts";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const LE = [...LATENCY_BOUNDS_MS.map((ms) => formatNumber(ms / 1000)), "+Inf"];
/** `0.005"} ` and so on: the end of each bucket line's labels, ready to append the count to. */
const LE_CLOSE = LE.map((le) => `${le}"} `);

type Kind = "counter" | "gauge" | "histogram";

/**
 * Writes families in order: all samples of one family are added before the next starts. Built by string
 * concatenation (V8 joins the pieces lazily): a scrape of 500 method series is ~17,000 lines.
 */
class Exposition {
  #text = "";

  family(name: string, kind: Kind, help: string): void {
    this.#text += `# HELP ${name} ${help}\n# TYPE ${name} ${kind}\n`;
  }

  sample(name: string, labels: string, value: number): void {
    this.#text += labels === ""
      ? `${name} ${formatNumber(value)}\n`
      : `${name}{${labels}} ${formatNumber(value)}\n`;
  }

  histogram(name: string, labels: string, h: HistogramData, unitPerMs: number): void {
    const prefix = labels === "" ? `${name}_bucket{le="` : `${name}_bucket{${labels},le="`;
    let cumulative = 0;
    let text = "";
    for (let i = 0; i < LE.length; i++) {
      cumulative += h.counts[i] ?? 0;
      text += prefix + LE_CLOSE[i] + cumulative + "\n";
    }
    this.#text += text;
    this.sample(`${name}_sum`, labels, h.sumMs * unitPerMs);
    this.sample(`${name}_count`, labels, h.count);
  }

  text(): string {
    return this.#text;
  }
}

/** Renders node samples (one per node) as Prometheus text. `up` lists every node of the cluster view. */
export function prometheusText(
  samples: readonly NodeMetrics[],
  up?: readonly { node: string; up: boolean }[],
): string {
  const out = new Exposition();
  if (up) {
    out.family("aether_node_up", "gauge", "1 while the leader hears from the node, 0 once it is stale.");
    for (const u of up) out.sample("aether_node_up", label("node", u.node), u.up ? 1 : 0);
  }
  processFamilies(out, samples);
  instanceFamilies(out, samples);
  methodFamilies(out, samples);
  routeFamilies(out, samples);
  consensusFamilies(out, samples);
  meshFamilies(out, samples);
  cacheFamilies(out, samples);
  outboundFamilies(out, samples);
  aspectFamilies(out, samples);
  topicFamilies(out, samples);
  return out.text();
}

const CIRCUIT_VALUE = { closed: 0, "half-open": 1, open: 2 } as const;

function outboundFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    (s.outbound ?? []).map((o) => ({ o, labels: labels({ node: s.node, group: o.group, host: o.host }) }))
  );
  if (rows.length === 0) return;
  type Row = NonNullable<NodeMetrics["outbound"]>[number];
  const families: [string, Kind, string, (o: Row) => number][] = [
    [
      "aether_outbound_requests_total",
      "counter",
      "Outbound HTTP attempts slices made through the node.",
      (o) => o.requests,
    ],
    [
      "aether_outbound_failures_total",
      "counter",
      "Outbound attempts that failed (network, timeout, 5xx).",
      (o) => o.failures,
    ],
    [
      "aether_outbound_retries_total",
      "counter",
      "Outbound attempts made again (idempotent methods).",
      (o) => o.retries,
    ],
    [
      "aether_outbound_rejected_total",
      "counter",
      "Outbound calls refused because the circuit was open.",
      (o) => o.rejected,
    ],
    [
      "aether_outbound_circuit_state",
      "gauge",
      "Circuit breaker: 0 closed, 1 half-open, 2 open.",
      (o) => CIRCUIT_VALUE[o.circuit],
    ],
  ];
  for (const [name, kind, help, value] of families) {
    out.family(name, kind, help);
    for (const r of rows) out.sample(name, r.labels, value(r.o));
  }
  out.family("aether_outbound_request_duration_seconds", "histogram", "Duration of outbound HTTP attempts.");
  for (const r of rows) {
    out.histogram("aether_outbound_request_duration_seconds", r.labels, r.o.latency, 0.001);
  }
}

function aspectFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    (s.aspects ?? []).map((a) => ({ a, labels: labels({ node: s.node, slice: a.slice, method: a.method }) }))
  );
  if (rows.length === 0) return;
  type Row = NonNullable<NodeMetrics["aspects"]>[number];
  const families: [string, Kind, string, (a: Row) => number][] = [
    ["aether_aspect_calls_total", "counter", "Calls measured by a metrics aspect.", (a) => a.calls],
    ["aether_aspect_errors_total", "counter", "Of those, calls that failed.", (a) => a.errors],
    [
      "aether_aspect_argument_bytes_total",
      "counter",
      "JSON bytes of the arguments of those calls.",
      (a) => a.argumentBytes,
    ],
    ["aether_aspect_result_bytes_total", "counter", "JSON bytes of their results.", (a) => a.resultBytes],
    [
      "aether_aspect_argument_bytes_max",
      "gauge",
      "Largest argument seen, JSON bytes.",
      (a) => a.maxArgumentBytes,
    ],
    ["aether_aspect_result_bytes_max", "gauge", "Largest result seen, JSON bytes.", (a) => a.maxResultBytes],
  ];
  for (const [name, kind, help, value] of families) {
    out.family(name, kind, help);
    for (const r of rows) out.sample(name, r.labels, value(r.a));
  }
}

function processFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const families: [string, Kind, string, (s: NodeMetrics) => number][] = [
    [
      "aether_process_cpu_seconds_total",
      "counter",
      "CPU time of the node process.",
      (s) => s.process.cpuSecondsTotal,
    ],
    [
      "aether_process_resident_memory_bytes",
      "gauge",
      "Resident memory of the node process.",
      (s) => s.process.rssBytes,
    ],
    [
      "aether_process_heap_used_bytes",
      "gauge",
      "V8 heap in use in the node process.",
      (s) => s.process.heapUsedBytes,
    ],
    [
      "aether_process_heap_total_bytes",
      "gauge",
      "V8 heap reserved by the node process.",
      (s) => s.process.heapTotalBytes,
    ],
    [
      "aether_event_loop_lag_seconds",
      "gauge",
      "Worst event-loop lag of the node over the last second.",
      (s) => s.process.eventLoopLagMs / 1000,
    ],
  ];
  for (const [name, kind, help, value] of families) {
    out.family(name, kind, help);
    for (const s of samples) out.sample(name, label("node", s.node), value(s));
  }
}

function instanceFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const measured = samples.flatMap((s) =>
    s.instances.filter((i) => i.cpuSecondsTotal !== undefined).map((i) => ({ node: s.node, i }))
  );
  const labelsOf = (node: string, i: (typeof measured)[number]["i"]) => {
    const [coordinates, n = "0"] = i.instanceId.split("/");
    const { slice, version } = splitCoordinates(coordinates);
    return labels({ node, slice, version, instance: n });
  };
  out.family(
    "aether_instance_cpu_seconds_total",
    "counter",
    "CPU time of a slice instance's sandbox process.",
  );
  for (const { node, i } of measured) {
    out.sample("aether_instance_cpu_seconds_total", labelsOf(node, i), i.cpuSecondsTotal ?? 0);
  }
  out.family(
    "aether_instance_resident_memory_bytes",
    "gauge",
    "Resident memory of an instance's sandbox process.",
  );
  for (const { node, i } of measured) {
    out.sample("aether_instance_resident_memory_bytes", labelsOf(node, i), i.rssBytes ?? 0);
  }
}

function methodFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    s.methods.map((m) => ({
      m,
      labels: labels({ node: s.node, slice: m.artifact, version: m.version, method: m.method }),
    }))
  );
  out.family(
    "aether_slice_calls_total",
    "counter",
    "Slice method calls that ended, on the node that ran them.",
  );
  for (const r of rows) out.sample("aether_slice_calls_total", r.labels, r.m.calls);
  out.family("aether_slice_errors_total", "counter", "Slice method calls that ended in an error, by kind.");
  for (const r of rows) {
    for (const [kind, n] of Object.entries(r.m.errors)) {
      out.sample("aether_slice_errors_total", `${r.labels},${label("kind", kind)}`, n);
    }
  }
  out.family("aether_slice_in_flight", "gauge", "Slice method calls running now.");
  for (const r of rows) out.sample("aether_slice_in_flight", r.labels, r.m.inFlight);
  out.family("aether_slice_call_duration_seconds", "histogram", "Duration of slice method calls.");
  for (const r of rows) out.histogram("aether_slice_call_duration_seconds", r.labels, r.m.latency, 0.001);
}

function routeFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    s.routes.map((r) => ({ r, labels: labels({ node: s.node, method: r.httpMethod, route: r.route }) }))
  );
  out.family(
    "aether_http_requests_total",
    "counter",
    "Application HTTP requests by route template and status class.",
  );
  for (const { r, labels: l } of rows) {
    for (const [cls, n] of Object.entries(r.requests)) {
      out.sample("aether_http_requests_total", `${l},${label("status_class", cls)}`, n);
    }
  }
  out.family("aether_http_request_duration_seconds", "histogram", "Duration of application HTTP requests.");
  for (const { r, labels: l } of rows) {
    out.histogram("aether_http_request_duration_seconds", l, r.latency, 0.001);
  }
}

function consensusFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const families: [string, Kind, string, (s: NodeMetrics) => number][] = [
    [
      "aether_consensus_phases_total",
      "counter",
      "Consensus phases decided on this member.",
      (s) => s.consensus.phases,
    ],
    [
      "aether_consensus_batches_total",
      "counter",
      "Decided phases that carried a batch.",
      (s) => s.consensus.batches,
    ],
    [
      "aether_consensus_commands_total",
      "counter",
      "Commands in decided batches.",
      (s) => s.consensus.commands,
    ],
    [
      "aether_consensus_forwarded_writes_total",
      "counter",
      "Writes this member forwarded to the leader.",
      (s) => s.consensus.forwardedWrites,
    ],
    [
      "aether_consensus_pending_batches",
      "gauge",
      "Batches waiting to be decided.",
      (s) => s.consensus.pendingBatches,
    ],
  ];
  for (const [name, kind, help, value] of families) {
    out.family(name, kind, help);
    for (const s of samples) out.sample(name, label("node", s.node), value(s));
  }
  out.family("aether_consensus_commit_duration_seconds", "histogram", "KV writes from submit until applied.");
  for (const s of samples) {
    out.histogram(
      "aether_consensus_commit_duration_seconds",
      label("node", s.node),
      s.consensus.commitLatency,
      0.001,
    );
  }
}

function meshFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    s.mesh.map((p) => ({ p, labels: labels({ node: s.node, peer: p.peer }) }))
  );
  const families: [string, Kind, string, (p: NodeMetrics["mesh"][number]) => number | undefined][] = [
    [
      "aether_mesh_peer_connected",
      "gauge",
      "1 while the mesh connection to the peer is up.",
      (p) => p.connected ? 1 : 0,
    ],
    [
      "aether_mesh_peer_rtt_seconds",
      "gauge",
      "Smoothed heartbeat round trip to the peer.",
      (p) => p.rttMs === undefined ? undefined : p.rttMs / 1000,
    ],
    ["aether_mesh_peer_sent_bytes_total", "counter", "Bytes sent to the peer.", (p) => p.bytesOut],
    ["aether_mesh_peer_received_bytes_total", "counter", "Bytes received from the peer.", (p) => p.bytesIn],
    [
      "aether_mesh_peer_queued_bytes",
      "gauge",
      "Bytes waiting in the queue to the peer.",
      (p) => p.queuedBytes,
    ],
  ];
  for (const [name, kind, help, value] of families) {
    out.family(name, kind, help);
    for (const r of rows) {
      const v = value(r.p);
      if (v !== undefined) out.sample(name, r.labels, v);
    }
  }
}

function cacheFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    (s.caches ?? []).map((c) => ({ c, labels: labels({ node: s.node, cache: c.cache }) }))
  );
  if (rows.length === 0) return;
  const families: [string, Kind, string, (c: NonNullable<NodeMetrics["caches"]>[number]) => number][] = [
    ["aether_cache_hits_total", "counter", "Cache gets that found a live entry.", (c) => c.hits],
    ["aether_cache_misses_total", "counter", "Cache gets that found none.", (c) => c.misses],
    [
      "aether_cache_evictions_total",
      "counter",
      "Entries the node deleted to keep the cache within maxEntries / maxBytes (LRU).",
      (c) => c.evictions,
    ],
    ["aether_cache_entries", "gauge", "Entries put through the node and still held.", (c) => c.entries],
    ["aether_cache_bytes", "gauge", "Bytes (key + JSON value) of those entries.", (c) => c.bytes],
  ];
  for (const [name, kind, help, value] of families) {
    out.family(name, kind, help);
    for (const r of rows) out.sample(name, r.labels, value(r.c));
  }
}

function topicFamilies(out: Exposition, samples: readonly NodeMetrics[]): void {
  const rows = samples.flatMap((s) =>
    (s.topics ?? []).map((t) => ({
      t,
      labels: labels({ node: s.node, topic: t.topic, group: t.consumerGroup }),
    }))
  );
  if (rows.length === 0) return;
  out.family(
    "aether_pubsub_lag",
    "gauge",
    "Messages of a topic retained and not yet handled by a consumer group, as the node's replica shows it.",
  );
  for (const r of rows) out.sample("aether_pubsub_lag", r.labels, r.t.lag);
}

function splitCoordinates(coordinates: string): { slice: string; version: string } {
  const last = coordinates.lastIndexOf(":");
  return last < 0
    ? { slice: coordinates, version: "" }
    : { slice: coordinates.slice(0, last), version: coordinates.slice(last + 1) };
}

function labels(values: Record<string, string>): string {
  return Object.entries(values).map(([k, v]) => label(k, v)).join(",");
}

function label(name: string, value: string): string {
  return `${name}="${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`;
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
