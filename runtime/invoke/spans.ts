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
 * the running attempt (or served call) per instance and request id and links them through that.
 *
 * Recording is cheap on purpose: a span is one plain object handed over synchronously; with no sink, the
 * invoker and the router take none of these paths.
 */

export type SpanKind = "http" | "call" | "attempt" | "serve";

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
  /** `group:artifact` of the slice called (http: the route's slice). */
  slice?: string;
  method?: string;
  /** attempt: the instance tried; serve: the instance that ran the call. */
  instance?: string;
  /** attempt: the node the instance runs on; serve: the node that sent the call. */
  peer?: string;
  /** attempt: 1 for the first try, 2 for the first retry, ... */
  attempt?: number;
  /** Epoch milliseconds with a fraction (sub-millisecond resolution). */
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

/** Where spans go (runtime/metrics' SpanRing, and the OTLP exporter behind it). Must not throw. */
export interface SpanSink {
  record(span: Span): void;
}

/** Epoch milliseconds with a fraction, from the monotonic clock (a span's start). */
export function spanClockMs(): number {
  return performance.timeOrigin + performance.now();
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
