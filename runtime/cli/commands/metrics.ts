/**
 * `aether metrics`, `aether invocations` and `aether top`: the cluster metrics every node holds.
 *
 * - `metrics`: each node (CPU, memory, event-loop lag, stale or not) and each slice version's methods (calls,
 *   errors, in flight, p99 since the node started) from GET /api/v1/metrics.
 * - `invocations`: per slice version and method over a window: calls/s, error rate, p50/p95/p99, per node
 *   (GET /api/v1/invocations).
 * - `top`: both, redrawn every second like `top` until Ctrl-C (`--once` prints one frame).
 */

import { histogramQuantileMs } from "../../core/mod.ts";
import type { ClusterSnapshot, InvocationSummary } from "../../metrics/mod.ts";
import { parseFor } from "../_args.ts";
import type { CliCommand, CliContext } from "../command.ts";

const MAX_WINDOW_SECONDS = 300;

function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}

function ms(value: number | undefined): string {
  if (value === undefined) return "-";
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

/** Left-aligned columns, two spaces apart. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

/** The nodes of a snapshot: one line each. */
export function formatNodes(snapshot: ClusterSnapshot): string[] {
  return table(
    ["NODE", "STATE", "CPU", "RSS", "HEAP", "LAG ms", "INSTANCES", "PHASES"],
    snapshot.nodes.map((n) => [
      n.node + (n.node === snapshot.leader ? "*" : ""),
      n.stale ? "stale" : "up",
      pct(n.process.cpuShare),
      mib(n.process.rssBytes),
      mib(n.process.heapUsedBytes),
      ms(n.process.eventLoopLagMs),
      String(n.instances.length),
      String(n.consensus.phases),
    ]),
  );
}

/** The slices of a snapshot (totals since each node started): one line per version and method. */
export function formatSlices(snapshot: ClusterSnapshot): string[] {
  const rows = snapshot.slices.flatMap((s) =>
    s.methods.map((m) => [
      `${s.artifact}:${s.version}`,
      m.method,
      String(m.calls),
      String(Object.values(m.errors).reduce((a, b) => a + b, 0)),
      String(m.inFlight),
      ms(histogramQuantileMs(m.latency, 0.99)),
      Object.keys(m.nodes).sort().join(","),
    ])
  );
  return table(["SLICE", "METHOD", "CALLS", "ERRORS", "IN FLIGHT", "p99 ms", "NODES"], rows);
}

/** Per slice version and method over a window. */
export function formatInvocations(invocations: readonly InvocationSummary[]): string[] {
  return table(
    ["SLICE", "METHOD", "CALLS/s", "ERRORS", "p50 ms", "p95 ms", "p99 ms", "IN FLIGHT", "PER NODE (calls/s)"],
    invocations.map((i) => [
      `${i.artifact}:${i.version}`,
      i.method,
      i.rate.toFixed(1),
      pct(i.errorRate),
      ms(i.p50Ms),
      ms(i.p95Ms),
      ms(i.p99Ms),
      String(i.inFlight),
      Object.entries(i.nodes).sort(([a], [b]) => a.localeCompare(b)).map(([n, v]) =>
        `${n} ${v.rate.toFixed(1)}`
      )
        .join(", "),
    ]),
  );
}

function windowOf(text: string | undefined): number {
  if (text === undefined) return 60;
  return Number(text);
}

async function invocations(ctx: CliContext, window: number, slice?: string): Promise<InvocationSummary[]> {
  const params = new URLSearchParams({ window: String(window) });
  if (slice) params.set("slice", slice);
  const answer = await ctx.api.json<{ invocations: InvocationSummary[] }>(
    "GET",
    `/api/v1/invocations?${params}`,
  );
  return answer.invocations;
}

/** One frame of `top`. */
async function topFrame(ctx: CliContext, window: number): Promise<string[]> {
  const [snapshot, calls] = await Promise.all([
    ctx.api.json<ClusterSnapshot>("GET", "/api/v1/metrics"),
    invocations(ctx, window),
  ]);
  const at = new Date(snapshot.atMs).toISOString().slice(11, 19);
  const live = snapshot.nodes.filter((n) => !n.stale).length;
  const rate = calls.reduce((sum, i) => sum + i.rate, 0);
  return [
    `aether top  ${at}  leader ${snapshot.leader}  nodes ${live}/${snapshot.nodes.length} up  ` +
    `${rate.toFixed(1)} calls/s over ${window} s`,
    "",
    ...formatNodes(snapshot),
    "",
    ...(calls.length ? formatInvocations(calls) : ["(no slice calls yet)"]),
  ];
}

const WINDOW_FLAG = {
  name: "window",
  value: "SECONDS",
  description: `the window rates and percentiles are over (default 60)`,
  int: { min: 1, max: MAX_WINDOW_SECONDS },
};

export const metricsCommands: CliCommand[] = [
  {
    name: "metrics",
    args: "",
    summary: "the cluster's metrics: each node's CPU, memory and lag; each slice version's calls and p99",
    description: "The leader merges every node's sample each second and broadcasts the picture; any node " +
      "answers (GET /api/v1/metrics). Counts are totals since each node started; stale nodes (no update " +
      "for 2 s) are shown but left out of the slice figures. --json prints the whole snapshot; " +
      "Prometheus text is at GET /metrics on the API port.",
    flags: [],
    examples: ["aether metrics", "aether metrics --json"],
    async run(ctx, args) {
      parseFor(metricsCommands[0], args);
      const snapshot = await ctx.api.json<ClusterSnapshot>("GET", "/api/v1/metrics");
      if (ctx.json) return ctx.out(JSON.stringify(snapshot, null, 2));
      for (const line of formatNodes(snapshot)) ctx.out(line);
      ctx.out("");
      for (const line of formatSlices(snapshot)) ctx.out(line);
    },
  },
  {
    name: "invocations",
    args: "",
    summary: "per slice version and method: calls/s, error rate, p50/p95/p99 over a window, per node",
    flags: [
      WINDOW_FLAG,
      {
        name: "slice",
        value: "SLICE",
        description: "only this slice (group:artifact or group:artifact:version)",
      },
    ],
    examples: ["aether invocations", "aether invocations --window 10 --slice org.example:place-order"],
    async run(ctx, args) {
      const parsed = parseFor(metricsCommands[1], args);
      const list = await invocations(ctx, windowOf(parsed.string("window")), parsed.string("slice"));
      if (ctx.json) return ctx.out(JSON.stringify(list, null, 2));
      if (list.length === 0) return ctx.out("no slice calls in the window");
      for (const line of formatInvocations(list)) ctx.out(line);
    },
  },
  {
    name: "top",
    args: "",
    summary: "a live table of nodes and slice calls, redrawn every second (Ctrl-C stops)",
    description:
      "Nodes (CPU, memory, event-loop lag, up or stale) and every slice version's calls/s, error " +
      "rate and p50/p95/p99 over the window, redrawn every second. --once prints one frame and exits.",
    flags: [WINDOW_FLAG, { name: "once", description: "print one frame and exit" }],
    examples: ["aether top", "aether top --window 10", "aether top --once"],
    async run(ctx, args) {
      const parsed = parseFor(metricsCommands[2], args);
      const window = windowOf(parsed.string("window"));
      if (parsed.boolean("once") || ctx.json) {
        if (ctx.json) {
          const snapshot = await ctx.api.json<ClusterSnapshot>("GET", "/api/v1/metrics");
          return ctx.out(JSON.stringify({ snapshot, invocations: await invocations(ctx, window) }, null, 2));
        }
        for (const line of await topFrame(ctx, window)) ctx.out(line);
        return;
      }
      const clear = Deno.stdout.isTerminal() ? "\x1b[H\x1b[2J" : "";
      while (!ctx.signal.aborted) {
        const frame = await topFrame(ctx, window);
        ctx.out(clear + frame.join("\n") + (clear ? "" : "\n"));
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1_000);
          ctx.signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve();
          }, { once: true });
        });
      }
    },
  },
];
