/**
 * The cluster's records by family, typed keys and values over the generic KV store: blueprints, targets,
 * instances (the lifecycle vocabulary), endpoints, routes, artifacts, routing weights, the leader record (the
 * cluster's, re-exported), configuration, thresholds and the operator namespace `app/`; the key schema and
 * the codec that validates records on the way in and out.
 */
export * from "./keys.ts";
export * from "./codec.ts";
export * from "./app.ts";
export { type ArtifactRecord } from "./artifacts.ts";
export { type BlueprintRecord, type BlueprintSlice } from "./blueprints.ts";
export { type ConfigRecord, type JsonValue } from "./config.ts";
export { type EndpointRecord } from "./endpoints.ts";
export { type InstanceRecord, isLifecycleState, LIFECYCLE_STATES, type LifecycleState } from "./instances.ts";
export { LEADER_KEY, type LeaderRecord, parseLeaderRecord } from "./leader.ts";
export { HTTP_METHODS, type HttpMethod, isRoutePath, type RouteRecord } from "./routes.ts";
export {
  type CordonRecord,
  LABEL_PATTERN,
  labelsText,
  MAX_AFFINITY_SLICES,
  MAX_NODE_LABELS,
  type NodeLabelsRecord,
  nodeMatches,
  parseNodeLabels,
  placementCheck,
  type PlacementRule,
} from "./nodes.ts";
export { type RoutingRecord } from "./routing.ts";
export {
  DEFAULT_ANALYSIS,
  DEFAULT_CANARY_STEPS,
  DEFAULT_SCALE_DOWN_DELAY_MS,
  isRolloutFinished,
  MAX_ROLLOUT_STEPS,
  MAX_ROLLOUT_VERDICTS,
  newRolloutRecord,
  parseRolloutSpec,
  parseRolloutStep,
  ROLLOUT_PHASES,
  ROLLOUT_STRATEGIES,
  type RolloutAnalysis,
  type RolloutPhase,
  type RolloutRecord,
  type RolloutSpec,
  type RolloutStep,
  type RolloutStrategy,
  type RolloutVerdict,
} from "./rollouts.ts";
export {
  budgetCount,
  type CrashReport,
  MAX_CRASH_REPORTS,
  type RoutedBackoff,
  type TargetBackoff,
  type TargetRecord,
} from "./targets.ts";
export {
  ALERT_METRICS,
  ALERT_OPS,
  ALERT_RULE_NAME,
  ALERT_SEVERITIES,
  type AlertExpression,
  type AlertMetric,
  type AlertOp,
  type AlertRuleRecord,
  type AlertSeverity,
  DEFAULT_ALERT_WINDOW_MS,
  expressionOf,
  MAX_ALERT_FOR_MS,
  MAX_ALERT_RULES,
  MAX_ALERT_WINDOW_MS,
  parseAlertExpression,
  type ThresholdRecord,
} from "./thresholds.ts";
export * from "./auth.ts";
export * from "./controller.ts";
export * from "./stores.ts";
export * from "./secrets.ts";
export * from "./locks.ts";
export * from "./aspects.ts";
export * from "./scheduler.ts";
