/**
 * CLI commands of the autoscaling controller (`/api/v1/controller`): its status, its rules (show, set one or
 * more, replace from a file), pause and resume, pins, the decision log, and the forecaster's predictions.
 */

import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";

const enc = encodeURIComponent;

interface Decision {
  at: number;
  slice: string;
  from: number;
  to: number;
  reason: string;
  rule: string;
  bounded?: string;
  leader: string;
  view: number;
  inputs: Record<string, number>;
}

interface ForecastRow {
  slice: string;
  actual: { at: number; requestsPerSecond: number }[];
  forecast?: { requestsPerSecond: number; confidence: number; horizonMinutes: number; model: string };
}

function time(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

/** `name=value` pairs into a rules object: numbers, true/false, and `objectives.g:a=ms`. */
export function parseRuleAssignments(pairs: readonly string[]): Record<string, unknown> {
  const rules: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf("=");
    if (eq <= 0) {
      throw new CliError(
        `controller rules set: "${pair}" is not name=value (e.g. stableWindowMs=30000)`,
        EXIT_USAGE,
      );
    }
    const name = pair.slice(0, eq), text = pair.slice(eq + 1);
    const value = text === "true" ? true : text === "false" ? false : Number(text);
    if (typeof value === "number" && (text.trim() === "" || !Number.isFinite(value))) {
      throw new CliError(
        `controller rules set: ${name}: "${text}" is not a number, true or false`,
        EXIT_USAGE,
      );
    }
    if (name.startsWith("objectives.")) {
      const objectives = (rules.objectives ?? {}) as Record<string, unknown>;
      objectives[name.slice("objectives.".length)] = value;
      rules.objectives = objectives;
    } else rules[name] = value;
  }
  return rules;
}

function rulesText(body: { stored: Record<string, unknown>; effective: Record<string, unknown> }): string {
  const rows = Object.entries(body.effective).map(([name, value]) => [
    name,
    typeof value === "object" ? JSON.stringify(value) : String(value),
    name in body.stored ? "set" : "default",
  ]);
  return table(["RULE", "VALUE", "FROM"], rows);
}

function decisionsText(decisions: Decision[], wide: boolean): string {
  if (decisions.length === 0) return "no decisions yet";
  return table(
    ["TIME", "SLICE", "CHANGE", "RULE", "REASON", ...(wide ? ["INPUTS"] : [])],
    decisions.map((d) => [
      time(d.at),
      d.slice,
      `${d.from} -> ${d.to}`,
      d.rule,
      d.reason + (d.bounded ? ` [${d.bounded}]` : ""),
      ...(wide ? [Object.entries(d.inputs).map(([k, v]) => `${k}=${v}`).join(" ")] : []),
    ]),
  );
}

function forecastText(forecaster: string, rows: ForecastRow[]): string {
  if (rows.length === 0) return `no slice with max set has history yet (forecaster: ${forecaster})`;
  const lines = [`forecaster: ${forecaster}`];
  for (const row of rows) {
    const recent = row.actual.slice(-10);
    lines.push(
      `${row.slice}: last ${recent.length} minutes (req/s): ${
        recent.map((p) => p.requestsPerSecond).join(" ")
      }`,
    );
    lines.push(
      row.forecast
        ? `  forecast next ${row.forecast.horizonMinutes} min: peak ${
          row.forecast.requestsPerSecond.toFixed(1)
        } ` +
          `req/s, confidence ${row.forecast.confidence.toFixed(2)} (${row.forecast.model})`
        : "  forecast: not yet (needs 15 minutes of history)",
    );
  }
  return lines.join("\n");
}

