/**
 * The control layer: the autoscaling controller (a decision tree on the leader, with a forecaster that may
 * only act earlier), alerts on thresholds, rollouts. Each part adds its exports here.
 */
export * from "./controller.ts";
export * from "./controller_activation.ts";
export * from "./controller_feature.ts";
export * from "./controller_load.ts";
export * from "./forecast.ts";
export * from "./forecast_onnx.ts";
export * from "./rollout.ts";
export * from "./rollout_feature.ts";
export * from "./rollout_metrics.ts";
export * from "./rollout_spec.ts";
export * from "./alerts.ts";
export * from "./alerts_delivery.ts";
export * from "./alerts_feature.ts";
export * from "./drain.ts";
