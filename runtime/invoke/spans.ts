/**
 * Span hooks: what the invoker (and the HTTP router above it) tells a trace recorder about each hop of a
 * request. The recorder itself (a bounded ring per node, the cluster-wide assembly, OTLP export) lives in
 * runtime/metrics, which ranks above this folder; the hooks only need this shape, so they are declared here.
 *
 * A request's spans, parent first:
 * - `http`: the application HTTP router on the node that took the request (its parent: the caller's
 *   `traceparent` header, when one came);
 * - `call`: one `invoke()`, whatever it took: the HTTP route's call, or a slice's call to another slice (its
 *   parent: the span of the calling slice's run);
 * - `attempt`: one try of a call on one instance (a retry is another attempt), local or on another node;
 * - `serve`: the remote node's side of an attempt, from the request arriving to the answer leaving.
 *
 * The span id of a call is the span id of the call's `traceparent`; each attempt sends a traceparent naming
 * its own span id, so the callee's `serve` span finds its parent in it. A slice's own calls to other slices
 * carry a child traceparent made inside the sandbox, which does not say who the parent is: the invoker keeps
 * the running attempt (or served call) per request id and instance and links them through that.
 *
 * Cheap on the hot path by construction (tests/bench/trace_bench.ts measures it): a hook hands over one
 * `SpanRecord` that only references strings the request path has made anyway (its own traceparent, its
 * parent's, the slice and instance names); ids are cut out of them and names composed only when someone
 * reads the span (`toSpan`). With no sink, the invoker and the router take none of these paths.
 */

export type SpanKind = "http" | "call" | "attempt" | "serve";

/** A span as a hook records it (see `toSpan` for the span it stands for). */
export interface SpanRecord {
  kind: SpanKind;
  /** The span's own traceparent: its trace id and span id. */
  traceparent: string;
  /** A traceparent whose span id is the parent's (the caller's header, the parent's own traceparent). */
  parent?: string;
  requestId: string;
  node: string;
  /** http: `POST /api/v1/orders` (the others' names are composed from their fields). */
  name?: string;
  /** `group:artifact` of the slice called (http: the route's slice). */
  slice?: string;
  /** A pinned version of the call (`group:artifact:version` called). */
  version?: string;
  method?: string;
  /** attempt: the instance tried; serve: the instance that ran the call. */
  instance?: string;
  /** attempt: the node the instance runs on; serve: the node that sent the call. */
  peer?: string;
  /** attempt: 1 for the first try, 2 for the first retry, ... */
  attempt?: number;
  /** Epoch milliseconds with a fraction (spanClockMs). */
  startMs: number;
  durationMs: number;
  /**
   * `ok`; `error` (the slice's own error answer, or an HTTP status of 400 and above); or why the invoker could
   * not complete it: a failure kind (`no_instance`, `deadline`, `node_departed`, ...).
   */
  outcome: string;
  /** http: the response status; call, attempt, serve: the status of the slice's error answer. */
  status?: number;
}

/** A span with its ids and name spelled out: what the trace API, the tree and OTLP export show. */
export interface Span {
  /** 32 hex digits (W3C trace id). */
  traceId: string;
  /** 16 hex digits. */
  spanId: string;
  parentSpanId?: string;
  requestId: string;
  /** The node that recorded the span. */
  node: string;
  kind: SpanKind;
  /** What the span did: `POST /api/v1/orders`, `org.example:inventory.reserve`. */
  name: string;
  slice?: string;
  method?: string;
  instance?: string;
  peer?: string;
  attempt?: number;
  startMs: number;
  durationMs: number;
  outcome: string;
  status?: number;
}

/** Where spans go (runtime/metrics' SpanRing, and the OTLP exporter behind it). Must not throw. */
export interface SpanSink {
  record(span: SpanRecord): void;
}

const TIME_ORIGIN_MS = performance.timeOrigin;

/** Epoch milliseconds with a fraction, from the monotonic clock (a span's start and end). */
export function spanClockMs(): number {
  return TIME_ORIGIN_MS + performance.now();
}

// A valid traceparent is `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`: fixed offsets.
const TRACE_ID_START = 3;
const SPAN_ID_START = 36;
const SPAN_ID_END = 52;

/** The trace id of a valid traceparent. */
export function traceIdIn(traceparent: string): string {
  return traceparent.slice(TRACE_ID_START, SPAN_ID_START - 1);
}

/** The span id of a valid traceparent. */
export function spanIdIn(traceparent: string): string {
  return traceparent.slice(SPAN_ID_START, SPAN_ID_END);
}

/** The same trace and flags with another span id. */
export function withSpanId(traceparent: string, spanId: string): string {
  return traceparent.slice(0, SPAN_ID_START) + spanId + traceparent.slice(SPAN_ID_END);
}

/** Whether `record` belongs to the trace with this id (32 hex digits), without cutting strings. */
export function inTrace(record: SpanRecord, traceId: string): boolean {
  return record.traceparent.startsWith(traceId, TRACE_ID_START);
}

/** The span a record stands for: ids cut out of its traceparents, its name composed. */
export function toSpan(record: SpanRecord): Span {
  const span: Span = {
    traceId: traceIdIn(record.traceparent),
    spanId: spanIdIn(record.traceparent),
    requestId: record.requestId,
    node: record.node,
    kind: record.kind,
    name: spanName(record),
    startMs: record.startMs,
    durationMs: record.durationMs,
    outcome: record.outcome,
  };
  if (record.parent !== undefined) span.parentSpanId = spanIdIn(record.parent);
  if (record.slice !== undefined) span.slice = record.slice;
  if (record.method !== undefined) span.method = record.method;
  if (record.instance !== undefined) span.instance = record.instance;
  if (record.peer !== undefined) span.peer = record.peer;
  if (record.attempt !== undefined) span.attempt = record.attempt;
  if (record.status !== undefined) span.status = record.status;
  return span;
}

/**
 * What a span did, as the timeline shows it: the request line (http), the slice and method called (call,
 * with a pinned version), the instance and its node (attempt: "no live instance" when none was found), the
 * instance and method run for the calling node (serve).
 */
export function spanName(record: SpanRecord): string {
  if (record.name !== undefined) return record.name;
  const slice = record.version ? `${record.slice}:${record.version}` : record.slice;
  switch (record.kind) {
    case "call":
      return `${slice}.${record.method}`;
    case "attempt":
      return record.instance === undefined
        ? `no live instance of ${slice}`
        : `${record.instance}@${record.peer}`;
    case "serve":
      return `${record.instance}.${record.method} for ${record.peer}`;
    default:
      return `${slice}.${record.method}`;
  }
}
