/**
 * CLI commands of invocation and the application HTTP router: the route table, version weights, slice call
 * timeouts, and calling a slice method by name.
 */

import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";

interface RouteView {
  httpMethod: string;
  path: string;
  slice: string;
  method: string;
  nodes: string[];
  reachable: string[];
  queryParams: string[];
}

interface RoutingView {
  artifact: string;
  oldVersion: string;
  newVersion: string;
  oldWeight: number;
  newWeight: number;
  ratio: string;
}

const enc = encodeURIComponent;

function routingTable(items: RoutingView[]): string {
  return table(
    ["ARTIFACT", "VERSION", "WEIGHT", "SHARE"],
    items.flatMap((r) => {
      const total = r.oldWeight + r.newWeight;
      const share = (w: number) => `${Math.round((w / total) * 1000) / 10}%`;
      return [
        [r.artifact, `${r.oldVersion} (old)`, r.oldWeight, share(r.oldWeight)],
        ["", `${r.newVersion} (new)`, r.newWeight, share(r.newWeight)],
      ];
    }),
  );
}

export const invokeCommands: CliCommand[] = [
  {
    name: "routes",
    args: "",
    summary: "the application HTTP route table",
    description: "The application HTTP route table: method, path, slice, slice method, and the nodes " +
      "serving it.",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json<{ routes: RouteView[] }>("GET", "/api/v1/routes");
      if (ctx.json) return ctx.out(JSON.stringify(body, null, 2));
      if (body.routes.length === 0) return ctx.out("no routes (no slice with HTTP routes is active)");
      ctx.out(table(
        ["METHOD", "PATH", "SLICE", "SLICE METHOD", "NODES"],
        body.routes.map((r) => [
          r.httpMethod,
          r.queryParams.length > 0 ? `${r.path}?${r.queryParams.join("&")}` : r.path,
          r.slice,
          r.method,
          r.nodes.map((n) => r.reachable.includes(n) ? n : `${n} (unreachable)`).join(","),
        ]),
      ));
    },
  },
  {
    name: "routing",
    args: "",
    summary: "version weights of every slice that has them",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json<{ items: RoutingView[] }>("GET", "/api/v1/routing");
      if (ctx.json) return ctx.out(JSON.stringify(body, null, 2));
      ctx.out(body.items.length === 0 ? "no version weights" : routingTable(body.items));
    },
  },
  {
    name: "routing get",
    args: "<group:artifact>",
    summary: "one slice's version weights",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json<RoutingView>("GET", `/api/v1/routing/${enc(positionals[0])}`);
      ctx.out(ctx.json ? JSON.stringify(r, null, 2) : routingTable([r]));
    },
  },
  {
    name: "routing set",
    args: "<group:artifact> <version>=<weight> <version>=<weight>",
    summary: "split requests between two versions of a slice",
    description:
      "Split requests between two versions of a slice by weight: 1.0.0=3 1.1.0=1 sends a quarter " +
      "to 1.1.0.",
    examples: ["aether routing set org.example:greeter 0.2.0=3 0.3.0=1"],
    flags: [],
    positionals: { min: 3, max: 3 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const weights: Record<string, number> = {};
      for (const pair of positionals.slice(1)) {
        const m = /^([^=]+)=(\d+)$/.exec(pair);
        if (!m) throw new CliError(`routing set: "${pair}" is not <version>=<weight>`, EXIT_USAGE);
        weights[m[1]] = Number(m[2]);
      }
      const r = await ctx.api.json<RoutingView>("POST", "/api/v1/routing", {
        artifact: positionals[0],
        weights,
      });
      ctx.out(ctx.json ? JSON.stringify(r, null, 2) : routingTable([r]));
    },
  },
  {
    name: "routing clear",
    args: "<group:artifact>",
    summary: "remove a slice's version weights (every version serves again)",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json("DELETE", `/api/v1/routing/${enc(positionals[0])}`);
      ctx.out(ctx.json ? JSON.stringify(r) : `weights of ${positionals[0]} removed`);
    },
  },
  {
    name: "timeouts",
    args: "",
    summary: "slices with a configured call timeout",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const body = await ctx.api.json<{ items: Array<{ artifact: string; timeoutMs: number }> }>(
        "GET",
        "/api/v1/timeouts",
      );
      if (ctx.json) return ctx.out(JSON.stringify(body, null, 2));
      ctx.out(
        body.items.length === 0
          ? "no configured timeouts (calls default to 30000 ms)"
          : table(["ARTIFACT", "TIMEOUT MS"], body.items.map((i) => [i.artifact, i.timeoutMs])),
      );
    },
  },
  {
    name: "timeout set",
    args: "<group:artifact> <ms>",
    summary: "give calls to a slice this deadline in ms",
    description: "Calls to the slice get this deadline in milliseconds (and never a longer one).",
    flags: [],
    positionals: { min: 2, max: 2 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      if (!/^\d+$/.test(positionals[1])) {
        throw new CliError(`timeout set: "${positionals[1]}" is not a number of milliseconds`, EXIT_USAGE);
      }
      const r = await ctx.api.json("PUT", `/api/v1/timeouts/${enc(positionals[0])}`, {
        timeoutMs: Number(positionals[1]),
      });
      ctx.out(
        ctx.json ? JSON.stringify(r) : `calls to ${positionals[0]} time out after ${positionals[1]} ms`,
      );
    },
  },
  {
    name: "timeout clear",
    args: "<group:artifact>",
    summary: "back to the default call timeout (30000 ms)",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const { positionals } = parseFor(this, args);
      const r = await ctx.api.json("DELETE", `/api/v1/timeouts/${enc(positionals[0])}`);
      ctx.out(ctx.json ? JSON.stringify(r) : `timeout of ${positionals[0]} removed`);
    },
  },
  {
    name: "invoke",
    args: "<group:artifact[:version]> <method> [json]",
    summary: "call a slice method by name",
    description: "Call a slice method by name with a JSON request (default {}); the value is printed as " +
      "JSON, and a slice error exits 1.",
    flags: [
      { name: "request-id", value: "ID", description: "the request id (x-request-id) to trace the call by" },
      {
        name: "timeout-ms",
        value: "MS",
        description: "the call's deadline in milliseconds",
        int: { min: 1, max: 3_600_000 },
      },
    ],
    positionals: { min: 2, max: 3 },
    examples: [`aether invoke org.example:greeter greet '{"name": "Ada"}'`],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const values = { "request-id": parsed.string("request-id"), "timeout-ms": parsed.string("timeout-ms") };
      const body = positionals[2] ?? "{}";
      try {
        JSON.parse(body);
      } catch (e) {
        throw new CliError(`invoke: the request is not JSON: ${(e as Error).message}`, EXIT_USAGE);
      }
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (values["request-id"]) headers["x-request-id"] = values["request-id"];
      if (values["timeout-ms"]) headers["x-aether-timeout-ms"] = values["timeout-ms"];
      const response = await ctx.api.request(
        "POST",
        `/api/v1/invoke/${enc(positionals[0])}/${enc(positionals[1])}`,
        body,
        headers,
      );
      const outcome = JSON.parse(new TextDecoder().decode(response.body)) as {
        requestId: string;
        ok: boolean;
        value?: unknown;
        error?: { name: string; message: string; status?: number };
      };
      if (ctx.json) ctx.out(JSON.stringify(outcome, null, 2));
      else if (outcome.ok) ctx.out(JSON.stringify(outcome.value ?? null, null, 2));
      if (!outcome.ok) {
        const e = outcome.error!;
        throw new CliError(
          `${e.name}: ${e.message} (status ${e.status ?? 500}, request ${outcome.requestId})`,
        );
      }
    },
  },
];
