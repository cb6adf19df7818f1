/**
 * Request traces on one node: the bounded ring every span of this node goes into, and the assembly of a
 * request's spans (gathered from every node, traces_cluster.ts) into the tree `GET /api/v1/traces/{id}` and
 * `aether trace` show.
 *
 * The ring is a fixed array overwritten oldest first: recording a span is one array store, nothing is
 * indexed on the hot path. A query scans it (16,384 spans: well under a millisecond), which is the right
 * trade for something asked a few times by an operator and written on every hop of every request.
 *
 * Memory bound: a span is one record of at most 16 fields that references strings of bounded length (two
 * traceparents of 55 characters, a request id of at most 128, an http span's path of at most 200, slice and
 * instance names from the cluster's records); ids are cut out and names composed only when a span is read.
 * Measured in traces_test.ts (garbage collected before and after filling a ring): about 0.6 KiB per attempt
 * span of the example shop and under 0.9 KiB for the largest span the hooks make, so the default ring
 * holds at most 16 MiB (MAX_SPAN_RING_BYTES, asserted there), about 9 MiB with the shop's spans.
 */

import { inTrace, type Span, type SpanRecord, type SpanSink, toSpan } from "../invoke/mod.ts";

/** Spans a node keeps (the newest; the oldest are overwritten). */
export const DEFAULT_SPAN_RING_CAPACITY = 16_384;
/** The largest ring a node may be given (--trace-ring-spans): at most 0.9 KiB a span, about 230 MiB. */
export const MAX_SPAN_RING_CAPACITY = 262_144;
/** The bytes the default ring may hold at most (traces_test.ts fills it with the largest spans and checks). */
export const MAX_SPAN_RING_BYTES = 16 * 1024 * 1024;
/** Spans one query of one node returns at most (a request with more is shown truncated). */
export const MAX_TRACE_SPANS = 2_000;

export interface SpanRingStats {
  capacity: number;
  /** Spans held now. */
  held: number;
  /** Spans recorded since the node started. */
  recorded: number;
  /** Spans overwritten by newer ones (recorded - held). */
  overwritten: number;
}

export interface SpanQueryAnswer {
  /** The matching spans, oldest first. */
  spans: Span[];
  /** More than MAX_TRACE_SPANS matched: the newest were kept. */
  truncated: boolean;
}

/** This node's recent spans. */
export class SpanRing implements SpanSink {
  readonly capacity: number;
  readonly #spans: (SpanRecord | undefined)[];
  #next = 0;
  #recorded = 0;

