/**
 * The deterministic cluster simulator (the real replica, watch hub and elections over simulated storage,
 * network and time) and the linearizability checker it uses.
 */
export {
  DEFAULT_SIM_OPTIONS,
  FAULT_KINDS,
  type FaultKind,
  parseFaults,
  replayCommand,
  runSimulation,
  type SimOptions,
  type SimResult,
  type SimStats,
} from "./simulator.ts";
export { MAX_LEADER_CHANGES_PER_LINK_CUT, NEW_LEADER_WITHIN_MS } from "./_leadership.ts";
export * from "./linearizability.ts";
