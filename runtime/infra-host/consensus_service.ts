/**
 * What a service kept in the consensus KV (lock, scheduler, pub/sub) receives from the node: its access to the
 * KV, the applied state and its events, and whether this node leads (leader duties are fenced on the leader
 * record). One definition, so the three services are wired alike.
 */

import type { Logger, NodeId } from "../core/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import type { CallOptions, CallTarget } from "../invoke/mod.ts";
import type { InvokeOutcome } from "../sandbox/mod.ts";

export interface ConsensusServiceOptions {
  self: NodeId;
  log: Logger;
  kv: KvAccess;
  state(): KvState;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  isLeader(): boolean;
}

/** Invokes a slice method through the node's invoker (bound late: the invoker starts after the services). */
export type SliceInvoke = (
  target: string | CallTarget,
  method: string,
  request: unknown,
  options: CallOptions,
) => Promise<InvokeOutcome>;
