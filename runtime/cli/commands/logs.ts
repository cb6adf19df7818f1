/**
 * `aether logs`: the recent log records of every node (GET /api/v1/logs; the node asked gathers them from the
 * others), filtered, merged by time; `--follow` keeps printing new records until Ctrl-C.
 */

import type { LogLevel, LogRecord } from "../../core/mod.ts";
import { parseCommandArgs } from "../_args.ts";
import type { CliCommand, CliContext } from "../command.ts";

/** Loaded when `logs` runs: the core module brings npm packages a plain `aether status` need not load. */
let formatLogText: ((record: LogRecord) => string) | undefined;
export async function loadFormatter(): Promise<void> {
  formatLogText ??= (await import("../../core/mod.ts")).formatLogText;
}

/** A record as GET /api/v1/logs shows it. */
interface RecordView {
  time: string;
  level: LogLevel;
  node?: string;
  msg: string;
  fields: Record<string, unknown>;
}

const FLAGS = [
  { name: "node", value: "ID", description: "only this node's records" },
  {
    name: "slice",
    value: "SLICE",
    description: "only the records of this slice: group:artifact (every version) or group:artifact:version",
  },
  { name: "request-id", value: "ID", description: "only the records of this request" },
  { name: "level", value: "LEVEL", description: "the lowest level shown: debug, info, warn or error" },
  {
    name: "since",
    value: "5m|ISO",
    description: "only records from this long ago (500ms, 30s, 5m, 2h, 1d) or time",
  },
  {
    name: "limit",
    value: "N",
    description: "the newest N records, default 200",
    int: { min: 1, max: 10_000 },
  },
  { name: "follow", description: "keep printing new records as the nodes write them (Ctrl-C stops)" },
];

/** The query string for the flags given (the node checks each value and names a bad one). */
export function logsQuery(values: Record<string, string | boolean | undefined>): string {
  const params = new URLSearchParams();
  const map: Record<string, string> = {
    node: "node",
    slice: "slice",
    "request-id": "requestId",
    level: "level",
    since: "since",
    limit: "limit",
  };
  for (const [flag, param] of Object.entries(map)) {
    const value = values[flag];
    if (typeof value === "string") params.set(param, value);
  }
  if (values.follow) params.set("follow", "true");
  const text = params.toString();
  return text ? `?${text}` : "";
}

/** One record as a line: the node's own text format, or the API's JSON. */
export function formatRecord(view: RecordView, json: boolean): string {
  if (json) return JSON.stringify(view);
  const record: LogRecord = {
    time: Date.parse(view.time),
    level: view.level,
    msg: view.msg,
    fields: view.fields,
  };
  if (view.node !== undefined) record.node = view.node;
  if (!formatLogText) throw new Error("formatRecord before loadFormatter()");
  return formatLogText(record);
}

async function follow(ctx: CliContext, path: string): Promise<void> {
  for await (const event of ctx.api.events(path, ctx.signal)) {
    const data = JSON.parse(event.data);
    if (event.event === "record") ctx.out(formatRecord(data, ctx.json));
    else if (event.event === "dropped") {
      ctx.out(
        ctx.json
          ? JSON.stringify({ dropped: data.count, node: data.node, why: data.why })
          : `-- ${data.count} records dropped${data.node ? ` on ${data.node}` : ""}: ${data.why} --`,
      );
    } else if (event.event === "unreachable") {
      console.error(`warning: ${data.node} did not answer: ${data.reason}`);
    } else if (event.event === "error") {
      console.error(`error: ${data.detail ?? event.data}`);
    }
  }
}

export const logsCommands: CliCommand[] = [
  {
    name: "logs",
    // The flags' usage comes from FLAGS (help prints them); args holds the positionals only.
    args: "",
    summary: "recent log records of every node, merged by time (--follow: keep printing new ones)",
    description:
      "Every node keeps its recent log records (the newest 10,000, at most 8 MiB) in memory; the " +
      "node asked gathers the others' over the cluster mesh and merges them by time. A slice's own lines " +
      "carry its slice, instance and requestId. --json prints one JSON object per record.",
    flags: FLAGS,
    positionals: { min: 0, max: 0 },
    examples: [
      "aether logs --since 5m",
      "aether logs --request-id 3f2a9c --json",
      "aether logs --slice org.example:orders --level warn --follow",
    ],
    async run(ctx, args) {
      await loadFormatter();
      const options = Object.fromEntries(
        FLAGS.map((f) => [f.name, { type: f.value === undefined ? "boolean" as const : "string" as const }]),
      );
      const { values } = parseCommandArgs("logs", args, options, { min: 0, max: 0, names: "no arguments" });
      const path = `/api/v1/logs${logsQuery(values as Record<string, string | boolean | undefined>)}`;
      if (values.follow) return await follow(ctx, path);
      const answer = await ctx.api.json<{ records: RecordView[]; unreachable: Record<string, string> }>(
        "GET",
        path,
      );
      for (const [node, reason] of Object.entries(answer.unreachable)) {
        console.error(`warning: ${node} did not answer: ${reason}`);
      }
      for (const record of answer.records) ctx.out(formatRecord(record, ctx.json));
    },
  },
];
