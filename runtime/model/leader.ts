/**
 * `leader`: the member holding cluster-management duties, agreed through consensus. The record, its key and
 * its lenient parser belong to the cluster's election (runtime/cluster/leader.ts); the model re-exports them
 * and adds the strict check that the key schema applies to every family.
 */

import type { LeaderRecord } from "../cluster/mod.ts";
import { nodeId } from "./_fields.ts";
import { type Check, integer, object, timestamp } from "./_validate.ts";

export { LEADER_KEY, type LeaderRecord, parseLeaderRecord } from "../cluster/mod.ts";

export const leaderCheck: Check<LeaderRecord> = object({ nodeId, view: integer(0), electedAt: timestamp() });
