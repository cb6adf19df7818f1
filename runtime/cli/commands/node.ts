/**
 * CLI commands of nodes (`/api/v1/nodes`): list them with labels, cordon state and instances; cordon, drain
 * (optionally waiting until no instance is left) and uncordon one. `aether node --id ...` (flags, no word)
 * still starts a node process (runtime/main.ts, runtime/launch.ts NODE_CLI_SUBCOMMANDS).
 */

import { CliError, EXIT_FAILED } from "../client.ts";
import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand, CliContext } from "../command.ts";

export interface NodeRowView {
  id: string;
  connected?: boolean;
  labels: Record<string, string>;
  cordon?: { mode: string; since: number; reason?: string };
  instances: Record<string, number>;
  drained: boolean;
}

const enc = encodeURIComponent;
/** How often `--wait` asks how the drain stands. */
const WAIT_POLL_MS = 500;

function stateText(r: NodeRowView): string {
  if (!r.cordon) return "schedulable";
  if (r.cordon.mode === "cordon") return "cordoned";
  return r.drained ? "drained" : "draining";
}

function instancesText(counts: Record<string, number>): string {
  const parts = Object.entries(counts).sort().map(([state, n]) => `${n} ${state}`);
  return parts.length > 0 ? parts.join(", ") : "none";
}

function rowsText(rows: NodeRowView[]): string {
  return table(
    ["NODE", "CONNECTED", "STATE", "LABELS", "INSTANCES"],
    rows.map((r) => [
      r.id,
      r.connected === undefined ? "-" : r.connected ? "yes" : "no",
      stateText(r),
      Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-",
      instancesText(r.instances),
    ]),
  );
}

/** Polls GET /nodes/{id} until the node carries no instance; prints each change of what is left. */
export async function waitDrained(
  ctx: Pick<CliContext, "api" | "out" | "signal" | "json">,
  node: string,
  timeoutMs: number,
): Promise<NodeRowView> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (true) {
    const row = await ctx.api.json<NodeRowView>("GET", `/api/v1/nodes/${enc(node)}`);
    if (row.drained) return row;
    if (!row.cordon || row.cordon.mode !== "drain") {
      throw new CliError(`node ${node} is no longer draining (uncordoned meanwhile?)`, EXIT_FAILED);
    }
    const left = instancesText(row.instances);
    if (left !== last && !ctx.json) ctx.out(`${node}: ${left} left`);
    last = left;
    if (Date.now() >= deadline) {
      throw new CliError(
        `node ${node} still carries ${left} after ${timeoutMs} ms; the drain goes on (aether node list ` +
          `shows it; the leader's reason is in aether slices)`,
        EXIT_FAILED,
      );
    }
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, WAIT_POLL_MS);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(new CliError("interrupted", EXIT_FAILED));
      }, { once: true });
    });
  }
}

function cordonCommand(mode: "cordon" | "drain"): CliCommand {
  const drain = mode === "drain";
  return {
    name: `node ${mode}`,
    args: "<node>",
    summary: drain
      ? "move every instance off a node (each replacement ACTIVE first) and keep new ones away"
      : "keep new instances off a node; those it runs stay",
    description: drain
      ? "Cordons the node and has the leader move its instances to other nodes one at a time: the " +
        "replacement becomes ACTIVE before the old instance is deactivated, so no slice drops below its " +
        "count or its disruption budget. A drained node can be stopped without failing a request. " +
        "`aether node uncordon` lets it take instances again."
      : "New instances (scaling, replacements, rebalancing) go to other nodes; its own instances keep " +
        "running and are the first removed when a slice shrinks.",
    flags: [
      { name: "reason", value: "TEXT", description: "why (kept in the record, shown by node list --json)" },
      ...(drain
        ? [
          { name: "wait", description: "wait until no instance is left on the node" },
          {
            name: "timeout-ms",
            value: "MS",
            description: "with --wait: give up waiting after this long (default 300000)",
            int: { min: 1, max: 86_400_000 },
          },
        ]
        : []),
    ],
    positionals: { min: 1, max: 1 },
    examples: drain ? ["aether node drain n2 --wait", "aether node uncordon n2"] : ["aether node cordon n3"],
    async run(ctx, args) {
      const p = parseFor(this, args);
      const node = p.positionals[0];
      const reason = p.string("reason");
      const r = await ctx.api.json<{ node: string; cordon: { mode: string; since: number } }>(
        "POST",
        `/api/v1/nodes/${enc(node)}/${mode}`,
        reason !== undefined ? { reason } : undefined,
      );
      if (!drain || !p.boolean("wait")) {
        return ctx.out(ctx.json ? JSON.stringify(r, null, 2) : `${node}: ${drain ? "draining" : "cordoned"}`);
      }
      const startedAt = Date.now();
      const row = await waitDrained(ctx, node, p.int("timeout-ms") ?? 300_000);
      ctx.out(ctx.json ? JSON.stringify(row, null, 2) : `${node}: drained in ${Date.now() - startedAt} ms`);
    },
  };
}

export const nodeCommands: CliCommand[] = [
  {
    name: "node list",
    args: "",
    summary: "every node: connected, schedulable/cordoned/draining/drained, labels, instances",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json<{ items: NodeRowView[] }>("GET", "/api/v1/nodes");
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : rowsText(body.items));
    },
  },
  cordonCommand("cordon"),
  cordonCommand("drain"),
  {
    name: "node uncordon",
    args: "<node>",
    summary: "let a cordoned or drained node take instances again (rebalancing fills it)",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<{ node: string; uncordoned: boolean }>(
        "POST",
        `/api/v1/nodes/${enc(positionals[0])}/uncordon`,
      );
      ctx.out(
        ctx.json
          ? JSON.stringify(r, null, 2)
          : r.uncordoned
          ? `${r.node}: schedulable again`
          : `${r.node} was not cordoned`,
      );
    },
  },
];
