/**
 * The node, the composition root that builds every feature and starts it (`runNode`), and its launch contract
 * (the narrow permissions and the command line a node process runs with), which Forge and runtime/launch.ts use
 * to start node processes.
 *
 * `runNode` loads the node's modules on its first call, so that importing the launch contract loads nothing
 * else: the launcher runs with narrow permissions of its own, and some npm packages read environment
 * variables as they load (ws), which it may not.
 */

export {
  nodeCommandArgs,
  nodePermissionFlags,
  type NodePermissionInput,
  PROJECT_ROOT,
} from "./permissions.ts";

/** Runs a cluster member with its command-line arguments (those after `node`); resolves to its exit code. */
export async function runNode(args: string[]): Promise<number> {
  const { runNode } = await import("./main.ts");
  return await runNode(args);
}
