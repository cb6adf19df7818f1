/**
 * `aether cluster rolling-restart`: every node in turn is drained, restarted by its supervisor, waited for
 * until it is back in the cluster, and uncordoned; then every slice must be back at its count before the next
 * node. The leader goes last (one election instead of several).
 *
 * Who restarts a node, honestly: a process cannot start itself again, so the restart is its supervisor's.
 * - Under Forge (a `.forge/forge.json` is found from the working directory): Forge's supervisor restarts it
 *   (`POST {control}/nodes/{id}/restart`: SIGTERM, then the same command line again).
 * - Elsewhere (systemd, Kubernetes, ...): `--exec 'ssh {node} sudo systemctl restart aether'` runs the
 *   operator's command with `{node}` replaced by the node id, and the command must restart that node.
 * It refuses to start on a node while another member is down or the cluster has no quorum (restarting one
 * more could lose quorum), and stops at the first node that does not come back.
 */

import { CliError, EXIT_FAILED, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import type { CliCommand, CliContext } from "../command.ts";
import { findForgeFile } from "../forge_file.ts";
import { waitDrained } from "./node.ts";

interface StatusView {
  nodeId: string;
  quorum: boolean;
  leader: { nodeId: string } | null;
  members: { id: string; connected: boolean }[];
}

interface SlicesView {
  slices: { slice: string; active: number; desired: number; settled: boolean }[];
}

const POLL_MS = 500;
/** How long a restarted node may take to be seen gone; a faster restart is simply not seen. */
const SEEN_DOWN_MS = 15_000;

type Restarter = (node: string) => Promise<void>;

async function sleep(ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new CliError("interrupted", EXIT_FAILED));
    }, { once: true });
  });
}

/** Polls `probe` (errors count as "not yet": the node asked may be the one restarting) until true. */
async function until(
  ctx: Pick<CliContext, "signal">,
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (e) {
      lastError = ` (last answer: ${(e as Error).message})`;
    }
    await sleep(POLL_MS, ctx.signal);
  }
  throw new CliError(
    `rolling-restart: gave up waiting for ${what} after ${timeoutMs} ms${lastError}`,
    EXIT_FAILED,
  );
}

function forgeRestarter(control: string): Restarter {
  return async (node) => {
    const response = await fetch(`${control}/nodes/${encodeURIComponent(node)}/restart`, { method: "POST" });
    const text = await response.text();
    if (!response.ok) {
      throw new CliError(`Forge refused to restart ${node}: ${response.status} ${text}`, EXIT_FAILED);
    }
  };
}

function execRestarter(template: string): Restarter {
  return async (node) => {
    const command = template.replaceAll("{node}", node);
    const out = await new Deno.Command("sh", { args: ["-c", command], stdout: "inherit", stderr: "inherit" })
      .output();
    if (out.code !== 0) {
      throw new CliError(
        `rolling-restart: "${command}" exited with ${out.code}; ${node} stays cordoned`,
        EXIT_FAILED,
      );
    }
  };
}

/** Refuses while the cluster could not lose one more member. */
async function requireWholeCluster(ctx: CliContext, node: string): Promise<StatusView> {
  const status = await ctx.api.json<StatusView>("GET", "/api/v1/status");
  const down = status.members.filter((m) => !m.connected).map((m) => m.id);
  if (!status.quorum || down.length > 0) {
    throw new CliError(
      `rolling-restart: not restarting ${node}: ${
        down.length > 0 ? `${down.join(", ")} down` : "no quorum"
      }` +
        `; restarting one more member could lose quorum. Bring every member back first.`,
      EXIT_FAILED,
    );
  }
  if (status.members.length < 2) {
    throw new CliError(
      "rolling-restart: a single-member cluster cannot move its instances anywhere",
      EXIT_FAILED,
    );
  }
  return status;
}

