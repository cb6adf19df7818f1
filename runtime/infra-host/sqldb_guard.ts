/**
 * What a slice's SQL may do in the embedded database, checked before anything runs and again on every member
 * when a write is applied (the same checks give the same answer everywhere, so the copies stay identical):
 *
 * - one statement per call (no `;` followed by more), at most `maxStatementBytes`, parameters bound only
 *   (`?`, at most `maxParams`, each a JSON scalar);
 * - the SQLite authorizer refuses what escapes the database or differs between members: ATTACH/DETACH, every
 *   pragma but read-only schema introspection, BEGIN/COMMIT/SAVEPOINT (transactions are the API's), virtual
 *   tables, TEMP objects, and any access to the runtime's own tables (`_aether_*`) or writes to `sqlite_*`;
 * - non-deterministic SQL is refused, not evaluated on the proposer: `random()`, `randomblob()`, the keywords
 *   CURRENT_TIME / CURRENT_DATE / CURRENT_TIMESTAMP, and date/time functions given 'now' or 'localtime'
 *   (also through a parameter). A slice passes the time it wants stored as a parameter instead.
 *
 * The authorizer also reports which tables a statement reads and writes: the optimistic transactions'
 * conflict check (sqldb_embedded.ts) is per table.
 */

import { constants, type DatabaseSync } from "node:sqlite";
import { AetherError } from "../core/mod.ts";
import type { SqlValue } from "./sql_backend.ts";

/** The authorizer's action codes and answers (SQLite's own numbers; @types/node lists only some). */
const C = constants as unknown as Record<string, number>;

export interface SqlLimits {
  /** UTF-8 bytes of one statement's text. */
  maxStatementBytes: number;
  /** Bound parameters of one statement. */
  maxParams: number;
  /** Rows one query may return (more: `too_large`, use LIMIT/OFFSET). */
  maxRows: number;
  /** UTF-8 bytes of one string parameter. */
  maxParamBytes: number;
}

export const DEFAULT_SQL_LIMITS: SqlLimits = {
  maxStatementBytes: 64 * 1024,
  maxParams: 256,
  maxRows: 10_000,
  maxParamBytes: 256 * 1024,
};

/** The pseudo-table a schema change writes: every transaction depends on the schema. */
export const SCHEMA_TABLE = "*schema";

/** Tables a statement touches, as the authorizer saw them while it was prepared. */
export interface StatementAccess {
  reads: Set<string>;
  writes: Set<string>;
  /** Denials, in order: the first one is the error the caller gets. */
  denied: string[];
}

export function newAccess(): StatementAccess {
  return { reads: new Set(), writes: new Set(), denied: [] };
}

/** Read-only pragmas a slice may use to look at its own schema. */
const ALLOWED_PRAGMAS = new Set([
  "table_info",
  "table_xinfo",
  "index_list",
  "index_info",
  "index_xinfo",
  "foreign_key_list",
]);

const SCHEMA_ACTIONS = new Set([
  C.SQLITE_CREATE_TABLE,
  C.SQLITE_CREATE_INDEX,
  C.SQLITE_CREATE_VIEW,
  C.SQLITE_CREATE_TRIGGER,
  C.SQLITE_DROP_TABLE,
  C.SQLITE_DROP_INDEX,
  C.SQLITE_DROP_VIEW,
  C.SQLITE_DROP_TRIGGER,
  C.SQLITE_ALTER_TABLE,
  C.SQLITE_REINDEX,
]);

