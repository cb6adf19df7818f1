/**
 * The contract of the Rabia engine: what goes in, what comes out, what must be made durable.
 *
 * The engine is a pure, deterministic state machine. It owns no sockets, timers, clocks or randomness; every
 * call takes the current time as an argument and returns a list of effects for the caller (the node's IO layer
 * or the simulator) to carry out, in order.
 *
 * Protocol (Rabia, SOSP 2021: a weak multi-valued consensus per slot, built on Ben-Or's randomized binary
 * consensus with a common coin). One slot is called a *phase*; each phase decides at most one batch.
 *
 *   1. Propose: every member broadcasts its proposal for the phase: its oldest pending batch (by createdAt,
 *      then id), or null when it has none.
 *   2. On a quorum of proposals: state = 1 if some batch id has a majority of all members among them (that
 *      batch is the phase's candidate), else state = 0.
 *   3. Round r, vote 1 ("state"): broadcast state. On a quorum of round-r vote-1 messages:
 *      vote = v if a majority of all members sent v, else "?".
 *   4. Round r, vote 2: broadcast vote. On a quorum of round-r vote-2 messages:
 *        - some non-"?" value v appears at least f+1 times: decide v;
 *        - some non-"?" value v appears (fewer times): state = v (the value is *locked* for round r+1);
 *        - all "?": state = coin(phase, r), a common coin every member computes alike.
 *      Then round r+1 starts at step 3.
 *   Deciding 1 commits the candidate batch; deciding 0 commits nothing for the phase.
 *
 * Fast path: when a member holds identical proposals from *every* member, every member's state must be 1 for
 * that batch, so it may decide at once; likewise when it holds identical round-1 vote-1 messages from every
 * member. Unanimity is required: with n = 3 or 5 a smaller "super-majority" of n - f lets the coin decide the
 * opposite value in a run where the fast decider's messages are late (see rabia.ts for the counter-example).
 * The same certainty holds when the proposals a member holds leave no batch able to reach a majority even if
 * every missing proposal named it: every member's state must be 0, so all n vote-1 messages will be 0, and it
 * decides 0 at once (members that proposed different batches at the same moment skip the vote rounds).
 *
 * A member that decides by voting broadcasts a Decision so that members still voting adopt it; decisions are
 * final and safe to adopt from any member. A member that learns the outcome before it holds the decided
 * batch's content keeps the phase open and sends its next-round votes (which every member sends alike) until
 * the content arrives; see rabia.ts. Messages of phases already decided are answered with their Decision.
 *
 * Crash recovery: a member that votes, crashes and votes differently after a restart would equivocate and can
 * break agreement. So every proposal and vote is recorded in the PhaseRecord and made durable *before* it is
 * sent, and a restarted member resumes its recorded phase with the same proposal and votes.
 */

import type { NodeId } from "../core/mod.ts";

/** Client commands travel through the engine as opaque values of type C. */
export interface Batch<C = unknown> {
  /** `${submitter}:${incarnation}:${seq}`; unique in the cluster's lifetime. */
  id: string;
  submitter: NodeId;
  /** The submitter's clock when the batch was formed; pending batches are ordered by (createdAt, id). */
  createdAt: number;
  commands: C[];
}

/** 0 and 1 are binary consensus values; 2 stands for "?" (no majority seen). */
export type BinaryValue = 0 | 1;
export type VoteValue = 0 | 1 | 2;
export const QUESTION: VoteValue = 2;

export interface ProposeMsg<C = unknown> {
  t: "propose";
  phase: number;
  batch: Batch<C> | null;
}

/** Round r, first exchange: the sender's state. `batchId` names the candidate when value is 1. */
export interface Vote1Msg {
  t: "vote1";
  phase: number;
  round: number;
  value: BinaryValue;
  batchId?: string;
}

/**
 * Round r, second exchange: the sender's vote. `batchId` names the candidate when value is 1, and also when
 * value is "?" (a "?" voter has always seen a vote-1 for 1, so it knows the candidate; a member that takes
 * coin 1 in the next round needs it, even after a restart that lost the vote-1 messages).
 */
export interface Vote2Msg {
  t: "vote2";
  phase: number;
  round: number;
  value: VoteValue;
  batchId?: string;
}

/** A final decision for a phase; `batch` null means the phase decided 0 (nothing committed). */
export interface DecisionMsg<C = unknown> {
  t: "decision";
  phase: number;
  batch: Batch<C> | null;
}

/** Gossip of a newly formed batch, so every member has it pending before any phase proposes it. */
export interface NewBatchMsg<C = unknown> {
  t: "batch";
  batch: Batch<C>;
}

/** "Send me what was decided from `fromPhase` on." */
export interface SyncRequestMsg {
  t: "syncReq";
  fromPhase: number;
  /** Echoed in the response so a requester can match answers to its current attempt. */
  nonce: number;
}

/** A state-machine snapshot taken after applying every phase up to and including `phase`. */
export interface Snapshot {
  phase: number;
  data: Uint8Array;
}

export interface DecidedPhase<C = unknown> {
  phase: number;
  batch: Batch<C> | null;
}

