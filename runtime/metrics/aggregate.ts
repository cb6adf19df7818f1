/**
 * The cluster table: every node's latest sample, kept the same way on the leader (fed by the nodes' updates)
 * and on every other node (fed by the leader's broadcasts), and merged into a ClusterSnapshot.
 *
 * Updates carry cumulative counters, and a series (slice version × method, HTTP route) travels only when it
 * changed since the sender's previous message, plus in full every few seconds: applying an update replaces
 * the series it carries and keeps the others. A lost message therefore costs nothing but a second of
 * staleness for the series in it, and the next full update repairs any table.
 *
 * Pure: no clock, timers or IO (callers pass the time).
 */

import { emptyHistogram, mergeHistogramInto, type NodeId } from "../core/mod.ts";
import type {
  CacheMetrics,
  ClusterSnapshot,
  MergedMethodMetrics,
  MethodMetrics,
  NodeEntry,
  NodeMetrics,
  RouteMetrics,
  SliceMetrics,
  TopicMetrics,
} from "./types.ts";

/** A node that sent nothing for this long is stale and left out of every merged figure. */
export const STALE_AFTER_MS = 2_000;

/** The table's key of a method series. */
export function methodKey(m: Pick<MethodMetrics, "artifact" | "version" | "method">): string {
  return `${m.artifact}:${m.version} ${m.method}`;
}

/** The table's key of a route series. */
export function routeKey(r: Pick<RouteMetrics, "httpMethod" | "route">): string {
  return `${r.httpMethod} ${r.route}`;
}

/** One node in the table: its scalars, and its series by key. */
export interface TableNode {
  sample: NodeMetrics;
  methods: Map<string, MethodMetrics>;
  routes: Map<string, RouteMetrics>;
  stale: boolean;
  /** The table owner's clock when it last heard of the node. */
  lastSeenMs: number;
  /** Series keys changed since `takeChanges` last ran (what the next relay must carry). */
  changedMethods: Set<string>;
  changedRoutes: Set<string>;
}

export class ClusterTable {
  readonly #nodes = new Map<NodeId, TableNode>();

  /**
   * Applies a node's sample: `full` replaces its series, else the series carried replace theirs. A sample
   * from a restarted node (another `startedAtMs`) or an older one (a lower `seq` of the same start) is
   * handled: the restart starts the node afresh, the older one is ignored. Answers whether it was applied.
   */
  apply(sample: NodeMetrics, full: boolean, nowMs: number, stale = false): boolean {
    let entry = this.#nodes.get(sample.node);
    if (entry && entry.sample.startedAtMs === sample.startedAtMs && sample.seq < entry.sample.seq) {
      return false;
    }
    const restarted = entry !== undefined && entry.sample.startedAtMs !== sample.startedAtMs;
    if (!entry || restarted) {
      entry = {
        sample,
        methods: new Map(),
        routes: new Map(),
        stale,
        lastSeenMs: nowMs,
        changedMethods: new Set(),
        changedRoutes: new Set(),
      };
      this.#nodes.set(sample.node, entry);
      full = true;
    }
    if (full) {
      for (const key of entry.methods.keys()) entry.changedMethods.add(key);
      for (const key of entry.routes.keys()) entry.changedRoutes.add(key);
      entry.methods.clear();
      entry.routes.clear();
    }
    for (const m of sample.methods) {
      const key = methodKey(m);
      entry.methods.set(key, m);
      entry.changedMethods.add(key);
    }
    for (const r of sample.routes) {
      const key = routeKey(r);
      entry.routes.set(key, r);
      entry.changedRoutes.add(key);
    }
    entry.sample = sample;
    entry.stale = stale;
    entry.lastSeenMs = nowMs;
    return true;
  }

  /** Marks nodes not heard of for STALE_AFTER_MS stale (and `down` ones at once); answers the newly stale. */
  markStale(nowMs: number, down: ReadonlySet<NodeId> = new Set()): NodeId[] {
    const newly: NodeId[] = [];
    for (const [id, entry] of this.#nodes) {
      if (entry.stale) continue;
      if (down.has(id) || nowMs - entry.lastSeenMs >= STALE_AFTER_MS) {
        entry.stale = true;
        newly.push(id);
      }
    }
    return newly;
  }

  /** Sets a node's stale flag as the leader decided it (on a node that follows the leader's broadcasts). */
  setStale(node: NodeId, stale: boolean): void {
    const entry = this.#nodes.get(node);
    if (entry) entry.stale = stale;
  }

