import { CliError } from "../client.ts";
import { parseCommandArgs, parseIntFlag } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";

const enc = encodeURIComponent;
const keyPath = (key: string) => `/api/v1/kv/${key.split("/").map(enc).join("/")}`;

export const kvCommands: CliCommand[] = [
  {
    name: "kv get",
    args: "<key> [--consistent]",
    summary: "print a value (--consistent: linearizable read through consensus)",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("kv get", args, { consistent: { type: "boolean" } }, {
        min: 1,
        max: 1,
        names: "<key>",
      });
      const r = await ctx.api.request(
        "GET",
        `${keyPath(positionals[0])}${values.consistent ? "?consistent=true" : ""}`,
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
    args: "<key> <value> [--if-revision N]  (value '-' reads standard input)",
    summary: "write a value under app/ (--if-revision: compare-and-set; 0 = create only)",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs(
        "kv put",
        args,
        { "if-revision": { type: "string" } },
        {
          min: 2,
          max: 2,
          names: "<key> <value>",
        },
      );
      const ifRevision = parseIntFlag("kv put", "if-revision", values["if-revision"]);
      const body = positionals[1] === "-" ? await new Response(Deno.stdin.readable).bytes() : positionals[1];
      const query = ifRevision === undefined ? "" : `?ifRevision=${ifRevision}`;
      const r = await ctx.api.request("PUT", keyPath(positionals[0]) + query, body);
      const { revision } = JSON.parse(new TextDecoder().decode(r.body));
      ctx.out(ctx.json ? JSON.stringify({ revision }) : `revision ${revision}`);
    },
  },
  {
    name: "kv del",
    args: "<key> [--if-revision N]",
    summary: "delete a key under app/",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs(
        "kv del",
        args,
        { "if-revision": { type: "string" } },
        {
          min: 1,
          max: 1,
          names: "<key>",
        },
      );
      const ifRevision = parseIntFlag("kv del", "if-revision", values["if-revision"]);
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
    args: "[prefix] [--limit N]",
    summary: "list keys under a prefix with their revisions",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("kv list", args, { limit: { type: "string" } }, {
        min: 0,
        max: 1,
        names: "[prefix]",
      });
      const limit = parseIntFlag("kv list", "limit", values.limit) ?? 1000;
      const r = await ctx.api.json<
        { revision: number; items: { key: string; value: string; revision: number }[] }
      >(
        "GET",
        `/api/v1/kv?prefix=${enc(positionals[0] ?? "")}&limit=${limit}`,
      );
      if (ctx.json) return ctx.out(JSON.stringify(r, null, 2));
      const shorten = (v: string) => (v.length > 60 ? v.slice(0, 57) + "..." : v).replaceAll("\n", " ");
      ctx.out(table(["KEY", "REVISION", "VALUE"], r.items.map((i) => [i.key, i.revision, shorten(i.value)])));
      ctx.out(`(${r.items.length} keys, store revision ${r.revision})`);
    },
  },
  {
    name: "kv watch",
    args: "[prefix] [--from-revision N]",
    summary: "print changes under a prefix as they happen (Ctrl-C stops)",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("kv watch", args, {
        "from-revision": { type: "string" },
      }, {
        min: 0,
        max: 1,
        names: "[prefix]",
      });
      const from = parseIntFlag("kv watch", "from-revision", values["from-revision"]);
      const query = `prefix=${enc(positionals[0] ?? "")}${from === undefined ? "" : `&fromRevision=${from}`}`;
      for await (const e of ctx.api.events(`/api/v1/kv-watch?${query}`, ctx.signal)) {
        if (e.event === "error") throw new CliError(JSON.parse(e.data).detail);
        if (ctx.json) ctx.out(e.data);
        else {
          const d = JSON.parse(e.data);
          ctx.out(
            `${d.revision} ${d.type.padEnd(6)} ${d.key}${d.value !== undefined ? ` = ${d.value}` : ""}`,
          );
        }
      }
    },
  },
];
