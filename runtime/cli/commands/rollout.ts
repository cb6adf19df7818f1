/**
 * CLI commands of rollouts (`/api/v1/rollouts`): start a rolling, canary or blue-green rollout, watch it, pause,
 * resume, promote or abort it, list every slice's last rollout.
 */

import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand, CliFlag } from "../command.ts";

interface VersionNow {
  version: string;
  role: string;
  instances: number;
  active: number;
  weight?: number;
  figures?: { windowSeconds: number; rate: number; successRate?: number; p99Ms?: number };
}

interface Verdict {
  step: number;
  at: number;
  ok: boolean;
  reason: string;
}

interface RolloutView {
  artifact: string;
  strategy: string;
  stableVersion: string;
  newVersion: string;
  phase: string;
  steps: string[];
  step: number;
  reason?: string;
  failures: number;
  verdicts: Verdict[];
  versions: VersionNow[];
  startedAt: number;
  endedAt?: number;
}

const enc = encodeURIComponent;

const START_FLAGS: CliFlag[] = [
  { name: "strategy", value: "NAME", description: "rolling, canary or blue-green (default rolling)" },
  {
    name: "steps",
    value: "LIST",
    description: 'canary steps, comma-separated: "5%,pause 30s,25%,pause 30s,100%" (default ' +
      "5%, 25%, 50% with 30 s pauses, then 100%)",
  },
  { name: "max-surge", value: "N|P%", description: "rolling: extra instances per batch (default 25%)" },
  {
    name: "max-unavailable",
    value: "N|P%",
    description: "rolling: instances that may be missing (default 0)",
  },
  {
    name: "scale-down-delay-ms",
    value: "MS",
    description: "blue-green: how long the old version stays after the switch (default 30000)",
    int: { min: 0, max: 86_400_000 },
  },
  { name: "auto-promote", description: "blue-green: switch as soon as the new version is ready" },
  {
    name: "min-success-rate",
    value: "R",
    description: "canary analysis: the new version's least success rate, 0..1 (default 0.99)",
  },
  {
    name: "max-p99-factor",
    value: "F",
    description: "canary analysis: p99 at most F × stable's (default 1.5)",
  },
  {
    name: "max-p99-ms",
    value: "MS",
    description: "canary analysis: an absolute p99 objective instead of the factor",
    int: { min: 1, max: 3_600_000 },
  },
  {
    name: "p99-tolerance-ms",
    value: "MS",
    description: "canary analysis: a p99 within MS of stable's always passes the factor check (default 50)",
    int: { min: 0, max: 3_600_000 },
  },
  {
    name: "failure-limit",
    value: "N",
    description: "canary analysis: failed analyses that roll back (default 1)",
    int: { min: 1, max: 100 },
  },
  {
    name: "min-requests",
    value: "N",
    description: "canary analysis: calls of the new version needed for a verdict (default 20)",
    int: { min: 0, max: 1_000_000 },
  },
  {
    name: "alerts",
    value: "RULE,...",
    description: "canary analysis: alert rules whose firing alert fails the step's analysis",
  },
];

function statusText(r: RolloutView): string {
  const lines = [
    `${r.artifact}: ${r.strategy} ${r.stableVersion} -> ${r.newVersion}  ${r.phase}` +
    (r.strategy === "canary" ? `  step ${Math.min(r.step + 1, r.steps.length)}/${r.steps.length}` : ""),
  ];
  if (r.strategy === "canary") {
    lines.push(`steps: ${r.steps.map((s, i) => i === r.step ? `[${s}]` : s).join(", ")}`);
  }
  if (r.reason) lines.push(`reason: ${r.reason}`);
  const window = r.versions.find((v) => v.figures)?.figures?.windowSeconds;
  lines.push(table(
    ["VERSION", "ROLE", "INSTANCES", "ACTIVE", "WEIGHT", "REQ/S", "SUCCESS", "P99"],
    r.versions.map((v) => [
      v.version,
      v.role,
      v.instances,
      v.active,
      v.weight ?? "-",
      v.figures ? v.figures.rate.toFixed(1) : "-",
      v.figures?.successRate !== undefined ? `${(v.figures.successRate * 100).toFixed(2)}%` : "-",
      v.figures?.p99Ms !== undefined ? `${v.figures.p99Ms.toFixed(1)} ms` : "-",
    ]),
  ));
  if (window !== undefined) lines.push(`(figures over the current step: the last ${window} s)`);
  if (r.verdicts.length > 0) {
    lines.push("analysis:");
    for (const v of r.verdicts) lines.push(`  step ${v.step}: ${v.ok ? "passed" : "FAILED"}  ${v.reason}`);
  }
  return lines.join("\n");
}

