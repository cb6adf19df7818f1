/**
 * The PostgreSQL connector's connection URL: `postgres://user:password@host:port/database[?sslmode=...]`
 * (`postgresql://` too). Parsed once when the backend starts; every error names what is wrong without ever
 * repeating the password, and `describe` is the form that appears in messages and logs.
 */

import { AetherError } from "../core/mod.ts";

export type PostgresSslMode = "disable" | "require" | "verify-full";

export interface PostgresTarget {
  host: string;
  port: number;
  user: string;
  /** Kept out of every message; `describe` never shows it. */
  password: string;
  database: string;
  sslMode: PostgresSslMode;
}

const SSL_MODES: readonly PostgresSslMode[] = ["disable", "require", "verify-full"];

/** `postgres://user@host:port/database`: the URL without its password, for messages and logs. */
export function describeTarget(target: PostgresTarget): string {
  const host = target.host.includes(":") ? `[${target.host}]` : target.host;
  return `postgres://${target.user}@${host}:${target.port}/${target.database}`;
}

/** A URL with its password replaced by `***` (for echoing an operator's input back). */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*:)[^@/]*@/i, "$1***@");
}

/** Parses and checks a connection URL; throws `bad_request` naming the part that is wrong. */
export function parsePostgresUrl(url: unknown): PostgresTarget {
  if (typeof url !== "string" || url.trim() === "") {
    throw new AetherError(
      "bad_request",
      "postgres url: must be a non-empty string like postgres://user:pw@host/db",
    );
  }
  const shown = redactUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not shown: without a URL's structure there is no telling which part is the password.
    throw new AetherError(
      "bad_request",
      "postgres url (not shown): not a URL; expected postgres://user:password@host:port/database",
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new AetherError(
      "bad_request",
      `postgres url ${shown}: the scheme must be postgres:// or postgresql://, not ${parsed.protocol}//`,
    );
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!host) throw new AetherError("bad_request", `postgres url ${shown}: names no host`);
  const port = parsed.port === "" ? 5432 : Number(parsed.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new AetherError("bad_request", `postgres url ${shown}: port ${parsed.port} is not 1..65535`);
  }
  const user = decodeURIComponent(parsed.username);
  if (!user) {
    throw new AetherError("bad_request", `postgres url ${shown}: names no user (user:password@host)`);
  }
  const database = decodeURIComponent(parsed.pathname.replace(/^\//, ""));
  if (!database || database.includes("/")) {
    throw new AetherError(
      "bad_request",
      `postgres url ${shown}: the path must be one database name (/orders)`,
    );
  }
  let sslMode: PostgresSslMode = "disable";
  for (const [name, value] of parsed.searchParams) {
    if (name !== "sslmode") {
      throw new AetherError(
        "bad_request",
        `postgres url ${shown}: unknown parameter ${name} (only sslmode=${SSL_MODES.join("|")} is read)`,
      );
    }
    if (!SSL_MODES.includes(value as PostgresSslMode)) {
      throw new AetherError(
        "bad_request",
        `postgres url ${shown}: sslmode=${value} is not one of ${SSL_MODES.join(", ")}`,
      );
    }
    sslMode = value as PostgresSslMode;
  }
  return { host, port, user, password: decodeURIComponent(parsed.password), database, sslMode };
}
