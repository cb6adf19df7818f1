import assert from "node:assert/strict";
import { decodeValue, encodeValue } from "./codec.ts";
import { formatKey, parseKey } from "./keys.ts";
import { LEADER_KEY, type LeaderRecord, parseLeaderRecord } from "./leader.ts";

Deno.test("leader: a record the model encodes is the one the cluster's election reads back", () => {
  const record: LeaderRecord = { nodeId: "n2", view: 7, electedAt: 1_700_000_000_123 };
  const bytes = encodeValue("leader", record);
  assert.deepEqual(parseLeaderRecord(bytes), record);
  assert.deepEqual(decodeValue("leader", bytes), record);
  assert.deepEqual(parseKey(LEADER_KEY), { family: "leader" });
  assert.equal(formatKey({ family: "leader" }), LEADER_KEY);
});
