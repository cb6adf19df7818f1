/**
 * `ctx.infra.db(name)`: SQL databases (runtime/infra-host/sqldb_service.ts, manifest `requires: ["db"]`).
 * The embedded default is SQLite replicated through the cluster's consensus (`?` placeholders); an operator
 * may point a database name at PostgreSQL (`$1, $2` placeholders). Parameters are always bound, never
 * interpolated. Databases belong to the slice's group. Free of bare specifiers (the child process runs
 * without a config file).
 */

import type { CallOptions, JsonValue } from "./_types.ts";

/** A value a statement binds or returns (bigints beyond 2^53 come back as strings, blobs as base64). */
export type SqlValue = string | number | boolean | null;

export interface SqlResult {
  rows: Record<string, SqlValue>[];
  /** Rows inserted, updated or deleted. */
  rowsAffected: number;
  /** SQLite's rowid of the last insert (embedded). */
  lastInsertId?: number | string;
}

export interface SqlQueryOptions extends CallOptions {
  /**
   * `linearizable` (default): sees every write acknowledged before the query started, cluster-wide (one
   * consensus round first). `local`: this node's copy, which may lag by the replication delay.
   */
  consistency?: "linearizable" | "local";
}

/** Statements inside `transaction(fn)`: they see the transaction's own writes. */
export interface SqlTransaction {
  query(sql: string, params?: readonly SqlValue[], options?: CallOptions): Promise<SqlResult>;
}

export interface TransactionOptions extends CallOptions {
  /**
   * Attempts after a `conflict` (another write changed a table the transaction read or wrote since it began):
   * the whole function runs again. Default 3; 0 throws the first conflict.
   */
  retries?: number;
}

export interface DbClient {
  query(sql: string, params?: readonly SqlValue[], options?: SqlQueryOptions): Promise<SqlResult>;
  /**
   * Runs `fn` in a transaction: committed when it returns, rolled back when it throws. Embedded: optimistic,
   * serializable; retried on conflict (`retries`), so `fn` must be safe to run again (no side effects besides
   * its statements).
   */
  transaction<T>(fn: (tx: SqlTransaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Applies the statements not applied yet, in order, once across the cluster (recorded by index; a changed
   * one is refused with `conflict`). Returns how many this call applied.
   */
  migrate(migrations: readonly string[], options?: CallOptions): Promise<{ applied: number; total: number }>;
}

type Send = (method: string, payload: Record<string, JsonValue>, options?: CallOptions) => Promise<unknown>;

function isConflict(e: unknown): boolean {
  const error = e as { status?: number; name?: string } | null;
  return error?.status === 409 && error?.name === "Conflict";
}

export function dbClient(send: Send, migrations?: readonly string[]): DbClient {
  let migrated: Promise<unknown> | undefined;
  // The slice's declared migrations run once per instance, before its first statement.
  const ready = (options?: CallOptions) => {
    if (!migrations || migrations.length === 0) return Promise.resolve();
    migrated ??= send("migrate", { migrations: [...migrations] }, options).catch((e) => {
      migrated = undefined;
      throw e;
    });
    return migrated;
  };
  const params = (values: readonly SqlValue[] | undefined): JsonValue[] => [...(values ?? [])];
  const client: DbClient = {
    async query(sql, values, options) {
      await ready(options);
      const payload: Record<string, JsonValue> = { sql, params: params(values) };
      if (options?.consistency !== undefined) payload.consistency = options.consistency;
      return (await send("query", payload, options)) as SqlResult;
    },
    async transaction(fn, options) {
      await ready(options);
      const retries = options?.retries ?? 3;
      for (let attempt = 0;; attempt++) {
        const { tx } = (await send("begin", {}, options)) as { tx: string };
        let result;
        try {
          result = await fn({
            query: async (sql, values, queryOptions) =>
              (await send(
                "queryIn",
                { tx, sql, params: params(values) },
                queryOptions ?? options,
              )) as SqlResult,
          });
        } catch (e) {
          await send("rollback", { tx }, options).catch(() => {});
          if (isConflict(e) && attempt < retries) continue;
          throw e;
        }
        try {
          await send("commit", { tx }, options);
          return result;
        } catch (e) {
          if (isConflict(e) && attempt < retries) continue;
          throw e;
        }
      }
    },
    migrate: async (list, options) =>
      (await send("migrate", { migrations: [...list] }, options)) as { applied: number; total: number },
  };
  return client;
}
