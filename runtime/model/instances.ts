/**
 * `instances/{node}/{group}:{artifact}:{version}/{n}`: the lifecycle of each slice instance. The state list
 * here is the runtime's one lifecycle vocabulary: the leader writes the command states (LOAD, ACTIVATE,
 * DEACTIVATE, UNLOAD), the node the in-progress and result states, and the sandbox's transition table
 * (runtime/sandbox/lifecycle.ts) is written over the same names.
 */

import type { NodeId } from "../core/mod.ts";
import { nodeId } from "./_fields.ts";
import {
  array,
  boolean,
  type Check,
  integer,
  literal,
  object,
  optional,
  string,
  timestamp,
} from "./_validate.ts";

export const LIFECYCLE_STATES = [
  "LOAD",
  "LOADING",
  "LOADED",
  "ACTIVATE",
  "ACTIVATING",
  "ACTIVE",
  "DEACTIVATE",
  "DEACTIVATING",
  "FAILED",
  "UNLOAD",
  "UNLOADING",
] as const;
export type LifecycleState = typeof LIFECYCLE_STATES[number];

export function isLifecycleState(value: unknown): value is LifecycleState {
  return typeof value === "string" && (LIFECYCLE_STATES as readonly string[]).includes(value);
}

/** `instances/{node}/{g}:{a}:{v}/{n}`: the lifecycle command (leader) or state (node) of one instance. */
export interface InstanceRecord {
  state: LifecycleState;
  updatedAt: number;
  /** In-progress states: when the node gives up and reports FAILED. */
  deadline?: number;
  /** FAILED: why. */
  reason?: string;
  /**
   * Set by the leader on a LOAD that moves an instance (rebalancing): the instance on `node` with the same
   * coordinates and number `n` is removed once this one is ACTIVE, so the slice never drops below its count.
   */
  replaces?: { node: NodeId; n: number };
  /** Set by the leader with DEACTIVATE (kept by the node): after DEACTIVATING, LOADED means "unload me next". */
  retiring?: boolean;
  /**
   * FAILED because its node no longer runs it (the node restarted, or stopped it without quorum): not a failure
   * of the slice, so it is replaced without backoff.
   */
  lost?: boolean;
  /**
   * FAILED while method calls were in flight (its sandbox crashed, exited, ran out of memory or stopped
   * answering during them): their request ids, at most 8. Such a crash is charged to the requests, not to
   * the slice (see runtime/deployment/cluster_manager.ts).
   */
  crashedBy?: string[];
}

export const instanceCheck: Check<InstanceRecord> = object({
  state: literal(LIFECYCLE_STATES),
  updatedAt: timestamp(),
  deadline: optional(timestamp()),
  reason: optional(string({ maxLength: 4096 })),
  replaces: optional(object({ node: nodeId, n: integer(0, 999_999_999) })),
  retiring: optional(boolean()),
  lost: optional(boolean()),
  crashedBy: optional(array(string({ maxLength: 128 }), { max: 8 })),
});
