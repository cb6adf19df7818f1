/**
 * Forge's command line, checked in full before any node starts: `aether forge [options]` starts a cluster,
 * `aether forge <subcommand>` talks to the one running in this directory.
 */

import { parseArgs } from "node:util";
import type { RestartPolicy } from "./supervisor.ts";

export const DEFAULT_EXAMPLE = "ecommerce";
export const CLUSTER_SIZES = [1, 3, 5] as const;

export interface ForgeOptions {
  nodes: number;
  clean: boolean;
  /** Example application to deploy, or null for an empty cluster. */
  example: string | null;
  restart: RestartPolicy;
  /** Any free loopback ports instead of the preferred 7101.., 8081.., 8071... */
  freePorts: boolean;
}

export const USAGE =
  `usage: aether forge [options]          start a local cluster in this directory (data in .forge/)
       aether forge <command> [args]   control the Forge running in this directory

options:
  --nodes 1|3|5         cluster size (default 3)
  --clean               delete the data of the previous run first (otherwise the cluster resumes)
  --example NAME        the example to deploy: a folder under examples/ (default: ${DEFAULT_EXAMPLE})
  --no-example          start an empty cluster
  --restart always|never
                        restart a node that dies (default always, after a short delay that grows when
                        a node keeps dying right after it started)
  --free-ports          use any free ports instead of the preferred 7101.., 8081.. (api), 8071.. (app)

commands:
  status [--json]       nodes, pids, ports, running, restarts and active faults
  stop                  stop Forge and every node
  kill <node>           SIGKILL a node (Forge restarts it unless --restart never)
  restart <node>        stop a node (SIGTERM) and start it again
  partition <a> <b>     cut the mesh link between two members, both directions
  isolate <node>        cut every mesh link of a member
  latency <a> <b> <ms>  delay both directions of the link between two members by <ms>
  heal                  remove every fault

Every command takes --help.`;

/** Bad command line: exit 2 with the message (and the usage). */
export class UsageError extends Error {}

/** The examples Forge can deploy: folders of `examplesDir` with a blueprint.toml. */
export function availableExamples(examplesDir: string): string[] {
  try {
    return [...Deno.readDirSync(examplesDir)]
      .filter((e) => e.isDirectory && exists(`${examplesDir}/${e.name}/blueprint.toml`))
      .map((e) => e.name)
      .sort();
  } catch {
    return [];
  }
}

/** Parses and checks every option; `--help` gives null (the caller prints the usage). */
export function parseForgeOptions(args: string[], examplesDir: string): ForgeOptions | null {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        nodes: { type: "string" },
        clean: { type: "boolean" },
        "no-example": { type: "boolean" },
        example: { type: "string" },
        restart: { type: "string" },
        "free-ports": { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return null;
  const nodes = Number(values.nodes ?? 3);
  if (!(CLUSTER_SIZES as readonly number[]).includes(nodes)) {
    throw new UsageError(
      `--nodes: "${values.nodes}" is not ${CLUSTER_SIZES.join(", ").replace(/, 5$/, " or 5")}`,
    );
  }
  const restart = values.restart ?? "always";
  if (restart !== "always" && restart !== "never") {
    throw new UsageError(`--restart: "${restart}" is not always or never`);
  }
  if (values["no-example"] && values.example !== undefined) {
    throw new UsageError("--example and --no-example exclude each other");
  }
  const example = values["no-example"] ? null : values.example ?? DEFAULT_EXAMPLE;
  if (example !== null) {
    const examples = availableExamples(examplesDir);
    if (!examples.includes(example)) {
      throw new UsageError(
        `--example: "${example}" is not an example (a folder under examples/ with a blueprint.toml); ` +
          `available: ${examples.join(", ") || "none"}`,
      );
    }
  }
  return {
    nodes,
    clean: values.clean ?? false,
    example,
    restart,
    freePorts: values["free-ports"] ?? false,
  };
}

/** The closest of `candidates` to `word` when it is close enough to be a typo. */
export function didYouMean(word: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best !== null && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : null;
}

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
