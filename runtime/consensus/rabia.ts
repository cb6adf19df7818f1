/**
 * The Rabia engine: a pure, deterministic state machine implementing the protocol described in types.ts.
 *
 * Every public method takes the current time and returns the effects the caller must carry out, in order. The
 * engine keeps no timers; the caller calls `tick` regularly (every few tens of milliseconds is plenty).
 *
 * Why the fast path needs unanimity. Rabia's paper (and the original Java system) decide in round 1 when a
 * "super-majority" of n - f vote-1 messages agree. With n = 3 (f = 1, n - f = 2) that is unsafe together with
 * a common coin. Counter-example: A and B have state 1, C has state 0. B sees {A:1, B:1} and decides 1 on the
 * "fast path". A sees {A:1, C:0} and C sees {C:0, A:1}: neither has a majority of all members, so both vote
 * "?". Round-2 votes {A:?, C:?} form a quorum of all "?", so A and C take the coin; if it shows 0, they decide
 * 0 and disagree with B. When *all n* members agree no such run exists: every quorum any member can see
 * contains only that value, so every member votes it and decides it in the same round. The same certainty
 * allows deciding 0 at once when no batch can reach a majority of proposals (#noMajorityPossible).
 *
 * Durability rule (no equivocation). Everything this member says in a phase (its proposal, every vote) is
 * first written into the phase's PhaseRecord, and a `persist` effect carrying the record comes before the
 * `send`/`broadcast` effects of those messages in the same effect list. A member restarted with the record of
 * phase lastDecided + 1 resumes that phase with exactly the same proposal and votes: it re-sends them and only
 * computes votes it had not sent yet. Deciding needs no record: the `decide` effect itself is durable.
 * (A single-member cluster skips `persist`: nobody can have heard a proposal it might change after a restart.)
 *
 * Deciding without the batch. A member can learn that a phase decided 1 for batch X before it holds X's
 * content: in round 1 its quorum of proposals always includes X, but a restart loses the proposals received
 * before it, and votes name only X's id. It never emits `decide` without the content. It keeps the phase
 * open, sends the votes every member makes in the next round anyway (its locked value) so that members still
 * voting are not left short of a quorum, retransmits, and asks its peers for the decision until a proposal,
 * a NewBatch, a Decision or a sync response brings the content.
 *
 * Catch-up. A (re)started member is "syncing": it asks every peer for the decisions after its lastDecided
 * and becomes active once a quorum (itself included) has answered and it has applied what they reported.
 * Peers answer from the in-memory ring of recent decisions, else through `serveSync` from storage (snapshot
 * plus log). An active member that sees a peer ahead (a message of a later phase, a sync answer) asks that
 * peer; a message of a phase decided here (more than a moment ago) is answered with its Decision.
 *
 * Batch lifecycle. Pending batches come from `submit`, NewBatch gossip and proposals. A batch leaves when a
 * phase decides it. After a snapshot install, batches of other members are dropped (they may be inside it);
 * batches submitted to this engine are kept (a re-decision is skipped by the state machine's batch-id filter).
 * A member that receives a proposal of a batch it knows is decided answers with that Decision, and the
 * proposer forgets the batch (`dropped`): otherwise it would propose it forever while nobody else does.
 * Pending batches are kept in proposal order and bounded (maxPendingBatches): when full, other members' newest
 * gossip is not kept and own submissions are refused with "overloaded"; _pending.ts explains why that keeps
 * both safety and liveness.
 */

import { AetherError, assert, type NodeId } from "../core/mod.ts";
import {
  type Batch,
  type BinaryValue,
  type ConsensusMsg,
  type DecidedPhase,
  type Effect,
  type EngineConfig,
  type EngineStats,
  type EngineStatus,
  maxFaultsOf,
  type PhaseRecord,
  QUESTION,
  quorumOf,
  type RestoredState,
  type Snapshot,
  type SyncRequestMsg,
  type SyncResponseMsg,
  type VoteValue,
} from "./types.ts";
import { PhaseState, type Vote } from "./_phase.ts";
import { DEFAULT_MAX_PENDING_BATCHES, PendingBatches } from "./_pending.ts";
import { checkBatch, checkConfig, checkMessage, checkRestored } from "./_validate.ts";

/** Decisions sent in one sync response from memory; the requester asks again for the rest. */
export const MAX_SYNC_DECISIONS = 64;

/**
 * The common coin: the same bit on every member for a given phase and round, and no member can steer it.
 * A hash (murmur3's finalizer) of the phase and round numbers.
 */
export function commonCoin(phase: number, round: number): BinaryValue {
  const low = phase >>> 0;
  const high = Math.floor(phase / 4294967296) >>> 0;
  const h = mix32(mix32(low ^ mix32(high + 0x9e3779b9)) ^ Math.imul(round, 0x27d4eb2f));
  return (h & 1) as BinaryValue;
}

function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** How long a client whose write was refused because the pending set is full is told to wait. */
const PENDING_FULL_RETRY_AFTER_SECONDS = 1;

