/**
 * Recent checkpoints of the cluster's cumulative method series, so that rates, error rates and quantiles over
 * a window come from two exact readings (now minus then) instead of averaged percentiles.
 *
 * A checkpoint holds, per live node, its method series as the snapshot had them. Series objects are never
 * mutated (an update replaces them), so checkpoints share the unchanged ones: a checkpoint costs a map entry
 * per series, not a copy of its histogram. Kept: one per second for the last FINE_SECONDS, then one per
 * COARSE_STEP_SECONDS up to MAX_WINDOW_SECONDS.
 *
 * Pure: callers pass the time.
 */

import { AetherError, histogramDelta, histogramQuantileMs, type NodeId } from "../core/mod.ts";
import type { ClusterSnapshot, InvocationSummary, MethodMetrics } from "./types.ts";
import { compare, errorCount, methodKey } from "./aggregate.ts";

/** The longest window `invocations` accepts, seconds. */
export const MAX_WINDOW_SECONDS = 300;
const FINE_SECONDS = 60;
const COARSE_STEP_SECONDS = 10;

interface NodeCheckpoint {
  startedAtMs: number;
  methods: Map<string, MethodMetrics>;
}

export interface Checkpoint {
  atMs: number;
  nodes: Map<NodeId, NodeCheckpoint>;
}

/** Builds a checkpoint of a snapshot's live nodes. */
export function checkpointOf(snapshot: ClusterSnapshot, atMs: number): Checkpoint {
  const nodes = new Map<NodeId, NodeCheckpoint>();
  for (const node of snapshot.nodes) {
    if (node.stale) continue;
    const methods = new Map<string, MethodMetrics>();
    for (const m of node.methods) methods.set(methodKey(m), m);
    nodes.set(node.node, { startedAtMs: node.startedAtMs, methods });
  }
  return { atMs, nodes };
}

/** The difference of one series between two checkpoints (`then` undefined: everything since it started). */
export interface SeriesDelta {
  node: NodeId;
  now: MethodMetrics;
  then: MethodMetrics | undefined;
}

export class RecentWindow {
  /** Oldest first. */
  readonly #checkpoints: Checkpoint[] = [];

  add(checkpoint: Checkpoint): void {
    const list = this.#checkpoints;
    list.push(checkpoint);
    const now = checkpoint.atMs;
    // Thin out: keep every checkpoint of the last FINE_SECONDS, one per COARSE_STEP_SECONDS before that.
    const fineFrom = now - FINE_SECONDS * 1000;
    let i = 0;
    while (list.length > 0 && list[0].atMs < now - MAX_WINDOW_SECONDS * 1000 - COARSE_STEP_SECONDS * 1000) {
      list.shift();
    }
    const kept: Checkpoint[] = [];
    let lastCoarse = -Infinity;
    for (i = 0; i < list.length; i++) {
      const c = list[i];
      if (c.atMs >= fineFrom || c.atMs - lastCoarse >= COARSE_STEP_SECONDS * 1000) {
        kept.push(c);
        if (c.atMs < fineFrom) lastCoarse = c.atMs;
      }
    }
    if (kept.length !== list.length) list.splice(0, list.length, ...kept);
  }

  get size(): number {
    return this.#checkpoints.length;
  }

  latest(): Checkpoint | undefined {
    return this.#checkpoints.at(-1);
  }

  /** The checkpoint before the latest (the previous second). */
  previous(): Checkpoint | undefined {
    return this.#checkpoints.at(-2);
  }

