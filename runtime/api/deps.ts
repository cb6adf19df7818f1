/**
 * What the management API needs from the node. The node implements these; the API never reaches into the
 * node's internals, so the API can be tested against a real single-member node or any implementation.
 */

import type { LogFilter, Logger, LogRingStats, SequencedLogRecord } from "../core/mod.ts";
import type { EngineStats } from "../consensus/mod.ts";
import type { ElectionStats, ForwardStats, KvAccess } from "../cluster/mod.ts";
import type { LeaderRecord } from "../model/mod.ts";
import type { WatchHubStats } from "../kv/mod.ts";
import type { AlertView } from "../control/mod.ts";
import type { EventBus, MetricsView } from "../metrics/mod.ts";
import type { ConfigFeature } from "../infra-host/mod.ts";

export interface MemberView {
  id: string;
  connected: boolean;
}

export interface NodeStatusView {
  nodeId: string;
  /** Caught up with the cluster and taking part in consensus. */
  ready: boolean;
  /** A quorum of members (this one included) is connected. */
  quorum: boolean;
  leader: LeaderRecord | null;
  members: MemberView[];
  /** KV store revision applied on this node. */
  revision: number;
  /** Highest consensus phase applied on this node. */
  phase: number;
  /** How this node's consensus phases were decided since it started. */
  consensus: EngineStats;
  /** API writes this node sent into the leader's batches, and those it served for others. */
  writeForwarding: ForwardStats;
  /** Leader changes this node has seen and the proposals it made. */
  elections: ElectionStats;
  /** Bounded queues of the cluster core: how full each is, its limit, and how often it refused. */
  limits: {
    watches: WatchHubStats;
    revisionWaiters: { waiting: number; maxWaiting: number; refused: number };
    /** Writes refused because the queue of writes waiting for a batch was full. */
    writeQueueRefused: number;
    /** This node's ring of recent log records (GET /api/v1/logs): how full, its limits, records dropped. */
    logRing?: LogRingStats;
  };
  uptimeMs: number;
  /** Ports this node bound. */
  ports: { cluster: number; api: number; http: number };
  /** What each feature (repository, deployment, ...) reports about itself. */
  features?: Record<string, unknown>;
}

/** Where a follower has read up to in one node's ring (its seq is meaningful only for that ring's epoch). */
export interface LogCursor {
  epoch: string;
  seq: number;
}

export interface ClusterLogQuery {
  filter: LogFilter;
  /** Records returned at most per node (and, without cursors, in all). */
  limit: number;
  /**
   * Absent: each node's newest matching records. Given: what each node wrote after its cursor, oldest first
   * (a node without a cursor, or whose ring restarted, answers from its oldest record).
   */
  cursors?: Record<string, LogCursor>;
}

export interface ClusterLogAnswer {
  /** Every answering node's records, merged by time (oldest first). */
  records: SequencedLogRecord[];
  /** Where to continue per node that answered. */
  cursors: Record<string, LogCursor>;
  /** Per node: records its ring dropped before a follower read them. */
  missed: Record<string, number>;
  /** Nodes that could not answer, with the reason. */
  unreachable: Record<string, string>;
}

/** The log records of every member, gathered by the node this API runs on. */
export interface LogsView {
  gather(query: ClusterLogQuery): Promise<ClusterLogAnswer>;
}

export interface ApiDeps {
  status(): NodeStatusView;
  kv: KvAccess;
  log: Logger;
  logs: LogsView;
  /** The node's cluster event bus (GET /api/v1/events, GET /api/v1/ws). */
  events: EventBus;
  /** The cluster metrics snapshot for the WebSocket feed (absent or undefined: the node status is sent). */
  clusterSnapshot?: () => unknown;
  /** The alerts pending and firing now, as this node's alert board holds them (GET /api/v1/alerts). */
  alerts?: AlertsView;
  /** The cluster metrics this node holds: GET /metrics, /api/v1/metrics, /metrics/history, /invocations. */
  metrics?: MetricsView;
  /** Dynamic configuration, secrets and rate limits: /api/v1/config, /secrets, /ratelimits. */
  config?: ConfigFeature;
}

export interface AlertsView {
  active(): AlertView[];
  recentlyResolved(): (AlertView & { resolvedAt: number })[];
}