export async function rollingRestart(
  ctx: CliContext,
  restart: Restarter,
  options: { timeoutMs: number; only?: string[] },
): Promise<{ node: string; ms: number }[]> {
  const first = await requireWholeCluster(ctx, "any node");
  const leader = first.leader?.nodeId;
  const order = first.members.map((m) => m.id).filter((id) => !options.only || options.only.includes(id))
    .sort((a, b) => Number(a === leader) - Number(b === leader) || (a < b ? -1 : 1));
  const done: { node: string; ms: number }[] = [];
  for (const node of order) {
    const startedAt = Date.now();
    await requireWholeCluster(ctx, node);
    ctx.out(`${node}: draining`);
    await ctx.api.json("POST", `/api/v1/nodes/${encodeURIComponent(node)}/drain`, {
      reason: "aether cluster rolling-restart",
    });
    await waitDrained({ ...ctx, json: true }, node, options.timeoutMs);
    ctx.out(`${node}: drained, restarting`);
    await restart(node);
    const seen = (connected: boolean) => async () => {
      const s = await ctx.api.json<StatusView>("GET", "/api/v1/status");
      return s.members.some((m) => m.id === node && m.connected === connected) && (!connected || s.quorum);
    };
    await until(ctx, `${node} to go down`, SEEN_DOWN_MS, seen(false)).catch(() => {});
    await until(ctx, `${node} to rejoin`, options.timeoutMs, seen(true));
    await ctx.api.json("POST", `/api/v1/nodes/${encodeURIComponent(node)}/uncordon`);
    ctx.out(`${node}: back, uncordoned; waiting for every slice at its count`);
    await until(ctx, "every slice back at its count", options.timeoutMs, async () => {
      const { slices } = await ctx.api.json<SlicesView>("GET", "/api/v1/slices");
      return slices.every((s) => s.settled && s.active >= s.desired);
    });
    const ms = Date.now() - startedAt;
    done.push({ node, ms });
    ctx.out(`${node}: done in ${ms} ms`);
  }
  return done;
}

export const restartCommands: CliCommand[] = [
  {
    name: "cluster rolling-restart",
    args: "",
    summary: "drain, restart and uncordon every node in turn (the leader last), waiting for health between",
    description:
      "Each node is drained (its instances moved, each replacement ACTIVE first), restarted by its " +
      "supervisor, waited for until it rejoins, and uncordoned; every slice must be back at its count " +
      "before the next node. Under Forge, Forge restarts the node; elsewhere give --exec with the command " +
      "that restarts one node ({node} is replaced by its id). Refused while any member is down.",
    flags: [
      {
        name: "exec",
        value: "COMMAND",
        description: "sh command that restarts one node, {node} = its id (default: Forge's supervisor)",
      },
      {
        name: "nodes",
        value: "LIST",
        description: "only these nodes, comma-separated (default: every member)",
      },
      {
        name: "timeout-ms",
        value: "MS",
        description: "per node and per wait: drain, rejoin, slices back (default 300000)",
        int: { min: 1_000, max: 86_400_000 },
      },
    ],
    positionals: { min: 0, max: 0 },
    examples: [
      "aether cluster rolling-restart",
      "aether cluster rolling-restart --exec 'ssh {node} sudo systemctl restart aether'",
    ],
    async run(ctx, args) {
      const p = parseFor(this, args);
      const exec = p.string("exec");
      let restart: Restarter;
      if (exec !== undefined) restart = execRestarter(exec);
      else {
        const found = findForgeFile(Deno.cwd());
        if (!found?.forge.control) {
          throw new CliError(
            "cluster rolling-restart: no Forge found from this directory (.forge/forge.json); outside Forge " +
              "give --exec with the command that restarts one node, e.g. --exec 'ssh {node} sudo systemctl " +
              "restart aether'",
            EXIT_USAGE,
          );
        }
        restart = forgeRestarter(found.forge.control);
      }
      const only = p.string("nodes")?.split(",").map((s) => s.trim()).filter((s) => s !== "");
      const done = await rollingRestart(ctx, restart, {
        timeoutMs: p.int("timeout-ms") ?? 300_000,
        ...(only ? { only } : {}),
      });
      if (ctx.json) ctx.out(JSON.stringify({ restarted: done }, null, 2));
      else ctx.out(`rolling restart done: ${done.map((d) => `${d.node} ${d.ms} ms`).join(", ")}`);
    },
  },
];
