/** `targets/{group}:{artifact}`: the desired version and instance count of each slice. */

import type { NodeId } from "../core/mod.ts";
import { bounds, coordsField, nodeId, version } from "./_fields.ts";
import { placementCheck, type PlacementRule } from "./nodes.ts";
import { array, type Check, integer, object, optional, refine, string, timestamp } from "./_validate.ts";

/** `targets/{group}:{artifact}`: the desired version and instance count of one slice. */
export interface TargetRecord {
  version: string;
  instances: number;
  min?: number;
  max?: number;
  /** Blueprint ids that want this slice; empty when it was deployed directly. */
  owners: string[];
  /**
   * Disruption budget: instances that must stay ACTIVE through voluntary disruptions (rollouts, scaling down
   * by an operator), a count (`"2"`) or a share of `instances` (`"50%"`, rounded up).
   */
  minAvailable?: string;
  /** Placement rules (labels required, a label to spread over); see runtime/model/nodes.ts. */
  placement?: PlacementRule;
  updatedAt: number;
  /**
   * Failure backoff, kept here (not in the leader's memory) so it survives a change of leader: after each
   * FAILED instance the leader waits until `retryAt` before it places a replacement, preferring a node other
   * than `lastFailedNode`. Cleared once the slice has stayed healthy for a while.
   */
  backoff?: TargetBackoff;
  /**
   * The same for the other version `routing/{g}:{a}` keeps running next to the target's (see
   * runtime/deployment/cluster_manager.ts): its failures back off on their own, so a failing canary never delays
   * replacements of the target version. Tagged with its version; dropped when that version is no longer routed.
   */
  routedBackoff?: RoutedBackoff;
  /**
   * Requests during which instances of the slice crashed (most recent last, at most `MAX_CRASH_REPORTS`):
   * written by the leader when it unloads an instance that failed with calls in flight (`crashedBy`).
   */
  crashes?: CrashReport[];
}

/** A request that crashed instances of a slice. */
export interface CrashReport {
  requestId: string;
  /** Instances that failed while it was in flight. */
  count: number;
  /** When the last of them was seen failed (ms). */
  lastAt: number;
  /** `node: reason` of the last of them. */
  lastReason?: string;
}

/** How many requests `crashes` remembers (the oldest goes first). */
export const MAX_CRASH_REPORTS = 16;

export interface RoutedBackoff extends TargetBackoff {
  version: string;
}

export interface TargetBackoff {
  /** Consecutive failures of the slice's instances since it was last healthy. */
  failures: number;
  /** No replacement is placed before this time (ms). */
  retryAt: number;
  lastFailedNode?: NodeId;
  /** Why the last instance failed (for operators: `slices`, `--wait`). */
  lastReason?: string;
}

const backoffFields = {
  failures: integer(1, 1_000_000),
  retryAt: timestamp(),
  lastFailedNode: optional(nodeId),
  lastReason: optional(string({ maxLength: 1024 })),
};

export const targetCheck: Check<TargetRecord> = refine(
  object({
    version,
    instances: integer(0, 10_000),
    min: optional(integer(0, 10_000)),
    max: optional(integer(1, 10_000)),
    owners: array(coordsField, { unique: true }),
    minAvailable: optional(string({
      pattern: /^(?:\d{1,5}|\d{1,3}%)$/,
      expectation: 'a count such as "2" or a percentage such as "50%"',
    })),
    placement: optional(placementCheck),
    updatedAt: timestamp(),
    backoff: optional(object(backoffFields)),
    routedBackoff: optional(object({ version, ...backoffFields })),
    crashes: optional(
      array(
        object({
          requestId: string({ maxLength: 128 }),
          count: integer(1, 1_000_000),
          lastAt: timestamp(),
          lastReason: optional(string({ maxLength: 1024 })),
        }),
        { max: MAX_CRASH_REPORTS },
      ),
    ),
  }),
  bounds,
);

/** The disruption budget as a count of instances out of `instances` (a percentage rounds up). */
export function budgetCount(minAvailable: string | undefined, instances: number): number {
  if (minAvailable === undefined) return 0;
  if (minAvailable.endsWith("%")) return Math.ceil((Number(minAvailable.slice(0, -1)) / 100) * instances);
  return Number(minAvailable);
}
