/**
 * One node started inside the test process (no child process): a single-member cluster on loopback ports with
 * a known admin token, for tests that need the node's own objects (its router, its core) besides its API.
 */

import { createLogger } from "../../runtime/core/log.ts";
import { parseNodeFlags } from "../../runtime/node/flags.ts";
import { type RunningNode, startNode } from "../../runtime/node/node.ts";
import { testAdminToken } from "./cluster.ts";

const SECRET = "in-process-test-cluster-secret";

export interface InProcessNode {
  node: RunningNode;
  /** `http://127.0.0.1:<api port>`. */
  api: string;
  /** The bootstrap admin token the node was started with. */
  admin: string;
  close(): Promise<void>;
}

/** Starts the node and waits until it leads (so its bootstrap token is committed). */
export async function startInProcessNode(extraArgs: string[] = []): Promise<InProcessNode> {
  const dataDir = await Deno.makeTempDir({ prefix: "aether-in-process-" });
  await Deno.writeTextFile(`${dataDir}.secret`, SECRET);
  const admin = testAdminToken();
  await Deno.writeTextFile(`${dataDir}.token`, admin);
  const flags = parseNodeFlags([
    ...[
      "--id",
      "n1",
      "--peers",
      "n1@127.0.0.1:0",
      "--data-dir",
      dataDir,
      "--secret-file",
      `${dataDir}.secret`,
    ],
    ...["--api-port", "0", "--http-port", "0", "--log-level", "error"],
    ...["--bootstrap-token-file", `${dataDir}.token`, ...extraArgs],
  ]);
  const node = await startNode(flags, new TextEncoder().encode(SECRET), createLogger({ level: "error" }));
  const deadline = Date.now() + 20_000;
  while (!node.core.isLeader() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return {
    node,
    api: `http://127.0.0.1:${node.ports.api}`,
    admin,
    close: async () => {
      await node.stop();
      for (const path of [dataDir, `${dataDir}.secret`, `${dataDir}.token`]) {
        await Deno.remove(path, { recursive: true }).catch(() => {});
      }
    },
  };
}