export const controllerCommands: CliCommand[] = [
  {
    name: "controller status",
    args: "",
    summary: "the autoscaling controller: leader, paused, pins, evaluation time, forecaster",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const s = await ctx.api.json<Record<string, unknown>>("GET", "/api/v1/controller");
      if (ctx.json) return ctx.out(JSON.stringify(s, null, 2));
      const pins = Object.entries((s.pinned ?? {}) as Record<string, { instances: number }>);
      ctx.out([
        `paused: ${s.paused}${s.pausedBy ? ` (by ${s.pausedBy})` : ""}`,
        `this node leads: ${s.leading}; slices controlled: ${s.slices}; decisions: ${s.decisions}`,
        `evaluation: last ${s.lastEvaluationMs} ms, mean ${s.meanEvaluationMs} ms over ${s.ticks} ticks`,
        `forecaster: ${s.forecaster}`,
        `pinned: ${pins.length === 0 ? "none" : pins.map(([k, v]) => `${k}=${v.instances}`).join(", ")}`,
      ].join("\n"));
    },
  },
  {
    name: "controller rules",
    args: "",
    summary: "the controller's rules: each value and whether it is set or the default",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json<
        { stored: Record<string, unknown>; effective: Record<string, unknown> }
      >(
        "GET",
        "/api/v1/controller/rules",
      );
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : rulesText(body));
    },
  },
  {
    name: "controller rules set",
    args: "<name=value>...",
    summary: "change rules (kept with the others already set); --replace drops the others",
    description: "Sets rules at run time; the leader uses them from its next tick. Names: " +
      "targetInFlightPerInstance, scaleDownUtilization, cpuHigh, cpuLow, p95ObjectiveMs, objectives.<g:a>, " +
      "stableWindowMs, panicWindowMs, panicThreshold, upCooldownMs, downCooldownMs, maxStepUp, maxStepDown, " +
      "maxPerNode, maxChangesPerMinute, forecast, forecastConfidence.",
    flags: [{ name: "replace", description: "store only these rules (the rest return to their defaults)" }],
    positionals: { min: 1, max: 64 },
    examples: [
      "aether controller rules set stableWindowMs=30000 downCooldownMs=10000",
      "aether controller rules set objectives.org.example:orders=200",
    ],
    async run(ctx, args) {
      const p = parseFor(this, args);
      const changes = parseRuleAssignments(p.positionals);
      const current = p.boolean("replace")
        ? {}
        : (await ctx.api.json<{ stored: Record<string, unknown> }>("GET", "/api/v1/controller/rules")).stored;
      const objectives = { ...(current.objectives as object ?? {}), ...(changes.objectives as object ?? {}) };
      const rules = { ...current, ...changes, ...(Object.keys(objectives).length ? { objectives } : {}) };
      const body = await ctx.api.json<
        { stored: Record<string, unknown>; effective: Record<string, unknown> }
      >(
        "PUT",
        "/api/v1/controller/rules",
        rules,
      );
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : rulesText(body));
    },
  },
  {
    name: "controller pause",
    args: "",
    summary: "stop automatic scaling (targets stay as they are) until resume",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json("POST", "/api/v1/controller/pause");
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : "controller paused");
    },
  },
  {
    name: "controller resume",
    args: "",
    summary: "resume automatic scaling",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json("POST", "/api/v1/controller/resume");
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : "controller resumed");
    },
  },
  {
    name: "controller unpin",
    args: "<group:artifact>",
    summary: "lift a pin set by `aether scale ... --pin`: the controller manages the slice again",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const body = await ctx.api.json("DELETE", `/api/v1/controller/pins/${enc(positionals[0])}`);
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : `${positionals[0]} unpinned`);
    },
  },
  {
    name: "controller log",
    args: "[group:artifact]",
    summary: "the controller's latest decisions with their reasons (--wide: with their inputs)",
    flags: [
      {
        name: "limit",
        value: "N",
        description: "at most N decisions (newest; default 64)",
        int: { min: 1, max: 64 },
      },
      { name: "wide", description: "show every decision's inputs" },
    ],
    positionals: { min: 0, max: 1 },
    async run(ctx, args) {
      const p = parseFor(this, args);
      const query = new URLSearchParams();
      if (p.positionals[0]) query.set("slice", p.positionals[0]);
      if (p.int("limit") !== undefined) query.set("limit", String(p.int("limit")));
      const body = await ctx.api.json<{ decisions: Decision[] }>(
        "GET",
        `/api/v1/controller/decisions${query.size ? `?${query}` : ""}`,
      );
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : decisionsText(body.decisions, p.boolean("wide")));
    },
  },
  {
    name: "forecast",
    args: "[group:artifact]",
    summary: "the forecaster's predicted request rate beside the last minutes' actual rates",
    flags: [],
    positionals: { min: 0, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const query = positionals[0] ? `?slice=${enc(positionals[0])}` : "";
      const body = await ctx.api.json<{ forecaster: string; slices: ForecastRow[] }>(
        "GET",
        `/api/v1/controller/forecast${query}`,
      );
      ctx.out(ctx.json ? JSON.stringify(body, null, 2) : forecastText(body.forecaster, body.slices));
    },
  },
];
