/**
 * Leader election through consensus. The leader record lives in the replicated KV store under `leader` as
 * `{ nodeId, view, electedAt }`; every member reads the same record, so every member names the same leader and
 * leadership changes only when a compare-and-set on that key is decided. No member ever decides leadership
 * from its local view alone; the local view only decides when to *propose* a change.
 *
 * This module is the pure decision: given what a member sees, should it propose a new record, and which?
 */

import type { NodeId } from "../core/ids.ts";

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
  if (current && !leaderIsGone(view, current.nodeId)) return null;
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

function leaderIsGone(view: ElectionView, leader: NodeId): boolean {
  if (leader === view.self) return false;
  if (!view.members.includes(leader)) return true;
  if (view.isConnected(leader)) return false;
  // Seen and then lost: the mesh already waited out its heartbeat deadline. Never seen: allow for start-up.
  if (view.lastConnectedAt(leader) !== undefined) return true;
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
