/**
 * `aether forge`: a local cluster on loopback for development. Starts N supervised node processes with their
 * data under `.forge/` (a node that dies is reported and started again), waits until they agree on a leader,
 * deploys an example, prints every node's ports and commands to try, and runs until Ctrl-C, SIGTERM or
 * `aether forge stop`. `aether forge <command>` controls the Forge running in this directory.
 */

import { stopRequested } from "../core/mod.ts";
import { newTokenId, newTokenSecret } from "../api/mod.ts";
import { FORGE_TOKEN_FILE as ADMIN_TOKEN_FILE } from "../cli/mod.ts";
import { PROJECT_ROOT } from "../node/mod.ts";
import { newMasterKeyText } from "../infra-host/mod.ts";
import { SECRETS_KEY_FILE } from "./node_process.ts";
import { runForgeCommand } from "./commands.ts";
import { buildExample, EXAMPLES_DIR, publishExample } from "./example.ts";
import { type AdminToken, Forge } from "./forge.ts";
import type { NodeProcess } from "./node_process.ts";
import { type ForgeOptions, parseForgeOptions, USAGE, UsageError } from "./options.ts";
import { FORGE_DIR, runningForge, STATE_FILE } from "./state.ts";

/** How long the nodes may take to agree on a leader after they are all ready. */
const LEADER_TIMEOUT_MS = 30_000;

export async function runForge(args: string[]): Promise<number> {
  const first = args[0];
  if (first !== undefined && !first.startsWith("-")) return await runForgeCommand(first, args.slice(1));
  let options: ForgeOptions | null;
  try {
    options = parseForgeOptions(args, EXAMPLES_DIR);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`forge: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  if (options === null) {
    console.log(USAGE);
    return 0;
  }
  return await startForge(options);
}

async function startForge(options: ForgeOptions): Promise<number> {
  const startedAt = performance.now();
  const running = await runningForge();
  if (running) {
    console.error(
      `forge: a Forge already runs in this directory (pid ${running.pid}, control ${running.control}); ` +
        `use it (aether forge status), or stop it first: aether forge stop`,
    );
    return 1;
  }
  let secretFile: string;
  let adminToken: AdminToken;
  try {
    secretFile = await prepareDataDir(options);
    adminToken = await prepareAdminToken();
    await installDependencies();
  } catch (e) {
    console.error(`forge: ${(e as Error).message}`);
    return 2;
  }
  const forge = new Forge(options, secretFile, adminToken);
  const stop = Promise.race([stopRequested(), forge.stopRequested]);
  try {
    console.log(
      `Starting ${options.nodes} node(s)${
        options.example ? ` and building examples/${options.example}` : ""
      }...`,
    );
    // The example's slices are built while the nodes start (building needs no cluster).
    const building = options.example ? buildExample(options.example) : null;
    building?.catch(() => {}); // awaited below; a failure is reported there
    const started = await Promise.race([forge.start().then(() => null), stop]);
    if (started !== null) return 0;
    const leader = await waitForLeader(forge.nodes, LEADER_TIMEOUT_MS);
    if (building) await publishExample(await building, apiAddress(forge.nodes[0]), adminToken.token);
    printBanner(forge, leader, options.example, performance.now() - startedAt);
    const reason = await stop;
    console.log(`\nStopping (${reason})...`);
    return 0;
  } catch (e) {
    console.error(`forge: ${(e as Error).message}`);
    return 1;
  } finally {
    await forge.close();
    console.log("All nodes stopped.");
  }
}

function apiAddress(node: NodeProcess): string {
  return `127.0.0.1:${node.options.apiPort}`;
}

/**
 * Nodes run with --cached-only (they never download code), so dependencies must be installed. Skipped when
 * node_modules is newer than deno.json and deno.lock (nothing changed since the last install).
 */
async function installDependencies(): Promise<void> {
  const mtime = (path: string) =>
    Deno.stat(`${PROJECT_ROOT}/${path}`).then((s) => s.mtime?.getTime() ?? 0, () => 0);
  const [modules, config, lock] = await Promise.all([
    mtime("node_modules/.deno/.setup-cache.bin").then((t) => t || mtime("node_modules")),
    mtime("deno.json"),
    mtime("deno.lock"),
  ]);
  if (modules > 0 && modules >= config && modules >= lock) return;
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["install"],
    cwd: PROJECT_ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    throw new Error(`"deno install" failed:\n${new TextDecoder().decode(result.stderr)}`);
  }
}

async function prepareDataDir(options: ForgeOptions): Promise<string> {
  if (options.clean) await Deno.remove(FORGE_DIR, { recursive: true }).catch(() => {});
  await Deno.mkdir(`${FORGE_DIR}/logs`, { recursive: true });
  const layoutFile = `${FORGE_DIR}/cluster.json`;
  const previous = await Deno.readTextFile(layoutFile).then(JSON.parse).catch(() => null);
  if (previous && previous.nodes !== options.nodes) {
    throw new Error(
      `${FORGE_DIR} holds a ${previous.nodes}-node cluster; start it with --nodes ${previous.nodes}, ` +
        `or add --clean to start a new ${options.nodes}-node cluster`,
    );
  }
  await Deno.writeTextFile(layoutFile, JSON.stringify({ nodes: options.nodes }));
  const secretFile = `${FORGE_DIR}/secret`;
  try {
    await Deno.stat(secretFile);
  } catch {
    await Deno.writeTextFile(secretFile, crypto.randomUUID() + crypto.randomUUID(), { mode: 0o600 });
  }
  // The secrets' master key (AES-256-GCM), beside the mesh secret; every node is started with it.
  try {
    await Deno.stat(`${FORGE_DIR}/${SECRETS_KEY_FILE}`);
  } catch {
    await Deno.writeTextFile(`${FORGE_DIR}/${SECRETS_KEY_FILE}`, newMasterKeyText(), { mode: 0o600 });
  }
  return secretFile;
}

/**
 * `.forge/admin-token` (mode 0600): the cluster's first admin token, made here and given to the nodes with
 * --bootstrap-token-file, so the CLI (which finds it beside forge.json) never asks a Forge user for a token.
 * Kept across restarts: the cluster's data holds its hash.
 */
async function prepareAdminToken(): Promise<AdminToken> {
  const file = `${FORGE_DIR}/${ADMIN_TOKEN_FILE}`;
  try {
    return { file, token: (await Deno.readTextFile(file)).trim() };
  } catch {
    const token = `aether_${newTokenId()}_${newTokenSecret()}`;
    await Deno.writeTextFile(file, token + "\n", { mode: 0o600 });
    await Deno.chmod(file, 0o600);
    return { file, token };
  }
}

async function waitForLeader(nodes: NodeProcess[], timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const leaders = await Promise.all(nodes.map(async (n) => {
      try {
        const { status, body } = await n.json<{ leader: string | null }>("/api/v1/health");
        return status === 200 ? body.leader : null;
      } catch {
        return null;
      }
    }));
    if (leaders[0] && leaders.every((l) => l === leaders[0])) return leaders[0];
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the cluster did not agree on a leader within ${timeoutMs} ms; see ${FORGE_DIR}/logs/`);
}

