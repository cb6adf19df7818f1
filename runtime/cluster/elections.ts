/**
 * The election shell: on every check (ELECTION_CHECK_MS, driven by the node's timer or the simulator) a member
 *   1. reports to its peers which members it has lost (leader.ts explains why peers must know),
 *   2. notices and announces changes of the agreed leader and of its own leadership,
 *   3. asks the pure rule whether to propose a new leader record, and proposes it through consensus as a
 *      compare-and-set on the `leader` key (one attempt at a time).
 * It holds no timers of its own: whoever drives it calls check() and feeds it peer events and reports.
 */

import { AetherError, type Clock, type Logger, type NodeId } from "../core/mod.ts";
import {
  electionProposal,
  type ElectionView,
  LEADER_KEY,
  type LeaderRecord,
  lostMembers,
  parseLeaderRecord,
} from "./leader.ts";
import type { Replica } from "./replica.ts";

/** How often a member checks the leader and reports whom it has lost. */
export const ELECTION_CHECK_MS = 100;
/** A peer's report counts this long after it arrived (ten checks: a few lost reports change nothing). */
export const REPORT_FRESH_MS = 1_000;
/** How long a proposal may take to be decided before the next check may try again. */
const PROPOSAL_TIMEOUT_MS = 2_000;

/** Channel of election reports on the mesh. */
export const ELECTION_CHANNEL = "e";

/** What a member tells its peers on every check. */
export interface LostReport {
  t: "lost";
  members: NodeId[];
}

export interface ElectionTransport {
  broadcast(channel: string, message: unknown): unknown;
  isConnected(id: NodeId): boolean;
}

export interface ElectionsOptions {
  self: NodeId;
  members: readonly NodeId[];
  replica: Pick<Replica, "ready" | "quorum" | "state" | "writeOk">;
  clock: Clock;
  transport: ElectionTransport;
  log: Logger;
  /** Called whenever this member starts or stops leading. */
  onLeadership(leading: boolean): void;
}

export interface ElectionStats {
  /** Changes of the agreed leader this member has seen since it started. */
  leaderChanges: number;
  /** Proposals this member made, and how many of them were decided. */
  proposals: number;
  proposalsAccepted: number;
}

export class Elections {
  readonly #o: ElectionsOptions;
  readonly #startedAtMs: number;
  readonly #lastConnectedAt = new Map<NodeId, number>();
  /** Latest report per peer; bounded by the member count (reports from strangers are dropped). */
  readonly #reports = new Map<NodeId, { members: NodeId[]; atMs: number }>();
  #attempt: Promise<void> | null = null;
  #lastLeader: NodeId | null;
  #leading = false;
  #stats: ElectionStats = { leaderChanges: 0, proposals: 0, proposalsAccepted: 0 };

  constructor(options: ElectionsOptions) {
    this.#o = options;
    this.#startedAtMs = options.clock.now();
    this.#lastLeader = this.leader()?.nodeId ?? null;
  }