  /** Forgets nodes not listed (a full broadcast lists every node the leader knows). */
  retainOnly(nodes: ReadonlySet<NodeId>): void {
    for (const id of [...this.#nodes.keys()]) if (!nodes.has(id)) this.#nodes.delete(id);
  }

  get(node: NodeId): TableNode | undefined {
    return this.#nodes.get(node);
  }

  nodes(): IterableIterator<TableNode> {
    return this.#nodes.values();
  }

  get size(): number {
    return this.#nodes.size;
  }

  /**
   * Each node's sample for a relay: every series when `full`, else only those changed since the last call.
   * Clears the change marks.
   */
  takeChanges(full: boolean): { sample: NodeMetrics; stale: boolean; lastSeenMs: number }[] {
    const out: { sample: NodeMetrics; stale: boolean; lastSeenMs: number }[] = [];
    for (const entry of this.#nodes.values()) {
      const methods = full
        ? [...entry.methods.values()]
        : [...entry.changedMethods].flatMap((k) => entry.methods.get(k) ?? []);
      const routes = full
        ? [...entry.routes.values()]
        : [...entry.changedRoutes].flatMap((k) => entry.routes.get(k) ?? []);
      entry.changedMethods.clear();
      entry.changedRoutes.clear();
      out.push({
        sample: { ...entry.sample, methods, routes },
        stale: entry.stale,
        lastSeenMs: entry.lastSeenMs,
      });
    }
    return out;
  }

  /**
   * The live nodes' method series as they are now (the maps copied, the series shared: they are never
   * changed in place, an update replaces them), for windowed figures (window.ts).
   */
  liveSeries(): Map<NodeId, { startedAtMs: number; methods: Map<string, MethodMetrics> }> {
    const out = new Map<NodeId, { startedAtMs: number; methods: Map<string, MethodMetrics> }>();
    for (const [id, entry] of this.#nodes) {
      if (!entry.stale) {
        out.set(id, { startedAtMs: entry.sample.startedAtMs, methods: new Map(entry.methods) });
      }
    }
    return out;
  }

  /** The cluster snapshot: every node (stale ones flagged) and the slices merged over the live ones. */
  snapshot(leader: NodeId, seq: number, atMs: number): ClusterSnapshot {
    const nodes: NodeEntry[] = [];
    for (
      const entry of [...this.#nodes.values()].sort((a, b) => compare(a.sample.node, b.sample.node))
    ) {
      nodes.push({
        ...entry.sample,
        methods: [...entry.methods.values()],
        routes: [...entry.routes.values()],
        stale: entry.stale,
        lastSeenMs: entry.lastSeenMs,
      });
    }
    return {
      atMs,
      leader,
      seq,
      nodes,
      slices: mergeSlices(nodes),
      caches: mergeCaches(nodes),
      ...withTopics(mergeTopics(nodes)),
    };
  }
}

/** Merges the method series of the non-stale nodes by slice version and method (sorted). */
export function mergeSlices(nodes: readonly NodeEntry[]): SliceMetrics[] {
  const slices = new Map<string, { slice: SliceMetrics; methods: Map<string, MergedMethodMetrics> }>();
  for (const node of nodes) {
    if (node.stale) continue;
    for (const m of node.methods) {
      const sliceKey = `${m.artifact}:${m.version}`;
      let slice = slices.get(sliceKey);
      if (!slice) {
        slice = { slice: { artifact: m.artifact, version: m.version, methods: [] }, methods: new Map() };
        slices.set(sliceKey, slice);
      }
      let merged = slice.methods.get(m.method);
      if (!merged) {
        merged = {
          method: m.method,
          calls: 0,
          errors: {},
          inFlight: 0,
          latency: emptyHistogram(),
          nodes: {},
        };
        slice.methods.set(m.method, merged);
      }
      merged.calls += m.calls;
      merged.inFlight += m.inFlight;
      let nodeErrors = 0;
      for (const kind in m.errors) {
        const n = m.errors[kind];
        merged.errors[kind] = (merged.errors[kind] ?? 0) + n;
        nodeErrors += n;
      }
      mergeHistogramInto(merged.latency, m.latency);
      const perNode = merged.nodes[node.node] ??= { calls: 0, errors: 0, inFlight: 0 };
      perNode.calls += m.calls;
      perNode.errors += nodeErrors;
      perNode.inFlight += m.inFlight;
    }
  }
  return [...slices.values()]
    .map(({ slice, methods }) => ({
      ...slice,
      methods: [...methods.values()].sort((a, b) => compare(a.method, b.method)),
    }))
    .sort((a, b) => compare(a.artifact, b.artifact) || compare(a.version, b.version));
}

/** Sums each cache's counters over the non-stale nodes (sorted by name). */
export function mergeCaches(nodes: readonly NodeEntry[]): CacheMetrics[] {
  const merged = new Map<string, CacheMetrics>();
  for (const node of nodes) {
    if (node.stale) continue;
    for (const c of node.caches ?? []) {
      const sum = merged.get(c.cache);
      if (!sum) {
        merged.set(c.cache, { ...c });
        continue;
      }
      sum.hits += c.hits;
      sum.misses += c.misses;
      sum.evictions += c.evictions;
      sum.entries += c.entries;
      sum.bytes += c.bytes;
    }
  }
  return [...merged.values()].sort((a, b) => compare(a.cache, b.cache));
}

/** Absent without pub/sub subscriptions (snapshots stay as they were). */
function withTopics(topics: TopicMetrics[]): { topics?: TopicMetrics[] } {
  return topics.length === 0 ? {} : { topics };
}

/** Each (topic, consumer group)'s largest lag over the non-stale nodes (sorted by topic, then group). */
export function mergeTopics(nodes: readonly NodeEntry[]): TopicMetrics[] {
  const merged = new Map<string, TopicMetrics>();
  for (const node of nodes) {
    if (node.stale) continue;
    for (const t of node.topics ?? []) {
      const key = `${t.topic}\u0000${t.consumerGroup}`;
      const seen = merged.get(key);
      if (!seen || t.lag > seen.lag) merged.set(key, { ...t });
    }
  }
  return [...merged.values()].sort((a, b) =>
    compare(a.topic, b.topic) || compare(a.consumerGroup, b.consumerGroup)
  );
}

/** Errors of a method series, all kinds together. */
export function errorCount(m: Pick<MethodMetrics, "errors">): number {
  let total = 0;
  for (const kind in m.errors) total += m.errors[kind];
  return total;
}

/** Code-unit order (no locale rules: ids and names sort the same everywhere, and fast). */
export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
