import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface HistoryView {
  occurrenceMs: number;
  firedAtMs?: number;
  durationMs?: number;
  outcome: string;
  attempt: number;
  node: string;
  skipped?: number;
  error?: string;
}

interface JobView {
  group: string;
  name: string;
  schedule: string;
  target: { kind: string; slice?: string; method?: string };
  misfire: string;
  paused: boolean;
  source: string;
  nextAtMs: number | null;
  fired: number;
  lastRun: HistoryView | null;
  history?: HistoryView[];
}

interface MachineView {
  group: string;
  machine: string;
  id: string;
  state: string;
  version: number;
  definedBy: string;
  data: Record<string, unknown>;
  updatedAtMs: number;
  history: Array<{ from: string; to: string; event: string; version: number; atMs: number; node: string }>;
}

/** `group/name` → its two parts; a clear error otherwise. */
function groupAndName(text: string, what: string): [string, string] {
  const slash = text.indexOf("/");
  if (slash <= 0 || slash === text.length - 1) {
    throw new CliError(
      `${what} "${text}" must be <group>/<name>, e.g. org.example.shop/nightly-report`,
      EXIT_USAGE,
    );
  }
  return [text.slice(0, slash), text.slice(slash + 1)];
}

const jobPath = (text: string) => {
  const [group, name] = groupAndName(text, "job");
  return `/api/v1/jobs/${encodeURIComponent(group)}/${encodeURIComponent(name)}`;
};

const time = (
  ms: number | null | undefined,
) => (ms === null || ms === undefined ? "-" : new Date(ms).toISOString());

function historyRows(items: HistoryView[]): string {
  return table(
    ["OCCURRENCE", "FIRED", "MS", "OUTCOME", "ATTEMPT", "NODE", "ERROR"],
    items.map((h) => [
      time(h.occurrenceMs),
      time(h.firedAtMs),
      h.durationMs === undefined ? "-" : String(h.durationMs),
      h.outcome === "skipped" ? `skipped ×${h.skipped ?? 1}` : h.outcome,
      String(h.attempt),
      h.node,
      h.error ?? "",
    ]),
  );
}

function jobAction(verb: "pause" | "resume" | "delete" | "run", summary: string): CliCommand {
  return {
    name: `jobs ${verb}`,
    args: "<group>/<job>",
    summary,
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: [`aether jobs ${verb} org.example.shop/nightly-report`],
    async run(ctx, args) {
      const [job] = parseFor(this, args).positionals;
      const answer = verb === "delete"
        ? await ctx.api.json<{ deleted: boolean }>("DELETE", jobPath(job))
        : await ctx.api.json<Record<string, unknown>>("POST", `${jobPath(job)}/${verb}`);
      if (ctx.json) return ctx.out(JSON.stringify(answer));
      if (verb === "delete") return ctx.out(`job ${job} deleted`);
      if (verb === "run") {
        const r = answer as { ok: boolean; value?: unknown; error?: unknown };
        return ctx.out(
          r.ok ? `ran ${job}: ${JSON.stringify(r.value)}` : `ran ${job}: failed ${JSON.stringify(r.error)}`,
        );
      }
      const j = answer as unknown as JobView;
      ctx.out(`job ${job} ${j.paused ? "paused" : `resumed, next ${time(j.nextAtMs)}`}`);
    },
  };
}

