/**
 * `aether db list|show|set`: the SQL databases of slices (`ctx.infra.db`) and the operator's backend for each
 * (/api/v1/databases, runtime/infra-host/sqldb_api.ts).
 */

import { parseFor } from "../_args.ts";
import { table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { CliError, EXIT_USAGE } from "../client.ts";

interface DatabaseView {
  database: string;
  group: string;
  name: string;
  backend: "embedded" | "postgres";
  url?: string;
  passwordSecret?: string;
  appliedRevision?: number;
  stale?: boolean;
}

/** `group/name` → the database's API path; a clear error otherwise. */
function databasePath(text: string): string {
  const slash = text.lastIndexOf("/");
  if (slash <= 0 || slash === text.length - 1) {
    throw new CliError(`database "${text}" must be <group>/<name>, e.g. org.example.shop/orders`, EXIT_USAGE);
  }
  return `/api/v1/databases/${encodeURIComponent(text.slice(0, slash))}/${
    encodeURIComponent(text.slice(slash + 1))
  }`;
}

const where = (d: DatabaseView) =>
  d.backend === "postgres"
    ? `${d.url}${d.passwordSecret ? ` (password: secret ${d.passwordSecret})` : ""}`
    : "replicated SQLite";
const copy = (d: DatabaseView) =>
  d.backend === "embedded" ? d.stale ? "copying" : String(d.appliedRevision ?? "-") : "-";

export const dbCommands: CliCommand[] = [
  {
    name: "db list",
    args: "",
    summary: "SQL databases of slices: backend, where, this node's applied revision",
    flags: [],
    positionals: { min: 0, max: 0 },
    examples: ["aether db list"],
    async run(ctx, args) {
      parseFor(this, args);
      const { items } = await ctx.api.json<{ items: DatabaseView[] }>("GET", "/api/v1/databases");
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(
        table(
          ["DATABASE", "BACKEND", "WHERE", "APPLIED"],
          items.map((d) => [d.database, d.backend, where(d), copy(d)]),
        ),
      );
    },
  },
  {
    name: "db show",
    args: "<group>/<name>",
    summary: "one SQL database: its backend and this node's copy",
    flags: [],
    positionals: { min: 1, max: 1 },
    examples: ["aether db show org.example.shop/orders"],
    async run(ctx, args) {
      const [name] = parseFor(this, args).positionals;
      const d = await ctx.api.json<DatabaseView>("GET", databasePath(name));
      if (ctx.json) return ctx.out(JSON.stringify(d));
      ctx.out(`database ${d.database}\nbackend  ${d.backend}\nwhere    ${where(d)}\napplied  ${copy(d)}`);
    },
  },
  {
    name: "db set",
    args: "<group>/<name>",
    summary: "sets a database's backend: --embedded, or --postgres URL [--password-secret NAME]",
    flags: [
      { name: "embedded", description: "SQLite replicated through the cluster's consensus (the default)" },
      {
        name: "postgres",
        value: "URL",
        description: "postgres://user@host:5432/db (no password in the URL)",
      },
      {
        name: "password-secret",
        value: "NAME",
        description: "the secret holding the password (aether secret set)",
      },
    ],
    positionals: { min: 1, max: 1 },
    examples: [
      "aether db set org.example.shop/orders --postgres postgres://shop@127.0.0.1:5432/orders --password-secret orders-pw",
      "aether db set org.example.shop/orders --embedded",
    ],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const [name] = parsed.positionals;
      const url = parsed.string("postgres");
      const embedded = parsed.boolean("embedded");
      if (embedded === (url !== undefined)) {
        throw new CliError("db set: give exactly one of --embedded or --postgres URL", EXIT_USAGE);
      }
      const secret = parsed.string("password-secret");
      const body = embedded
        ? { backend: "embedded" }
        : { backend: "postgres", url, ...(secret === undefined ? {} : { passwordSecret: secret }) };
      const d = await ctx.api.json<DatabaseView>("PUT", databasePath(name), body);
      if (ctx.json) return ctx.out(JSON.stringify(d));
      ctx.out(`database ${d.database}: ${d.backend} (${where(d)})`);
    },
  },
];
