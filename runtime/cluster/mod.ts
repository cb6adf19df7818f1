/**
 * The replicated-state shell: the replica that drives the Rabia engine with storage, clock and network, write
 * forwarding into the leader's batches, leader election, and the access types features receive.
 */
export * from "./access.ts";
export {
  checkLostReport,
  ELECTION_CHANNEL,
  ELECTION_CHECK_MS,
  Elections,
  type ElectionsOptions,
  type ElectionStats,
  type ElectionTransport,
  type LostReport,
  REPORT_FRESH_MS,
} from "./elections.ts";
export { checkForwardMsg, type LocalWriter, WRITE_CHANNEL, WriteForwarder, type Writer } from "./forward.ts";
export {
  type ElectionProposal,
  electionProposal,
  type ElectionView,
  LEADER_KEY,
  type LeaderRecord,
  lostMembers,
  parseLeaderRecord,
  STARTUP_GRACE_MS,
} from "./leader.ts";
export {
  CONSENSUS_CHANNEL,
  Replica,
  type ReplicaOptions,
  type ReplicaStorage,
  type ReplicaTransport,
  writeOutcome,
} from "./replica.ts";