const DENIED_ACTIONS: ReadonlyMap<number, string> = new Map([
  [C.SQLITE_ATTACH, "ATTACH DATABASE"],
  [C.SQLITE_DETACH, "DETACH DATABASE"],
  [C.SQLITE_TRANSACTION, "BEGIN/COMMIT/ROLLBACK (use transaction())"],
  [C.SQLITE_SAVEPOINT, "SAVEPOINT (use transaction())"],
  // ANALYZE writes sqlite_stat1 on the member that runs it: not a replicated write.
  [C.SQLITE_ANALYZE, "ANALYZE"],
  // A recursive CTE can run without end, and a statement cannot be interrupted (no progress handler in
  // node:sqlite): refused, so one statement cannot hang every member's apply.
  [C.SQLITE_RECURSIVE, "recursive common table expressions (WITH RECURSIVE)"],
  [C.SQLITE_CREATE_VTABLE, "virtual tables"],
  [C.SQLITE_DROP_VTABLE, "virtual tables"],
  [C.SQLITE_CREATE_TEMP_TABLE, "TEMP tables"],
  [C.SQLITE_CREATE_TEMP_INDEX, "TEMP indexes"],
  [C.SQLITE_CREATE_TEMP_VIEW, "TEMP views"],
  [C.SQLITE_CREATE_TEMP_TRIGGER, "TEMP triggers"],
  [C.SQLITE_DROP_TEMP_TABLE, "TEMP tables"],
  [C.SQLITE_DROP_TEMP_INDEX, "TEMP indexes"],
  [C.SQLITE_DROP_TEMP_VIEW, "TEMP views"],
  [C.SQLITE_DROP_TEMP_TRIGGER, "TEMP triggers"],
]);

const WRITE_ACTIONS = new Set([C.SQLITE_INSERT, C.SQLITE_UPDATE, C.SQLITE_DELETE]);

function isInternalTable(name: string | null): boolean {
  return name !== null && name.toLowerCase().startsWith("_aether");
}

function isSystemTable(name: string | null): boolean {
  return name !== null && name.toLowerCase().startsWith("sqlite_");
}

/**
 * The authorizer callback's decision for one action while `access` collects (a slice's statement); with no
 * collector (the runtime's own statements) everything is allowed.
 */
export function authorize(
  access: StatementAccess | null,
  action: number,
  arg1: string | null,
  arg2: string | null,
  dbName: string | null,
): number {
  if (!access) return C.SQLITE_OK;
  const deny = (what: string) => {
    access.denied.push(what);
    return C.SQLITE_DENY;
  };
  const denied = DENIED_ACTIONS.get(action);
  if (denied) return deny(denied);
  if (dbName !== null && dbName !== "main") return deny(`the schema "${dbName}" (only main)`);
  if (action === C.SQLITE_PRAGMA) {
    if (arg1 && ALLOWED_PRAGMAS.has(arg1.toLowerCase()) && arg2 !== null) return C.SQLITE_OK;
    return deny(`PRAGMA ${arg1 ?? ""} (only ${[...ALLOWED_PRAGMAS].join(", ")} with a table name)`);
  }
  if (action === C.SQLITE_FUNCTION) {
    const name = (arg2 ?? "").toLowerCase();
    if (name === "random" || name === "randomblob") return deny(`${name}() (not deterministic)`);
    if (name === "load_extension") return deny("load_extension()");
    return C.SQLITE_OK;
  }
  if (action === C.SQLITE_READ) {
    if (isInternalTable(arg1)) return deny(`the runtime's table ${arg1}`);
    if (arg1 !== null) access.reads.add(arg1.toLowerCase());
    return C.SQLITE_OK;
  }
  if (WRITE_ACTIONS.has(action)) {
    if (isInternalTable(arg1)) return deny(`writing the table ${arg1}`);
    // A schema change writes sqlite_master itself; SQLite refuses a statement's direct writes to it (and
    // defensive mode the writable_schema escape), so only the runtime's tables need the authorizer here.
    if (isSystemTable(arg1)) return C.SQLITE_OK;
    if (arg1 !== null) access.writes.add(arg1.toLowerCase());
    return C.SQLITE_OK;
  }
  if (SCHEMA_ACTIONS.has(action)) {
    // arg1 is the object's name (the table's for CREATE_TABLE, the index's for CREATE_INDEX ...).
    const target = action === C.SQLITE_CREATE_INDEX || action === C.SQLITE_DROP_INDEX ||
        action === C.SQLITE_CREATE_TRIGGER || action === C.SQLITE_DROP_TRIGGER
      ? arg2
      : arg1;
    if (isInternalTable(arg1) || isInternalTable(target) || isSystemTable(target)) {
      return deny(`changing the runtime's table ${target ?? arg1}`);
    }
    access.writes.add(SCHEMA_TABLE);
    if (target) access.writes.add(target.toLowerCase());
    return C.SQLITE_OK;
  }
  return C.SQLITE_OK;
}

