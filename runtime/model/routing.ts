/** `routing/{group}:{artifact}`: traffic weights between two versions of a slice while a deployment runs. */

import { version } from "./_fields.ts";
import { type Check, FieldError, integer, join, object, optional, refine, timestamp } from "./_validate.ts";

/** `routing/{g}:{a}`: traffic weights between two versions during a rolling, canary or blue-green deployment. */
export interface RoutingRecord {
  oldVersion: string;
  newVersion: string;
  oldWeight: number;
  newWeight: number;
  updatedAt: number;
  /**
   * Instance counts of each version while a rolling update moves in batches (written by the rollout
   * reducer); absent: each version runs at the target's count.
   */
  oldInstances?: number;
  newInstances?: number;
}

export const routingCheck: Check<RoutingRecord> = refine(
  object({
    oldVersion: version,
    newVersion: version,
    oldWeight: integer(0, 1_000_000),
    newWeight: integer(0, 1_000_000),
    updatedAt: timestamp(),
    oldInstances: optional(integer(0, 10_000)),
    newInstances: optional(integer(0, 10_000)),
  }),
  (value, path) => {
    if (value.oldWeight === 0 && value.newWeight === 0) {
      throw new FieldError(join(path, "newWeight"), "oldWeight and newWeight must not both be 0");
    }
    if (value.oldVersion === value.newVersion) {
      const at = join(path, "newVersion");
      throw new FieldError(at, `${at} must differ from oldVersion (both ${value.oldVersion})`);
    }
  },
);