  /** The consensus-agreed leader record, if any. */
  leader(): LeaderRecord | null {
    return parseLeaderRecord(this.#o.replica.state.get(LEADER_KEY)?.value);
  }

  /** This member is the recorded leader and can act as one (caught up, with quorum). */
  isLeader(): boolean {
    return this.#o.replica.ready && this.#o.replica.quorum && this.leader()?.nodeId === this.#o.self;
  }

  get stats(): ElectionStats {
    return { ...this.#stats };
  }

  peerUp(id: NodeId): void {
    this.#lastConnectedAt.set(id, this.#o.clock.now());
  }

  peerDown(id: NodeId): void {
    this.#lastConnectedAt.set(id, this.#o.clock.now());
    this.#reports.delete(id);
    // Losing the leader is news the others need now, not at the next check (up to ELECTION_CHECK_MS later).
    if (id === this.leader()?.nodeId) this.check();
  }

  /** A message on ELECTION_CHANNEL. Malformed ones and strangers' are logged and dropped. */
  receive(from: NodeId, message: unknown): void {
    const problem = checkLostReport(message, this.#o.members);
    if (problem || !this.#o.members.includes(from) || from === this.#o.self) {
      this.#o.log.warn("dropped a malformed election report", { from, problem: problem ?? "not a peer" });
      return;
    }
    const members = (message as LostReport).members;
    const before = this.#reports.get(from);
    this.#reports.set(from, { members, atMs: this.#o.clock.now() });
    // A peer that newly lost the leader may complete the quorum that replaces it: decide now.
    const leader = this.leader()?.nodeId;
    if (leader !== undefined && members.includes(leader) && !before?.members.includes(leader)) this.check();
  }

  check(): void {
    const view = this.#view();
    const report: LostReport = { t: "lost", members: lostMembers(view) };
    this.#o.transport.broadcast(ELECTION_CHANNEL, report);
    this.#noticeChanges(view.record);
    if (this.#attempt) return;
    const proposal = electionProposal(view);
    if (!proposal) return;
    this.#stats.proposals++;
    const value = new TextEncoder().encode(JSON.stringify(proposal.record));
    this.#attempt = this.#o.replica
      .writeOk({ type: "put", key: LEADER_KEY, value, ifRevision: proposal.ifRevision }, PROPOSAL_TIMEOUT_MS)
      .then(() => {
        this.#stats.proposalsAccepted++;
        this.#o.log.info("proposed leader accepted", { leader: proposal.record.nodeId });
      })
      .catch((e) => {
        // Another member's proposal won the compare-and-set, or quorum is gone: the next check decides again.
        if (!(e instanceof AetherError && e.code === "compare_failed")) {
          this.#o.log.debug("leader proposal failed", { error: (e as Error).message });
        }
      })
      .finally(() => this.#attempt = null);
  }

  #view(): ElectionView {
    const nowMs = this.#o.clock.now();
    const replica = this.#o.replica;
    return {
      self: this.#o.self,
      members: this.#o.members,
      canPropose: replica.ready && replica.quorum,
      isConnected: (id) => this.#o.transport.isConnected(id),
      lastConnectedAt: (id) => this.#lastConnectedAt.get(id),
      peerReport: (id) => {
        const report = this.#reports.get(id);
        const fresh = report && nowMs - report.atMs <= REPORT_FRESH_MS && this.#o.transport.isConnected(id);
        return fresh ? report.members : undefined;
      },
      record: this.leader(),
      recordRevision: replica.state.get(LEADER_KEY)?.modRevision ?? 0,
      nowMs,
      startedAtMs: this.#startedAtMs,
    };
  }

  #noticeChanges(current: LeaderRecord | null): void {
    if ((current?.nodeId ?? null) !== this.#lastLeader) {
      this.#lastLeader = current?.nodeId ?? null;
      this.#stats.leaderChanges++;
      this.#o.log.info("leader changed", { leader: this.#lastLeader, view: current?.view });
    }
    if (this.isLeader() !== this.#leading) {
      this.#leading = !this.#leading;
      this.#o.log.info(this.#leading ? "leading the cluster" : "no longer leading");
      this.#o.onLeadership(this.#leading);
    }
  }
}

/** What is wrong with a message on ELECTION_CHANNEL, or undefined when it is well formed. */
export function checkLostReport(message: unknown, members: readonly NodeId[]): string | undefined {
  if (typeof message !== "object" || message === null) return "not an object";
  const m = message as Record<string, unknown>;
  if (m.t !== "lost") return `unknown message type ${String(m.t)}`;
  if (!Array.isArray(m.members) || m.members.length > members.length) {
    return `members must be an array of at most ${members.length} member ids`;
  }
  for (const id of m.members) {
    if (typeof id !== "string" || !members.includes(id)) return `members: ${String(id)} is not a member`;
  }
  return undefined;
}
