/**
 * The election loop: every ELECTION_CHECK_MS a member asks the pure rule (leader.ts) whether to propose a new
 * leader record, and proposes it through consensus as a compare-and-set on the `leader` key.
 */

import { AetherError } from "../core/errors.ts";
import type { Clock } from "../core/clock.ts";
import type { Logger } from "../core/log.ts";
import type { NodeId } from "../core/ids.ts";
import { electionProposal, LEADER_KEY, type LeaderRecord } from "./leader.ts";
import type { Replica } from "./replica.ts";

const ELECTION_CHECK_MS = 100;

export interface ElectionContext {
  self: NodeId;
  members: readonly NodeId[];
  replica: Replica;
  clock: Clock;
  isConnected(id: NodeId): boolean;
  lastConnectedAt: Map<string, number>;
  startedAt: number;
  log: Logger;
  leader(): LeaderRecord | null;
  isLeader(): boolean;
  onLeadership(leading: boolean): void;
}

/** Proposes leader records through consensus when the pure rule says so; one attempt at a time. */
export function startElections(ctx: ElectionContext): { stop(): void } {
  let attempt: Promise<void> | null = null;
  let lastLeader: string | null = ctx.leader()?.nodeId ?? null;
  let leading = false;
  const check = () => {
    const current = ctx.leader();
    if ((current?.nodeId ?? null) !== lastLeader) {
      lastLeader = current?.nodeId ?? null;
      ctx.log.info("leader changed", { leader: lastLeader, view: current?.view });
    }
    if (ctx.isLeader() !== leading) {
      leading = !leading;
      ctx.log.info(leading ? "leading the cluster" : "no longer leading");
      ctx.onLeadership(leading);
    }
    if (attempt) return;
    const proposal = electionProposal({
      self: ctx.self,
      members: ctx.members,
      canPropose: ctx.replica.ready && ctx.replica.quorum,
      isConnected: (id) => ctx.isConnected(id),
      lastConnectedAt: (id) => ctx.lastConnectedAt.get(id),
      record: current,
      recordRevision: ctx.replica.state.get(LEADER_KEY)?.modRevision ?? 0,
      nowMs: ctx.clock.now(),
      startedAtMs: ctx.startedAt,
    });
    if (!proposal) return;
    const value = new TextEncoder().encode(JSON.stringify(proposal.record));
    attempt = ctx.replica
      .writeOk({ type: "put", key: LEADER_KEY, value, ifRevision: proposal.ifRevision }, 2_000)
      .then(() => ctx.log.info("proposed leader accepted", { leader: proposal.record.nodeId }))
      .catch((e) => {
        // Another member's proposal won the compare-and-set, or quorum is gone: the next check decides again.
        if (!(e instanceof AetherError && e.code === "compare_failed")) {
          ctx.log.debug("leader proposal failed", { error: (e as Error).message });
        }
      })
      .finally(() => attempt = null);
  };
  const timer = setInterval(check, ELECTION_CHECK_MS);
  return { stop: () => clearInterval(timer) };
}
