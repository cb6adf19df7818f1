/**
 * Forge, the local development cluster: node processes on loopback, an example deployed, and the helpers
 * that start one node process (tests and benches start their clusters with `NodeProcess`).
 */

export { deployExample, runForge } from "./main.ts";
export {
  freePort,
  NodeProcess,
  type NodeProcessOptions,
  portIsFree,
  type ReadyLine,
} from "./node_process.ts";
