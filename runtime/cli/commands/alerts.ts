/**
 * `aether alerts` (the alerts pending and firing now), `aether alert set|rules|delete` (the rules in
 * `thresholds/`, evaluated by the leader every second).
 */

import { parseCommandArgs } from "../_args.ts";
import { formatDuration, printable, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";

interface AlertView {
  id: string;
  rule: string;
  node?: string;
  state: "pending" | "firing";
  expr: string;
  value?: number;
  threshold: number;
  severity: string;
  summary?: string;
  activeSince: number;
  firedAt?: number;
  resolvedAt?: number;
}

interface RuleView {
  name: string;
  expr: string;
  forMs: number;
  windowMs?: number;
  severity: string;
  summary?: string;
}

/** A value in the unit its expression uses. */
function valueText(alert: AlertView): string {
  if (alert.value === undefined) return "-";
  if (/^p[\d.]+ of/.test(alert.expr)) return `${alert.value.toFixed(1)}ms`;
  if (/^(error-rate|cpu) of/.test(alert.expr)) return `${(alert.value * 100).toFixed(2)}%`;
  return String(alert.value);
}

function since(ms: number | undefined): string {
  return ms === undefined ? "-" : `${formatDuration(Math.max(0, (Date.now() - ms) / 1000))} ago`;
}

const SET_FLAGS = [
  {
    name: "for",
    value: "DURATION",
    description: "how long the condition must hold before it fires (30s, 2m); default 0",
  },
  {
    name: "window",
    value: "DURATION",
    description: "latency and error rate: the window they are computed over (default 1m)",
  },
  { name: "severity", value: "LEVEL", description: "info, warning (default) or critical" },
  { name: "summary", value: "TEXT", description: "one line for people (Alertmanager's summary)" },
];

export const alertsCommands: CliCommand[] = [
  {
    name: "alerts",
    args: "",
    summary: "the alerts pending and firing now (--resolved: and the recently resolved)",
    description:
      "The leader evaluates every rule each second; an alert is pending while its condition holds " +
      "for less than the rule's `for`, then firing until the condition stops (resolved).",
    flags: [{ name: "resolved", description: "also list the recently resolved alerts" }],
    positionals: { min: 0, max: 0 },
    examples: ["aether alerts", "aether alerts --resolved --json"],
    async run(ctx, args) {
      const { values } = parseCommandArgs("alerts", args, { resolved: { type: "boolean" } }, {
        min: 0,
        max: 0,
        names: "no arguments",
      });
      const answer = await ctx.api.json<{ alerts: AlertView[]; resolved?: AlertView[] }>(
        "GET",
        `/api/v1/alerts${values.resolved ? "?resolved=true" : ""}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(answer, null, 2));
      const rows = [
        ...answer.alerts.map((
          a,
        ) => [
          a.state.toUpperCase(),
          a.id,
          a.severity,
          valueText(a),
          a.expr,
          since(a.firedAt ?? a.activeSince),
        ]),
        ...(answer.resolved ?? []).map((
          a,
        ) => ["resolved", a.id, a.severity, valueText(a), a.expr, since(a.resolvedAt)]),
      ];
      if (rows.length === 0) return ctx.out("no alerts pending or firing");
      const cells = rows.map((row) => row.map((cell) => printable(String(cell))));
      ctx.out(table(["STATE", "ALERT", "SEVERITY", "VALUE", "RULE", "SINCE"], cells));
    },
  },
  {
    name: "alert set",
    args: "<name> <expression>",
    summary:
      'creates or replaces an alert rule: aether alert set orders-p99 "p99 of g:a/m > 200ms" --for 30s',
    description: "Expressions: `p99 of group:artifact/method > 200ms` (p50..p999, the method optional), " +
      "`error-rate of group:artifact > 1%`, `cpu of node n1 > 90%` or `cpu of nodes > 90%` (each node its own " +
      "alert), `memory of nodes > 2GiB`, `instances of group:artifact < desired`. Operators: > >= < <=.",
    flags: SET_FLAGS,
    positionals: { min: 2, max: 2 },
    examples: [
      'aether alert set orders-p99 "p99 of org.example:orders/placeOrder > 200ms" --for 30s --severity critical',
      'aether alert set orders-errors "error-rate of org.example:orders > 1%" --for 1m',
      'aether alert set hot-nodes "cpu of nodes > 90%" --for 2m',
      'aether alert set orders-capacity "instances of org.example:orders < desired" --for 30s',
    ],
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("alert set", args, {
        for: { type: "string" },
        window: { type: "string" },
        severity: { type: "string" },
        summary: { type: "string" },
      }, { min: 2, max: 2, names: "<name> <expression>" });
      const [name, expr] = positionals;
      const body: Record<string, string> = { expr };
      for (const field of ["for", "window", "severity", "summary"] as const) {
        if (typeof values[field] === "string") body[field] = values[field] as string;
      }
      const rule = await ctx.api.json<RuleView & { created: boolean }>(
        "PUT",
        `/api/v1/alerts/rules/${encodeURIComponent(name)}`,
        body,
      );
      if (ctx.json) return ctx.out(JSON.stringify(rule, null, 2));
      ctx.out(
        `${rule.created ? "created" : "replaced"} ${rule.name}: ${rule.expr} for ${
          formatDuration(rule.forMs / 1000)
        } (${rule.severity})`,
      );
    },
  },
  {
    name: "alert rules",
    args: "",
    summary: "every alert rule, as text",
    positionals: { min: 0, max: 0 },
    flags: [],
    async run(ctx, args) {
      parseCommandArgs("alert rules", args, {}, { min: 0, max: 0, names: "no arguments" });
      const { rules } = await ctx.api.json<{ rules: RuleView[] }>("GET", "/api/v1/alerts/rules");
      if (ctx.json) return ctx.out(JSON.stringify(rules, null, 2));
      if (rules.length === 0) return ctx.out("no alert rules");
      ctx.out(table(
        ["NAME", "RULE", "FOR", "SEVERITY", "SUMMARY"],
        rules.map((r) => [r.name, r.expr, formatDuration(r.forMs / 1000), r.severity, r.summary ?? ""]),
      ));
    },
  },
  {
    name: "alert delete",
    args: "<name>",
    summary: "removes an alert rule (its alerts resolve)",
    positionals: { min: 1, max: 1 },
    flags: [],
    async run(ctx, args) {
      const { positionals } = parseCommandArgs("alert delete", args, {}, { min: 1, max: 1, names: "<name>" });
      const answer = await ctx.api.json<{ name: string }>(
        "DELETE",
        `/api/v1/alerts/rules/${encodeURIComponent(positionals[0])}`,
      );
      ctx.out(ctx.json ? JSON.stringify(answer) : `deleted ${answer.name}`);
    },
  },
];
