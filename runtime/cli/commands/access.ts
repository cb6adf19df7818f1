/** Access to the cluster: `aether login`, `aether token create|list|revoke`, `aether audit`. */

import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import { printable, table } from "../_format.ts";
import type { CliCommand } from "../command.ts";
import { saveCredentials } from "../credentials.ts";

interface WhoAmI {
  tokenId: string;
  tokenName: string;
  role: string;
}

interface TokenView {
  id: string;
  name: string;
  role: string;
  state: string;
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  token?: string;
}

interface AuditEntry {
  time: number;
  node: string;
  tokenId?: string;
  tokenName?: string;
  role?: string;
  method: string;
  path: string;
  target?: string;
  status: number;
  requestId: string;
}

/**
 * Who made an audited call: the token (id and name), or, for what a slice did with no token (a secret read),
 * the name the node recorded ("slice org.example:billing:1.0.0 (instance)").
 */
export function auditWho(e: Pick<AuditEntry, "tokenId" | "tokenName">): string {
  if (e.tokenId) return `${e.tokenId} (${printable(e.tokenName ?? "")})`;
  return e.tokenName ? printable(e.tokenName) : "-";
}

/** The token to log in with: the one given (--token, AETHER_TOKEN), else one line read from standard input. */
async function tokenToSave(given: string | undefined, source: string): Promise<string> {
  if (given && (source === "--token" || source === "AETHER_TOKEN")) return given;
  if (Deno.stdin.isTerminal()) {
    const typed = prompt("token:");
    if (typed) return typed.trim();
  } else {
    const text = (await new Response(Deno.stdin.readable).text()).trim();
    if (text) return text.split("\n")[0].trim();
  }
  throw new CliError(
    'no token: "aether login --token TOKEN", or AETHER_TOKEN=TOKEN aether login, or type it when asked',
    EXIT_USAGE,
  );
}

export const accessCommands: CliCommand[] = [
  {
    name: "login",
    args: "",
    summary: "check a token and save it for this cluster (aether --token TOKEN login)",
    description: "Checks the token against the cluster, then saves it in the credentials file " +
      "($XDG_CONFIG_HOME/aether/credentials or ~/.config/aether/credentials, mode 0600) for each of the " +
      "cluster's node addresses, so later commands send it without --token. Reads the token from --token, " +
      "AETHER_TOKEN, or standard input.",
    flags: [],
    positionals: { min: 0, max: 0 },
    examples: ["aether --token aether_3f9a1c2b4d5e_... login", "echo $TOKEN | aether login"],
    async run(ctx, args) {
      parseFor(this, args);
      const token = await tokenToSave(ctx.api.token.token, ctx.api.token.source);
      ctx.api.token = { token, source: "--token" };
      const me = await ctx.api.json<WhoAmI>("GET", "/api/v1/whoami");
      const path = saveCredentials(ctx.api.endpoints, token);
      if (ctx.json) ctx.out(JSON.stringify({ ...me, saved: path, endpoints: ctx.api.endpoints }));
      else {
        ctx.out(
          `logged in as token ${me.tokenId} ("${
            printable(me.tokenName)
          }", role ${me.role}); saved in ${path} ` +
            `for ${ctx.api.endpoints.join(", ")}`,
        );
      }
    },
  },
  {
    name: "whoami",
    args: "",
    summary: "the token this CLI sends and its role",
    positionals: { min: 0, max: 0 },
    flags: [],
    async run(ctx, args) {
      parseFor(this, args);
      const me = await ctx.api.json<WhoAmI>("GET", "/api/v1/whoami");
      ctx.out(
        ctx.json ? JSON.stringify(me) : `token ${me.tokenId} ("${printable(me.tokenName)}"), role ${me.role}`,
      );
    },
  },
  {
    name: "token create",
    args: "<name>",
    summary: "create a token (admin); prints it once",
    flags: [
      {
        name: "role",
        value: "ROLE",
        description: "viewer (read-only), operator (deploy, scale, ...) or admin",
      },
      { name: "ttl", value: "DURATION", description: "expires after 30m, 12h, 90d, ... (default: never)" },
    ],
    positionals: { min: 1, max: 1 },
    examples: [
      "aether token create ci --role operator --ttl 90d",
      "aether token create grafana --role viewer",
    ],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const role = parsed.string("role");
      if (!role) {
        throw new CliError("token create: --role is required (viewer, operator or admin)", EXIT_USAGE);
      }
      const ttl = parsed.string("ttl");
      const created = await ctx.api.json<TokenView>("POST", "/api/v1/tokens", {
        name: parsed.positionals[0],
        role,
        ...(ttl === undefined ? {} : { ttl }),
      });
      if (ctx.json) return ctx.out(JSON.stringify(created));
      ctx.out(created.token!);
      ctx.out(
        `token ${created.id} ("${printable(created.name)}", role ${created.role}, expires ` +
          `${created.expiresAt ?? "never"}): shown only now; the cluster keeps only its hash`,
      );
    },
  },
  {
    name: "token list",
    args: "",
    summary: "list tokens (admin): id, name, role, state; never secrets",
    flags: [],
    positionals: { min: 0, max: 0 },
    async run(ctx, args) {
      parseFor(this, args);
      const { items } = await ctx.api.json<{ items: TokenView[] }>("GET", "/api/v1/tokens");
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(table(
        ["ID", "NAME", "ROLE", "STATE", "CREATED", "EXPIRES"],
        items.map((t) => [t.id, printable(t.name), t.role, t.state, t.createdAt, t.expiresAt]),
      ));
    },
  },
  {
    name: "token revoke",
    args: "<id>",
    summary: "revoke a token (admin): refused from then on by every node",
    flags: [],
    positionals: { min: 1, max: 1 },
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const id = parsed.positionals[0];
      const revoked = await ctx.api.json<TokenView>("DELETE", `/api/v1/tokens/${encodeURIComponent(id)}`);
      ctx.out(ctx.json ? JSON.stringify(revoked) : `token ${revoked.id} revoked at ${revoked.revokedAt}`);
    },
  },
  {
    name: "audit",
    args: "",
    summary: "the audit log of mutating API calls, newest last (operator)",
    flags: [
      { name: "limit", value: "N", description: "entries (default 100)", int: { min: 1, max: 10_000 } },
      { name: "since", value: "TIME", description: "from a time: 5m, 2h, 1d or 2026-01-02T03:04:05Z" },
    ],
    positionals: { min: 0, max: 0 },
    examples: ["aether audit --since 1h", "aether audit --limit 20 --json"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const query = new URLSearchParams();
      const limit = parsed.int("limit");
      if (limit !== undefined) query.set("limit", String(limit));
      const since = parsed.string("since");
      if (since !== undefined) query.set("since", since);
      const text = query.size ? `?${query}` : "";
      const { items } = await ctx.api.json<{ items: AuditEntry[] }>("GET", `/api/v1/audit${text}`);
      if (ctx.json) return ctx.out(JSON.stringify(items));
      ctx.out(table(
        ["TIME", "NODE", "TOKEN", "ROLE", "CALL", "TARGET", "STATUS", "REQUEST"],
        items.map((e) => [
          new Date(e.time).toISOString(),
          e.node,
          auditWho(e),
          e.role,
          `${e.method} ${printable(e.path)}`,
          e.target === undefined ? undefined : printable(e.target),
          e.status,
          e.requestId,
        ]),
      ));
    },
  },
];