function printBanner(forge: Forge, leader: string, example: string | null, elapsedMs: number): void {
  const nodes = forge.nodes;
  const rows = forge.state().nodes.map((n) =>
    `  ${n.id.padEnd(4)} cluster ${String(n.cluster).padEnd(6)} api ${`http://${n.api}`.padEnd(24)} ` +
    `app ${n.app}${n.id === leader ? "   (leader)" : ""}`
  );
  const app = (i: number) => `http://127.0.0.1:${nodes.at(i)!.options.httpPort}`;
  const appUrls = nodes.map((_, i) => app(i)).join(",");
  const exampleLines = example === "ecommerce"
    ? [
      `The ${example} example is deployed. Application: ${app(0)}   Management: http://${
        apiAddress(nodes[0])
      }`,
      "",
      "Place an order (any node's app port works):",
      `  curl -s -X POST ${app(0)}/api/v1/orders -H 'content-type: application/json' \\`,
      `    -d @examples/ecommerce/order.json`,
      `  curl -s -X POST ${app(-1)}/api/v1/inventory/check -H 'content-type: application/json' \\`,
      `    -d '{"items":[{"productId":"MONITOR-4K","quantity":31}]}'`,
      `  aether slices`,
      `  aether load --rate 100/s --duration 10s --target "POST /api/v1/orders" \\`,
      `    --body examples/ecommerce/load-order.json.tmpl --url ${appUrls} --failover`,
      "",
    ]
    : example === "url-shortener"
    ? [
      `The url-shortener example is deployed (links in the replicated kv service, the cache in front).`,
      "",
      "Shorten a URL on one node, follow it through another, see its clicks through a third:",
      `  curl -s -X POST ${
        app(0)
      }/u/links -H 'content-type: application/json' -d '{"url":"https://example.org"}'`,
      `  curl -si ${app(1)}/u/r/CODE`,
      `  curl -s ${app(-1)}/u/links/CODE`,
      `  aether infra list`,
      "",
    ]
    : example
    ? [`The ${example} example is deployed: aether slices`, ""]
    : [];
  const other = nodes.length > 1 ? nodes[1].id : nodes[0].id;
  console.log([
    "",
    `Aether Forge: ${nodes.length}-member cluster is up in ${(elapsedMs / 1000).toFixed(1)} s ` +
    `(data in ${FORGE_DIR}/, logs in ${FORGE_DIR}/logs/, state in ${STATE_FILE})`,
    ...rows,
    "",
    ...exampleLines,
    "Try (the CLI finds this Forge through .forge/forge.json, and its admin token in .forge/admin-token):",
    `  curl -H "Authorization: Bearer $(cat ${FORGE_DIR}/${ADMIN_TOKEN_FILE})" http://${
      apiAddress(nodes[0])
    }/api/v1/status`,
    `  aether status`,
    `  aether kv put app/greeting hello`,
    `  aether kv get app/greeting`,
    `  aether                      (interactive shell)`,
    "",
    `Dashboard: http://${
      apiAddress(nodes[0])
    }/ (any node's api port; sign in with ${FORGE_DIR}/${ADMIN_TOKEN_FILE})`,
    "",
    "Chaos (a node that dies is restarted; see aether forge --help):",
    `  ${forge.control}/   (the console: kill, restart, partition, latency, heal in a browser)`,
    `  aether forge status`,
    `  aether forge kill ${other}`,
    ...(nodes.length > 1 ? [`  aether forge partition ${nodes[0].id} ${other}`] : []),
    `  aether forge heal`,
    "",
    "Ctrl-C or aether forge stop stops every node.",
  ].join("\n"));
}