export interface SyncResponseMsg<C = unknown> {
  t: "syncRes";
  nonce: number;
  /** The responder's highest decided phase (0 when none). */
  lastDecided: number;
  /** Present when the requested phase is older than the responder's retained log. */
  snapshot?: Snapshot;
  /** Consecutive decisions following the snapshot (or starting at fromPhase), in phase order. */
  decisions: DecidedPhase<C>[];
}

export type ConsensusMsg<C = unknown> =
  | ProposeMsg<C>
  | Vote1Msg
  | Vote2Msg
  | DecisionMsg<C>
  | NewBatchMsg<C>
  | SyncRequestMsg
  | SyncResponseMsg<C>;

/** What this member has said in its current phase; durable before any of it is sent. */
export interface PhaseRecord<C = unknown> {
  phase: number;
  /** undefined: not proposed yet; null: proposed "nothing". */
  proposal?: Batch<C> | null;
  /** rounds[r - 1] holds what was sent in round r. */
  rounds: {
    vote1?: { value: BinaryValue; batchId?: string };
    vote2?: { value: VoteValue; batchId?: string };
  }[];
}

/** Everything the engine needs to resume after a restart. */
export interface RestoredState<C = unknown> {
  /** Highest phase whose decision is durable and applied to the state machine (0 for a new member). */
  lastDecided: number;
  /** The record of phase lastDecided + 1, if this member had started it. */
  record?: PhaseRecord<C>;
}

export type Effect<C = unknown> =
  /** Send to one member. */
  | { type: "send"; to: NodeId; msg: ConsensusMsg<C> }
  /** Send to every other member. */
  | { type: "broadcast"; msg: ConsensusMsg<C> }
  /** Make the record durable before carrying out any later effect of the same call. */
  | { type: "persist"; record: PhaseRecord<C> }
  /**
   * Apply the phase's decision to the state machine and make it durable (decided log), in phase order; the
   * engine emits every phase exactly once, with consecutive phase numbers.
   */
  | { type: "decide"; phase: number; batch: Batch<C> | null }
  /** Replace the state machine with the snapshot; later decide effects continue from snapshot.phase + 1. */
  | { type: "installSnapshot"; snapshot: Snapshot }
  /** Answer a peer's sync request from durable storage (snapshot and decided log). */
  | { type: "serveSync"; to: NodeId; request: SyncRequestMsg }
  /**
   * Batches the engine gave up without deciding them here: other members' batches it held when it installed a
   * snapshot (they may be inside it), and batches a peer reported decided in a phase this member passed
   * without learning it (after a snapshot). Tickets of this member's own batches learn "outcome unknown".
   */
  | { type: "dropped"; batchIds: string[] }
  /** The engine changed status; "active" means it takes part in phases and accepts submissions. */
  | { type: "status"; status: EngineStatus };

export type EngineStatus = "syncing" | "active";

/** How this member's phases were decided since it started, and its pending batches. */
export interface EngineStats {
  /** Phases decided here, however they were learned. */
  decided: number;
  /** Of those, phases that decided no batch (0): proposals collided or nothing was proposed. */
  empty: number;
  /** Commands in the batches decided here (the mean batch size is this over `decided - empty`). */
  decidedCommands: number;
  /** Decided from the proposals alone (all n equal, or no majority possible): one message delay. */
  byProposals: number;
  /** Decided from n equal round-1 votes. */
  byVote1: number;
  /** Decided from f + 1 equal round-2 votes (the slow path). */
  byVote2: number;
  /** Batches waiting to be decided now, and their bound (EngineConfig.maxPendingBatches). */
  pendingBatches: number;
  maxPendingBatches: number;
  /** Other members' batches not kept (or evicted for older ones) because the pending set was full. */
  pendingGossipDropped: number;
  /** Submissions of this member refused with "overloaded" because the pending set was full of its own. */
  submissionsRefused: number;
}

export interface EngineConfig {
  self: NodeId;
  /** Every core member, self included; fixed for the cluster's life. 1, 3 or 5 members. */
  members: NodeId[];
  /** Resend this member's messages of an unfinished phase after this long without progress. */
  retransmitMs: number;
  /** Repeat an unanswered sync request after this long. */
  syncRetryMs: number;
  /** Decisions kept in memory to answer late messages without touching storage. */
  recentDecisions: number;
  /** Messages buffered for phases ahead of the current one; beyond this the member asks for a sync. */
  maxPhasesAhead: number;
  /** Batches kept pending at once (default 1024); see _pending.ts for what happens beyond it. */
  maxPendingBatches?: number;
}

export const DEFAULT_ENGINE_TIMINGS = {
  retransmitMs: 150,
  syncRetryMs: 300,
  recentDecisions: 512,
  maxPhasesAhead: 64,
} as const;

export function quorumOf(memberCount: number): number {
  return Math.floor(memberCount / 2) + 1;
}

/** Largest number of crashed members the cluster tolerates. */
export function maxFaultsOf(memberCount: number): number {
  return Math.floor((memberCount - 1) / 2);
}
