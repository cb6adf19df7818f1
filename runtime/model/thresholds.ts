/** `thresholds/{metric}`: alert thresholds, one record per metric. */

import { type Check, finite, object, timestamp } from "./_validate.ts";

/** `thresholds/{metric}`: alert thresholds of one metric. */
export interface ThresholdRecord {
  warning: number;
  critical: number;
  updatedAt: number;
}

export const thresholdCheck: Check<ThresholdRecord> = object({
  warning: finite(),
  critical: finite(),
  updatedAt: timestamp(),
});
