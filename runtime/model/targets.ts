/** `targets/{group}:{artifact}`: the desired version and instance count of each slice. */

import type { NodeId } from "../core/mod.ts";
import { bounds, coordsField, nodeId, version } from "./_fields.ts";
import { array, type Check, integer, object, optional, refine, string, timestamp } from "./_validate.ts";

/** `targets/{group}:{artifact}`: the desired version and instance count of one slice. */
export interface TargetRecord {
  version: string;
  instances: number;
  min?: number;
  max?: number;
  /** Blueprint ids that want this slice; empty when it was deployed directly. */
  owners: string[];
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
}

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
    updatedAt: timestamp(),
    backoff: optional(object(backoffFields)),
    routedBackoff: optional(object({ version, ...backoffFields })),
  }),
  bounds,
);
