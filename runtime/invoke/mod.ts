/**
 * Invocation: calling slice methods by name wherever an instance runs, with deadlines, retries and failover.
 *
 * - `SliceInvoker` (invoker.ts): `invoke(target, method, request, options)`; its `outboundHandler` is what
 *   the local SliceExecutor hands the calls slices make to each other.
 * - `RemoteCalls` (remote.ts): the mesh protocol on channel "i", with flow control.
 * - `InvokeSettings` (settings.ts): version weights and slice call timeouts, kept current from KV records.
 * - Pure parts: `EndpointSelector` (selection.ts), `VersionChooser` (weights.ts), the retry rules (retry.ts).
 * - Span hooks (spans.ts): with a `SpanSink`, every call, attempt and served call is recorded as a span.
 *
 * README.md explains the semantics (which failures are retried and why that is safe, weighted routing).
 */

export {
  type CallOptions,
  type CallTarget,
  DEFAULT_CALL_TIMEOUT_MS,
  type EndpointSource,
  type InvokerStats,
  isRequestId,
  type LiveCallDefaults,
  type LocalExecutor,
  MAX_CALL_TIMEOUT_MS,
  MAX_TRACED_RUNS,
  newRequestId,
  SliceInvoker,
  type SliceInvokerOptions,
} from "./invoker.ts";
export {
  DEFAULT_FLOW_LIMITS,
  type FlowLimits,
  type InvokeMesh,
  type RemoteCall,
  RemoteCalls,
  type RemoteCallsOptions,
  type RemoteStats,
  type ServedCall,
} from "./remote.ts";
export { type Endpoint, EndpointSelector, type Selection, type SelectionInput } from "./selection.ts";
export { VersionChooser, type VersionWeightsRecord } from "./weights.ts";
export {
  DEFAULT_RETRY_POLICY,
  FAILURE_KINDS,
  type FailureKind,
  neverRan,
  type RetryDecision,
  retryDecision,
  retryDelayMs,
  type RetryPolicy,
} from "./retry.ts";
export { asInvokeFailure, failureKindOf, InvokeFailure } from "./failure.ts";
export { INVOKE_CHANNEL } from "./_wire.ts";
export { InvokeSettings, type SettingsReader, timeoutKey } from "./settings.ts";
export {
  inTrace,
  type Span,
  spanClockMs,
  spanIdIn,
  type SpanKind,
  spanName,
  type SpanRecord,
  type SpanSink,
  toSpan,
  traceIdIn,
  withSpanId,
} from "./spans.ts";