  constructor(capacity: number = DEFAULT_SPAN_RING_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`span ring capacity ${capacity} is not a positive integer`);
    }
    this.capacity = capacity;
    this.#spans = new Array(capacity);
  }

  record(span: SpanRecord): void {
    this.#spans[this.#next] = span;
    this.#next = this.#next + 1 === this.capacity ? 0 : this.#next + 1;
    this.#recorded++;
  }

  /** The spans of a request id, or of a trace id (32 hex digits), oldest first. */
  find(id: string, limit: number = MAX_TRACE_SPANS): SpanQueryAnswer {
    const byTrace = isTraceId(id);
    const found: Span[] = [];
    let truncated = false;
    // Newest first, so a cut keeps the newest; reversed at the end.
    for (let i = 1; i <= this.capacity; i++) {
      const record = this.#spans[(this.#next - i + this.capacity) % this.capacity];
      if (record === undefined) break;
      if (record.requestId !== id && !(byTrace && inTrace(record, id))) continue;
      if (found.length === limit) {
        truncated = true;
        break;
      }
      found.push(toSpan(record));
    }
    return { spans: found.reverse(), truncated };
  }

  get stats(): SpanRingStats {
    const held = Math.min(this.#recorded, this.capacity);
    return { capacity: this.capacity, held, recorded: this.#recorded, overwritten: this.#recorded - held };
  }
}

export function isTraceId(id: string): boolean {
  return id.length === 32 && /^[0-9a-f]{32}$/.test(id);
}

/** Records into each sink in turn (the ring, and the OTLP exporter when one is configured). */
export function teeSpans(...sinks: SpanSink[]): SpanSink {
  if (sinks.length === 1) return sinks[0];
  return {
    record(span) {
      for (const sink of sinks) sink.record(span);
    },
  };
}

// ------------------------------------------------------------------------------------------ the tree

/** A span as the API shows it: times relative to the trace's start, its children nested. */
export interface TraceNode {
  spanId: string;
  parentSpanId?: string;
  traceId: string;
  kind: Span["kind"];
  name: string;
  node: string;
  slice?: string;
  method?: string;
  instance?: string;
  peer?: string;
  attempt?: number;
  /** Milliseconds from the trace's first span's start. */
  offsetMs: number;
  durationMs: number;
  outcome: string;
  status?: number;
  children: TraceNode[];
}

export interface TraceTree {
  /** The id asked for (a request id or a trace id). */
  id: string;
  requestIds: string[];
  traceIds: string[];
  /** The first span's start (ISO 8601). */
  startTime: string;
  /** From the first span's start to the last span's end. */
  durationMs: number;
  spanCount: number;
  /** Nodes that recorded spans of it, sorted. */
  nodes: string[];
  /** Spans whose parent is not among them (normally the one `http` span, or the first `call`). */
  roots: TraceNode[];
}

/**
 * The spans of one request (from any number of nodes, duplicates allowed) as a tree: children under their
 * parent span, siblings by start time. A span whose parent is missing (on a node that did not answer, or
 * overwritten) becomes a root; a cycle (which only corrupt input could make) is cut where it is found.
 */
export function assembleTrace(id: string, spans: readonly Span[]): TraceTree {
  const unique = new Map<string, Span>();
  for (const span of spans) if (!unique.has(span.spanId)) unique.set(span.spanId, span);
  const all = [...unique.values()].sort((a, b) => a.startMs - b.startMs);
  const originMs = all.length > 0 ? all[0].startMs : 0;
  const endMs = all.reduce((end, s) => Math.max(end, s.startMs + s.durationMs), originMs);
  const nodes = new Map<string, TraceNode>(all.map((s) => [s.spanId, nodeOf(s, originMs)]));
  const roots: TraceNode[] = [];
  /** The links made so far (child to parent), to refuse the one that would close a cycle. */
  const linked = new Map<TraceNode, TraceNode>();
  for (const span of all) {
    const node = nodes.get(span.spanId)!;
    const parent = span.parentSpanId === undefined ? undefined : nodes.get(span.parentSpanId);
    if (parent && !isAncestor(node, parent, linked)) {
      parent.children.push(node);
      linked.set(node, parent);
    } else roots.push(node);
  }
  return {
    id,
    requestIds: [...new Set(all.map((s) => s.requestId))],
    traceIds: [...new Set(all.map((s) => s.traceId))],
    startTime: new Date(originMs).toISOString(),
    durationMs: round3(endMs - originMs),
    spanCount: all.length,
    nodes: [...new Set(all.map((s) => s.node))].sort(),
    roots,
  };
}

/** Whether `node` is `parent` or above it in the links made so far (linking them would close a cycle). */
function isAncestor(node: TraceNode, parent: TraceNode, linked: Map<TraceNode, TraceNode>): boolean {
  for (let p: TraceNode | undefined = parent; p !== undefined; p = linked.get(p)) {
    if (p === node) return true;
  }
  return false;
}

function nodeOf(span: Span, originMs: number): TraceNode {
  const node: TraceNode = {
    spanId: span.spanId,
    traceId: span.traceId,
    kind: span.kind,
    name: span.name,
    node: span.node,
    offsetMs: round3(span.startMs - originMs),
    durationMs: round3(span.durationMs),
    outcome: span.outcome,
    children: [],
  };
  if (span.parentSpanId !== undefined) node.parentSpanId = span.parentSpanId;
  for (const key of ["slice", "method", "instance", "peer", "attempt", "status"] as const) {
    if (span[key] !== undefined) (node as unknown as Record<string, unknown>)[key] = span[key];
  }
  return node;
}

/** Microsecond precision is what the clocks give; more digits would only be noise in the JSON. */
function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

// ------------------------------------------------------------------------------------------ checks

const SPAN_KINDS = new Set(["http", "call", "attempt", "serve"]);
const HEX16 = /^[0-9a-f]{16}$/;

/**
 * Whether a value from a peer is a span (peers are authenticated, but a malformed one must be dropped here
 * rather than break the tree or the OTLP export later).
 */
export function isSpan(value: unknown): value is Span {
  if (value === null || typeof value !== "object") return false;
  const s = value as Record<string, unknown>;
  return typeof s.traceId === "string" && isTraceId(s.traceId) &&
    typeof s.spanId === "string" && HEX16.test(s.spanId) &&
    (s.parentSpanId == null || (typeof s.parentSpanId === "string" && HEX16.test(s.parentSpanId))) &&
    typeof s.requestId === "string" && s.requestId.length <= 200 &&
    typeof s.node === "string" && typeof s.kind === "string" && SPAN_KINDS.has(s.kind) &&
    typeof s.name === "string" && typeof s.outcome === "string" &&
    Number.isFinite(s.startMs) && Number.isFinite(s.durationMs) &&
    optional(s.slice, "string") && optional(s.method, "string") && optional(s.instance, "string") &&
    optional(s.peer, "string") && optional(s.attempt, "number") && optional(s.status, "number");
}

function optional(value: unknown, type: "string" | "number"): boolean {
  return value === undefined || value === null || typeof value === type;
}

/** A checked span without the null fields a codec may have turned absent ones into. */
export function cleanSpan(span: Span): Span {
  const clean = { ...span } as Record<string, unknown>;
  for (const key of Object.keys(clean)) if (clean[key] === null) delete clean[key];
  return clean as unknown as Span;
}