/** Date/time functions whose 'now' or 'localtime' argument depends on the member that runs them. */
export const TIME_FUNCTIONS = ["date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff"];

/**
 * Installs the deterministic replacements on a connection: random()/randomblob() throw, and the date/time
 * functions throw for 'now'/'localtime' and otherwise give SQLite's own answer (computed on `plain`, a
 * connection without the replacements).
 */
export function installDeterministicFunctions(db: DatabaseSync, plain: DatabaseSync): void {
  const refuse = (name: string) => () => {
    throw new Error(`${name}() is not deterministic; pass the value as a parameter`);
  };
  db.function("random", { deterministic: true }, refuse("random"));
  db.function("randomblob", { deterministic: true }, refuse("randomblob"));
  for (const name of TIME_FUNCTIONS) {
    const cache = new Map<number, ReturnType<DatabaseSync["prepare"]>>();
    db.function(name, { deterministic: true, varargs: true }, (...args: unknown[]) => {
      for (const arg of args) {
        const text = typeof arg === "string" ? arg.trim().toLowerCase() : "";
        if (text === "now" || text === "localtime") {
          throw new Error(
            `${name}('${text}') depends on the member's clock or time zone; pass the time as a parameter`,
          );
        }
      }
      let statement = cache.get(args.length);
      if (!statement) {
        statement = plain.prepare(`SELECT ${name}(${args.map(() => "?").join(", ")}) AS v`);
        cache.set(args.length, statement);
      }
      const row = statement.get(...(args as never[])) as { v: unknown } | undefined;
      return (row?.v ?? null) as never;
    });
  }
}

/**
 * Checks a statement's text and parameters before it is prepared: type, size, one statement only, no
 * non-deterministic keyword. Returns the parameters as SQLite binds them (booleans as 1/0). `where` names the
 * call in errors ("db.query").
 */
export function checkStatement(
  where: string,
  sql: unknown,
  params: unknown,
  limits: SqlLimits = DEFAULT_SQL_LIMITS,
): { sql: string; params: (string | number | null)[] } {
  if (typeof sql !== "string" || sql.trim() === "") {
    throw new AetherError("bad_request", `${where}: sql must be a non-empty string`, { field: "sql" });
  }
  const bytes = new TextEncoder().encode(sql).byteLength;
  if (bytes > limits.maxStatementBytes) {
    throw new AetherError(
      "too_large",
      `${where}: the statement is ${bytes} bytes; the limit is ${limits.maxStatementBytes}`,
      { field: "sql" },
    );
  }
  scanSql(where, sql);
  if (params === undefined || params === null) params = [];
  if (!Array.isArray(params)) {
    throw new AetherError("bad_request", `${where}: params must be an array of values bound to ?`, {
      field: "params",
    });
  }
  if (params.length > limits.maxParams) {
    throw new AetherError(
      "bad_request",
      `${where}: ${params.length} params; the limit is ${limits.maxParams}`,
      {
        field: "params",
      },
    );
  }
  const bound = params.map((value: unknown, i: number) => bindable(where, value, i, limits));
  return { sql, params: bound };
}

