/**
 * `aether trace <requestId>`: one request's spans from every node (GET /api/v1/traces/{requestId}) as an
 * indented timeline: when each hop started (from the request's first span), how long it took, on which node,
 * a bar placing it in the request's time, and what it was (the HTTP router, each slice call, each attempt
 * and retry, the remote node's side), nested under the hop that made it.
 */

import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import type { CliCommand } from "../command.ts";

/** A span as GET /api/v1/traces/{requestId} shows it. */
export interface TraceNodeView {
  spanId: string;
  kind: "http" | "call" | "attempt" | "serve";
  name: string;
  node: string;
  slice?: string;
  method?: string;
  instance?: string;
  peer?: string;
  attempt?: number;
  offsetMs: number;
  durationMs: number;
  outcome: string;
  status?: number;
  children: TraceNodeView[];
}

export interface TraceView {
  id: string;
  requestIds: string[];
  traceIds: string[];
  startTime: string;
  durationMs: number;
  spanCount: number;
  nodes: string[];
  roots: TraceNodeView[];
  unreachable: Record<string, string>;
  truncated: string[];
}

/** Characters of the bar that places each span in the request's time. */
const BAR_WIDTH = 30;
const REQUEST_ID = /^[A-Za-z0-9._:@+=-]{1,128}$/;

/** The timeline as lines of text (a header, a column line, then one line per span, children indented). */
export function formatTrace(trace: TraceView): string[] {
  const lines = [
    `request ${trace.requestIds.join(", ")}  trace ${trace.traceIds.join(", ")}  ${ms(trace.durationMs)}  ` +
    `${trace.spanCount} span${trace.spanCount === 1 ? "" : "s"} on ${trace.nodes.join(", ")}` +
    `  (started ${trace.startTime})`,
    "",
    `${"start".padStart(10)}  ${"duration".padStart(10)}  ${"node".padEnd(nodeWidth(trace))}  ` +
    `${"timeline".padEnd(BAR_WIDTH + 2)}  span`,
  ];
  const width = nodeWidth(trace);
  const walk = (span: TraceNodeView, depth: number) => {
    lines.push(
      `${ms(span.offsetMs).padStart(10)}  ${ms(span.durationMs).padStart(10)}  ${span.node.padEnd(width)}  ` +
        `[${bar(span, trace.durationMs)}]  ${"  ".repeat(depth)}${describe(span)}`,
    );
    for (const child of span.children) walk(child, depth + 1);
  };
  for (const root of trace.roots) walk(root, 0);
  return lines;
}

function nodeWidth(trace: TraceView): number {
  return Math.max(4, ...trace.nodes.map((n) => n.length));
}

function ms(value: number): string {
  return `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0)} ms`;
}

/** Where the span lies in the request's time: `█` where it ran. */
function bar(span: TraceNodeView, totalMs: number): string {
  if (totalMs <= 0) return "█".padEnd(BAR_WIDTH);
  const from = Math.min(BAR_WIDTH - 1, Math.floor((span.offsetMs / totalMs) * BAR_WIDTH));
  const to = Math.max(
    from + 1,
    Math.min(BAR_WIDTH, Math.round(((span.offsetMs + span.durationMs) / totalMs) * BAR_WIDTH)),
  );
  return " ".repeat(from) + "█".repeat(to - from) + " ".repeat(BAR_WIDTH - to);
}

function outcome(span: TraceNodeView): string {
  if (span.outcome === "error" && span.status !== undefined) return `error ${span.status}`;
  return span.outcome;
}

function describe(span: TraceNodeView): string {
  switch (span.kind) {
    case "http":
      return `http ${span.name} → ${span.status ?? "?"}` +
        (span.slice ? ` (${span.slice}.${span.method})` : "");
    case "call":
      // A call answered by a local instance at the first try shows it here (it has no attempt span).
      return `call ${span.name}  ${outcome(span)}` + (span.instance ? `  (${span.instance}, local)` : "");
    case "attempt":
      if (span.instance === undefined) {
        return `attempt ${span.attempt ?? "?"}: ${span.name}  ${outcome(span)}`;
      }
      return `attempt ${span.attempt ?? "?"} → ${span.instance} on ${span.peer}` +
        `${span.peer === span.node ? " (local)" : ""}  ${outcome(span)}`;
    case "serve":
      return `serve ${span.instance}.${span.method} for ${span.peer}  ${outcome(span)}`;
    default:
      return `${span.kind} ${span.name}  ${outcome(span)}`;
  }
}

export const traceCommands: CliCommand[] = [
  {
    name: "trace",
    args: "<requestId>",
    summary:
      "one request's hops on every node as a timeline (HTTP router, slice calls, retries, remote side)",
    description:
      "Every node records a span per hop of each request (the HTTP router, each slice call, each attempt and " +
      "retry, the remote node's side) in a ring of its newest spans (16384 unless --trace-ring-spans says " +
      "otherwise); the node asked gathers the " +
      "others' over the cluster mesh and nests them. The request id is the x-request-id of the response " +
      "(or the problem document's requestId); a W3C trace id (32 hex digits) works too. --json prints the tree.",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: [
      "aether trace 3f2a9c1d5e6b7a80",
      "aether trace 3f2a9c1d5e6b7a80 --json",
    ],
    async run(ctx, args) {
      const [id] = parseFor(traceCommands[0], args).positionals;
      if (!REQUEST_ID.test(id)) {
        throw new CliError(
          `trace: "${id.slice(0, 140)}" is not a request id (1-128 of A-Z a-z 0-9 . _ : @ + = -)`,
          EXIT_USAGE,
        );
      }
      const trace = await ctx.api.json<TraceView>("GET", `/api/v1/traces/${encodeURIComponent(id)}`);
      for (const [node, reason] of Object.entries(trace.unreachable ?? {})) {
        console.error(`warning: ${node} did not answer, its spans are missing: ${reason}`);
      }
      for (const node of trace.truncated ?? []) {
        console.error(
          `warning: ${node} had more spans of this request than one answer holds; the newest shown`,
        );
      }
      if (ctx.json) return ctx.out(JSON.stringify(trace, null, 2));
      for (const line of formatTrace(trace)) ctx.out(line);
    },
  },
];
