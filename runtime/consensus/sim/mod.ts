/** The deterministic cluster simulator and the linearizability checker it uses. */
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
export * from "./linearizability.ts";
