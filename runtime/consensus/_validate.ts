/**
 * Shape checks for everything that enters the engine from outside: peer messages, submitted batches, restored
 * state and configuration. They run before the engine changes anything, so a bad input leaves it untouched.
 */

import { AetherError, type NodeId } from "../core/mod.ts";
import type { Batch, ConsensusMsg, EngineConfig, PhaseRecord, RestoredState } from "./types.ts";

/** Ben-Or ends within a few rounds with overwhelming probability; a larger round number is corrupt input. */
export const MAX_ROUND = 10_000;

export const SUPPORTED_MEMBER_COUNTS: readonly number[] = [1, 3, 5];

function fail(where: string, what: string): never {
  throw new AetherError("bad_request", `${where}: ${what}`);
}

function isPositiveInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 1;
}

function isNonNegativeInt(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

export function checkBatch(batch: unknown, where: string): asserts batch is Batch {
  if (typeof batch !== "object" || batch === null) fail(where, "batch must be an object");
  const b = batch as Record<string, unknown>;
  if (typeof b.id !== "string" || b.id.length === 0) fail(where, "batch id must be a non-empty string");
  if (typeof b.submitter !== "string" || b.submitter.length === 0) {
    fail(where, `batch ${b.id}: submitter must be a non-empty string`);
  }
  if (typeof b.createdAt !== "number" || !Number.isFinite(b.createdAt)) {
    fail(where, `batch ${b.id}: createdAt must be a finite number`);
  }
  if (!Array.isArray(b.commands)) fail(where, `batch ${b.id}: commands must be an array`);
}

function checkBatchOrNull(batch: unknown, where: string): void {
  if (batch !== null) checkBatch(batch, where);
}

function checkPhase(phase: unknown, where: string): void {
  if (!isPositiveInt(phase)) fail(where, `phase must be a positive integer, got ${String(phase)}`);
}

function checkRound(round: unknown, where: string): void {
  if (!isPositiveInt(round) || round > MAX_ROUND) {
    fail(where, `round must be an integer in 1..${MAX_ROUND}, got ${String(round)}`);
  }
}

/** A value-1 vote must name its batch; "?" may name the candidate the sender knows. */
function checkVote(value: unknown, batchId: unknown, allowQuestion: boolean, where: string): void {
  const allowed = allowQuestion ? [0, 1, 2] : [0, 1];
  if (!allowed.includes(value as number)) fail(where, `vote value must be one of ${allowed.join(", ")}`);
  if (batchId !== undefined && (typeof batchId !== "string" || batchId.length === 0)) {
    fail(where, "batchId must be a non-empty string when present");
  }
  if (value === 1 && batchId === undefined) fail(where, "a vote for 1 must carry the batchId");
  if (value === 0 && batchId !== undefined) fail(where, "a vote for 0 must not carry a batchId");
}

export function checkMessage(from: NodeId, msg: unknown): asserts msg is ConsensusMsg {
  const where = `consensus message from ${from}`;
  if (typeof msg !== "object" || msg === null) fail(where, "not an object");
  const m = msg as Record<string, unknown>;
  switch (m.t) {
    case "propose":
      checkPhase(m.phase, where);
      return checkBatchOrNull(m.batch, where);
    case "vote1":
    case "vote2":
      checkPhase(m.phase, where);
      checkRound(m.round, where);
      return checkVote(m.value, m.batchId, m.t === "vote2", where);
    case "decision":
      checkPhase(m.phase, where);
      return checkBatchOrNull(m.batch, where);
    case "batch":
      return checkBatch(m.batch, where);
    case "syncReq":
      if (!isPositiveInt(m.fromPhase)) fail(where, "syncReq.fromPhase must be a positive integer");
      if (!isNonNegativeInt(m.nonce)) fail(where, "syncReq.nonce must be a non-negative integer");
      return;
    case "syncRes":
      return checkSyncResponse(m, where);
    default:
      fail(where, `unknown message type ${JSON.stringify(m.t)}`);
  }
}

function checkSyncResponse(m: Record<string, unknown>, where: string): void {
  if (!isNonNegativeInt(m.nonce)) fail(where, "syncRes.nonce must be a non-negative integer");
  if (!isNonNegativeInt(m.lastDecided)) fail(where, "syncRes.lastDecided must be a non-negative integer");
  if (m.snapshot !== undefined) {
    const s = m.snapshot as Record<string, unknown>;
    if (typeof s !== "object" || s === null || !isPositiveInt(s.phase) || !(s.data instanceof Uint8Array)) {
      fail(where, "syncRes.snapshot must be {phase: positive integer, data: bytes}");
    }
  }
  if (!Array.isArray(m.decisions)) fail(where, "syncRes.decisions must be an array");
  let previous: number | undefined;
  for (const d of m.decisions as Record<string, unknown>[]) {
    if (typeof d !== "object" || d === null) fail(where, "syncRes.decisions holds a non-object");
    checkPhase(d.phase, where);
    checkBatchOrNull(d.batch, where);
    if (previous !== undefined && d.phase !== previous + 1) {
      fail(where, "syncRes.decisions are not consecutive");
    }
    previous = d.phase as number;
  }
}

export function checkConfig(config: EngineConfig): void {
  const where = "consensus config";
  const members = config.members;
  if (!Array.isArray(members) || !SUPPORTED_MEMBER_COUNTS.includes(members.length)) {
    fail(
      where,
      `members must list 1, 3 or 5 core members, got ${Array.isArray(members) ? members.length : "none"}`,
    );
  }
  if (new Set(members).size !== members.length) {
    fail(where, `members contain duplicates: ${members.join(", ")}`);
  }
  if (!members.includes(config.self)) fail(where, `self "${config.self}" is not one of the members`);
  for (const key of ["retransmitMs", "syncRetryMs", "recentDecisions", "maxPhasesAhead"] as const) {
    if (!isPositiveInt(config[key])) {
      fail(where, `${key} must be a positive integer, got ${String(config[key])}`);
    }
  }
  if (config.maxPendingBatches !== undefined && !isPositiveInt(config.maxPendingBatches)) {
    fail(where, `maxPendingBatches must be a positive integer, got ${String(config.maxPendingBatches)}`);
  }
}

export function checkRestored(restored: RestoredState): void {
  const where = "restored consensus state";
  if (!isNonNegativeInt(restored.lastDecided)) fail(where, "lastDecided must be a non-negative integer");
  if (restored.record !== undefined) checkRecord(restored.record, restored.lastDecided, where);
}

function checkRecord(record: PhaseRecord, lastDecided: number, where: string): void {
  checkPhase(record.phase, where);
  if (record.phase > lastDecided + 1) {
    fail(
      where,
      `phase record ${record.phase} is ahead of the decided log (${lastDecided}): storage is corrupt`,
    );
  }
  if (record.proposal !== undefined) checkBatchOrNull(record.proposal, where);
  if (!Array.isArray(record.rounds)) fail(where, "record.rounds must be an array");
  record.rounds.forEach((round, i) => {
    const last = i === record.rounds.length - 1;
    if (!round.vote1) fail(where, `record round ${i + 1} has no vote1`);
    checkVote(round.vote1.value, round.vote1.batchId, false, where);
    if (round.vote2) checkVote(round.vote2.value, round.vote2.batchId, true, where);
    else if (!last) fail(where, `record round ${i + 1} has no vote2 but later rounds exist`);
  });
  if (record.rounds.length > 0 && record.proposal === undefined) {
    fail(where, "record has votes but no proposal");
  }
}
