/**
 * Forge, the local development cluster: supervised node processes on loopback, an example deployed, chaos
 * (kill, restart, partitions, latency) through link proxies and a control channel, and the helpers that start
 * one node process (tests and benches start their clusters with `NodeProcess`).
 */

export { runForge } from "./main.ts";
export { type BuiltExample, type DeployedExample, deployExample, publishExample } from "./example.ts";
export { describeFault, type Fault, FaultSet, type LinkFaults, linkKey, MAX_FAULTS } from "./faults.ts";
export { type LinkProxy, MAX_DELAYED_BYTES, MAX_LATENCY_MS, startLinkProxy } from "./link_proxy.ts";
export { KEPT_LOG_FILES, MAX_LOG_FILE_BYTES, RotatingLogFile } from "./log_file.ts";
export {
  availableExamples,
  CLUSTER_SIZES,
  DEFAULT_EXAMPLE,
  didYouMean,
  type ForgeOptions,
  parseForgeOptions,
  UsageError,
} from "./options.ts";
export { FORGE_DIR, type ForgeNodeState, type ForgeState, readState, STATE_FILE } from "./state.ts";
export {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  describeExit,
  nextRestartDelayMs,
  NodeSupervisor,
  type RestartPolicy,
} from "./supervisor.ts";
export {
  freePort,
  NodeProcess,
  type NodeProcessOptions,
  portIsFree,
  type ReadyLine,
} from "./node_process.ts";
