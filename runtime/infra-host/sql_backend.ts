/**
 * The contract every SQL database behind `ctx.infra.db(name)` implements: the embedded database replicated
 * through consensus (the default) and the PostgreSQL connector (an operator's URL for a database name). One
 * shared contract test suite runs against every implementation, so slices see the same behaviour from both.
 *
 * Parameters are always bound, never interpolated: `sql` uses `?` placeholders in the embedded database and
 * `$1, $2, ...` in PostgreSQL (each backend documents which; the contract suite uses the backend's own).
 */

/** A value a statement can bind or return: JSON scalars (bigints come back as strings past 2^53). */
export type SqlValue = string | number | boolean | null;

export interface SqlResult {
  /** The rows a query returned (column name → value); empty for a statement that returns none. */
  rows: Record<string, SqlValue>[];
  /** Rows inserted, updated or deleted by the statement (0 for a plain query). */
  rowsAffected: number;
  /** The last inserted row id where the backend has one (SQLite's rowid); absent otherwise. */
  lastInsertId?: number | string;
}

export interface SqlQueryOptions {
  /** Epoch ms after which the statement is abandoned with `timeout` (the caller's deadline). */
  deadlineMs: number;
  /**
   * `linearizable` (default): the read reflects every write acknowledged before it started, cluster-wide.
   * `local`: the node's current copy, which may lag by the replication delay (embedded database only;
   * PostgreSQL always reads from the server).
   */
  consistency?: "linearizable" | "local";
}

/**
 * One named database. Errors are AetherError with a code a slice can act on: `bad_request` (SQL error, wrong
 * parameter count or type), `conflict` (a transaction lost a race and may be retried), `timeout`,
 * `unavailable` (server or quorum unreachable), `not_found` (no such transaction).
 */
export interface SqlBackend {
  readonly kind: "embedded" | "postgres";
  query(sql: string, params: readonly SqlValue[], options: SqlQueryOptions): Promise<SqlResult>;
  /** Starts a transaction that ends with commit or rollback, or after `deadlineMs` (then rolled back). */
  begin(options: { deadlineMs: number }): Promise<string>;
  queryIn(transactionId: string, sql: string, params: readonly SqlValue[]): Promise<SqlResult>;
  commit(transactionId: string): Promise<void>;
  rollback(transactionId: string): Promise<void>;
  close(): Promise<void>;
}
