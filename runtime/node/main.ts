/**
 * `aether node`: parses flags, starts a member, prints one ready line on standard output, and runs until
 * SIGTERM/SIGINT or — when standard input is a pipe — until standard input closes.
 */

import { AetherError, stopRequested } from "../core/mod.ts";
import { NODE_USAGE, parseNodeFlags, readSecret, readTls, type TlsMaterial } from "./flags.ts";
import { startNode } from "./node.ts";
import { nodeLogger } from "./logs.ts";

/** Exit codes: 0 clean stop, 1 runtime failure, 2 bad flags. */
export async function runNode(args: string[]): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(NODE_USAGE);
    return 0;
  }
  let flags, secret, tls: TlsMaterial | undefined;
  try {
    flags = parseNodeFlags(args);
    secret = await readSecret(flags.secretFile);
    tls = flags.tls === undefined ? undefined : await readTls(flags.tls);
  } catch (e) {
    if (e instanceof AetherError && e.code === "invalid_flag") {
      console.error(`aether node: ${e.message}\n\n${NODE_USAGE}`);
      return 2;
    }
    throw e;
  }
  const { log, ring } = nodeLogger(flags);
  // Listen for stop requests before anything can announce readiness: a parent may signal right after.
  const stop = stopRequested();
  let node;
  try {
    node = await startNode(flags, secret, log, ring, tls);
  } catch (e) {
    log.error("failed to start", { error: (e as Error).message });
    return 1;
  }
  console.log(JSON.stringify({
    event: "ready",
    nodeId: flags.id,
    clusterPort: node.ports.cluster,
    apiPort: node.ports.api,
    httpPort: node.ports.http,
    pid: Deno.pid,
  }));
  const reason = await stop;
  log.info("stopping", { reason });
  await node.stop();
  return 0;
}