/** Sync progress after a (re)start: who answered, and how far each said the cluster has decided. */
interface SyncRound {
  nonce: number;
  answered: Map<NodeId, number>;
  sentAtMs: number;
}

/** A map that forgets its oldest entries beyond `capacity`. */
class RecentMap<K, V> {
  readonly #items = new Map<K, V>();
  readonly #capacity: number;
  constructor(capacity: number) {
    this.#capacity = capacity;
  }
  get(key: K): V | undefined {
    return this.#items.get(key);
  }
  has(key: K): boolean {
    return this.#items.has(key);
  }
  set(key: K, value: V): void {
    this.#items.set(key, value);
    if (this.#items.size > this.#capacity) this.#items.delete(this.#items.keys().next().value!);
  }
}

export class RabiaEngine<C = unknown> {
  readonly #config: EngineConfig;
  readonly #self: NodeId;
  readonly #peers: readonly NodeId[];
  readonly #n: number;
  readonly #quorum: number;
  /** f + 1 matching round-2 votes decide. */
  readonly #decideThreshold: number;

  #status: EngineStatus = "syncing";
  #startedEngine = false;
  #lastDecided: number;
  /** The current phase (lastDecided + 1) and buffered future phases. */
  readonly #phases = new Map<number, PhaseState<C>>();
  /** Batches waiting to be decided, oldest first, bounded (see _pending.ts for what happens when full). */
  readonly #pending: PendingBatches<C>;
  readonly #stats = {
    decided: 0,
    empty: 0,
    decidedCommands: 0,
    byProposals: 0,
    byVote1: 0,
    byVote2: 0,
    submissionsRefused: 0,
  };
  /** The last `recentDecisions` decisions, consecutive up to lastDecided, for answering late messages. */
  readonly #recent = new Map<number, Batch<C> | null>();
  /** When each recent phase was decided (or adopted) here. */
  readonly #decidedAtMs = new Map<number, number>();
  /** Recently decided batches (id -> phase): late gossip of them must not make them pending again. */
  readonly #decidedIds: RecentMap<string, number>;
  #sync?: SyncRound;
  /** Highest phase each peer is known to have decided, from its messages and sync responses. */
  readonly #peerDecided = new Map<NodeId, number>();
  readonly #syncAsked = new Map<NodeId, { fromPhase: number; atMs: number }>();
  readonly #syncServed = new Map<NodeId, { fromPhase: number; nonce: number; atMs: number }>();
  readonly #oldAnswered = new Map<NodeId, { phase: number; atMs: number }>();
  #lastProgressMs = 0;

  /** Set when an invariant broke: the engine refuses every further input. */
  #halted?: string;
  #nowMs = 0;
  #out: Effect<C>[] = [];
  /** Own messages recorded but not yet emitted: they go out right after one `persist` of the record. */
  #unsent: ConsensusMsg<C>[] = [];

  constructor(config: EngineConfig, restored: RestoredState<C>) {
    checkConfig(config);
    checkRestored(restored);
    this.#config = { ...config, members: [...config.members] };
    this.#self = config.self;
    this.#peers = config.members.filter((m) => m !== config.self);
    this.#n = config.members.length;
    this.#quorum = quorumOf(this.#n);
    this.#decideThreshold = maxFaultsOf(this.#n) + 1;
    this.#lastDecided = restored.lastDecided;
    this.#decidedIds = new RecentMap(Math.max(1024, config.recentDecisions * 4));
    this.#pending = new PendingBatches(config.maxPendingBatches ?? DEFAULT_MAX_PENDING_BATCHES);
    const record = restored.record;
    if (record && record.phase === restored.lastDecided + 1) {
      this.#phaseState(record.phase).restore(this.#self, record);
    }
  }

  get status(): EngineStatus {
    return this.#status;
  }

  get lastDecided(): number {
    return this.#lastDecided;
  }

  /** The phase being decided now (or next, when idle). */
  get currentPhase(): number {
    return this.#lastDecided + 1;
  }

  /** Counters since this engine started: how phases were decided (the first place to look when throughput drops). */
  get stats(): EngineStats {
    return {
      ...this.#stats,
      pendingBatches: this.#pending.size,
      maxPendingBatches: this.#pending.maxBatches,
      pendingGossipDropped: this.#pending.foreignRefused,
    };
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** True while the current phase has started and is not decided yet. */
  get busy(): boolean {
    return this.#phases.get(this.currentPhase)?.started ?? false;
  }

  // ---------------------------------------------------------------- inputs

  /** Starts the engine: asks a quorum what was decided since lastDecided; a single member is active at once. */
  start(nowMs: number): Effect<C>[] {
    return this.#call(nowMs, () => {
      assert(!this.#startedEngine, "start() called twice");
      this.#startedEngine = true;
      this.#emit({ type: "status", status: "syncing" });
      if (this.#n === 1) {
        this.#activate();
        this.#advance();
        return;
      }
      // Distinguishes this start's answers from those to an earlier incarnation's requests.
      const nonce = (((Math.floor(nowMs) % 0x7fffffff) + 0x7fffffff) % 0x7fffffff) + 1;
      this.#sync = { nonce, answered: new Map(), sentAtMs: nowMs };
      this.#emit({ type: "broadcast", msg: this.#syncRequest(nonce) });
    });
  }

