/**
 * Leader election through consensus. The leader record lives in the replicated KV store under `leader` as
 * `{ nodeId, view, electedAt }`; every member reads the same record, so every member names the same leader and
 * leadership changes only when a compare-and-set on that key is decided. No member ever decides leadership
 * from its local view alone; the local view only decides when to *propose* a change.
 *
 * A member's own view is not enough even for that: with one link cut (n1–n2, n3 seeing both), n2 loses its
 * leader n1 while n3 still hears it. Had n2 proposed itself, n1 would have done the same a moment later, and
 * leadership flapped about ten times a second. So members tell each other whom they have lost (elections.ts
 * sends a report every check), and a leader is replaced only when a quorum of members, the proposer among them,
 * has lost it: a partially connected leader that a quorum still hears stays.
 *
 * This module is the pure decision: given what a member sees and what its peers reported, should it propose a
 * new record, and which?
 */

import type { NodeId } from "../core/mod.ts";
import { quorumOf } from "../consensus/mod.ts";

/** The KV key of the leader record. */
export const LEADER_KEY = "leader";

export interface LeaderRecord {
  nodeId: NodeId;
  view: number;
  electedAt: number;
}

export interface ElectionView {
  self: NodeId;
  members: readonly NodeId[];
  /** Caught up and with quorum: only then can a proposal be decided. */
  canPropose: boolean;
  isConnected(id: NodeId): boolean;
  /** When the member was last seen connected (undefined: not since this node started). */
  lastConnectedAt(id: NodeId): number | undefined;
  /**
   * The members a peer reported lost in its latest report, if that report is fresh and the peer is connected
   * to this member now; undefined otherwise (a silent peer speaks for nobody).
   */
  peerReport(id: NodeId): readonly NodeId[] | undefined;
  record: LeaderRecord | null;
  /** modRevision of the `leader` key (0 when absent); the proposal's compare-and-set condition. */
  recordRevision: number;
  nowMs: number;
  startedAtMs: number;
}

export interface ElectionProposal {
  record: LeaderRecord;
  ifRevision: number;
}

/** A member never seen since this node started is given this long to connect before it is deposed. */
export const STARTUP_GRACE_MS = 2_000;

export function electionProposal(view: ElectionView): ElectionProposal | null {
  if (!view.canPropose) return null;
  const current = view.record;
  if (current && !quorumLost(view, current.nodeId)) return null;
  const candidates = view.members.filter((m) =>
    m !== current?.nodeId && (m === view.self || view.isConnected(m))
  );
  if (candidates.length === 0) return null;
  const candidate = [...candidates].sort()[0];
  return {
    record: { nodeId: candidate, view: (current?.view ?? 0) + 1, electedAt: view.nowMs },
    ifRevision: view.recordRevision,
  };
}

/** The members this one has lost by its own view: what it reports to its peers. */
export function lostMembers(view: ElectionView): NodeId[] {
  return view.members.filter((m) => m !== view.self && locallyLost(view, m));
}

/** True when a quorum of members (this one included, the leader never) has lost `leader`. */
function quorumLost(view: ElectionView, leader: NodeId): boolean {
  if (leader === view.self) return false;
  if (!view.members.includes(leader)) return true;
  if (!locallyLost(view, leader)) return false;
  let lostBy = 1;
  for (const member of view.members) {
    if (member === view.self || member === leader) continue;
    if (view.peerReport(member)?.includes(leader)) lostBy++;
  }
  return lostBy >= quorumOf(view.members.length);
}

function locallyLost(view: ElectionView, member: NodeId): boolean {
  if (view.isConnected(member)) return false;
  // Seen and then lost: the mesh already waited out its heartbeat deadline. Never seen: allow for start-up.
  if (view.lastConnectedAt(member) !== undefined) return true;
  return view.nowMs - view.startedAtMs >= STARTUP_GRACE_MS;
}

export function parseLeaderRecord(bytes: Uint8Array | undefined): LeaderRecord | null {
  if (!bytes) return null;
  try {
    const value = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof value?.nodeId === "string" && Number.isInteger(value.view)) return value as LeaderRecord;
  } catch {
    // A malformed record counts as none: the next election replaces it.
  }
  return null;
}
