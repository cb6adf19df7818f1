/**
 * What the management API needs from the node. The node implements these; the API never reaches into the
 * node's internals, so the API can be tested against a real single-member node or any implementation.
 */

import type { Logger } from "../core/log.ts";
import type { EngineStats } from "../consensus/types.ts";
import type { KvCommand, KvEntry, KvEvent } from "../kv/commands.ts";

export interface MemberView {
  id: string;
  connected: boolean;
}

export interface LeaderView {
  nodeId: string;
  view: number;
  electedAt: number;
}

export interface NodeStatusView {
  nodeId: string;
  /** Caught up with the cluster and taking part in consensus. */
  ready: boolean;
  /** A quorum of members (this one included) is connected. */
  quorum: boolean;
  leader: LeaderView | null;
  members: MemberView[];
  /** KV store revision applied on this node. */
  revision: number;
  /** Highest consensus phase applied on this node. */
  phase: number;
  /** How this node's consensus phases were decided since it started. */
  consensus: EngineStats;
  /** API writes this node sent into the leader's batches, and those it served for others. */
  writeForwarding: ForwardStats;
  uptimeMs: number;
  /** Ports this node bound. */
  ports: { cluster: number; api: number; http: number };
  /** What each feature (repository, deployment, ...) reports about itself. */
  features?: Record<string, unknown>;
}

/** API writes a node sent into the leader's batches (runtime/node/forward.ts). */
export interface ForwardStats {
  /** Writes this member sent to the leader. */
  forwarded: number;
  /** Writes other members sent here. */
  served: number;
  /** Forwarded writes that failed because the leader disconnected before answering. */
  lostLeader: number;
  /** Forwarded writes waiting for an answer now. */
  inFlight: number;
}

/** A successful write: the store revision after it (and txn/delete details). */
export interface WriteOutcome {
  revision: number;
  succeeded?: boolean;
  deleted?: number;
}

export interface WatchStream extends AsyncIterable<KvEvent> {
  /** Ends the stream and releases its resources. */
  cancel(): void;
}

export interface KvAccess {
  readonly maxValueBytes: number;
  /** Replicates a command; resolves once it is applied on this node. Throws AetherError (no_quorum, timeout,
   * compare_failed, too_large, overloaded) otherwise. */
  write(command: KvCommand, options?: { timeoutMs?: number }): Promise<WriteOutcome>;
  /** Local read, or linearizable when `consistent` (a consensus barrier first). */
  get(key: string, options?: { consistent?: boolean; timeoutMs?: number }): Promise<KvEntry | undefined>;
  range(
    prefix: string,
    options?: { limit?: number; startAfter?: string },
  ): { revision: number; items: KvEntry[] };
  /** Events with revision >= fromRevision under the prefix; throws AetherError "gone" if compacted. */
  watch(prefix: string, fromRevision?: number): WatchStream;
}

export interface ApiDeps {
  status(): NodeStatusView;
  kv: KvAccess;
  log: Logger;
}
