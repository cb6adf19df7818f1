/**
 * `aether config set|get|list|unset` (a slice's configuration, changed live: running instances see it within
 * a second) and `aether config setting` (node settings changed live for every node; unset returns to flags).
 */

import { parseCommandArgs } from "../_args.ts";
import { printable, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_FAILED, EXIT_USAGE } from "../client.ts";

interface SliceConfigView {
  slice: string;
  values: Record<string, unknown>;
  effective?: Record<string, unknown>;
  version?: string;
}

interface SettingView {
  name: string;
  value: unknown;
  source: "flag" | "cluster";
  flag: string;
  description: string;
}

/** `key=value`: the value as JSON when it parses (numbers, true, ["a"]), else as the text itself. */
export function parseAssignment(text: string): [string, unknown] {
  const eq = text.indexOf("=");
  if (eq <= 0) {
    throw new CliError(`"${text}" is not key=value (e.g. maxItems=50 or greeting=hello)`, EXIT_USAGE);
  }
  const raw = text.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    // plain text
  }
  return [text.slice(0, eq), value];
}

/**
 * A text field given a value that reads as JSON (`greeting=42`, `version=1.0`) is sent as a number and
 * refused; the refusal then says how to send it as text.
 */
export function withQuotingHint(e: unknown, assignments: string[]): unknown {
  if (!(e instanceof CliError)) return e;
  const field = /\.([A-Za-z0-9_]+) expected a string, got /.exec(e.message)?.[1];
  const typed = assignments.find((a) => a.startsWith(`${field}=`))?.slice(`${field}=`.length);
  if (field === undefined || typed === undefined) return e;
  return new CliError(
    `${e.message}\n(to set the text ${typed}, quote it: ${field}='"${typed}"')`,
    e.exitCode,
  );
}

function show(view: SliceConfigView): string {
  const fields = new Set([...Object.keys(view.effective ?? {}), ...Object.keys(view.values)]);
  if (fields.size === 0) return `${view.slice}: no configuration fields`;
  const rows = [...fields].sort().map((f) =>
    [
      f,
      Object.hasOwn(view.values, f) ? JSON.stringify(view.values[f]) : "-",
      view.effective && Object.hasOwn(view.effective, f) ? JSON.stringify(view.effective[f]) : "-",
    ].map((c) => printable(c))
  );
  const title = `${view.slice}${view.version ? ` (schema of ${view.version})` : ""}`;
  return `${title}\n${table(["FIELD", "SET", "EFFECTIVE"], rows)}`;
}

export const configCommands: CliCommand[] = [
  {
    name: "config set",
    args: "<group:artifact> <key=value>...",
    summary: "sets configuration of a slice; its running instances see it without a restart",
    description:
      "Values are checked against the slice's config schema (the version it runs); a value is JSON " +
      'when it parses as JSON (50, true, ["a"]) and text otherwise. Slices read `ctx.config` and may ' +
      "subscribe with `ctx.onConfigChange`.",
    flags: [],
    positionals: { min: 2, max: 100 },
    examples: ["aether config set org.example:inventory lowStockThreshold=5 greeting=hello"],
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("config set", args, {}, {
        min: 2,
        max: 100,
        names: "<group:artifact> <key=value>...",
      });
      const values = Object.fromEntries(positionals.slice(1).map(parseAssignment));
      const view = await ctx.api.json<SliceConfigView>(
        "PUT",
        `/api/v1/config/${encodeURIComponent(positionals[0])}`,
        { values },
      ).catch((e) => {
        throw withQuotingHint(e, positionals.slice(1));
      });
      ctx.out(ctx.json ? JSON.stringify(view, null, 2) : show(view));
    },
  },
  {
    name: "config get",
    args: "<group:artifact>",
    summary: "a slice's configuration: the values set and what its instances run with",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether config get org.example:inventory"],
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("config get", args, {}, {
        min: 1,
        max: 1,
        names: "<group:artifact>",
      });
      const view = await ctx.api.json<SliceConfigView>(
        "GET",
        `/api/v1/config/${encodeURIComponent(positionals[0])}`,
      );
      ctx.out(ctx.json ? JSON.stringify(view, null, 2) : show(view));
    },
  },
  {
    name: "config list",
    args: "",
    summary: "the live node settings and every slice with configuration set",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseCommandArgs("config list", args, {}, { min: 0, max: 0, names: "no arguments" });
      const answer = await ctx.api.json<{ settings: SettingView[]; slices: SliceConfigView[] }>(
        "GET",
        "/api/v1/config",
      );
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      const settings = table(
        ["SETTING", "VALUE", "FROM"],
        answer.settings.map((
          s,
        ) => [s.name, JSON.stringify(s.value), s.source === "flag" ? s.flag : "cluster"]),
      );
      ctx.out([settings, ...answer.slices.map(show)].join("\n\n"));
    },
  },
  {
    name: "config unset",
    args: "<group:artifact> <key>...",
    summary: "removes configuration fields of a slice (their defaults apply again)",
    flags: [],
    positionals: { min: 2, max: 100 },
    examples: ["aether config unset org.example:inventory greeting"],
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("config unset", args, {}, {
        min: 2,
        max: 100,
        names: "<group:artifact> <key>...",
      });
      let view: SliceConfigView | undefined;
      for (const field of positionals.slice(1)) {
        view = await ctx.api.json<SliceConfigView>(
          "DELETE",
          `/api/v1/config/${encodeURIComponent(positionals[0])}/${encodeURIComponent(field)}`,
        );
      }
      ctx.out(ctx.json ? JSON.stringify(view, null, 2) : show(view!));
    },
  },
  {
    name: "config setting",
    args: "<name> [value]",
    summary: "a node setting for every node, live (log, call, HTTP limits); --unset returns to flags",
    description:
      "Precedence: a node's flag gives the value until the cluster sets one; the cluster's value " +
      "then applies on every node until unset.",
    flags: [{ name: "unset", description: "remove the cluster's value: each node uses its flag again" }],
    positionals: { min: 0, max: 2 },
    examples: [
      "aether config setting",
      "aether config setting log.level debug",
      "aether config setting invoke.defaultTimeoutMs 5000",
      "aether config setting log.level --unset",
    ],
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs(
        "config setting",
        args,
        { unset: { type: "boolean" } },
        {
          min: 0,
          max: 2,
          names: "<name> [value]",
        },
      );
      let answer: unknown;
      if (positionals.length === 0) answer = await ctx.api.json("GET", "/api/v1/settings");
      else if (values.unset) {
        answer = await ctx.api.json("DELETE", `/api/v1/settings/${encodeURIComponent(positionals[0])}`);
      } else if (positionals.length === 2) {
        const [, value] = parseAssignment(`x=${positionals[1]}`);
        answer = await ctx.api.json("PUT", `/api/v1/settings/${encodeURIComponent(positionals[0])}`, {
          value,
        });
      } else {
        const all = await ctx.api.json<{ settings: SettingView[] }>("GET", "/api/v1/settings");
        answer = all.settings.find((s) => s.name === positionals[0]) ??
          (() => {
            throw new CliError(
              `no setting ${positionals[0]} (settings: ${all.settings.map((s) => s.name).join(", ")})`,
              EXIT_FAILED,
            );
          })();
      }
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      const list = (answer as { settings?: SettingView[] }).settings ?? [answer as SettingView];
      ctx.out(table(
        ["SETTING", "VALUE", "FROM"],
        list.map((s) => [s.name, JSON.stringify(s.value), s.source === "flag" ? s.flag : "cluster"]),
      ));
    },
  },
];
