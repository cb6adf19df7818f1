/**
 * Metrics: collection, leader aggregation over the mesh, history, Prometheus text, traces, and the node's
 * cluster event bus.
 */
export {
  type ClusterEvent,
  DEFAULT_EVENT_CAPACITY,
  EVENT_TYPES,
  EventBus,
  type EventBusOptions,
  type EventBusStats,
  type EventDetails,
  type EventInput,
  type EventListener,
  type EventsGone,
  type EventsSince,
  type EventSubscription,
  type EventTypeFilter,
  isEventType,
  matchesTypes,
  MAX_EVENT_CAPACITY,
  MAX_EVENT_DETAILS_BYTES,
  MAX_EVENT_SUBSCRIBERS,
  parseEventTypeFilter,
  type RelayedEvent,
} from "./events.ts";
// Cluster metrics (issue 16 items 1-4): the contract other features read (types.ts).
export type {
  AspectMetrics,
  CacheMetrics,
  ClusterSnapshot,
  ConsensusMetrics,
  HistoryAnswer,
  HistoryQuery,
  HistorySeries,
  InstanceMetrics,
  InvocationSummary,
  MergedMethodMetrics,
  MethodMetrics,
  MetricsView,
  NodeEntry,
  NodeMetrics,
  OutboundMetrics,
  PeerMetrics,
  ProcessMetrics,
  RouteMetrics,
  SliceMetrics,
} from "./types.ts";
// Request traces (issue 16 item 7): the span ring, the tree, gathering from every member, OTLP export.
export {
  assembleTrace,
  DEFAULT_SPAN_RING_CAPACITY,
  isSpan,
  isTraceId,
  MAX_SPAN_RING_BYTES,
  MAX_SPAN_RING_CAPACITY,
  MAX_TRACE_SPANS,
  type SpanQueryAnswer,
  SpanRing,
  type SpanRingStats,
  teeSpans,
  type TraceNode,
  type TraceTree,
} from "./traces.ts";
export {
  type ClusterSpans,
  ClusterTraces,
  type ClusterTracesOptions,
  MAX_PENDING_TRACE_QUERIES,
  PEER_TRACE_QUERY_TIMEOUT_MS,
  type TraceMesh,
  TRACES_CHANNEL,
} from "./traces_cluster.ts";
export {
  OTLP_BATCH_SPANS,
  OTLP_MAX_QUEUED_SPANS,
  OtlpExporter,
  type OtlpExporterOptions,
  type OtlpExporterStats,
  otlpTraceRequest,
  otlpTracesUrl,
} from "./traces_otlp.ts";
export {
  DEFAULT_SUSPECT_AFTER_MS,
  EVENTS_CHANNEL,
  type EventSources,
  type EventSourcesOptions,
  type KvView,
  type MeshView,
  startEventSources,
} from "./event_sources.ts";
// Cluster metrics: the node feature, its parts (each usable alone in tests and benchmarks), Prometheus text.
export { type MetricsFeature, type MetricsFeatureOptions, startMetrics } from "./feature.ts";
export { Collector, type CollectorSources, type InstanceSource, type PeerSource } from "./collector.ts";
export {
  DEFAULT_INTERVAL_MS,
  FULL_EVERY,
  historyValues,
  MAX_SNAPSHOT_SUBSCRIBERS,
  type MetricsMesh,
  MetricsService,
  type MetricsServiceOptions,
  type MetricsServiceStats,
} from "./service.ts";
export {
  ClusterTable,
  errorCount,
  mergeCaches,
  mergeSlices,
  methodKey,
  routeKey,
  STALE_AFTER_MS,
} from "./aggregate.ts";
export { type Checkpoint, checkpointOf, MAX_WINDOW_SECONDS, RecentWindow } from "./window.ts";
export {
  BYTES_PER_SERIES,
  COARSE_STEP_SECONDS,
  FINE_SECONDS,
  MAX_HISTORY_SERIES,
  MAX_QUERY_POINTS,
  MAX_QUERY_SERIES,
  MetricsHistory,
  WINDOW_SECONDS,
} from "./history.ts";
export { PROMETHEUS_CONTENT_TYPE, prometheusText } from "./prometheus.ts";
export { METRICS_CHANNEL } from "./_wire.ts";
