/**
 * `aether aspect set|list`: dynamic aspects (log / metrics per slice method, cluster-wide, live), and
 * `aether outbound`: the outbound HTTP client's hosts and circuit breakers per node.
 */

import { parseCommandArgs } from "../_args.ts";
import { printable, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface AspectEntry {
  slice: string;
  method: string;
  mode: string;
  updatedAt?: number;
  by?: string;
}

interface OutboundHost {
  group: string;
  host: string;
  requests: number;
  failures: number;
  retries: number;
  rejected: number;
  circuit: string;
}

const MODES = ["none", "log", "metrics", "log+metrics"];

export const aspectCommands: CliCommand[] = [
  {
    name: "aspect set",
    args: "<group:artifact/method> <none|log|metrics|log+metrics>",
    summary:
      "switches a slice method's aspect on every node within a second: log calls, measure sizes, or none",
    description: "log: one record per call (request id, slice, method, duration, arguments and result or " +
      "error, each cut at 4 KiB, secret fields redacted: password, token, secret... and the manifest's " +
      "redact list) in the node logs (aether logs --slice <group:artifact>). metrics: argument and result " +
      "sizes per method in the metrics (aether_aspect_*). none: back to the always-on per-method metrics.",
    flags: [],
    positionals: { min: 2, max: 2 },
    examples: [
      "aether aspect set org.example.shop:orders/placeOrder log",
      "aether aspect set org.example.shop:orders/placeOrder none",
    ],
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("aspect set", args, {}, {
        min: 2,
        max: 2,
        names: "<group:artifact/method> <mode>",
      });
      const [target, mode] = positionals;
      if (!MODES.includes(mode)) {
        throw new CliError(`aspect set: mode "${mode}" is not one of ${MODES.join(", ")}`, EXIT_USAGE);
      }
      const answer = await ctx.api.json<AspectEntry>("PUT", "/api/v1/aspects", { target, mode });
      ctx.out(
        ctx.json ? JSON.stringify(answer, null, 2) : `${answer.slice}/${answer.method}: ${answer.mode}`,
      );
    },
  },
  {
    name: "aspect list",
    args: "",
    summary: "slice methods with an aspect switched on, and their mode",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseCommandArgs("aspect list", args, {}, { min: 0, max: 0, names: "no arguments" });
      const answer = await ctx.api.json<{ items: AspectEntry[] }>("GET", "/api/v1/aspects");
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      if (answer.items.length === 0) return ctx.out("no aspects: every method runs with mode none");
      ctx.out(table(
        ["SLICE", "METHOD", "MODE", "SINCE", "BY"],
        answer.items.map((a) => [
          printable(a.slice),
          printable(a.method),
          a.mode,
          a.updatedAt ? new Date(a.updatedAt).toISOString() : "",
          printable(a.by ?? ""),
        ]),
      ));
    },
  },
  {
    name: "outbound",
    args: "",
    summary: "outbound HTTP of slices: allowed hosts, requests, failures and circuit state per node and host",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseCommandArgs("outbound", args, {}, { min: 0, max: 0, names: "no arguments" });
      const answer = await ctx.api.json<{
        allowed: string[];
        nodes: { node: string; stale: boolean; hosts: OutboundHost[] }[];
      }>("GET", "/api/v1/outbound");
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      const rows = answer.nodes.flatMap((n) =>
        n.hosts.map((h) => [
          printable(n.node) + (n.stale ? " (stale)" : ""),
          printable(h.group),
          printable(h.host),
          h.circuit.toUpperCase(),
          String(h.requests),
          String(h.failures),
          String(h.retries),
          String(h.rejected),
        ])
      );
      ctx.out(
        `allowed on this node (--outbound-allow): ${
          answer.allowed.length ? answer.allowed.map(printable).join(", ") : "none"
        }`,
      );
      ctx.out(
        rows.length === 0
          ? "no outbound calls yet"
          : table(["NODE", "GROUP", "HOST", "CIRCUIT", "REQUESTS", "FAILURES", "RETRIES", "REJECTED"], rows),
      );
    },
  },
];
