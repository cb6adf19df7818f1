/**
 * The node feature "metrics": the recorder the invoker and the HTTP router record into, the collector, and
 * the service that ships samples to the leader and keeps the cluster picture (service.ts). The management
 * API reads it through `view` (runtime/api/metrics.ts); later features (controller, rollouts, alerts, the
 * dashboard feed) take `view` as a typed option.
 *
 * `enabled: false` (the node's `--metrics off`) records nothing on the hot paths (no recorder is handed to
 * the invoker or the router) but still samples the process and ships it, so the cluster picture stays whole;
 * the benchmark compares both.
 */

import { type LatencyHistogram, type Logger, MetricsRecorder, type NodeId } from "../core/mod.ts";
import { Collector, type InstanceSource, type PeerSource } from "./collector.ts";
import { type MetricsMesh, MetricsService, type MetricsServiceStats } from "./service.ts";
import type {
  AspectMetrics,
  CacheMetrics,
  ConsensusMetrics,
  MetricsView,
  OutboundMetrics,
  TopicMetrics,
} from "./types.ts";

export interface MetricsFeatureOptions {
  self: NodeId;
  log: Logger;
  mesh: MetricsMesh & { stats(): { peers: readonly PeerSource[] } };
  leader(): { nodeId: NodeId } | null;
  /** Record slice calls and HTTP requests (default true). */
  enabled?: boolean;
  /** The node's slice instances (the deployment's executor), read once a second. */
  instances?(): readonly InstanceSource[];
  consensus?(): Omit<ConsensusMetrics, "commitLatency">;
  commitLatency?: LatencyHistogram;
  /** The cache service's counters per cache on this node. */
  caches?(): readonly CacheMetrics[];
  /** The outbound HTTP client's series per (group, host) on this node. */
  outbound?(): readonly OutboundMetrics[];
  /** Dynamic aspects' size figures per slice method on this node. */
  aspects?(): readonly AspectMetrics[];
  /** Pub/sub lag per (topic, consumer group), as this node's replica shows it. */
  topics?(): readonly TopicMetrics[];
  intervalMs?: number;
}

export interface MetricsFeature {
  readonly name: "metrics";
  readonly view: MetricsView;
  /** What the invoker and the HTTP router record into; undefined when recording is off. */
  readonly recorder: MetricsRecorder | undefined;
  /** Starts sampling (call once every source is built). */
  start(): void;
  status(): MetricsServiceStats & { recording: boolean };
  stop(): Promise<void>;
}

export function startMetrics(options: MetricsFeatureOptions): MetricsFeature {
  const recorder = options.enabled === false ? undefined : new MetricsRecorder();
  const collector = new Collector({
    self: options.self,
    recorder,
    instances: options.instances,
    peers: () => options.mesh.stats().peers,
    consensus: options.consensus,
    commitLatency: options.commitLatency,
    caches: options.caches,
    outbound: options.outbound,
    aspects: options.aspects,
    topics: options.topics,
  });
  const service = new MetricsService({
    self: options.self,
    log: options.log.with({ component: "metrics" }),
    mesh: options.mesh,
    leader: options.leader,
    collector,
    intervalMs: options.intervalMs,
  });
  let started = false;
  return {
    name: "metrics",
    view: service,
    recorder,
    start() {
      if (started) return;
      started = true;
      service.start();
    },
    status: () => ({ ...service.stats(), recording: recorder !== undefined }),
    stop() {
      service.stop();
      return Promise.resolve();
    },
  };
}
