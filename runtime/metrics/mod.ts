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
} from "./events.ts";
