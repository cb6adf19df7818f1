/**
 * `aether forge <command>`: talks to the Forge running in this directory through its control channel (found in
 * `.forge/forge.json`). Exit 0 done, 1 failed (no Forge runs, or it refused), 2 bad command line.
 */

import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { describeFault, type Fault } from "./faults.ts";
import { MAX_LATENCY_MS } from "./link_proxy.ts";
import { didYouMean } from "./options.ts";
import { type ForgeState, isAlive, readState, STATE_FILE } from "./state.ts";

interface Command {
  args: string;
  summary: string;
  positionals: string[];
  /** Checks the arguments before Forge is contacted (throws UsageError). */
  check?(positionals: string[]): void;
  run(forge: ForgeState, positionals: string[], json: boolean): Promise<void>;
}

class CommandFailed extends Error {}

class UsageError extends Error {}

const COMMANDS: Record<string, Command> = {
  status: {
    args: "[--json]",
    summary: "the nodes of the running Forge (pids, ports, running, restarts) and its active faults",
    positionals: [],
    async run(forge, _, json) {
      const state = await control<ForgeState>(forge, "GET", "/status");
      if (json) return console.log(JSON.stringify(state, null, 2));
      console.log(formatStatus(state));
    },
  },
  stop: {
    args: "",
    summary: "stop the running Forge and every node",
    positionals: [],
    async run(forge) {
      await control(forge, "POST", "/stop");
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && await isAlive(forge)) await new Promise((r) => setTimeout(r, 100));
      console.log(`Forge (pid ${forge.pid}) stopped`);
    },
  },
  kill: {
    args: "<node>",
    summary: "SIGKILL a node, as a crash; Forge restarts it unless it runs with --restart never",
    positionals: ["node"],
    async run(forge, [node]) {
      const r = await control<{ pid: number }>(forge, "POST", `/nodes/${encodeURIComponent(node)}/kill`);
      console.log(`killed ${node} (pid ${r.pid}) with SIGKILL`);
    },
  },
  restart: {
    args: "<node>",
    summary: "stop a node (SIGTERM) and start it again",
    positionals: ["node"],
    async run(forge, [node]) {
      await control(forge, "POST", `/nodes/${encodeURIComponent(node)}/restart`);
      console.log(`restarting ${node}`);
    },
  },
  partition: {
    args: "<a> <b>",
    summary: "cut the mesh link between two members, both directions (until heal)",
    positionals: ["a", "b"],
    run: (forge, [a, b]) => addFault(forge, { kind: "partition", a, b }),
  },
  isolate: {
    args: "<node>",
    summary: "cut every mesh link of a member (until heal)",
    positionals: ["node"],
    run: (forge, [node]) => addFault(forge, { kind: "isolate", node }),
  },
  latency: {
    args: "<a> <b> <ms>",
    summary: "delay both directions of the link between two members by <ms> (until heal)",
    positionals: ["a", "b", "ms"],
    check([, , ms]) {
      if (!/^\d+$/.test(ms) || Number(ms) > MAX_LATENCY_MS) {
        throw new UsageError(
          `<ms> "${ms}" is not a whole number of milliseconds from 0 to ${MAX_LATENCY_MS}`,
        );
      }
    },
    run: (forge, [a, b, ms]) => addFault(forge, { kind: "latency", a, b, ms: Number(ms) }),
  },
  heal: {
    args: "",
    summary: "remove every fault: partitions, isolations and latency",
    positionals: [],
    async run(forge) {
      const r = await control<{ healed: number }>(forge, "POST", "/heal");
      console.log(r.healed === 0 ? "no faults were active" : `healed ${r.healed} fault(s)`);
    },
  },
};

export const FORGE_COMMANDS = Object.keys(COMMANDS);

async function addFault(forge: ForgeState, fault: Fault): Promise<void> {
  const r = await control<{ faults: Fault[] }>(forge, "POST", "/faults", fault);
  console.log(`${describeFault(fault)}: active faults now ${r.faults.map(describeFault).join("; ")}`);
}

