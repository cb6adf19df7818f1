/**
 * What one member knows about one phase: the messages received (its own included), what it has said (the
 * PhaseRecord), and the phase's candidate batch. Pure bookkeeping; the protocol rules live in rabia.ts.
 */

import { assert, type NodeId } from "../core/mod.ts";
import type { Batch, BinaryValue, PhaseRecord, VoteValue } from "./types.ts";

export interface Vote {
  value: VoteValue;
  batchId?: string;
}

export type VoteKind = "vote1" | "vote2";

export interface Tally {
  zeros: number;
  ones: number;
  questions: number;
  total: number;
}

export class PhaseState<C> {
  readonly phase: number;
  readonly proposals = new Map<NodeId, Batch<C> | null>();
  readonly #votes = {
    vote1: new Map<number, Map<NodeId, Vote>>(),
    vote2: new Map<number, Map<NodeId, Vote>>(),
  };
  /**
   * The batch that value 1 stands for in this phase. Only a batch proposed by a majority of all members can
   * become it, and two majorities intersect, so a phase has at most one (asserted on every message).
   */
  candidateId?: string;
  /** Decided by this member's own voting while the candidate's content has not arrived yet. */
  decided?: { value: BinaryValue; batchId?: string };
  /** A peer's Decision for this phase, kept until the phase becomes current. */
  decision?: { batch: Batch<C> | null };
  /** What this member has said in the phase; undefined until it proposes. */
  record?: PhaseRecord<C>;

  constructor(phase: number) {
    this.phase = phase;
  }

  get started(): boolean {
    return this.record?.proposal !== undefined;
  }

  /** True when some peer has said anything in this phase, which obliges this member to take part. */
  get hasMessages(): boolean {
    return this.proposals.size > 0 || this.#votes.vote1.size > 0 || this.#votes.vote2.size > 0 ||
      this.decision !== undefined;
  }

  /** The highest round this member has voted in (0 before its first vote). */
  get round(): number {
    return this.record?.rounds.length ?? 0;
  }

  votes(kind: VoteKind, round: number): Map<NodeId, Vote> | undefined {
    return this.#votes[kind].get(round);
  }

  /** Stores a proposal; false when it is a duplicate. Two different proposals from one member are a bug. */
  addProposal(from: NodeId, batch: Batch<C> | null): boolean {
    if (this.proposals.has(from)) {
      const known = this.proposals.get(from);
      assert(
        (known?.id ?? null) === (batch?.id ?? null),
        `phase ${this.phase}: ${from} proposed both ${known?.id ?? "nothing"} and ${batch?.id ?? "nothing"}`,
      );
      return false;
    }
    this.proposals.set(from, batch);
    return true;
  }

  /** Stores a vote; false when it is a duplicate. Two different votes from one member are a bug (equivocation). */
  addVote(kind: VoteKind, round: number, from: NodeId, vote: Vote): boolean {
    this.noteCandidate(vote.batchId, `${kind} of ${from} in round ${round}`);
    let byMember = this.#votes[kind].get(round);
    if (!byMember) this.#votes[kind].set(round, byMember = new Map());
    const known = byMember.get(from);
    if (known) {
      assert(
        known.value === vote.value,
        `phase ${this.phase} round ${round}: ${from} sent ${kind} ${known.value} and ${vote.value}`,
      );
      return false;
    }
    byMember.set(from, vote);
    return true;
  }

  noteCandidate(batchId: string | undefined, source: string): void {
    if (batchId === undefined) return;
    assert(
      this.candidateId === undefined || this.candidateId === batchId,
      `phase ${this.phase}: two candidate batches, ${this.candidateId} and ${batchId} (from ${source})`,
    );
    this.candidateId = batchId;
  }

  tally(kind: VoteKind, round: number): Tally {
    const t: Tally = { zeros: 0, ones: 0, questions: 0, total: 0 };
    for (const vote of this.votes(kind, round)?.values() ?? []) {
      t.total++;
      if (vote.value === 0) t.zeros++;
      else if (vote.value === 1) t.ones++;
      else t.questions++;
    }
    return t;
  }

  /** The batch named `id` if some proposal of this phase or a stored Decision carried it. */
  contentOf(id: string): Batch<C> | undefined {
    for (const batch of this.proposals.values()) if (batch?.id === id) return batch;
    const decided = this.decision?.batch;
    return decided?.id === id ? decided : undefined;
  }

  /** Restores what this member said before a restart, so it says exactly the same again. */
  restore(self: NodeId, record: PhaseRecord<C>): void {
    this.record = { ...record, rounds: [...record.rounds] };
    if (record.proposal !== undefined) this.addProposal(self, record.proposal);
    record.rounds.forEach((round, i) => {
      if (round.vote1) this.addVote("vote1", i + 1, self, round.vote1);
      if (round.vote2) this.addVote("vote2", i + 1, self, round.vote2);
    });
  }
}
