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
export {
  DEFAULT_SUSPECT_AFTER_MS,
  EVENTS_CHANNEL,
  type EventSources,
  type EventSourcesOptions,
  type KvView,
  type MeshView,
  startEventSources,
} from "./event_sources.ts";
// Cluster metrics (issue 16 items 1-4): the contract other features read (types.ts).
export type {
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
  PeerMetrics,
  ProcessMetrics,
  RouteMetrics,
  SliceMetrics,
} from "./types.ts";