export function commandUsage(name: string): string {
  const c = COMMANDS[name];
  return `usage: aether forge ${name}${c.args ? ` ${c.args}` : ""}\n\n  ${c.summary}\n\n` +
    `It acts on the Forge running in this directory or the nearest one above (found in ${STATE_FILE}).`;
}

/** Runs `aether forge <name> ...`; returns the exit code. */
export async function runForgeCommand(name: string, args: string[]): Promise<number> {
  const command = COMMANDS[name];
  if (!command) {
    const guess = didYouMean(name, FORGE_COMMANDS);
    console.error(
      `forge: unknown command "${name}"${guess ? `; did you mean "${guess}"?` : ""}\n` +
        `commands: ${FORGE_COMMANDS.join(", ")} (aether forge --help)`,
    );
    return 2;
  }
  let positionals: string[];
  let json = false;
  try {
    const parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        help: { type: "boolean", short: "h" },
        ...(name === "status" ? { json: { type: "boolean" } } : {}),
      },
    });
    if (parsed.values.help) {
      console.log(commandUsage(name));
      return 0;
    }
    json = Boolean((parsed.values as { json?: boolean }).json);
    positionals = parsed.positionals;
    if (positionals.length !== command.positionals.length) {
      throw new UsageError(
        `takes ${command.positionals.length === 0 ? "no arguments" : command.args}, got ${
          positionals.length === 0 ? "none" : positionals.map((p) => `"${p}"`).join(" ")
        }`,
      );
    }
    command.check?.(positionals);
  } catch (e) {
    console.error(`forge ${name}: ${(e as Error).message}\n${commandUsage(name)}`);
    return 2;
  }
  try {
    const forge = await findForge();
    await command.run(forge, positionals, json);
    return 0;
  } catch (e) {
    console.error(`forge ${name}: ${(e as Error).message}`);
    return 1;
  }
}

/** The Forge of this directory or the nearest one above it that has a `.forge/forge.json`. */
async function findForge(): Promise<ForgeState> {
  let dir = Deno.cwd();
  for (;;) {
    const path = `${dir}/${STATE_FILE}`;
    const state = await readState(path);
    if (state) {
      if (await isAlive(state)) return state;
      throw new CommandFailed(
        `the Forge recorded in ${path} (pid ${state.pid}, control ${state.control}) does not answer: ` +
          `it is not running (start one with: aether forge)`,
      );
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  throw new CommandFailed(
    `no Forge runs in ${Deno.cwd()} or above (no ${STATE_FILE}); start one here with: aether forge`,
  );
}

async function control<T = unknown>(
  forge: ForgeState,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${forge.control}${path}`, {
      method,
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: body === undefined ? undefined : { "content-type": "application/json" },
    });
  } catch (e) {
    throw new CommandFailed(`cannot reach Forge at ${forge.control}: ${(e as Error).message}`);
  }
  const text = await response.text();
  const parsed = text ? JSON.parse(text) : null;
  if (!response.ok) throw new CommandFailed(parsed?.detail ?? `${response.status} ${text}`);
  return parsed as T;
}

/** The status table. */
export function formatStatus(state: ForgeState): string {
  const header = ["NODE", "PID", "API", "APP", "CLUSTER", "RUNNING", "RESTARTS"];
  const rows = state.nodes.map((n) => [
    n.id,
    n.pid === null ? "-" : String(n.pid),
    n.api,
    n.app,
    String(n.cluster),
    n.running ? "yes" : "no",
    String(n.restarts),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  const faults = state.faults.length === 0 ? "none" : state.faults.map(describeFault).join("; ");
  return [
    `Forge pid ${state.pid}, control ${state.control}, restart ${state.restart}, since ${state.startedAt}`,
    line(header),
    ...rows.map(line),
    `faults: ${faults}`,
  ].join("\n");
}