  /** The newest checkpoint at least `seconds` older than the latest, else the oldest kept. */
  before(seconds: number): Checkpoint | undefined {
    const latest = this.latest();
    if (!latest) return undefined;
    const target = latest.atMs - seconds * 1000;
    let found: Checkpoint | undefined;
    for (const c of this.#checkpoints) {
      if (c === latest) break;
      if (c.atMs <= target + 100) found = c;
    }
    return found ?? (this.#checkpoints[0] === latest ? undefined : this.#checkpoints[0]);
  }

  /** Per slice version and method over the last `windowSeconds`, merged over the nodes live now. */
  invocations(windowSeconds = 60): InvocationSummary[] {
    if (!(Number.isFinite(windowSeconds) && windowSeconds >= 1 && windowSeconds <= MAX_WINDOW_SECONDS)) {
      throw new AetherError(
        "bad_request",
        `window must be a number of seconds from 1 to ${MAX_WINDOW_SECONDS}, got ${windowSeconds}`,
      );
    }
    const now = this.latest();
    if (!now) return [];
    const then = this.before(windowSeconds);
    return summarize(now, then);
  }
}

/** Each live node's series now against the same series at `then` (absent then, or restarted: from 0). */
export function seriesDeltas(now: Checkpoint, then: Checkpoint | undefined): SeriesDelta[] {
  const out: SeriesDelta[] = [];
  for (const [node, current] of now.nodes) {
    const old = then?.nodes.get(node);
    const sameRun = old !== undefined && old.startedAtMs === current.startedAtMs;
    for (const [key, m] of current.methods) {
      out.push({ node, now: m, then: sameRun ? old.methods.get(key) : undefined });
    }
  }
  return out;
}

interface Accumulator {
  summary: InvocationSummary;
  latency: ReturnType<typeof histogramDelta>;
  windowCalls: number;
  windowErrors: number;
  nodeLatency: Map<NodeId, ReturnType<typeof histogramDelta>>;
}

function summarize(now: Checkpoint, then: Checkpoint | undefined): InvocationSummary[] {
  // Without an older checkpoint the window is the time since the first one (rates stay 0 then).
  const seconds = then ? Math.max(0.001, (now.atMs - then.atMs) / 1000) : 0;
  const groups = new Map<string, Accumulator>();
  for (const { node, now: m, then: old } of seriesDeltas(now, then)) {
    const key = methodKey(m);
    let acc = groups.get(key);
    if (!acc) {
      acc = {
        summary: {
          artifact: m.artifact,
          version: m.version,
          method: m.method,
          rate: 0,
          errorRate: 0,
          calls: 0,
          errors: 0,
          inFlight: 0,
          nodes: {},
        },
        latency: { counts: m.latency.counts.map(() => 0), sumMs: 0, count: 0 },
        windowCalls: 0,
        windowErrors: 0,
        nodeLatency: new Map(),
      };
      groups.set(key, acc);
    }
    const s = acc.summary;
    const errorsNow = errorCount(m);
    const calls = then ? Math.max(0, m.calls - (old?.calls ?? 0)) : 0;
    const errors = then ? Math.max(0, errorsNow - (old ? errorCount(old) : 0)) : 0;
    const latency = then ? histogramDelta(m.latency, old?.latency) : { ...m.latency, count: 0, counts: [] };
    s.calls += m.calls;
    s.errors += errorsNow;
    s.inFlight += m.inFlight;
    acc.windowCalls += calls;
    acc.windowErrors += errors;
    if (latency.count > 0) {
      for (let i = 0; i < latency.counts.length; i++) acc.latency.counts[i] += latency.counts[i];
      acc.latency.count += latency.count;
      acc.latency.sumMs += latency.sumMs;
    }
    const p99Ms = latency.count > 0 ? histogramQuantileMs(latency, 0.99) : undefined;
    s.nodes[node] = {
      rate: seconds > 0 ? calls / seconds : 0,
      errorRate: calls > 0 ? errors / calls : 0,
      calls: m.calls,
      ...(p99Ms === undefined ? {} : { p99Ms }),
    };
  }
  const out: InvocationSummary[] = [];
  for (const acc of groups.values()) {
    const s = acc.summary;
    s.rate = seconds > 0 ? acc.windowCalls / seconds : 0;
    s.errorRate = acc.windowCalls > 0 ? acc.windowErrors / acc.windowCalls : 0;
    if (acc.latency.count > 0) {
      s.p50Ms = histogramQuantileMs(acc.latency, 0.5);
      s.p95Ms = histogramQuantileMs(acc.latency, 0.95);
      s.p99Ms = histogramQuantileMs(acc.latency, 0.99);
    }
    out.push(s);
  }
  return out.sort((a, b) =>
    compare(a.artifact, b.artifact) || compare(a.version, b.version) || compare(a.method, b.method)
  );
}
