/**
 * `aether forge`: a local cluster on loopback for development. Starts N node processes with their data under
 * `.forge/`, waits until they agree on a leader, prints every node's ports and commands to try, and stops every
 * process on Ctrl-C.
 */

import { parseArgs } from "node:util";
import { stopRequested } from "../core/mod.ts";
import { freePort, NodeProcess, portIsFree } from "./node_process.ts";
import { PROJECT_ROOT } from "../node/mod.ts";
import { runCli } from "../cli/mod.ts";

const FORGE_DIR = ".forge";
const DEFAULT_EXAMPLE = "ecommerce";

interface ForgeOptions {
  nodes: number;
  clean: boolean;
  /** Example application to deploy, or null for an empty cluster. */
  example: string | null;
}

const USAGE = `usage: deno task forge [--nodes 1|3|5] [--clean] [--no-example | --example NAME]

  --nodes       cluster size (default 3)
  --clean       delete the data of the previous run first (otherwise the cluster resumes where it stopped)
  --no-example  start an empty cluster
  --example     the example application to deploy: a folder under examples/ (default: ecommerce)`;

function parseForgeArgs(args: string[]): ForgeOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      nodes: { type: "string" },
      clean: { type: "boolean" },
      "no-example": { type: "boolean" },
      example: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const nodes = Number(values.nodes ?? 3);
  if (![1, 3, 5].includes(nodes)) throw new Error(`--nodes: "${values.nodes}" is not 1, 3 or 5`);
  if (values["no-example"] && values.example) {
    throw new Error("--example and --no-example exclude each other");
  }
  const example = values["no-example"] ? null : values.example ?? DEFAULT_EXAMPLE;
  if (example !== null && !/^[a-z0-9][a-z0-9-]*$/.test(example)) {
    throw new Error(`--example: "${example}" is not the name of a folder under examples/`);
  }
  return { nodes, clean: values.clean ?? false, example };
}