export const jobsCommands: CliCommand[] = [
  {
    name: "jobs list",
    args: "",
    summary: "scheduled jobs: schedule, target, next occurrence, last run",
    flags: [{ name: "group", value: "GROUP", description: "only this slice group's jobs" }],
    positionals: { min: 0, max: 0 },
    examples: ["aether jobs list", "aether jobs list --group org.example.shop"],
    async run(ctx, args) {
      const groupFlag = parseFor(this, args).string("group");
      const group = groupFlag === undefined ? "" : `?group=${encodeURIComponent(groupFlag)}`;
      const { items } = await ctx.api.json<{ items: JobView[] }>("GET", `/api/v1/jobs${group}`);
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(table(
        ["JOB", "SCHEDULE", "CALLS", "MISFIRE", "STATE", "NEXT", "FIRED", "LAST"],
        items.map((j) => [
          `${j.group}/${j.name}`,
          j.schedule,
          j.target.kind === "slice" ? `${j.target.slice}.${j.target.method}` : j.target.kind,
          j.misfire,
          j.paused ? "paused" : j.nextAtMs === null ? "done" : "active",
          time(j.nextAtMs),
          String(j.fired),
          j.lastRun ? `${j.lastRun.outcome} ${time(j.lastRun.firedAtMs ?? j.lastRun.occurrenceMs)}` : "-",
        ]),
      ));
    },
  },
  {
    name: "jobs history",
    args: "<group>/<job>",
    summary: "a job's last runs (at most 20): occurrence, fired at, outcome, attempt, node",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether jobs history org.example.shop/nightly-report"],
    async run(ctx, args) {
      const [job] = parseFor(this, args).positionals;
      const { items } = await ctx.api.json<{ items: HistoryView[] }>("GET", `${jobPath(job)}/history`);
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(items.length === 0 ? `job ${job} has not run yet` : historyRows(items));
    },
  },
  jobAction("run", "fire a job now, outside its schedule (recorded as manual)"),
  jobAction("pause", "stop firing a job until resumed"),
  jobAction("resume", "fire a paused job again from its next occurrence"),
  jobAction("delete", "delete a job"),
  {
    name: "sm get",
    args: "<group>/<machine> <id>",
    summary: "one state machine instance: state, version, data, history",
    flags: [],
    positionals: { min: 2, max: 2 },
    examples: ["aether sm get org.example.shop/order o-1001"],
    async run(ctx, args) {
      const [machine, id] = parseFor(this, args).positionals;
      const [group, name] = groupAndName(machine, "machine");
      const m = await ctx.api.json<MachineView>(
        "GET",
        `/api/v1/machines/${encodeURIComponent(group)}/${encodeURIComponent(name)}/${encodeURIComponent(id)}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(m));
      ctx.out([
        `${m.group}/${m.machine} ${m.id}: ${m.state} (version ${m.version}, declared by ${m.definedBy})`,
        `  data     ${JSON.stringify(m.data)}`,
        `  updated  ${time(m.updatedAtMs)}`,
        table(
          ["AT", "EVENT", "FROM", "TO", "VERSION", "NODE"],
          m.history.map((h) => [time(h.atMs), h.event, h.from, h.to, String(h.version), h.node]),
        ),
      ].join("\n"));
    },
  },
  {
    name: "sm delete",
    args: "<group>/<machine> <id>",
    summary: "remove a state machine instance and its pending timeout",
    flags: [],
    positionals: { min: 2, max: 2 },
    examples: ["aether sm delete org.example.shop/order o-1001"],
    async run(ctx, args) {
      const [machine, id] = parseFor(this, args).positionals;
      const [group, name] = groupAndName(machine, "machine");
      const answer = await ctx.api.json<{ deleted: boolean }>(
        "DELETE",
        `/api/v1/machines/${encodeURIComponent(group)}/${encodeURIComponent(name)}/${encodeURIComponent(id)}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(answer));
      ctx.out(answer.deleted ? `deleted ${machine} ${id}` : `${machine} ${id} did not exist`);
    },
  },
  {
    name: "sm list",
    args: "[<group>/<machine>]",
    summary: "declared state machines, or the instances of one",
    flags: [{ name: "limit", value: "N", description: "instances to show", int: { min: 1, max: 1000 } }],
    positionals: { min: 0, max: 1 },
    examples: ["aether sm list", "aether sm list org.example.shop/order --limit 20"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      if (positionals.length === 0) {
        const { items } = await ctx.api.json<{
          items: Array<{ group: string; machine: string; definedBy: string; instances: number }>;
        }>("GET", "/api/v1/machines");
        if (ctx.json) return ctx.out(JSON.stringify(items));
        return ctx.out(table(
          ["MACHINE", "DECLARED BY", "INSTANCES"],
          items.map((m) => [`${m.group}/${m.machine}`, m.definedBy, String(m.instances)]),
        ));
      }
      const [group, name] = groupAndName(positionals[0], "machine");
      const limitFlag = parsed.int("limit");
      const limit = limitFlag === undefined ? "" : `?limit=${limitFlag}`;
      const { items } = await ctx.api.json<{ items: MachineView[] }>(
        "GET",
        `/api/v1/machines/${encodeURIComponent(group)}/${encodeURIComponent(name)}${limit}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(table(
        ["ID", "STATE", "VERSION", "UPDATED"],
        items.map((m) => [m.id, m.state, String(m.version), time(m.updatedAtMs)]),
      ));
    },
  },
];