function bindable(where: string, value: unknown, i: number, limits: SqlLimits): string | number | null {
  if (value === null || typeof value === "number" && Number.isFinite(value)) return value as number | null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "string") {
    if (
      value.length * 3 > limits.maxParamBytes &&
      new TextEncoder().encode(value).byteLength > limits.maxParamBytes
    ) {
      throw new AetherError("too_large", `${where}: params[${i}] is over ${limits.maxParamBytes} bytes`, {
        field: `params[${i}]`,
      });
    }
    return value;
  }
  throw new AetherError(
    "bad_request",
    `${where}: params[${i}] must be a string, a finite number, a boolean or null, got ${
      value === undefined ? "undefined" : typeof value === "number" ? String(value) : typeof value
    }`,
    { field: `params[${i}]` },
  );
}

const NON_DETERMINISTIC_KEYWORDS = new Set(["current_time", "current_date", "current_timestamp"]);

/**
 * A small lexer over the statement (strings, quoted identifiers, comments skipped): refuses a second statement
 * after `;` and the non-deterministic keywords.
 */
function scanSql(where: string, sql: string): void {
  let i = 0;
  let ended = false;
  const n = sql.length;
  while (i < n) {
    const c = sql[i];
    if (c === "'" || c === '"' || c === "`") {
      // A literal or quoted identifier; a doubled quote continues it.
      let j = i + 1;
      while (j < n) {
        if (sql[j] === c) {
          if (sql[j + 1] === c) j += 2;
          else break;
        } else j++;
      }
      i = j + 1;
      if (ended) return refuseSecond(where);
      continue;
    }
    if (c === "[") {
      const close = sql.indexOf("]", i + 1);
      i = close < 0 ? n : close + 1;
      if (ended) return refuseSecond(where);
      continue;
    }
    if (c === "-" && sql[i + 1] === "-") {
      const eol = sql.indexOf("\n", i);
      i = eol < 0 ? n : eol + 1;
      continue;
    }
    if (c === "/" && sql[i + 1] === "*") {
      const close = sql.indexOf("*/", i + 2);
      i = close < 0 ? n : close + 2;
      continue;
    }
    if (c === ";") {
      ended = true;
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (ended) return refuseSecond(where);
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_$]/.test(sql[j])) j++;
      const word = sql.slice(i, j).toLowerCase();
      if (word === "vacuum") {
        throw new AetherError("forbidden", `${where}: VACUUM is not allowed in a slice's database`, {
          field: "sql",
        });
      }
      if (NON_DETERMINISTIC_KEYWORDS.has(word)) {
        throw new AetherError(
          "bad_request",
          `${where}: ${word.toUpperCase()} is not deterministic (every member would store its own clock's ` +
            "value); pass the time as a parameter",
          { field: "sql" },
        );
      }
      i = j;
      continue;
    }
    i++;
  }
}

function refuseSecond(where: string): never {
  throw new AetherError("bad_request", `${where}: one statement per call (found more after ';')`, {
    field: "sql",
  });
}

/** A SQLite error as the caller's `bad_request`, naming the call and the statement's start. */
export function sqlError(where: string, sql: string, e: unknown, access?: StatementAccess): AetherError {
  if (e instanceof AetherError) return e;
  const head = sql.length > 80 ? `${sql.slice(0, 77)}...` : sql;
  if (access && access.denied.length > 0) {
    return new AetherError("forbidden", `${where}: not allowed in a slice's database: ${access.denied[0]}`, {
      sql: head,
    });
  }
  const message = e instanceof Error ? e.message : String(e);
  return new AetherError("bad_request", `${where}: ${message} (in: ${head})`, { sql: head });
}

/** Converts a row's values to JSON scalars (bigint beyond 2^53 as a string, blobs as base64 strings). */
export function jsonRow(row: Record<string, unknown>): Record<string, SqlValue> {
  const out: Record<string, SqlValue> = {};
  for (const [k, v] of Object.entries(row)) {
    if (typeof v === "bigint") out[k] = Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
    else if (v instanceof Uint8Array) out[k] = btoa(String.fromCharCode(...v));
    else out[k] = v as SqlValue;
  }
  return out;
}