  /**
   * A batch formed on this member. Throws AetherError "unavailable" unless the engine is active, "overloaded"
   * (with `extra.retryAfterSeconds`) when the pending set is full of this member's own batches.
   */
  submit(batch: Batch<C>, nowMs: number): Effect<C>[] {
    this.#checkRunning();
    checkBatch(batch, "submitted batch");
    if (this.#status !== "active") {
      throw new AetherError(
        "unavailable",
        `consensus on ${this.#self} is ${this.#status}; batch ${batch.id} refused`,
      );
    }
    if (batch.submitter !== this.#self) {
      throw new AetherError(
        "bad_request",
        `batch ${batch.id} names submitter ${batch.submitter}, not ${this.#self}`,
      );
    }
    if (this.#pending.has(batch.id) || this.#decidedIds.has(batch.id)) {
      throw new AetherError("conflict", `batch ${batch.id} was already submitted`);
    }
    if (this.#pending.fullOfOwn) {
      this.#stats.submissionsRefused++;
      throw new AetherError(
        "overloaded",
        `consensus on ${this.#self} holds ${this.#pending.size} undecided batches of its own, the limit; ` +
          `batch ${batch.id} refused, retry in ${PENDING_FULL_RETRY_AFTER_SECONDS} s`,
        { retryAfterSeconds: PENDING_FULL_RETRY_AFTER_SECONDS },
      );
    }
    return this.#call(nowMs, () => {
      this.#pending.add(batch, true);
      // A batch this member proposes right away travels in the Propose; otherwise gossip it so every member
      // has it pending before some later phase proposes it.
      const proposesNow = !this.busy && this.#pending.oldest() === batch;
      if (!proposesNow && this.#n > 1) this.#emit({ type: "broadcast", msg: { t: "batch", batch } });
      this.#advance();
    });
  }

  /**
   * A message from a peer. Throws AetherError "bad_request" for a malformed message (the engine is unchanged).
   * A broken protocol invariant (a bug, or corrupt storage somewhere) throws a plain Error and halts the engine.
   */
  receive(from: NodeId, msg: ConsensusMsg<C>, nowMs: number): Effect<C>[] {
    this.#checkRunning();
    this.#checkPeer(from);
    checkMessage(from, msg);
    return this.#call(nowMs, () => {
      switch (msg.t) {
        case "propose":
        case "vote1":
        case "vote2":
        case "decision":
          this.#onPhaseMessage(from, msg);
          break;
        case "batch":
          this.#addPending(msg.batch);
          break;
        case "syncReq":
          this.#onSyncRequest(from, msg);
          break;
        case "syncRes":
          this.#onSyncResponse(from, msg);
          break;
      }
      this.#activateIfSynced();
      this.#advance();
    });
  }

  /** Timer input: retransmits when the current phase makes no progress, retries sync requests. */
  tick(nowMs: number): Effect<C>[] {
    return this.#call(nowMs, () => {
      this.#activateIfSynced();
      if (this.#sync) this.#retrySync();
      else if (this.#status === "active") this.#retransmitIfStalled();
      this.#advance();
    });
  }

  /** The mesh (re)connected to `peer`: bring it up to date at once instead of waiting for a retransmit. */
  peerConnected(peer: NodeId, nowMs: number): Effect<C>[] {
    this.#checkRunning();
    this.#checkPeer(peer);
    return this.#call(nowMs, () => {
      if (this.#sync) {
        if (!this.#sync.answered.has(peer)) this.#sendTo(peer, this.#syncRequest(this.#sync.nonce));
      } else if (this.#status === "active") {
        const ps = this.#phases.get(this.currentPhase);
        if (ps?.started) { for (const msg of this.#ownMessages(ps)) this.#sendTo(peer, msg); }
        // Tells this member whether the peer is ahead (the answer carries the peer's lastDecided).
        this.#askSync(peer, true);
      }
    });
  }

  // ---------------------------------------------------------------- effect plumbing

  /**
   * Runs one input and returns its effects. A broken invariant halts the engine for good: its state may be
   * half-updated, and a member that carried on could break agreement. The caller should stop the process.
   */
  #call(nowMs: number, body: () => void): Effect<C>[] {
    this.#checkRunning();
    assert(Number.isFinite(nowMs), "nowMs must be finite");
    this.#nowMs = nowMs;
    try {
      body();
    } catch (e) {
      this.#halted = e instanceof Error ? e.message : String(e);
      this.#out = [];
      this.#unsent = [];
      throw e;
    }
    this.#flush();
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #checkRunning(): void {
    if (this.#halted !== undefined) {
      throw new Error(`consensus on ${this.#self} halted after a broken invariant: ${this.#halted}`);
    }
  }

  /** Appends an effect after making every recorded-but-unsent message durable and sent. */
  #emit(effect: Effect<C>): void {
    this.#flush();
    this.#out.push(effect);
  }

  #flush(): void {
    if (this.#unsent.length === 0) return;
    const record = this.#phases.get(this.currentPhase)?.record;
    assert(record !== undefined, "own messages without a phase record");
    if (this.#n > 1) {
      this.#out.push({ type: "persist", record: copyRecord(record) });
      for (const msg of this.#unsent) this.#out.push({ type: "broadcast", msg });
    }
    this.#unsent = [];
  }

  #sendTo(to: NodeId, msg: ConsensusMsg<C>): void {
    this.#emit({ type: "send", to, msg });
  }

  // ---------------------------------------------------------------- the phase loop

  /** Moves the current phase forward as far as the messages at hand allow, across as many phases as possible. */
  #advance(): void {
    for (;;) {
      const phase = this.currentPhase;
      const ps = this.#phases.get(phase);
      if (ps?.decision) {
        this.#commit(phase, ps.decision.batch, false);
        continue;
      }
      if (ps?.decided) {
        if (this.#commitDecidedIfContent(ps)) continue;
        return;
      }
      if (this.#status !== "active") return;
      if (!ps?.started) {
        if (this.#pending.size === 0 && !ps?.hasMessages) return;
        this.#startPhase(ps ?? this.#phaseState(phase));
        continue;
      }
      if (!this.#step(ps)) return;
    }
  }

  #startPhase(ps: PhaseState<C>): void {
    const proposal = this.#pending.oldest() ?? null;
    ps.record = { phase: ps.phase, proposal, rounds: [] };
    ps.addProposal(this.#self, proposal);
    this.#said({ t: "propose", phase: ps.phase, batch: proposal });
  }

  /** One protocol step in the current phase; false when it must wait for more messages. */
  #step(ps: PhaseState<C>): boolean {
    const unanimous = this.#unanimousProposal(ps);
    if (unanimous) ps.noteCandidate(unanimous.id, "unanimous proposals");
    if (unanimous !== undefined) return this.#decide(ps, unanimous === null ? 0 : 1, "proposals");
    if (this.#noMajorityPossible(ps)) return this.#decide(ps, 0, "proposals");
    const round = ps.round;
    if (round === 0) return this.#voteFromProposals(ps);
    const vote1 = this.#unanimousVote1(ps, round);
    if (vote1 !== undefined) return this.#decide(ps, vote1, "vote1");
    if (!ps.record!.rounds[round - 1].vote2) return this.#vote2FromVote1(ps, round);
    return this.#finishRound(ps, round);
  }

  /** The common proposal when all n members proposed the same batch (or all nothing); undefined otherwise. */
  #unanimousProposal(ps: PhaseState<C>): Batch<C> | null | undefined {
    if (ps.proposals.size < this.#n) return undefined;
    const [first, ...rest] = ps.proposals.values();
    return rest.every((b) => (b?.id ?? null) === (first?.id ?? null)) ? first : undefined;
  }

  /**
   * True when no batch can reach a majority of proposals, even if every missing proposal named it. Then every
   * member's round-1 state is 0 whatever quorum it sees, so all n vote-1 messages will be 0: the unanimous
   * case again, known in advance. It saves a full vote exchange whenever members propose different batches
   * at the same moment, the usual collision in a leaderless protocol.
   */
  #noMajorityPossible(ps: PhaseState<C>): boolean {
    const missing = this.#n - ps.proposals.size;
    if (missing >= this.#quorum) return false;
    const counts = new Map<string, number>();
    for (const batch of ps.proposals.values()) {
      if (!batch) continue;
      const count = (counts.get(batch.id) ?? 0) + 1;
      if (count + missing >= this.#quorum) return false;
      counts.set(batch.id, count);
    }
    return true;
  }

  #unanimousVote1(ps: PhaseState<C>, round: number): BinaryValue | undefined {
    const t = ps.tally("vote1", round);
    if (t.total < this.#n) return undefined;
    if (t.ones === this.#n) return 1;
    if (t.zeros === this.#n) return 0;
    return undefined;
  }

  /** Step 2: state 1 when a batch holds a majority of all members among the proposals. */
  #voteFromProposals(ps: PhaseState<C>): boolean {
    if (ps.proposals.size < this.#quorum) return false;
    const counts = new Map<string, number>();
    for (const batch of ps.proposals.values()) {
      if (batch) counts.set(batch.id, (counts.get(batch.id) ?? 0) + 1);
    }
    let state: BinaryValue = 0;
    for (const [id, count] of counts) {
      if (count >= this.#quorum) {
        ps.noteCandidate(id, "a majority of proposals");
        state = 1;
      }
    }
    this.#vote(ps, "vote1", 1, state);
    return true;
  }

  /** Step 3: vote v if a majority of all members sent state v, else "?". */
  #vote2FromVote1(ps: PhaseState<C>, round: number): boolean {
    const t = ps.tally("vote1", round);
    if (t.total < this.#quorum) return false;
    // A "?" voter has seen a 1 (it saw a quorum without a majority of zeros), so it knows the candidate.
    const vote: VoteValue = t.ones >= this.#quorum ? 1 : t.zeros >= this.#quorum ? 0 : QUESTION;
    this.#vote(ps, "vote2", round, vote);
    return true;
  }

  /** Step 4: decide on f + 1 equal votes, else lock a seen value, else take the coin. */
  #finishRound(ps: PhaseState<C>, round: number): boolean {
    const t = ps.tally("vote2", round);
    if (t.total < this.#quorum) return false;
    // Two values each need a majority of round-r vote-1 messages, so a round's vote-2 values never differ.
    assert(
      t.zeros === 0 || t.ones === 0,
      `phase ${ps.phase} round ${round}: vote-2 messages for both 0 and 1`,
    );
    const seen: BinaryValue | undefined = t.ones > 0 ? 1 : t.zeros > 0 ? 0 : undefined;
    const count = Math.max(t.ones, t.zeros);
    if (seen !== undefined && count >= this.#decideThreshold) return this.#decide(ps, seen, "votes");
    const next = seen ?? commonCoin(ps.phase, round);
    this.#vote(ps, "vote1", round + 1, next);
    return true;
  }

  /** Records and sends one own vote; value 1 (and "?", when known) names the candidate. */
  #vote(ps: PhaseState<C>, kind: "vote1" | "vote2", round: number, value: VoteValue): void {
    const batchId = value === 0 ? undefined : ps.candidateId;
    assert(value !== 1 || batchId !== undefined, `phase ${ps.phase}: vote 1 without a candidate batch`);
    assert(value !== QUESTION || batchId !== undefined, `phase ${ps.phase}: "?" without having seen a 1`);
    const vote: Vote = batchId === undefined ? { value } : { value, batchId };
    const record = ps.record!;
    if (kind === "vote1") {
      assert(round === record.rounds.length + 1, `phase ${ps.phase}: vote1 for round ${round} out of order`);
      record.rounds.push({ vote1: vote as { value: BinaryValue; batchId?: string } });
    } else {
      const entry = record.rounds[round - 1];
      assert(
        entry !== undefined && entry.vote2 === undefined,
        `phase ${ps.phase}: vote2 ${round} out of order`,
      );
      record.rounds[round - 1] = { ...entry, vote2: vote };
    }
    ps.addVote(kind, round, this.#self, vote);
    const msg = kind === "vote1"
      ? { t: "vote1" as const, phase: ps.phase, round, ...(vote as { value: BinaryValue; batchId?: string }) }
      : { t: "vote2" as const, phase: ps.phase, round, ...vote };
    this.#said(msg);
  }

  /** Queues an own message; `#flush` persists the record before it goes out. */
  #said(msg: ConsensusMsg<C>): void {
    this.#unsent.push(msg);
    this.#lastProgressMs = this.#nowMs;
  }

  #decide(ps: PhaseState<C>, value: BinaryValue, how: "proposals" | "vote1" | "votes"): boolean {
    this.#stats[how === "proposals" ? "byProposals" : how === "vote1" ? "byVote1" : "byVote2"]++;
    if (value === 0) {
      this.#commit(ps.phase, null, how === "votes");
      return true;
    }
    const batchId = ps.candidateId;
    assert(batchId !== undefined, `phase ${ps.phase}: decided 1 without a candidate`);
    const batch = this.#contentOf(ps, batchId);
    if (batch) {
      this.#commit(ps.phase, batch, how === "votes");
      return true;
    }
    assert(how !== "proposals", `phase ${ps.phase}: unanimous proposals without their batch`);
    ps.decided = { value, batchId };
    this.#helpOthersDecide(ps, how);
    return true;
  }

  /**
   * Sends the votes every member makes next anyway, so that members still voting reach a quorum without
   * waiting for this member, which cannot commit (nor send a Decision) before the batch content arrives.
   */
  #helpOthersDecide(ps: PhaseState<C>, how: "vote1" | "votes"): void {
    const round = ps.round;
    if (how === "vote1") {
      if (!ps.record!.rounds[round - 1].vote2) this.#vote(ps, "vote2", round, 1);
      return;
    }
    this.#vote(ps, "vote1", round + 1, 1);
    this.#vote(ps, "vote2", round + 1, 1);
  }

  #commitDecidedIfContent(ps: PhaseState<C>): boolean {
    const batch = this.#contentOf(ps, ps.decided!.batchId!);
    if (!batch) return false;
    this.#commit(ps.phase, batch, true);
    return true;
  }

  #contentOf(ps: PhaseState<C>, id: string): Batch<C> | undefined {
    return this.#pending.get(id) ?? ps.contentOf(id);
  }

  /** Applies the decision of the current phase: the one place where `decide` effects are made. */
  #commit(phase: number, batch: Batch<C> | null, announce: boolean): void {
    assert(
      phase === this.#lastDecided + 1,
      `decide ${phase} after ${this.#lastDecided}: phases must be consecutive`,
    );
    const ps = this.#phases.get(phase);
    if (ps?.decided) {
      assert(
        batch?.id === ps.decided.batchId,
        `phase ${phase}: voted for ${ps.decided.batchId}, got ${batch?.id}`,
      );
    }
    if (ps?.decision) {
      const known = ps.decision.batch?.id ?? null;
      assert(
        known === (batch?.id ?? null),
        `phase ${phase}: decisions ${known} and ${batch?.id ?? null} differ`,
      );
    }
    this.#emit({ type: "decide", phase, batch });
    this.#stats.decided++;
    if (!batch) this.#stats.empty++;
    else this.#stats.decidedCommands += batch.commands.length;
    this.#lastDecided = phase;
    this.#phases.delete(phase);
    this.#remember(phase, batch);
    if (batch) {
      this.#pending.delete(batch.id);
      this.#decidedIds.set(batch.id, phase);
    }
    this.#lastProgressMs = this.#nowMs;
    if (announce && this.#n > 1) this.#emit({ type: "broadcast", msg: { t: "decision", phase, batch } });
  }

  #remember(phase: number, batch: Batch<C> | null): void {
    this.#recent.set(phase, batch);
    this.#decidedAtMs.set(phase, this.#nowMs);
    this.#recent.delete(phase - this.#config.recentDecisions);
    this.#decidedAtMs.delete(phase - this.#config.recentDecisions);
  }

  /** Another member's batch (gossip or proposal); when the set is full it may not be kept (_pending.ts). */
  #addPending(batch: Batch<C>): void {
    if (this.#decidedIds.has(batch.id)) return;
    this.#pending.add(batch, false);
  }

  #phaseState(phase: number): PhaseState<C> {
    let ps = this.#phases.get(phase);
    if (!ps) this.#phases.set(phase, ps = new PhaseState<C>(phase));
    return ps;
  }

  // ---------------------------------------------------------------- phase messages from peers

  #onPhaseMessage(from: NodeId, msg: ConsensusMsg<C> & { phase: number }): void {
    if (msg.phase <= this.#lastDecided) return this.#onOldPhaseMessage(from, msg);
    if (msg.t === "propose" && msg.batch) this.#onProposedBatch(from, msg.batch);
    // A peer that sent phase p has decided p - 1 (a Decision for p: p itself).
    this.#notePeerDecided(from, msg.t === "decision" ? msg.phase : msg.phase - 1);
    if (msg.phase > this.#lastDecided + this.#config.maxPhasesAhead) return;
    const ps = this.#phaseState(msg.phase);
    switch (msg.t) {
      case "propose":
        ps.addProposal(from, msg.batch);
        break;
      case "vote1":
      case "vote2":
        ps.addVote(msg.t, msg.round, from, voteOf(msg));
        break;
      case "decision":
        this.#storeDecision(ps, msg.batch);
        break;
    }
  }

  /**
   * A proposed batch becomes pending first, so that members converge on the same oldest batch. If it was
   * decided already, the proposer does not know (it caught up by snapshot, or kept gossip it got before):
   * tell it where, or it would propose the batch in every phase while no one else does.
   */
  #onProposedBatch(from: NodeId, batch: Batch<C>): void {
    const decidedIn = this.#decidedIds.get(batch.id);
    if (decidedIn === undefined) return this.#addPending(batch);
    this.#sendTo(from, { t: "decision", phase: decidedIn, batch });
  }

  /** A Decision for a phase passed here names a batch still pending here: it is decided, so forget it. */
  #forgetDecided(phase: number, batch: Batch<C>): void {
    if (!this.#pending.delete(batch.id)) return;
    this.#decidedIds.set(batch.id, phase);
    // Its results are not known here: for this member's own batch the tickets learn "outcome unknown".
    this.#emit({ type: "dropped", batchIds: [batch.id] });
  }

  #storeDecision(ps: PhaseState<C>, batch: Batch<C> | null): void {
    if (ps.decision) {
      const known = ps.decision.batch?.id ?? null;
      assert(
        known === (batch?.id ?? null),
        `phase ${ps.phase}: Decisions for ${known} and ${batch?.id ?? null}`,
      );
      return;
    }
    ps.decision = { batch };
  }

  /** A late message: the sender is behind; hand it the decision (from memory, or from storage when older). */
  #onOldPhaseMessage(from: NodeId, msg: ConsensusMsg<C> & { phase: number }): void {
    const known = this.#recent.get(msg.phase);
    if (msg.t === "decision") {
      if (this.#recent.has(msg.phase)) {
        const ours = known?.id ?? null;
        assert(
          ours === (msg.batch?.id ?? null),
          `phase ${msg.phase}: decided ${ours}, peer says ${msg.batch?.id}`,
        );
      }
      if (msg.batch) this.#forgetDecided(msg.phase, msg.batch);
      return;
    }
    if (this.#recent.has(msg.phase)) {
      // Just decided here: the sender is likely one message behind and decides on its own. If it is stuck,
      // it asks again later (retransmit or sync request) and is answered then.
      if (this.#nowMs - this.#decidedAtMs.get(msg.phase)! < this.#config.retransmitMs / 4) return;
      const last = this.#oldAnswered.get(from);
      if (last && last.phase === msg.phase && this.#nowMs - last.atMs < this.#config.retransmitMs / 2) return;
      this.#oldAnswered.set(from, { phase: msg.phase, atMs: this.#nowMs });
      this.#sendTo(from, { t: "decision", phase: msg.phase, batch: known ?? null });
      return;
    }
    this.#serveSync(from, { t: "syncReq", fromPhase: msg.phase, nonce: 0 });
  }

  #notePeerDecided(peer: NodeId, phase: number): void {
    if (phase <= (this.#peerDecided.get(peer) ?? 0)) return;
    this.#peerDecided.set(peer, phase);
    if (this.#status !== "active" || phase < this.currentPhase) return;
    // The peer decided our current phase. If we are not in it, nothing else will tell us: ask now. If we are,
    // its Decision is probably on the way; `tick` asks if it does not come.
    if (!this.busy || phase > this.currentPhase) this.#askSync(peer, false);
  }

  // ---------------------------------------------------------------- sync (catch-up)

  #syncRequest(nonce: number): SyncRequestMsg {
    return { t: "syncReq", fromPhase: this.#lastDecided + 1, nonce };
  }

  /** Asks `peer` for decisions from lastDecided + 1; at most once per syncRetryMs for the same starting phase. */
  #askSync(peer: NodeId, force: boolean): void {
    const fromPhase = this.#lastDecided + 1;
    const last = this.#syncAsked.get(peer);
    if (
      !force && last && last.fromPhase === fromPhase && this.#nowMs - last.atMs < this.#config.syncRetryMs
    ) return;
    this.#syncAsked.set(peer, { fromPhase, atMs: this.#nowMs });
    this.#sendTo(peer, this.#syncRequest(this.#sync?.nonce ?? 0));
  }

  #onSyncRequest(from: NodeId, req: SyncRequestMsg): void {
    if (req.fromPhase > this.#lastDecided) {
      this.#sendTo(from, { t: "syncRes", nonce: req.nonce, lastDecided: this.#lastDecided, decisions: [] });
    } else if (this.#recent.has(req.fromPhase)) {
      this.#sendTo(from, {
        t: "syncRes",
        nonce: req.nonce,
        lastDecided: this.#lastDecided,
        decisions: this.#recentFrom(req.fromPhase),
      });
    } else {
      this.#serveSync(from, req);
    }
  }

  #recentFrom(fromPhase: number): DecidedPhase<C>[] {
    const to = Math.min(this.#lastDecided, fromPhase + MAX_SYNC_DECISIONS - 1);
    const decisions: DecidedPhase<C>[] = [];
    for (let phase = fromPhase; phase <= to; phase++) {
      assert(this.#recent.has(phase), `recent decisions have a gap at ${phase}`);
      decisions.push({ phase, batch: this.#recent.get(phase)! });
    }
    return decisions;
  }

  /** Storage answers; rate-limited per peer because it may read a snapshot. */
  #serveSync(to: NodeId, request: SyncRequestMsg): void {
    const last = this.#syncServed.get(to);
    const same = last && last.fromPhase === request.fromPhase && last.nonce === request.nonce;
    if (same && this.#nowMs - last.atMs < this.#config.syncRetryMs) return;
    this.#syncServed.set(to, { fromPhase: request.fromPhase, nonce: request.nonce, atMs: this.#nowMs });
    this.#emit({ type: "serveSync", to, request });
  }

  #onSyncResponse(from: NodeId, res: SyncResponseMsg<C>): void {
    if (res.snapshot && res.snapshot.phase > this.#lastDecided) this.#installSnapshot(res.snapshot);
    for (const d of res.decisions) this.#adoptDecided(d);
    this.#notePeerDecided(from, res.lastDecided);
    if (this.#sync && res.nonce === this.#sync.nonce) {
      this.#sync.answered.set(from, Math.max(this.#sync.answered.get(from) ?? 0, res.lastDecided));
    }
    if (res.lastDecided > this.#lastDecided) this.#askSync(from, false);
  }

  /** A decision from a sync response: apply it when it is next, check it when already applied. */
  #adoptDecided(d: DecidedPhase<C>): void {
    if (d.phase <= this.#lastDecided) {
      if (this.#recent.has(d.phase)) {
        const ours = this.#recent.get(d.phase)?.id ?? null;
        assert(ours === (d.batch?.id ?? null), `phase ${d.phase}: decided ${ours}, sync says ${d.batch?.id}`);
      }
      return;
    }
    if (d.phase !== this.#lastDecided + 1) return;
    this.#storeDecision(this.#phaseState(d.phase), d.batch);
    this.#commit(d.phase, d.batch, false);
  }

  #installSnapshot(snapshot: Snapshot): void {
    this.#emit({ type: "installSnapshot", snapshot });
    this.#lastDecided = snapshot.phase;
    for (const phase of this.#phases.keys()) if (phase <= snapshot.phase) this.#phases.delete(phase);
    this.#recent.clear();
    this.#decidedAtMs.clear();
    this.#dropPendingAfterSnapshot();
    this.#lastProgressMs = this.#nowMs;
  }

  /**
   * Some pending batches may be inside the snapshot, and proposing them again decides them twice. For the
   * batches submitted to this engine (this process lifetime's batches) that is harmless: the state machine's
   * batch-id filter always remembers the submitter's current incarnation and skips them (their tickets learn
   * "outcome unknown"), while keeping them spares their clients a needless unknown when they are not inside.
   * Other members' batches are dropped: a filter that forgot an older incarnation would apply them again,
   * and their submitters (or others) still hold them if they are undecided.
   */
  #dropPendingAfterSnapshot(): void {
    const dropped = this.#pending.dropForeign();
    if (dropped.length > 0) this.#emit({ type: "dropped", batchIds: dropped });
  }

  /**
   * Active once a quorum (this member included) has answered and this member has applied everything that
   * quorum reported. Waiting for *every* answer could wait for a peer that crashed right after answering
   * while this member's votes are needed by the others.
   */
  #activateIfSynced(): void {
    const sync = this.#sync;
    if (!sync) return;
    let caughtUp = 0;
    for (const reported of sync.answered.values()) if (reported <= this.#lastDecided) caughtUp++;
    if (caughtUp + 1 >= this.#quorum) this.#activate();
  }

  #activate(): void {
    this.#sync = undefined;
    this.#status = "active";
    this.#lastProgressMs = this.#nowMs;
    this.#emit({ type: "status", status: "active" });
    // A phase restored from the record resumes by saying exactly what it said before.
    const ps = this.#phases.get(this.currentPhase);
    if (ps?.started && this.#n > 1) {
      for (const msg of this.#ownMessages(ps)) this.#emit({ type: "broadcast", msg });
    }
  }

  #retrySync(): void {
    const sync = this.#sync!;
    if (this.#nowMs - sync.sentAtMs < this.#config.syncRetryMs) return;
    sync.sentAtMs = this.#nowMs;
    for (const peer of this.#peers) {
      const reported = sync.answered.get(peer);
      if (reported === undefined) this.#sendTo(peer, this.#syncRequest(sync.nonce));
      else if (reported > this.#lastDecided) this.#askSync(peer, false);
    }
  }

  /**
   * A phase without progress: after retransmitMs, say everything again (a lost message is the usual cause).
   * Sooner, after a quarter of it, ask a peer known to have decided this phase already: its Decision is
   * likely lost or overtaken, and waiting the full time would stall this member on every lost message.
   */
  #retransmitIfStalled(): void {
    const sinceProgressMs = this.#nowMs - this.#lastProgressMs;
    const ps = this.#phases.get(this.currentPhase);
    if (sinceProgressMs >= this.#config.retransmitMs / 4) {
      for (const peer of this.#peers) {
        if ((this.#peerDecided.get(peer) ?? 0) >= this.currentPhase) this.#askSync(peer, false);
      }
    }
    if (!ps?.started || sinceProgressMs < this.#config.retransmitMs) return;
    this.#lastProgressMs = this.#nowMs;
    for (const msg of this.#ownMessages(ps)) this.#emit({ type: "broadcast", msg });
    // Without the batch's content a decided phase waits for peers to hand it over.
    if (ps.decided) { for (const peer of this.#peers) this.#askSync(peer, false); }
  }

  /** Everything this member has said in a phase, rebuilt from its record. */
  #ownMessages(ps: PhaseState<C>): ConsensusMsg<C>[] {
    const record = ps.record!;
    const msgs: ConsensusMsg<C>[] = [{ t: "propose", phase: ps.phase, batch: record.proposal ?? null }];
    record.rounds.forEach((r, i) => {
      if (r.vote1) msgs.push({ t: "vote1", phase: ps.phase, round: i + 1, ...r.vote1 });
      if (r.vote2) msgs.push({ t: "vote2", phase: ps.phase, round: i + 1, ...r.vote2 });
    });
    return msgs;
  }

  #checkPeer(peer: NodeId): void {
    if (peer === this.#self || !this.#peers.includes(peer)) {
      throw new AetherError("bad_request", `consensus on ${this.#self}: "${peer}" is not a peer member`);
    }
  }
}

function voteOf(msg: { value: VoteValue; batchId?: string }): Vote {
  return msg.batchId === undefined ? { value: msg.value } : { value: msg.value, batchId: msg.batchId };
}

function copyRecord<C>(record: PhaseRecord<C>): PhaseRecord<C> {
  return { ...record, rounds: [...record.rounds] };
}
