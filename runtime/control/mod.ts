/**
 * The control layer: the autoscaling controller (a decision tree on the leader, with a forecaster that may
 */
export * from "./controller.ts";