/** Nodes run with --cached-only (they never download code), so dependencies are installed first. */
async function installDependencies(): Promise<void> {
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

/** Preferred ports (7100+i, 8080+i, 8070+i); a busy one is replaced by a free one. */
function choosePort(preferred: number): number {
  return portIsFree(preferred) ? preferred : freePort();
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
  return secretFile;
}

function printBanner(nodes: NodeProcess[], leader: string, example: string | null): void {
  const rows = nodes.map((n) =>
    `  ${n.id.padEnd(4)} cluster ${String(n.ready!.clusterPort).padEnd(6)} api ${n.apiUrl.padEnd(24)} ` +
    `app ${n.httpUrl}${n.id === leader ? "   (leader)" : ""}`
  );
  const api = nodes[0].apiUrl.replace("http://", "");
  const appUrls = nodes.map((n) => n.httpUrl).join(",");
  const exampleLines = example === "ecommerce"
    ? [
      `The ${example} example is deployed. Application: ${nodes[0].httpUrl}   Management: ${nodes[0].apiUrl}`,
      "",
      "Place an order (any node's app port works):",
      `  curl -s -X POST ${nodes[0].httpUrl}/api/v1/orders -H 'content-type: application/json' \\`,
      `    -d @examples/ecommerce/order.json`,
      `  curl -s -X POST ${
        nodes.at(-1)!.httpUrl
      }/api/v1/inventory/check -H 'content-type: application/json' \\`,
      `    -d '{"items":[{"productId":"MONITOR-4K","quantity":31}]}'`,
      `  deno task cli -- --connect ${api} slices`,
      `  deno task cli -- load --rate 100/s --duration 10s --target "POST /api/v1/orders" \\`,
      `    --body examples/ecommerce/load-order.json.tmpl --url ${appUrls} --failover`,
      "",
    ]
    : example
    ? [`The ${example} example is deployed: deno task cli -- --connect ${api} slices`, ""]
    : [];
  console.log([
    "",
    `Aether Forge: ${nodes.length}-member cluster is up (data in ${FORGE_DIR}/, logs in ${FORGE_DIR}/logs/)`,
    ...rows,
    "",
    ...exampleLines,
    "Try:",
    `  curl ${nodes[0].apiUrl}/api/v1/status`,
    `  deno task cli -- --connect ${api} status`,
    `  deno task cli -- --connect ${api} kv put app/greeting hello`,
    `  deno task cli -- --connect ${nodes.at(-1)!.apiUrl.replace("http://", "")} kv get app/greeting`,
    `  deno task cli -- --connect ${api} kv watch app/`,
    `  deno task cli -- --connect ${api}            (interactive shell)`,
    "",
    "Ctrl-C stops every node.",
  ].join("\n"));
}

/**
 * Builds every slice of examples/<name> (each folder with a slice.ts) into `outDir`, pushes the artifacts and
 * applies the example's blueprint, waiting until every instance is ACTIVE. It runs the same CLI commands a
 * user would. Exported for the end-to-end tests, which deploy the example exactly as Forge does.
 */
export async function deployExample(
  name: string,
  api: string,
  outDir = `${FORGE_DIR}/dist/${name}`,
): Promise<void> {
  const exampleDir = `${PROJECT_ROOT}/examples/${name}`;
  const blueprint = `${exampleDir}/blueprint.toml`;
  try {
    await Deno.stat(blueprint);
  } catch {
    const available = [...Deno.readDirSync(`${PROJECT_ROOT}/examples`)].filter((e) => e.isDirectory).map((
      e,
    ) => e.name);
    throw new Error(`--example: no examples/${name}/blueprint.toml; examples: ${available.join(", ")}`);
  }
  const slices = [...Deno.readDirSync(exampleDir)]
    .filter((e) => e.isDirectory && existsSync(`${exampleDir}/${e.name}/slice.ts`))
    .map((e) => e.name)
    .sort();
  const cli = async (args: string[]) => {
    const code = await runCli(args);
    if (code !== 0) throw new Error(`"aether ${args.join(" ")}" failed (exit ${code})`);
  };
  console.log(`Building ${slices.length} slices of examples/${name}...`);
  for (const slice of slices) {
    await cli(["slice", "build", `${exampleDir}/${slice}/slice.ts`, "--out", outDir]);
  }
  console.log("Publishing them to the cluster's artifact repository...");
  for (const entry of [...Deno.readDirSync(outDir)].filter((e) => e.name.endsWith(".manifest.json"))) {
    await cli(["--connect", api, "artifact", "push", `${outDir}/${entry.name}`]);
  }
  console.log(`Applying examples/${name}/blueprint.toml...`);
  await cli(["--connect", api, "blueprint", "apply", blueprint, "--wait"]);
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
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
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the cluster did not agree on a leader within ${timeoutMs} ms; see ${FORGE_DIR}/logs/`);
}

export async function runForge(args: string[]): Promise<number> {
  let options: ForgeOptions;
  try {
    options = parseForgeArgs(args);
  } catch (e) {
    console.error(`forge: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  let secretFile: string;
  try {
    secretFile = await prepareDataDir(options);
  } catch (e) {
    console.error(`forge: ${(e as Error).message}`);
    return 2;
  }
  const ids = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
  const peers = ids.map((id, i) => `${id}@127.0.0.1:${choosePort(7101 + i)}`).join(",");
  const nodes = ids.map((id, i) => {
    const logFile = Deno.openSync(`${FORGE_DIR}/logs/${id}.log`, { create: true, append: true });
    const encoder = new TextEncoder();
    return new NodeProcess({
      id,
      peers,
      dataDir: `${FORGE_DIR}/${id}`,
      secretFile,
      apiPort: choosePort(8081 + i),
      httpPort: choosePort(8071 + i),
      onLog: (text) => logFile.writeSync(encoder.encode(text)),
    });
  });
  const stop = stopRequested();
  try {
    await installDependencies();
    console.log(`Starting ${options.nodes} node(s)...`);
    await Promise.all(nodes.map((n) => n.start()));
    const leader = await waitForLeader(nodes, 30_000);
    if (options.example) await deployExample(options.example, nodes[0].apiUrl.replace("http://", ""));
    printBanner(nodes, leader, options.example);
    const reason = await Promise.race([stop, ...nodes.map((n) => n.exited!.then(() => `${n.id} exited`))]);
    console.log(`\nStopping (${reason})...`);
    return reason.endsWith("exited") ? 1 : 0;
  } catch (e) {
    console.error(`forge: ${(e as Error).message}`);
    return 1;
  } finally {
    await Promise.all(nodes.map((n) => n.stop("SIGTERM", 5_000)));
    console.log("All nodes stopped.");
  }
}
