import { CliError } from "../client.ts";
import { parseFor } from "../_args.ts";
import { printable, table } from "../_format.ts";
import type { CliCommand, CliFlag } from "../command.ts";

const enc = encodeURIComponent;
const keyPath = (key: string) => `/api/v1/kv/${key.split("/").map(enc).join("/")}`;

const IF_REVISION: CliFlag = {
  name: "if-revision",
  value: "N",
  description: "compare-and-set: only when the key is at revision N (0: only when it does not exist)",
  int: { min: 0, max: Number.MAX_SAFE_INTEGER },
};

export const kvCommands: CliCommand[] = [
  {
    name: "kv get",
    args: "<key>",
    summary: "print a value",
    flags: [{ name: "consistent", description: "a linearizable read through consensus" }],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const r = await ctx.api.request(
        "GET",
        `${keyPath(positionals[0])}${parsed.boolean("consistent") ? "?consistent=true" : ""}`,
      );
      const value = new TextDecoder().decode(r.body);
      if (ctx.json) {
        ctx.out(
          JSON.stringify({
            key: positionals[0],
            value,
            revision: Number(r.headers.get("x-aether-revision")),
          }),
        );
      } else ctx.out(value);
    },
  },
  {
    name: "kv put",
    args: "<key> <value>",
    summary: "write a value under app/",
    description: "Write a value under app/ (a value of - reads standard input).",
    flags: [IF_REVISION],
    positionals: { min: 2, max: 2 },
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const ifRevision = parsed.int("if-revision");
      const body = positionals[1] === "-" ? await new Response(Deno.stdin.readable).bytes() : positionals[1];
      const query = ifRevision === undefined ? "" : `?ifRevision=${ifRevision}`;
      const r = await ctx.api.request("PUT", keyPath(positionals[0]) + query, body);
      const { revision } = JSON.parse(new TextDecoder().decode(r.body));
      ctx.out(ctx.json ? JSON.stringify({ revision }) : `revision ${revision}`);
    },
  },
  {
    name: "kv del",
    args: "<key>",
    summary: "delete a key under app/",
    flags: [IF_REVISION],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const ifRevision = parsed.int("if-revision");
      const query = ifRevision === undefined ? "" : `?ifRevision=${ifRevision}`;
      const r = await ctx.api.json<{ revision: number; deleted: number }>(
        "DELETE",
        keyPath(positionals[0]) + query,
      );
      ctx.out(ctx.json ? JSON.stringify(r) : `deleted ${r.deleted}, revision ${r.revision}`);
    },
  },
  {
    name: "kv list",
    args: "[prefix]",
    summary: "list keys under a prefix with their revisions",
    flags: [{
      name: "limit",
      value: "N",
      description: "at most N keys (default 1000)",
      int: { min: 1, max: 100_000 },
    }],
    positionals: { min: 0, max: 1 },
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const limit = parsed.int("limit") ?? 1000;
      const r = await ctx.api.json<
        { revision: number; items: { key: string; value: string; revision: number }[] }
      >(
        "GET",
        `/api/v1/kv?prefix=${enc(positionals[0] ?? "")}&limit=${limit}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(r, null, 2));
      const shorten = (v: string) => printable(v.length > 60 ? v.slice(0, 57) + "..." : v);
      ctx.out(
        table(
          ["KEY", "REVISION", "VALUE"],
          r.items.map((i) => [printable(i.key), i.revision, shorten(i.value)]),
        ),
      );
      ctx.out(`(${r.items.length} keys, store revision ${r.revision})`);
    },
  },
  {
    name: "kv watch",
    args: "[prefix]",
    summary: "print changes under a prefix as they happen (Ctrl-C stops)",
    flags: [{
      name: "from-revision",
      value: "N",
      description: "start with the changes after revision N (default: from now on)",
      int: { min: 0, max: Number.MAX_SAFE_INTEGER },
    }],
    positionals: { min: 0, max: 1 },
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const from = parsed.int("from-revision");
      const query = `prefix=${enc(positionals[0] ?? "")}${from === undefined ? "" : `&fromRevision=${from}`}`;
      for await (const e of ctx.api.events(`/api/v1/kv-watch?${query}`, ctx.signal)) {
        if (e.event === "error") throw new CliError(JSON.parse(e.data).detail);
        if (ctx.json) ctx.out(e.data);
        else {
          const d = JSON.parse(e.data);
          ctx.out(
            `${d.revision} ${d.type.padEnd(6)} ${printable(d.key)}${
              d.value !== undefined ? ` = ${printable(d.value)}` : ""
            }`,
          );
        }
      }
    },
  },
];
