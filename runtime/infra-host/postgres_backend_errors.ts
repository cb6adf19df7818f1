/**
 * How the PostgreSQL connector turns what the driver throws into the SqlBackend's error codes:
 *
 * | what happened                                         | code          |
 * | ----------------------------------------------------- | ------------- |
 * | SQL error (syntax, unknown table, constraint, types)  | `bad_request` with the server's message, position as line:column, detail and hint |
 * | serialization failure (40001), deadlock (40P01)       | `conflict` (retry the transaction) |
 * | statement_timeout (57014), lock_timeout (55P03)       | `timeout` |
 * | refused/unreachable host, unknown host name, connect timeout, lost connection, server shutting down, no such database, too many connections | `unavailable`, naming host, port, user and database |
 * | wrong password / no pg_hba entry (28xxx)              | `unavailable`, naming host and user (never the password) |
 */

import { AetherError } from "../core/mod.ts";
import { describeTarget, type PostgresTarget } from "./postgres_backend_url.ts";

/** The fields the driver puts on a server error (pg's DatabaseError). */
interface ServerErrorFields {
  code?: string;
  message?: string;
  position?: string;
  detail?: string;
  hint?: string;
  severity?: string;
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "EPIPE",
  "ECONNABORTED",
]);

/** True when the error means the connection it happened on can no longer be used. */
export function isConnectionError(e: unknown): boolean {
  const fields = e as ServerErrorFields | undefined;
  const code = fields?.code ?? "";
  if (NETWORK_CODES.has(code)) return true;
  // Class 08 (connection exception), 57P01-57P03 (shutdown, crash, cannot connect now), 28 (auth), 3D000.
  if (/^(08|28|57P0[123])/.test(code) && !isBindCountError(fields)) return true;
  const message = fields?.message ?? String(e);
  return /Connection terminated|connection timeout|timeout expired|Client has encountered a connection error|not queryable|ended/i
    .test(message);
}

/** The server's "bind message supplies N parameters, but prepared statement requires M" (a caller's mistake). */
function isBindCountError(fields: ServerErrorFields | undefined): boolean {
  return /bind message supplies/.test(fields?.message ?? "");
}

/** An error met while connecting: always `unavailable`, with where and as whom. */
export function connectError(target: PostgresTarget, e: unknown): AetherError {
  const fields = e as ServerErrorFields | undefined;
  const code = fields?.code ?? "";
  const reason = fields?.message ?? String(e);
  const where = `cannot connect to PostgreSQL at ${target.host}:${target.port} as user "${target.user}" ` +
    `(database "${target.database}")`;
  let why = reason;
  if (code === "ECONNREFUSED") why = `connection refused (is the server running and listening there?)`;
  else if (code === "ENOTFOUND" || code === "EAI_AGAIN") why = `unknown host name ${target.host}`;
  else if (code.startsWith("28")) {
    why = `${reason} (check the URL's user and the password in its secret)`;
  } else if (code === "3D000") why = `${reason} (create it, or fix the URL's database name)`;
  else if (code === "53300") why = `${reason} (the server's max_connections is reached)`;
  return new AetherError("unavailable", `${where}: ${why}`, {
    postgres: describeTarget(target),
    sqlState: code,
  });
}

/** An error from a statement (or BEGIN/COMMIT) on an open connection. */
export function statementError(
  target: PostgresTarget,
  sql: string,
  e: unknown,
  reasonIfCanceled?: string,
): AetherError {
  if (e instanceof AetherError) return e;
  const fields = e as ServerErrorFields | undefined;
  const code = fields?.code ?? "";
  const message = fields?.message ?? String(e);
  const extra: Record<string, unknown> = { sqlState: code || undefined, sql: head(sql) };
  if (code === "40001" || code === "40P01") {
    return new AetherError("conflict", `postgres: ${message}; the transaction may be retried`, extra);
  }
  if (code === "57014") {
    return new AetherError("timeout", `postgres: ${reasonIfCanceled ?? message} (in: ${head(sql)})`, extra);
  }
  if (code === "55P03") return new AetherError("timeout", `postgres: ${message} (in: ${head(sql)})`, extra);
  if (isBindCountError(fields)) {
    return new AetherError("bad_request", `postgres: wrong number of params: ${message}`, extra);
  }
  if (isConnectionError(e)) {
    return new AetherError(
      "unavailable",
      `postgres ${describeTarget(target)}: the connection failed: ${message}`,
      { ...extra, postgres: describeTarget(target) },
    );
  }
  if (!code) return new AetherError("internal", `postgres: ${message}`, extra);
  return new AetherError("bad_request", `postgres: ${sqlMessage(sql, fields!)}`, {
    ...extra,
    ...positionFields(sql, fields!.position),
  });
}

/** `syntax error at or near "FRM" at line 1, column 10 (in: SELECT * FRM t); hint: ...` */
function sqlMessage(sql: string, fields: ServerErrorFields): string {
  const position = positionFields(sql, fields.position);
  let text = fields.message ?? "SQL error";
  if (position.line !== undefined) text += ` at line ${position.line}, column ${position.column}`;
  text += ` (in: ${head(sql)})`;
  if (fields.detail) text += `; detail: ${fields.detail}`;
  if (fields.hint) text += `; hint: ${fields.hint}`;
  return text;
}

/** The server's 1-based character position as line and column of the statement. */
function positionFields(sql: string, position: string | undefined): { line?: number; column?: number } {
  const offset = Number(position);
  if (!position || !Number.isInteger(offset) || offset < 1) return {};
  const before = [...sql].slice(0, offset - 1).join("");
  const lines = before.split("\n");
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

function head(sql: string): string {
  const flat = sql.replace(/\s+/g, " ").trim();
  return flat.length > 80 ? `${flat.slice(0, 77)}...` : flat;
}
