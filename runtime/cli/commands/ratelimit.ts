/** `aether ratelimit set|list|delete`: cluster-wide named rate limits (token buckets) for slices. */

import { parseCommandArgs } from "../_args.ts";
import { printable, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface RateLimitStatus {
  name: string;
  ratePerSec: number;
  burst: number;
  share: number;
  nodeRatePerSec: number;
  tokens: number;
  granted: number;
  refused: number;
  shareSource: string;
}

const UNITS: Record<string, number> = { s: 1, sec: 1, m: 60, min: 60, h: 3600 };

/** `100/s`, `6000/m`, `100` (per second) → permits per second (an integer). */
export function parseRate(text: string): number {
  const match = /^(\d+)(?:\/(s|sec|m|min|h))?$/.exec(text.trim());
  if (!match) throw new CliError(`--rate "${text}" is not N/s, N/m or N/h (e.g. 100/s)`, EXIT_USAGE);
  const perSec = Number(match[1]) / UNITS[match[2] ?? "s"];
  if (!Number.isInteger(perSec) || perSec < 1) {
    throw new CliError(
      `--rate "${text}" is ${Number(perSec.toFixed(3))} per second; a limit is a whole number of permits ` +
        `per second >= 1 (e.g. 60/m, 3600/h)`,
      EXIT_USAGE,
    );
  }
  return perSec;
}

export const rateLimitCommands: CliCommand[] = [
  {
    name: "ratelimit set",
    args: "<name>",
    summary:
      "defines or changes a cluster-wide rate limit: aether ratelimit set api --rate 100/s [--burst N]",
    description: "Slices take permits with ctx.infra.rateLimit(name).tryAcquire() (manifest requires " +
      '["ratelimit"]). Each node answers from its share; the leader moves shares by demand, so no permit ' +
      "costs a consensus round.",
    flags: [
      { name: "rate", value: "N/s", description: "permits per second across the cluster (N/s, N/m or N/h)" },
      {
        name: "burst",
        value: "N",
        description: "permits at once after an idle period (default rate/10, >= 1)",
      },
    ],
    positionals: { min: 1, max: 1 },
    examples: [
      "aether ratelimit set api --rate 100/s",
      "aether ratelimit set emails --rate 600/m --burst 20",
    ],
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("ratelimit set", args, {
        rate: { type: "string" },
        burst: { type: "string" },
      }, { min: 1, max: 1, names: "<name>" });
      if (typeof values.rate !== "string") {
        throw new CliError("ratelimit set: --rate is required (e.g. --rate 100/s)", EXIT_USAGE);
      }
      const body: Record<string, number> = { ratePerSec: parseRate(values.rate) };
      if (typeof values.burst === "string") {
        if (!/^\d+$/.test(values.burst)) {
          throw new CliError(`--burst "${values.burst}" is not a whole number`, EXIT_USAGE);
        }
        body.burst = Number(values.burst);
      }
      const answer = await ctx.api.json<{ name: string; ratePerSec: number; burst: number }>(
        "PUT",
        `/api/v1/ratelimits/${encodeURIComponent(positionals[0])}`,
        body,
      );
      ctx.out(
        ctx.json
          ? JSON.stringify(answer, null, 2)
          : `${answer.name}: ${answer.ratePerSec}/s, burst ${answer.burst}`,
      );
    },
  },
  {
    name: "ratelimit list",
    args: "",
    summary: "rate limits with this node's share, bucket and granted/refused counts",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseCommandArgs("ratelimit list", args, {}, { min: 0, max: 0, names: "no arguments" });
      const answer = await ctx.api.json<{ ratelimits: RateLimitStatus[] }>("GET", "/api/v1/ratelimits");
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      if (answer.ratelimits.length === 0) return ctx.out("no rate limits");
      ctx.out(table(
        ["NAME", "RATE", "BURST", "NODE SHARE", "NODE RATE", "GRANTED", "REFUSED"],
        answer.ratelimits.map((l) => [
          printable(l.name),
          `${l.ratePerSec}/s`,
          String(l.burst),
          `${(l.share * 100).toFixed(1)}% (${l.shareSource})`,
          `${l.nodeRatePerSec}/s`,
          String(l.granted),
          String(l.refused),
        ]),
      ));
    },
  },
  {
    name: "ratelimit delete",
    args: "<name>",
    summary: "deletes a rate limit",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("ratelimit delete", args, {}, {
        min: 1,
        max: 1,
        names: "<name>",
      });
      const answer = await ctx.api.json<{ deleted: string }>(
        "DELETE",
        `/api/v1/ratelimits/${encodeURIComponent(positionals[0])}`,
      );
      ctx.out(ctx.json ? JSON.stringify(answer) : `deleted ${answer.deleted}`);
    },
  },
];