function number(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) {
    throw new CliError(`rollout start: --${flag}: "${text}" is not a number`, EXIT_USAGE);
  }
  return n;
}

function action(name: "pause" | "resume" | "promote" | "abort", summary: string): CliCommand {
  return {
    name: `rollout ${name}`,
    args: "<group:artifact>",
    summary,
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<RolloutView>("POST", `/api/v1/rollouts/${enc(positionals[0])}/${name}`);
      ctx.out(ctx.json ? JSON.stringify(r, null, 2) : statusText(r));
    },
  };
}

export const rolloutCommands: CliCommand[] = [
  {
    name: "rollout start",
    args: "<group:artifact> <version>",
    summary: "replace a slice's version by a rolling, canary or blue-green rollout",
    description:
      "Starts a rollout of a deployed slice to a published version. rolling replaces instances in " +
      "batches (each new one ACTIVE before an old one goes); canary moves traffic in steps and checks the " +
      "new version's success rate and p99 against the stable one's after each pause, rolling back on " +
      "failure; blue-green starts the new version beside the old with no traffic and switches at once on " +
      "promote. The leader drives it; `rollout status` follows it.",
    flags: START_FLAGS,
    positionals: { min: 2, max: 2 },
    examples: [
      "aether rollout start org.example:inventory 1.1.0",
      'aether rollout start org.example:inventory 1.1.0 --strategy canary --steps "10%,pause 20s,50%,pause 20s,100%"',
      "aether rollout start org.example:inventory 1.1.0 --strategy blue-green --scale-down-delay-ms 10000",
    ],
    async run(ctx, args) {
      const p = parseFor(this, args);
      const analysis: Record<string, number | string[]> = {};
      const put = (name: string, value: number | undefined) => {
        if (value !== undefined) analysis[name] = value;
      };
      put("minSuccessRate", number(p.string("min-success-rate"), "min-success-rate"));
      put("maxP99Factor", number(p.string("max-p99-factor"), "max-p99-factor"));
      put("maxP99Ms", p.int("max-p99-ms"));
      put("p99ToleranceMs", p.int("p99-tolerance-ms"));
      put("failureLimit", p.int("failure-limit"));
      put("minRequests", p.int("min-requests"));
      const body: Record<string, unknown> = {
        artifact: p.positionals[0],
        version: p.positionals[1],
        strategy: p.string("strategy") ?? "rolling",
      };
      const steps = p.string("steps");
      if (steps !== undefined) body.steps = steps.split(",").map((s) => s.trim());
      if (p.string("max-surge") !== undefined) body.maxSurge = p.string("max-surge");
      if (p.string("max-unavailable") !== undefined) body.maxUnavailable = p.string("max-unavailable");
      if (p.int("scale-down-delay-ms") !== undefined) body.scaleDownDelayMs = p.int("scale-down-delay-ms");
      if (p.boolean("auto-promote")) body.autoPromote = true;
      const alerts = p.string("alerts");
      if (alerts !== undefined) analysis.alerts = alerts.split(",").map((s) => s.trim());
      if (Object.keys(analysis).length > 0) body.analysis = analysis;
      const r = await ctx.api.json<RolloutView>("POST", "/api/v1/rollouts", body);
      ctx.out(ctx.json ? JSON.stringify(r, null, 2) : statusText(r));
    },
  },
  {
    name: "rollout status",
    args: "<group:artifact>",
    summary: "a slice's rollout: phase, step, each version's instances and weight, analysis verdicts",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<RolloutView>("GET", `/api/v1/rollouts/${enc(positionals[0])}`);
      ctx.out(ctx.json ? JSON.stringify(r, null, 2) : statusText(r));
    },
  },
  {
    name: "rollout list",
    args: "",
    summary: "every slice's last rollout",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json<{ items: RolloutView[] }>("GET", "/api/v1/rollouts");
      if (ctx.json) return ctx.out(JSON.stringify(body, null, 2));
      if (body.items.length === 0) return ctx.out("no rollouts");
      ctx.out(table(
        ["ARTIFACT", "STRATEGY", "FROM", "TO", "PHASE", "REASON"],
        body.items.map((
          r,
        ) => [r.artifact, r.strategy, r.stableVersion, r.newVersion, r.phase, r.reason ?? ""]),
      ));
    },
  },
  action("pause", "pause a rollout where it stands"),
  action("resume", "resume a paused rollout (passes an open-ended pause step)"),
  action("promote", "skip a rollout's remaining steps (blue-green: switch traffic now)"),
  action("abort", "roll back: traffic to the stable version at once, the new version retired"),
];
