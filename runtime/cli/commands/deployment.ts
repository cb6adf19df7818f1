/**
 * Deployment commands: blueprints (apply, validate, list, get, status, delete), deploy, scale, undeploy and
 * slices. `--wait` blocks until what the command changed has settled, printing a line whenever a slice's
 * progress changes ("inventory 2/3 ACTIVE"), and fails (exit 1) when it does not settle in time.
 */

import { CliError, EXIT_FAILED, EXIT_USAGE } from "../client.ts";
import { type ParsedArgs, parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { SliceStatus } from "../../deployment/mod.ts";
import type { BlueprintSlice } from "../../model/mod.ts";
import type { CliCommand, CliContext, CliFlag } from "../command.ts";

// -- what the API answers (runtime/deployment/routes.ts) --------------------------------------------------------

interface TargetSummary {
  version: string;
  instances: number;
  owners: string[];
}

interface TargetPlanEntry {
  slice: string;
  action: "create" | "update" | "keep" | "release" | "remove";
  from?: TargetSummary;
  to?: TargetSummary;
}

interface BlueprintPlan {
  blueprint: string;
  action: "create" | "update" | "delete";
  slices: BlueprintSlice[];
  targets: TargetPlanEntry[];
  dryRun: boolean;
  revision?: number;
}

interface SlicePlan {
  slice: string;
  entry: TargetPlanEntry;
  missingCalls: string[];
  callers: string[];
  dryRun: boolean;
  revision?: number;
}

/** What GET /api/v1/slices answers per slice (the JSON form of the deployment layer's status). */
export type { SliceStatus } from "../../deployment/mod.ts";

interface Problem {
  status: number;
  title?: string;
  detail?: string;
  problems?: { line: number; column: number; field: string; message: string }[];
}

// -- waiting ---------------------------------------------------------------------------------------------------

/** A slice `--wait` watches: settled at its target, or gone. */
export interface WaitGoal {
  slice: string;
  gone: boolean;
}

const DEFAULT_WAIT_SECONDS = 120;
const POLL_MS = 250;

function shortName(slice: string): string {
  return slice.split(":")[1] ?? slice;
}

/** Whether a goal is met by the slices as `GET /slices` shows them. */
export function goalReached(goal: WaitGoal, status: SliceStatus | undefined): boolean {
  if (goal.gone) return !status || (status.version === undefined && status.instances.length === 0);
  return status !== undefined && status.settled && status.instances.every((i) => i.connected);
}

/** One line of progress: `inventory 2/3 ACTIVE (1 LOADING)`, `audit removed`, with failures when any. */
export function progressLine(goal: WaitGoal, status: SliceStatus | undefined, nowMs = Date.now()): string {
  const name = shortName(goal.slice);
  if (goal.gone) {
    if (goalReached(goal, status)) return `${name} removed`;
    return `${name} removing: ${status!.instances.length} instance(s) left (${statesOf(status!)})`;
  }
  if (!status) return `${name} 0/? ACTIVE (not deployed)`;
  const others = status.instances.filter((i) => !(i.state === "ACTIVE" && i.version === status.version));
  let line = `${name} ${status.active}/${status.desired} ACTIVE`;
  if (others.length > 0) line += ` (${statesOf({ ...status, instances: others })})`;
  if (status.backoff) {
    const waitS = Math.max(0, (status.backoff.retryAt - nowMs) / 1000);
    line += `; ${status.backoff.failures} failure(s)`;
    if (waitS > 0) line += `, next try in ${waitS.toFixed(1)}s`;
    if (status.backoff.lastReason) line += `: ${status.backoff.lastReason}`;
  }
  return line;
}

function statesOf(status: SliceStatus): string {
  const counts = new Map<string, number>();
  for (const i of status.instances) {
    const label = i.version === status.version || status.version === undefined
      ? i.state
      : `${i.state} ${i.version}`;
    counts.set(label, (counts.get(label) ?? 0) + 1);
  }
  return [...counts].map(([state, n]) => `${n} ${state}`).join(", ");
}

async function fetchSlices(ctx: CliContext): Promise<SliceStatus[]> {
  return (await ctx.api.json<{ slices: SliceStatus[] }>("GET", "/api/v1/slices")).slices;
}

/** Polls until every goal is reached; prints progress lines (not in --json mode). */
async function waitFor(ctx: CliContext, goals: WaitGoal[], timeoutS: number): Promise<SliceStatus[]> {
  const deadline = Date.now() + timeoutS * 1000;
  const printed = new Map<string, string>();
  while (true) {
    const slices = await fetchSlices(ctx);
    const bySlice = new Map(slices.map((s) => [s.slice, s]));
    let done = true;
    const lines: string[] = [];
    for (const goal of goals) {
      const status = bySlice.get(goal.slice);
      const line = progressLine(goal, status);
      if (!goalReached(goal, status)) {
        done = false;
        lines.push(line);
      }
      // The countdown changes every poll; compare without it.
      const stable = line.replace(/, next try in [\d.]+s/, "");
      if (!ctx.json && printed.get(goal.slice) !== stable) ctx.out(line);
      printed.set(goal.slice, stable);
    }
    if (done) return slices.filter((s) => goals.some((g) => g.slice === s.slice));
    if (Date.now() >= deadline) {
      throw new CliError(`not settled within ${timeoutS}s:\n  ${lines.join("\n  ")}`, EXIT_FAILED);
    }
    if (ctx.signal.aborted) throw new CliError("interrupted while waiting", EXIT_FAILED);
    await sleep(POLL_MS, ctx.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

// -- requests --------------------------------------------------------------------------------------------------

/** Sends a request and returns the parsed answer; a problem document becomes a CliError in its own words. */
async function send<T>(
  ctx: CliContext,
  method: string,
  path: string,
  body?: { text: string; type: string },
  source?: string,
): Promise<T> {
  const response = await ctx.api.fetch(path, {
    method,
    body: body?.text,
    headers: body ? { "content-type": body.type } : undefined,
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (response.ok) return parsed as T;
  const problem = (parsed ?? {}) as Problem;
  if (Array.isArray(problem.problems) && problem.problems.length > 0) {
    // Blueprint problems: one line each, compiler style, so editors can jump to them.
    const where = source ?? "blueprint";
    const lines = problem.problems.map((p) =>
      `${where}:${p.line}:${p.column}: ${
        p.field && !p.message.startsWith(p.field) ? `${p.field}: ` : ""
      }${p.message}`
    );
    throw new CliError(`${response.status} ${problem.title ?? "error"}\n${lines.join("\n")}`);
  }
  const detail = problem.detail ?? (text.slice(0, 500) || response.statusText);
  throw new CliError(`${response.status} ${problem.title ?? response.statusText}: ${detail}`);
}

async function readSource(path: string): Promise<string> {
  try {
    return path === "-" ? await new Response(Deno.stdin.readable).text() : await Deno.readTextFile(path);
  } catch (e) {
    throw new CliError(`cannot read ${path}: ${(e as Error).message}`, EXIT_USAGE);
  }
}

// -- output ----------------------------------------------------------------------------------------------------

function summary(t: TargetSummary | undefined): string {
  return t ? `${t.version} x${t.instances}` : "-";
}

function planTable(targets: TargetPlanEntry[], slices: BlueprintSlice[] = []): string {
  const transitive = new Set(
    slices.filter((s) => s.transitive).map((s) => s.artifact.split(":").slice(0, 2).join(":")),
  );
  return table(
    ["SLICE", "ACTION", "FROM", "TO", "OWNERS"],
    targets.map((t) => [
      `${t.slice}${transitive.has(t.slice) ? " (called)" : ""}`,
      t.action,
      summary(t.from),
      summary(t.to),
      (t.to ?? t.from)?.owners.join(",") || "-",
    ]),
  );
}

/** `orders x3 (+ called: inventory x1, pricing x1)`. */
function describeSlices(slices: BlueprintSlice[]): string {
  const text = (list: BlueprintSlice[]) =>
    list.map((s) => `${shortName(s.artifact)} x${s.instances}`).join(", ");
  const called = slices.filter((s) => s.transitive);
  const listed = text(slices.filter((s) => !s.transitive));
  return called.length > 0 ? `${listed} (+ called: ${text(called)})` : listed;
}

export function slicesTable(slices: SliceStatus[]): string {
  if (slices.length === 0) return "no slices deployed";
  return table(
    ["SLICE", "VERSION", "DESIRED", "ACTIVE", "STATUS", "INSTANCES"],
    slices.map((s) => [
      s.slice,
      // A routed version runs next to the target's (weights in `routing`): `1.0.0 +1.1.0`, ACTIVE `2+2`.
      s.routed ? `${s.version} +${s.routed.version}` : s.version ?? "-",
      s.desired,
      s.routed ? `${s.active}+${s.routed.active}` : s.active,
      statusWord(s),
      s.instances.map((i) =>
        `${i.node}/${i.n}${i.version !== s.version ? `@${i.version}` : ""} ${i.state}${
          i.connected ? "" : "?"
        }`
      ).join("  ") || "-",
    ]),
  ) + failures(slices);
}

function statusWord(s: SliceStatus): string {
  if (s.version === undefined) return "removing";
  if (s.backoff && s.active < s.desired) return `FAILED x${s.backoff.failures}`;
  if (s.pending) return "PENDING";
  return s.settled ? "settled" : "deploying";
}

function failures(slices: SliceStatus[]): string {
  const lines: string[] = [];
  for (const s of slices) {
    for (const reason of s.pending ?? []) lines.push(`  ${s.slice} pending: ${reason}`);
    if (s.backoff?.lastReason) lines.push(`  ${s.slice}: ${s.backoff.lastReason}`);
    for (const i of s.instances) {
      if (i.reason) lines.push(`  ${s.slice} ${i.node}/${i.n} ${i.state}: ${i.reason}`);
    }
  }
  return lines.length > 0 ? `\n\nfailures:\n${lines.join("\n")}` : "";
}

// -- commands --------------------------------------------------------------------------------------------------

/** The API's limit on instances (runtime/deployment/blueprint.ts; deployment_test.ts checks they agree). */
export const MAX_INSTANCES = 10_000;

const WAIT_FLAGS: CliFlag[] = [
  {
    name: "wait",
    description: "block until the change has settled, printing progress; exit 1 if it does not",
  },
  {
    name: "wait-timeout",
    value: "SECONDS",
    description: `how long --wait waits (default ${DEFAULT_WAIT_SECONDS})`,
    int: { min: 1, max: 86_400 },
  },
];

const DRY_RUN: CliFlag = { name: "dry-run", description: "show what would change, change nothing" };
const FORCE: CliFlag = {
  name: "force",
  description: "even while ACTIVE slices call it, or below its disruption budget (minAvailable)",
};

const INSTANCES_RANGE = { min: 0, max: MAX_INSTANCES };

function waitSeconds(parsed: ParsedArgs): number {
  return parsed.int("wait-timeout") ?? DEFAULT_WAIT_SECONDS;
}

const enc = encodeURIComponent;

/** Prints a change's result (and waits for it when asked). */
async function finish(
  ctx: CliContext,
  result: unknown,
  text: string,
  wait: { goals: WaitGoal[]; timeoutS: number } | undefined,
): Promise<void> {
  if (!ctx.json) ctx.out(text);
  if (!wait) {
    if (ctx.json) ctx.out(JSON.stringify(result, null, 2));
    return;
  }
  const slices = await waitFor(ctx, wait.goals, wait.timeoutS);
  if (ctx.json) ctx.out(JSON.stringify({ ...result as object, settled: true, slices }, null, 2));
  else ctx.out("settled");
}

function blueprintGoals(plan: BlueprintPlan): WaitGoal[] {
  return plan.targets.map((t) => ({ slice: t.slice, gone: t.action === "remove" }));
}

const ONE = { min: 1, max: 1 };
const NONE = { min: 0, max: 0 };

export const deploymentCommands: CliCommand[] = [
  {
    name: "blueprint apply",
    args: "<file|->",
    summary: "publish a blueprint (TOML); the cluster deploys its slices",
    description: "Publish a blueprint (TOML, from a file or - for standard input). The cluster deploys the " +
      "slices it lists and the slices they call, and removes what an earlier version listed and this one " +
      "does not.",
    flags: [DRY_RUN, ...WAIT_FLAGS],
    positionals: ONE,
    examples: ["aether blueprint apply examples/ecommerce/blueprint.toml --wait"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const file = parsed.positionals[0];
      const source = await readSource(file);
      const dryRun = parsed.boolean("dry-run");
      const plan = await send<BlueprintPlan>(
        ctx,
        "POST",
        `/api/v1/blueprints${dryRun ? "?dryRun=true" : ""}`,
        { text: source, type: "application/toml" },
        file,
      );
      const head = dryRun
        ? `blueprint ${plan.blueprint} is valid; applying it would ${plan.action} it:`
        : `blueprint ${plan.blueprint} ${
          plan.action === "create" ? "created" : "updated"
        } (revision ${plan.revision})`;
      await finish(
        ctx,
        plan,
        `${head}\n${planTable(plan.targets, plan.slices)}`,
        parsed.boolean("wait") && !dryRun
          ? { goals: blueprintGoals(plan), timeoutS: waitSeconds(parsed) }
          : undefined,
      );
    },
  },
  {
    name: "blueprint validate",
    args: "<file|->",
    summary: "check a blueprint without applying it (exit 1 on problems)",
    description: "Check a blueprint against the cluster's artifacts without applying it; every problem is " +
      "printed as file:line:column. Exit 1 when there are problems.",
    positionals: ONE,
    flags: [],
    async run(ctx, args) {
      const file = parseFor(this, args).positionals[0];
      const source = await readSource(file);
      const plan = await send<BlueprintPlan>(
        ctx,
        "POST",
        "/api/v1/blueprints?dryRun=true",
        { text: source, type: "application/toml" },
        file,
      );
      if (ctx.json) return ctx.out(JSON.stringify(plan, null, 2));
      ctx.out(`blueprint ${plan.blueprint} is valid (${plan.slices.length} slice(s), in activation order):`);
      ctx.out(table(
        ["SLICE", "INSTANCES", "LISTED"],
        plan.slices.map((s) => [s.artifact, s.instances, s.transitive ? "no (called)" : "yes"]),
      ));
    },
  },
  {
    name: "blueprint list",
    args: "",
    summary: "published blueprints",
    flags: [],
    positionals: NONE,
    async run(ctx, args) {
      parseFor(this, args);
      const { blueprints } = await ctx.api.json<
        { blueprints: { id: string; publishedAt: number; slices: BlueprintSlice[] }[] }
      >("GET", "/api/v1/blueprints");
      if (ctx.json) return ctx.out(JSON.stringify(blueprints, null, 2));
      if (blueprints.length === 0) return ctx.out("no blueprints");
      ctx.out(table(
        ["BLUEPRINT", "SLICES", "PUBLISHED"],
        blueprints.map((b) => [
          b.id,
          describeSlices(b.slices),
          new Date(b.publishedAt).toISOString(),
        ]),
      ));
    },
  },
  {
    name: "blueprint get",
    args: "<id>",
    summary: "a blueprint's TOML as published",
    description: "Print a blueprint's TOML as published (--json: the stored record, expanded).",
    flags: [],
    positionals: ONE,
    async run(ctx, args) {
      const id = parseFor(this, args).positionals[0];
      const record = await send<{ id: string; source?: string; slices: BlueprintSlice[] }>(
        ctx,
        "GET",
        `/api/v1/blueprints/${enc(id)}`,
      );
      if (ctx.json || record.source === undefined) return ctx.out(JSON.stringify(record, null, 2));
      ctx.out(record.source.trimEnd());
    },
  },
  {
    name: "blueprint status",
    args: "<id>",
    summary: "the slices a blueprint owns: desired and actual instances",
    description: "The slices a blueprint owns: desired and actual instances, where they run and in which " +
      "state.",
    flags: WAIT_FLAGS,
    positionals: ONE,
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const path = `/api/v1/blueprints/${enc(parsed.positionals[0])}/status`;
      let status = await send<{ blueprint: string; settled: boolean; slices: SliceStatus[] }>(
        ctx,
        "GET",
        path,
      );
      if (parsed.boolean("wait")) {
        await waitFor(
          ctx,
          status.slices.map((s) => ({ slice: s.slice, gone: false })),
          waitSeconds(parsed),
        );
        status = await send(ctx, "GET", path);
      }
      if (ctx.json) return ctx.out(JSON.stringify(status, null, 2));
      ctx.out(`blueprint ${status.blueprint}: ${status.settled ? "settled" : "not settled"}`);
      ctx.out(slicesTable(status.slices));
    },
  },
  {
    name: "blueprint delete",
    args: "<id>",
    summary: "remove a blueprint and undeploy the slices only it owns",
    flags: [DRY_RUN, ...WAIT_FLAGS],
    positionals: ONE,
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const dryRun = parsed.boolean("dry-run");
      const plan = await send<BlueprintPlan>(
        ctx,
        "DELETE",
        `/api/v1/blueprints/${enc(parsed.positionals[0])}${dryRun ? "?dryRun=true" : ""}`,
      );
      const head = dryRun
        ? `deleting blueprint ${plan.blueprint} would change:`
        : `blueprint ${plan.blueprint} deleted (revision ${plan.revision})`;
      await finish(
        ctx,
        plan,
        `${head}\n${planTable(plan.targets)}`,
        parsed.boolean("wait") && !dryRun
          ? { goals: blueprintGoals(plan), timeoutS: waitSeconds(parsed) }
          : undefined,
      );
    },
  },
  {
    name: "deploy",
    args: "<group:artifact:version>",
    summary: "run a published artifact, or move a deployed slice to this version",
    description: "Run a published artifact, or move a deployed slice to this version. A new slice gets " +
      "one instance unless --instances says otherwise; a slice that runs keeps its instance count.",
    flags: [
      {
        name: "instances",
        value: "N",
        description: "how many instances (default: the running count, 1 for a new slice)",
        int: INSTANCES_RANGE,
      },
      DRY_RUN,
      ...WAIT_FLAGS,
    ],
    positionals: ONE,
    examples: ["aether deploy org.example:greeter:0.2.0 --instances 2 --wait"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const instances = parsed.int("instances");
      const body = { artifact: parsed.positionals[0], ...(instances === undefined ? {} : { instances }) };
      await sliceChange(ctx, "deploy", body, parsed, false);
    },
  },
  {
    name: "scale",
    args: "<group:artifact>",
    summary: "change how many instances of a deployed slice run",
    flags: [
      {
        name: "instances",
        value: "N",
        description: "how many instances to run (required)",
        int: INSTANCES_RANGE,
      },
      {
        name: "pin",
        description: "pin the slice at this count: the autoscaling controller leaves it alone until " +
          "`aether controller unpin`",
      },
      DRY_RUN,
      FORCE,
      ...WAIT_FLAGS,
    ],
    positionals: ONE,
    examples: [
      "aether scale org.example:greeter --instances 3 --wait",
      "aether scale org.example:greeter --instances 5 --pin",
    ],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const instances = parsed.int("instances");
      if (instances === undefined) throw new CliError("scale: --instances N is required", EXIT_USAGE);
      if (parsed.boolean("pin") && !parsed.boolean("dry-run")) {
        // Scales and pins in one transaction, so the controller cannot undo the count in between.
        const slice = encodeURIComponent(parsed.positionals[0]);
        await ctx.api.json("PUT", `/api/v1/controller/pins/${slice}`, { instances });
      }
      await sliceChange(ctx, "scale", { artifact: parsed.positionals[0], instances }, parsed, false);
    },
  },
  {
    name: "undeploy",
    args: "<group:artifact[:version]>",
    summary: "stop and remove a directly deployed slice",
    description: "Stop and remove a directly deployed slice (a blueprint's slices go with the blueprint). " +
      "With a version, it is refused unless that version is the one deployed. Refused while ACTIVE slices " +
      "call it (the error names them and the call chains), unless --force.",
    flags: [DRY_RUN, FORCE, ...WAIT_FLAGS],
    positionals: ONE,
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      await sliceChange(ctx, "undeploy", { artifact: parsed.positionals[0] }, parsed, true);
    },
  },
  {
    name: "slices",
    args: "",
    summary: "every slice: version, desired and ACTIVE instances, where",
    description: "Every slice: version, desired and ACTIVE instances, and each instance's node and state. " +
      "With --graph: which slices each one calls (from the manifests), with the version range and what runs.",
    flags: [{ name: "graph", description: "the dependency graph: each slice and the slices it calls" }],
    positionals: NONE,
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const slices = await fetchSlices(ctx);
      if (parsed.boolean("graph")) {
        const graph = await dependencyGraph(ctx, slices);
        return ctx.out(ctx.json ? JSON.stringify(graph, null, 2) : graphText(graph));
      }
      ctx.out(ctx.json ? JSON.stringify(slices, null, 2) : slicesTable(slices));
    },
  },
];

interface GraphNode {
  slice: string;
  version?: string;
  active: number;
  calls: { slice: string; range: string; version?: string; active?: number }[];
  calledBy: string[];
}

/** Each deployed slice with the slices its manifest calls and the slices that call it. */
async function dependencyGraph(ctx: CliContext, slices: SliceStatus[]): Promise<GraphNode[]> {
  const bySlice = new Map(slices.map((s) => [s.slice, s]));
  const nodes: GraphNode[] = [];
  for (const s of slices) {
    const node: GraphNode = { slice: s.slice, version: s.version, active: s.active, calls: [], calledBy: [] };
    if (s.version !== undefined) {
      const coordinates = encodeURIComponent(`${s.slice}:${s.version}`);
      const manifest = await ctx.api.json<{ calls?: Record<string, { artifact: string; range: string }> }>(
        "GET",
        `/api/v1/artifacts/${coordinates}/manifest`,
      );
      for (const ref of Object.values(manifest.calls ?? {})) {
        const callee = bySlice.get(ref.artifact);
        node.calls.push({
          slice: ref.artifact,
          range: ref.range,
          ...(callee ? { version: callee.version, active: callee.active } : {}),
        });
      }
    }
    nodes.push(node);
  }
  for (const n of nodes) {
    for (const c of n.calls) nodes.find((m) => m.slice === c.slice)?.calledBy.push(n.slice);
  }
  return nodes;
}

function graphText(graph: GraphNode[]): string {
  if (graph.length === 0) return "no slices";
  return graph.map((n) => {
    const head = `${n.slice} ${n.version ?? "(removed)"}  ${n.active} ACTIVE` +
      (n.calledBy.length > 0 ? `  called by ${n.calledBy.join(", ")}` : "");
    const calls = n.calls.map((c) =>
      `  -> ${c.slice} ${c.range}  ` +
      (c.version !== undefined ? `(runs ${c.version}, ${c.active} ACTIVE)` : "(NOT DEPLOYED)")
    );
    return [head, ...calls].join("\n");
  }).join("\n");
}

async function sliceChange(
  ctx: CliContext,
  what: "deploy" | "scale" | "undeploy",
  body: { artifact: string; instances?: number },
  parsed: ParsedArgs,
  gone: boolean,
): Promise<void> {
  const dryRun = parsed.boolean("dry-run");
  const query = [
    ...(dryRun ? ["dryRun=true"] : []),
    ...(what !== "deploy" && parsed.boolean("force") ? ["force=true"] : []),
  ];
  const plan = await send<SlicePlan>(
    ctx,
    "POST",
    `/api/v1/${what}${query.length > 0 ? `?${query.join("&")}` : ""}`,
    {
      text: JSON.stringify(body),
      type: "application/json",
    },
  );
  const lines = [
    dryRun
      ? `${what} would change ${plan.slice}: ${summary(plan.entry.from)} -> ${summary(plan.entry.to)}`
      : `${plan.slice}: ${summary(plan.entry.from)} -> ${summary(plan.entry.to)} (revision ${plan.revision})`,
  ];
  if (plan.missingCalls.length > 0) {
    lines.push(
      `note: it calls ${plan.missingCalls.join(", ")}, not deployed: its instances wait until they are`,
    );
  }
  if (plan.callers.length > 0 && what === "undeploy") {
    lines.push(`note: ${plan.callers.join(", ")} call(s) it; their calls to it will fail until it returns`);
  }
  await finish(
    ctx,
    plan,
    lines.join("\n"),
    parsed.boolean("wait") && !dryRun
      ? { goals: [{ slice: plan.slice, gone }], timeoutS: waitSeconds(parsed) }
      : undefined,
  );
}
