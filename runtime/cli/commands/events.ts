/**
 * `aether events`: the cluster events the node asked has recorded (GET /api/v1/events), one line each;
 * `--follow` keeps printing new ones until Ctrl-C, resuming after the last id it printed if the stream breaks.
 */

import { parseCommandArgs } from "../_args.ts";
import { printable } from "../_format.ts";
import type { CliCommand, CliContext } from "../command.ts";

/** An event as the API sends it (runtime/metrics/events.ts ClusterEvent). */
export interface EventView {
  id: number;
  time: number;
  type: string;
  node: string;
  subject: string;
  details: Record<string, unknown>;
  origin?: string;
}

const FLAGS = [
  {
    name: "type",
    value: "TYPE",
    description: "only this type or family (node, node.down, instance, alert.firing); may be repeated",
    multiple: true,
  },
  { name: "limit", value: "N", description: "the newest N events, default 50", int: { min: 1, max: 10_000 } },
  { name: "since", value: "ID", description: "only the events after this id" },
  { name: "follow", description: "keep printing new events as they happen (Ctrl-C stops)" },
];

/** How long `--follow` waits before it reconnects after the stream broke. */
const RECONNECT_MS = 1_000;

/** `details` as `key=value` pairs (strings bare when plain, everything else as JSON). */
function detailsText(details: Record<string, unknown>): string {
  return Object.entries(details).map(([k, v]) =>
    `${k}=${typeof v === "string" && /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)}`
  ).join(" ");
}

/** One event as a line: `time  type  subject  details  (node)`, or the API's JSON with --json. */
export function formatEvent(event: EventView, json: boolean): string {
  if (json) return JSON.stringify(event);
  const time = new Date(event.time).toISOString().replace("T", " ").replace("Z", "");
  const from = event.origin ? ` (from ${event.origin})` : "";
  return printable(
    `${time}  ${event.type.padEnd(18)} ${event.subject.padEnd(24)} ${detailsText(event.details)}${from}`,
  )
    .trimEnd();
}

function eventsQuery(values: Record<string, unknown>, follow: boolean, since: string | undefined): string {
  const params = new URLSearchParams();
  for (const type of (values.type as string[] | undefined) ?? []) params.append("type", type);
  if (!follow) {
    params.set("follow", "false");
    if (typeof values.limit === "string") params.set("limit", values.limit);
  }
  if (since !== undefined) params.set("since", since);
  else if (follow && typeof values.limit === "string") params.set("recent", values.limit);
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function follow(ctx: CliContext, values: Record<string, unknown>): Promise<void> {
  let lastId = typeof values.since === "string" ? values.since : undefined;
  while (!ctx.signal.aborted) {
    try {
      for await (
        const message of ctx.api.events(`/api/v1/events${eventsQuery(values, true, lastId)}`, ctx.signal)
      ) {
        if (message.event === "overflow") {
          console.error("warning: this terminal read too slowly; resuming after the last event printed");
          break;
        }
        const event = JSON.parse(message.data) as EventView;
        ctx.out(formatEvent(event, ctx.json));
        lastId = String(event.id);
      }
    } catch (e) {
      if (ctx.signal.aborted) return;
      // A 410 (the node no longer holds what came after lastId) or a bad flag value: nothing to retry.
      if (/\b(410|400)\b|gone|query parameter/.test((e as Error).message)) throw e;
      console.error(`warning: the event stream broke (${(e as Error).message}); reconnecting`);
    }
    if (ctx.signal.aborted) return;
    await new Promise((r) => setTimeout(r, RECONNECT_MS));
  }
}

export const eventsCommands: CliCommand[] = [
  {
    name: "events",
    args: "",
    summary: "cluster events: members, leader, instances, deployments, artifacts, alerts (--follow: live)",
    description: "Every node records the cluster events it sees (membership from its own connections, the " +
      "rest from the replicated state, alerts and controller decisions from the leader) in a ring of its " +
      "newest 10,000. Ids are the node's own; --since ID prints what came after one. --json prints one JSON " +
      "object per event.",
    flags: FLAGS,
    positionals: { min: 0, max: 0 },
    examples: [
      "aether events",
      "aether events --type node --type alert --limit 20",
      "aether events --follow --type instance.state",
    ],
    async run(ctx, args) {
      const { values } = parseCommandArgs("events", args, {
        type: { type: "string", multiple: true },
        limit: { type: "string" },
        since: { type: "string" },
        follow: { type: "boolean" },
      }, { min: 0, max: 0, names: "no arguments" });
      if (values.follow) return await follow(ctx, values);
      const since = typeof values.since === "string" ? values.since : undefined;
      const answer = await ctx.api.json<{ events: EventView[] }>(
        "GET",
        `/api/v1/events${eventsQuery(values, false, since)}`,
      );
      for (const event of answer.events) ctx.out(formatEvent(event, ctx.json));
    },
  },
];
