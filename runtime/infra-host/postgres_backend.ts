/**
 * The PostgreSQL connector: a SqlBackend over an operator's PostgreSQL server (the `pg` driver), for a
 * database name whose configuration points at a URL instead of the embedded default.
 *
 *   const db = await startPostgresBackend({ url, poolSize: 10, statementTimeoutMs: 30_000 });
 *   await db.query("INSERT INTO orders(id, total) VALUES ($1, $2)", ["o-1", 42], { deadlineMs });
 *   const tx = await db.begin({ deadlineMs: Date.now() + 5_000 });
 *   await db.queryIn(tx, "UPDATE stock SET n = n - 1 WHERE sku = $1", ["apple"]);
 *   await db.commit(tx);
 *
 * - **Pool** (one per node and database): at most `poolSize` connections, opened on demand and closed after
 *   `idleTimeoutMs` unused. A caller that finds all of them busy waits in line (at most `maxWaiters`) until one
 *   is released or its deadline passes, then gets `overloaded` naming the pool size. A connection that broke
 *   (server restarted, network cut) is dropped, and the next caller opens a fresh one, so the pool recovers by
 *   itself once the server is back.
 * - **Transactions** hold one pooled connection from `begin` to `commit`/`rollback`; at the transaction's
 *   deadline the connector cancels what runs on it, rolls it back and releases the connection, and later
 *   calls with that id get `timeout` saying so. Ids are random (`pgtx-<uuid>`), so one caller cannot guess
 *   another's.
 * - **Timeouts**: the server's `statement_timeout` (set at connect to `statementTimeoutMs`) ends a statement
 *   that runs too long (`timeout`); a caller's deadline that comes sooner is enforced by a protocol cancel
 *   request at that moment (also `timeout`); a server that does not answer even that within `cancelGraceMs`
 *   loses the connection (`timeout`). A statement can reset its session's statement_timeout, but never the
 *   caller's deadline or the connector's own cap (statementTimeoutMs + cancelGraceMs).
 * - **Parameters are always bound** (`$1, $2, ...`, the extended protocol, one statement per call); they are
 *   never interpolated into the text.
 * - **Results** are JSON scalars: booleans, int2/int4/float as numbers, int8 and numeric as numbers while
 *   exact (int8 up to 2^53, numeric up to 15 significant digits) and as decimal strings beyond, bytea as
 *   base64 (like the embedded database's blobs), every other type (timestamps, json, arrays, uuid) as the
 *   server's text form. At most `limits.maxRows` rows and `maxResultBytes` bytes: past either the statement is
 *   cancelled and the caller gets `too_large`.
 * - **Errors**: postgres_backend_errors.ts. Messages and logs name host, port, user and database, never the
 *   password.
 */

import pg from "pg";
import { AetherError, type Logger } from "../core/mod.ts";
import type { SqlBackend, SqlQueryOptions, SqlResult, SqlValue } from "./sql_backend.ts";
import { DEFAULT_SQL_LIMITS, type SqlLimits } from "./sqldb_guard.ts";
import { describeTarget, parsePostgresUrl, type PostgresTarget } from "./postgres_backend_url.ts";
import { connectError, isConnectionError, statementError } from "./postgres_backend_errors.ts";

export { describeTarget, parsePostgresUrl, type PostgresTarget, redactUrl } from "./postgres_backend_url.ts";

export interface PostgresBackendOptions {
  /** `postgres://user[:password]@host:port/database[?sslmode=disable|require|verify-full]` */
  url: string;
  /** The password, when it is kept apart from the URL (the secrets service); wins over the URL's. */
  password?: string;
  /** Connections this node opens to the database at most (default 10). */
  poolSize?: number;
  /** The server-side statement_timeout of every connection (default 30 s). */
  statementTimeoutMs?: number;
  /** How long opening one connection may take (default 5 s; less when the caller's deadline is sooner). */
  connectTimeoutMs?: number;
  /** An unused connection is closed after this long (default 30 s). */
  idleTimeoutMs?: number;
  /** Callers waiting for a connection at most; one more gets `overloaded` at once (default 1000). */
  maxWaiters?: number;
  /** How long a cancelled statement may take to stop before its connection is dropped (default 1 s). */
  cancelGraceMs?: number;
  /** Statement size, parameter count and size, rows per result (defaults: the embedded database's). */
  limits?: Partial<SqlLimits>;
  /** UTF-8 bytes (approximately) of one result (default 32 MiB). */
  maxResultBytes?: number;
  logger?: Logger;
}

export interface PostgresPoolStats {
  poolSize: number;
  /** Connections open or being opened. */
  open: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
  /** Open transactions (each holds a connection). */
  transactions: number;
  connectsTotal: number;
  connectFailuresTotal: number;
  /** Callers whose deadline passed while they waited for a connection. */
  waitTimeoutsTotal: number;
}

export interface PostgresBackend extends SqlBackend {
  readonly kind: "postgres";
  /** `postgres://user@host:port/database` (no password), for status views and messages. */
  readonly target: string;
  stats(): PostgresPoolStats;
}

export const DEFAULT_POSTGRES_SETTINGS = {
  poolSize: 10,
  statementTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  idleTimeoutMs: 30_000,
  maxWaiters: 1_000,
  cancelGraceMs: 1_000,
  maxResultBytes: 32 * 1024 * 1024,
} as const;

/** How many ended transaction ids are remembered, so a late call says why the id is gone. */
const ENDED_TRANSACTIONS_KEPT = 1_024;

/**
 * Starts the connector for one database. The URL is checked at once (`bad_request` naming what is wrong);
 * the server is not contacted until the first call, so a node starts while the server is down and its calls
 * get `unavailable` until it is back.
 */
export function startPostgresBackend(options: PostgresBackendOptions): Promise<PostgresBackend> {
  try {
    return Promise.resolve(createPostgresBackend(options));
  } catch (e) {
    return Promise.reject(e);
  }
}

/** The same as startPostgresBackend, synchronously (it contacts no server): throws `bad_request` for a bad URL. */
export function createPostgresBackend(options: PostgresBackendOptions): PostgresBackend {
  const target = parsePostgresUrl(options.url);
  if (options.password !== undefined) target.password = options.password;
  return new PostgresConnector(target, settingsOf(options), options.logger);
}

function settingsOf(options: PostgresBackendOptions): Settings {
  const defaults = DEFAULT_POSTGRES_SETTINGS;
  return {
    poolSize: positive("poolSize", options.poolSize ?? defaults.poolSize),
    statementTimeoutMs: positive(
      "statementTimeoutMs",
      options.statementTimeoutMs ?? defaults.statementTimeoutMs,
    ),
    connectTimeoutMs: positive("connectTimeoutMs", options.connectTimeoutMs ?? defaults.connectTimeoutMs),
    idleTimeoutMs: positive("idleTimeoutMs", options.idleTimeoutMs ?? defaults.idleTimeoutMs),
    maxWaiters: positive("maxWaiters", options.maxWaiters ?? defaults.maxWaiters),
    cancelGraceMs: positive("cancelGraceMs", options.cancelGraceMs ?? defaults.cancelGraceMs),
    maxResultBytes: positive("maxResultBytes", options.maxResultBytes ?? defaults.maxResultBytes),
    limits: { ...DEFAULT_SQL_LIMITS, ...options.limits },
  };
}

function positive(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new AetherError("bad_request", `postgres: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

type Settings = Required<Omit<PostgresBackendOptions, "url" | "password" | "logger" | "limits">> & {
  limits: SqlLimits;
};

/** One pooled connection. */
class Connection {
  broken = false;
  idleSinceMs = Date.now();
  /** The server's transaction status after the last statement: `I` idle, `T` in a transaction, `E` failed one. */
  txStatus = "I";

  constructor(readonly client: pg.Client) {
    // An idle connection the server closes emits `error`; without a listener that would crash the node.
    client.on("error", () => this.broken = true);
    client.on("end", () => this.broken = true);
    // Registered before the driver's own listener, so the status is current when a statement's result arrives.
    (client as unknown as { connection: { on(event: string, f: (m: { status: string }) => void): void } })
      .connection.on("readyForQuery", (message) => this.txStatus = message.status);
  }

  get processId(): number | undefined {
    return (this.client as unknown as { processID?: number }).processID ?? undefined;
  }

  get secretKey(): number | undefined {
    const key = (this.client as unknown as { secretKey?: unknown }).secretKey;
    return typeof key === "number" ? key : undefined;
  }

  async close(): Promise<void> {
    this.broken = true;
    await this.client.end().catch(() => {});
  }

  /** Drops the socket at once (a statement the server would not stop). */
  destroy(): void {
    this.broken = true;
    (this.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream
      ?.destroy();
  }
}

interface Waiter {
  /** A free connection, or `undefined`: a slot was freed, open a new connection. */
  grant(connection: Connection | undefined): void;
  timer: ReturnType<typeof setTimeout>;
}

interface OpenTransaction {
  id: string;
  connection: Connection;
  deadlineMs: number;
  timer: ReturnType<typeof setTimeout>;
  /** Statements of one transaction run one after another. */
  chain: Promise<unknown>;
}

class PostgresConnector implements PostgresBackend {
  readonly kind = "postgres" as const;
  readonly target: string;
  readonly #idle: Connection[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #transactions = new Map<string, OpenTransaction>();
  /** Why recently ended transaction ids are gone (insertion order: the oldest is forgotten first). */
  readonly #ended = new Map<string, string>();
  #open = 0;
  #closed = false;
  #counters = { connectsTotal: 0, connectFailuresTotal: 0, waitTimeoutsTotal: 0 };
  readonly #sweeper: ReturnType<typeof setInterval>;

  constructor(
    readonly postgres: PostgresTarget,
    readonly settings: Settings,
    readonly logger: Logger | undefined,
  ) {
    this.target = describeTarget(postgres);
    this.#sweeper = setInterval(
      () => this.#closeIdle(),
      Math.max(50, Math.floor(settings.idleTimeoutMs / 2)),
    );
    Deno.unrefTimer(this.#sweeper);
  }

  stats(): PostgresPoolStats {
    return {
      poolSize: this.settings.poolSize,
      open: this.#open,
      idle: this.#idle.length,
      waiting: this.#waiters.length,
      transactions: this.#transactions.size,
      ...this.#counters,
    };
  }

  async query(sql: string, params: readonly SqlValue[], options: SqlQueryOptions): Promise<SqlResult> {
    const bound = this.#check(sql, params);
    const deadlineMs = this.#deadline(options?.deadlineMs);
    return await this.#onLiveSession(
      deadlineMs,
      (connection) => this.#queryOn(connection, sql, bound, deadlineMs),
    );
  }

  async #queryOn(
    connection: Connection,
    sql: string,
    bound: (string | number | boolean | null)[],
    deadlineMs: number,
  ): Promise<SqlResult> {
    try {
      const { rows, rowsAffected } = await this.#run(
        connection,
        sql,
        bound,
        deadlineMs,
        "the caller's deadline passed",
      );
      if (connection.txStatus !== "I") {
        throw new AetherError(
          "bad_request",
          "postgres: a statement outside a transaction left one open (BEGIN?); it was rolled back: " +
            "use a transaction (db.transaction(fn)) instead",
        );
      }
      return { rows, rowsAffected };
    } finally {
      // Never hand the next caller a connection inside someone else's transaction.
      if (connection.txStatus !== "I" && !connection.broken) await this.#rollbackAndRelease(connection);
      else this.#release(connection);
    }
  }

  /**
   * Runs `step` on a pooled connection; when the server had ended that session (57P01-57P03: terminated by an
   * administrator, a restart, a crash) the statement did not run, so the idle connections (ended by the same
   * event, but their notice may not have been read yet) are dropped and the step is tried once more on a new one.
   */
  async #onLiveSession<T>(deadlineMs: number, step: (connection: Connection) => Promise<T>): Promise<T> {
    for (let attempt = 1;; attempt++) {
      const connection = await this.#acquire(deadlineMs);
      try {
        return await step(connection);
      } catch (e) {
        const sqlState = e instanceof AetherError ? String(e.extra.sqlState ?? "") : "";
        if (attempt > 1 || !/^57P0[123]$/.test(sqlState) || Date.now() >= deadlineMs) throw e;
        this.#dropIdle();
      }
    }
  }

  async begin(options: { deadlineMs: number }): Promise<string> {
    const deadlineMs = this.#deadline(options?.deadlineMs);
    const connection = await this.#onLiveSession(deadlineMs, async (connection) => {
      try {
        await this.#run(connection, "BEGIN", [], deadlineMs, "the transaction's deadline passed");
        return connection;
      } catch (e) {
        this.#release(connection);
        throw e;
      }
    });
    const id = `pgtx-${crypto.randomUUID()}`;
    const timer = setTimeout(() => this.#expire(id), Math.max(0, deadlineMs - Date.now()));
    this.#transactions.set(id, { id, connection, deadlineMs, timer, chain: Promise.resolve() });
    return id;
  }

  queryIn(transactionId: string, sql: string, params: readonly SqlValue[]): Promise<SqlResult> {
    const tx = this.#transaction(transactionId);
    const bound = this.#check(sql, params);
    return this.#serialized(tx, async () => {
      if (!this.#transactions.has(tx.id)) throw this.#gone(tx.id);
      try {
        const { rows, rowsAffected } = await this.#run(
          tx.connection,
          sql,
          bound,
          tx.deadlineMs,
          "the transaction's deadline passed",
        );
        if (tx.connection.txStatus === "I") {
          // The statement was a COMMIT or ROLLBACK of its own: the transaction is over on the server.
          this.#finish(tx, "a statement in it (COMMIT or ROLLBACK) ended it");
          throw new AetherError(
            "bad_request",
            `postgres: a statement ended transaction ${tx.id} (COMMIT/ROLLBACK); end it with commit or rollback`,
          );
        }
        return { rows, rowsAffected };
      } catch (e) {
        // A transaction whose connection broke is over: release what is left and say why later.
        if (tx.connection.broken) this.#finish(tx, "its connection to the server was lost");
        throw e;
      }
    });
  }

  commit(transactionId: string): Promise<void> {
    const tx = this.#transaction(transactionId);
    return this.#serialized(tx, async () => {
      if (!this.#transactions.has(tx.id)) throw this.#gone(tx.id);
      this.#finish(tx, "it was committed", { release: false });
      try {
        // A commit asked for before the deadline may take its time: it is bounded by the statement timeout.
        const commitDeadlineMs = Date.now() + this.settings.statementTimeoutMs;
        const result = await this.#run(tx.connection, "COMMIT", [], commitDeadlineMs);
        // COMMIT of a transaction in which a statement failed is a rollback (the server says ROLLBACK).
        if (result.command === "ROLLBACK") {
          this.#ended.set(tx.id, "it was rolled back because a statement in it failed");
          throw new AetherError(
            "bad_request",
            `postgres: transaction ${tx.id} was rolled back, not committed: a statement in it failed earlier`,
          );
        }
      } finally {
        this.#release(tx.connection);
      }
    });
  }

  rollback(transactionId: string): Promise<void> {
    const tx = this.#transaction(transactionId);
    return this.#serialized(tx, async () => {
      if (!this.#transactions.has(tx.id)) throw this.#gone(tx.id);
      this.#finish(tx, "it was rolled back", { release: false });
      await this.#rollbackAndRelease(tx.connection);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.grant(undefined);
    }
    const ending: Promise<unknown>[] = [];
    for (const tx of [...this.#transactions.values()]) {
      this.#finish(tx, "the database connector closed", { release: false });
      ending.push(tx.chain.then(() => tx.connection.close()));
    }
    ending.push(...this.#idle.splice(0).map((c) => c.close()));
    await Promise.all(ending);
  }

  // --- statements ---

  /**
   * Runs one statement with bound parameters; enforces the caller's deadline with a cancel request and the
   * row and byte limits by cancelling too. Rows are collected here (not by the driver) so the limits hold
   * while they stream in.
   */
  #run(
    connection: Connection,
    sql: string,
    params: readonly (string | number | boolean | null)[],
    deadlineMs: number,
    deadlineReason = "the deadline passed",
  ): Promise<SqlResult & { command: string }> {
    const { promise, resolve, reject } = Promise.withResolvers<SqlResult & { command: string }>();
    const rows: Record<string, SqlValue>[] = [];
    let resultBytes = 0;
    let settled = false;
    let cancelled = false;
    /** Why the statement was cancelled: the error the caller gets (a limit), or the deadline's reason. */
    let stopError: AetherError | undefined;
    let cancelReason: string | undefined;
    let dropTimer: ReturnType<typeof setTimeout> | undefined;
    const query = new pg.Query({ text: sql, values: [...params], queryMode: "extended" } as pg.QueryConfig);
    const finish = (outcome: AetherError | (SqlResult & { command: string })) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadlineTimer);
      clearTimeout(dropTimer);
      if (outcome instanceof AetherError) reject(outcome);
      else resolve(outcome);
    };
    const stop = (error: AetherError | undefined, reason: string) => {
      if (settled || cancelled) return;
      cancelled = true;
      stopError = error;
      cancelReason = reason;
      this.#cancel(connection);
      dropTimer = setTimeout(() => {
        // The server did not stop the statement: this connection is no longer trustworthy.
        connection.destroy();
        finish(
          stopError ??
            new AetherError("timeout", `postgres: ${reason}, and the server did not stop the statement`),
        );
      }, this.settings.cancelGraceMs);
    };
    const capMs = Date.now() + this.settings.statementTimeoutMs + this.settings.cancelGraceMs;
    const stopAtMs = Math.min(deadlineMs, capMs);
    const stopReason = capMs < deadlineMs
      ? `the statement ran past the connector's statement timeout (${this.settings.statementTimeoutMs} ms)`
      : deadlineReason;
    const deadlineTimer = setTimeout(() => stop(undefined, stopReason), Math.max(0, stopAtMs - Date.now()));
    query.on("row", (row: Record<string, SqlValue>) => {
      if (cancelled) return;
      rows.push(row);
      resultBytes += approximateBytes(row);
      const { maxRows } = this.settings.limits;
      if (rows.length > maxRows) {
        stop(
          new AetherError("too_large", `postgres: the result has more than ${maxRows} rows; use LIMIT`),
          "too many rows",
        );
      } else if (resultBytes > this.settings.maxResultBytes) {
        stop(
          new AetherError("too_large", `postgres: the result is over ${this.settings.maxResultBytes} bytes`),
          "too many bytes",
        );
      }
    });
    query.on("end", (result: pg.QueryResult) => {
      if (stopError) return finish(stopError);
      const command = result.command ?? "";
      const writes = command === "INSERT" || command === "UPDATE" || command === "DELETE" ||
        command === "MERGE";
      finish({ rows, rowsAffected: writes ? result.rowCount ?? 0 : 0, command });
    });
    query.on("error", (e: unknown) => {
      if (stopError) return finish(stopError);
      if (connection.broken || isConnectionError(e)) connection.broken = true;
      finish(statementError(this.postgres, sql, e, cancelReason));
    });
    try {
      connection.client.query(query);
    } catch (e) {
      connection.broken = true;
      finish(statementError(this.postgres, sql, e));
    }
    return promise;
  }

  /** Asks the server to cancel what runs on a connection (the protocol's CancelRequest, a new socket). */
  #cancel(connection: Connection): void {
    const processId = connection.processId;
    const secretKey = connection.secretKey;
    if (processId === undefined || secretKey === undefined) return;
    const message = new Uint8Array(16);
    const view = new DataView(message.buffer);
    view.setInt32(0, 16);
    view.setInt32(4, 80877102); // the cancel request code: 1234 << 16 | 5678
    view.setInt32(8, processId);
    view.setInt32(12, secretKey);
    (async () => {
      const socket = await Deno.connect({ hostname: this.postgres.host, port: this.postgres.port });
      try {
        await socket.write(message);
        await socket.read(new Uint8Array(1)).catch(() => null); // the server closes it when done
      } finally {
        try {
          socket.close();
        } catch { /* closed already */ }
      }
    })().catch((e) => this.logger?.warn("postgres: could not send a cancel request", { error: String(e) }));
  }

  #check(sql: unknown, params: unknown): (string | number | boolean | null)[] {
    const { limits } = this.settings;
    if (typeof sql !== "string" || sql.trim() === "") {
      throw new AetherError("bad_request", "postgres: sql must be a non-empty string", { field: "sql" });
    }
    const bytes = new TextEncoder().encode(sql).byteLength;
    if (bytes > limits.maxStatementBytes) {
      throw new AetherError(
        "too_large",
        `postgres: the statement is ${bytes} bytes; the limit is ${limits.maxStatementBytes}`,
        { field: "sql" },
      );
    }
    if (params === undefined || params === null) return [];
    if (!Array.isArray(params)) {
      throw new AetherError(
        "bad_request",
        "postgres: params must be an array of values bound to $1, $2, ...",
        {
          field: "params",
        },
      );
    }
    if (params.length > limits.maxParams) {
      throw new AetherError(
        "bad_request",
        `postgres: ${params.length} params; the limit is ${limits.maxParams}`,
        {
          field: "params",
        },
      );
    }
    return params.map((value: unknown, i: number) => {
      if (value === null || typeof value === "boolean") return value;
      if (typeof value === "number" && Number.isFinite(value)) return value;
      if (typeof value === "string") {
        if (
          value.length * 3 > limits.maxParamBytes &&
          new TextEncoder().encode(value).byteLength > limits.maxParamBytes
        ) {
          throw new AetherError("too_large", `postgres: params[${i}] is over ${limits.maxParamBytes} bytes`, {
            field: `params[${i}]`,
          });
        }
        if (value.includes("\0")) {
          throw new AetherError("bad_request", `postgres: params[${i}] contains a NUL character`, {
            field: `params[${i}]`,
          });
        }
        return value;
      }
      throw new AetherError(
        "bad_request",
        `postgres: params[${i}] must be a string, a finite number, a boolean or null, got ${
          value === undefined ? "undefined" : typeof value === "number" ? String(value) : typeof value
        }`,
        { field: `params[${i}]` },
      );
    });
  }

  #deadline(deadlineMs: unknown): number {
    if (typeof deadlineMs !== "number" || !Number.isFinite(deadlineMs)) {
      throw new AetherError("bad_request", "postgres: deadlineMs must be an epoch time in ms");
    }
    if (deadlineMs <= Date.now()) {
      throw new AetherError("timeout", "postgres: the deadline passed before the call");
    }
    return deadlineMs;
  }

  // --- the pool ---

  async #acquire(deadlineMs: number): Promise<Connection> {
    if (this.#closed) {
      throw new AetherError("unavailable", `postgres ${this.target}: the connector is closed`);
    }
    for (let connection = this.#idle.pop(); connection; connection = this.#idle.pop()) {
      if (!connection.broken) return connection;
      this.#discard(connection);
    }
    if (this.#open < this.settings.poolSize) return await this.#connect(deadlineMs);
    if (this.#waiters.length >= this.settings.maxWaiters) {
      throw new AetherError(
        "overloaded",
        `postgres ${this.target}: all ${this.settings.poolSize} connections are busy and ` +
          `${this.#waiters.length} callers already wait (maxWaiters)`,
      );
    }
    const granted = await this.#wait(deadlineMs);
    if (granted) return granted;
    if (this.#closed) {
      throw new AetherError("unavailable", `postgres ${this.target}: the connector is closed`);
    }
    return await this.#connect(deadlineMs);
  }

  /** Waits for a released connection or a freed slot; `overloaded` when the deadline comes first. */
  #wait(deadlineMs: number): Promise<Connection | undefined> {
    const startedMs = Date.now();
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          const index = this.#waiters.indexOf(waiter);
          if (index >= 0) this.#waiters.splice(index, 1);
          this.#counters.waitTimeoutsTotal++;
          reject(
            new AetherError(
              "overloaded",
              `postgres ${this.target}: all ${this.settings.poolSize} pooled connections stayed busy for ` +
                `${Date.now() - startedMs} ms, until the caller's deadline (raise the pool size or shorten ` +
                `transactions)`,
            ),
          );
        }, Math.max(0, deadlineMs - Date.now())),
      };
      this.#waiters.push(waiter);
    });
  }

  async #connect(deadlineMs: number): Promise<Connection> {
    this.#open++;
    const timeoutMs = Math.max(1, Math.min(this.settings.connectTimeoutMs, deadlineMs - Date.now()));
    const client = new pg.Client(this.#clientConfig(timeoutMs));
    const connection = new Connection(client);
    try {
      await client.connect();
      this.#counters.connectsTotal++;
      return connection;
    } catch (e) {
      this.#counters.connectFailuresTotal++;
      this.#open--;
      connection.broken = true;
      await client.end().catch(() => {});
      this.#handOnSlot();
      const error = connectError(this.postgres, e);
      this.logger?.warn("postgres: connect failed", { target: this.target, error: error.message });
      throw error;
    }
  }

  #clientConfig(connectTimeoutMs: number): pg.ClientConfig {
    const { host, port, user, database, sslMode } = this.postgres;
    const password = this.postgres.password;
    // Every value is given explicitly: the driver falls back to PG* environment variables for missing ones,
    // and the node may read only PGBINARY and PGREPLICATION (two the driver always looks at).
    return {
      host,
      port,
      user,
      database,
      // A function keeps the password out of the driver's enumerable config (and out of any dump of it).
      password: () => password,
      ssl: sslMode === "disable" ? false : sslMode === "require" ? { rejectUnauthorized: false } : true,
      sslnegotiation: "postgres",
      client_encoding: "UTF8",
      application_name: "aether",
      options: "-c DateStyle=ISO",
      statement_timeout: this.settings.statementTimeoutMs,
      connectionTimeoutMillis: connectTimeoutMs,
      keepAlive: true,
      types: { getTypeParser: typeParser as pg.CustomTypesConfig["getTypeParser"] },
    };
  }

  #release(connection: Connection): void {
    if (connection.broken || this.#closed) {
      this.#discard(connection);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) {
      clearTimeout(waiter.timer);
      waiter.grant(connection);
      return;
    }
    connection.idleSinceMs = Date.now();
    this.#idle.push(connection);
  }

  /** Closes a connection that cannot be reused and lets a waiter open a new one in its place. */
  #discard(connection: Connection): void {
    this.#open--;
    connection.close();
    this.#handOnSlot();
  }

  #handOnSlot(): void {
    const waiter = this.#waiters.shift();
    if (!waiter) return;
    clearTimeout(waiter.timer);
    waiter.grant(undefined);
  }

  /** Closes every idle connection (the server ended sessions: the rest are likely gone too). */
  #dropIdle(): void {
    for (const connection of this.#idle.splice(0)) {
      this.#open--;
      connection.close();
    }
  }

  #closeIdle(): void {
    const cutoff = Date.now() - this.settings.idleTimeoutMs;
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const connection = this.#idle[i];
      if (connection.broken || connection.idleSinceMs < cutoff) {
        this.#idle.splice(i, 1);
        this.#open--;
        connection.close();
      }
    }
  }

  // --- transactions ---

  #transaction(id: string): OpenTransaction {
    const tx = typeof id === "string" ? this.#transactions.get(id) : undefined;
    if (!tx) throw this.#gone(id);
    return tx;
  }

  #gone(id: string): AetherError {
    const why = typeof id === "string" ? this.#ended.get(id) : undefined;
    if (why?.startsWith("it passed its deadline")) {
      return new AetherError("timeout", `postgres: transaction ${id} is over: ${why}`);
    }
    if (why) return new AetherError("not_found", `postgres: transaction ${id} is over: ${why}`);
    return new AetherError("not_found", `postgres: no open transaction ${String(id)} on this node`);
  }

  #serialized<T>(tx: OpenTransaction, step: () => Promise<T>): Promise<T> {
    const next = tx.chain.then(step);
    tx.chain = next.catch(() => {});
    return next;
  }

  /** Forgets an open transaction (remembering why), and releases its connection unless told not to. */
  #finish(tx: OpenTransaction, why: string, options: { release: boolean } = { release: true }): void {
    if (!this.#transactions.delete(tx.id)) return;
    clearTimeout(tx.timer);
    this.#ended.set(tx.id, why);
    if (this.#ended.size > ENDED_TRANSACTIONS_KEPT) this.#ended.delete(this.#ended.keys().next().value!);
    if (options.release) this.#release(tx.connection);
  }

  /** The transaction's deadline: what runs on it is cancelled by its own timer; then it is rolled back. */
  #expire(id: string): void {
    const tx = this.#transactions.get(id);
    if (!tx) return;
    this.#finish(tx, "it passed its deadline and was rolled back", { release: false });
    tx.chain = tx.chain.then(() => this.#rollbackAndRelease(tx.connection));
  }

  async #rollbackAndRelease(connection: Connection): Promise<void> {
    try {
      if (!connection.broken) {
        await this.#run(connection, "ROLLBACK", [], Date.now() + this.settings.cancelGraceMs + 1_000);
      }
    } catch (e) {
      // A connection whose rollback failed may still be inside the transaction: never reuse it.
      connection.broken = true;
      this.logger?.warn("postgres: rollback failed", { target: this.target, error: String(e) });
    } finally {
      this.#release(connection);
    }
  }
}

// --- result values ---

const identity = (text: string) => text;

/** How column values are turned into JSON scalars, by the type's OID (everything else stays text). */
const PARSERS: Record<number, (text: string) => SqlValue> = {
  16: (text) => text === "t", // bool
  21: Number, // int2
  23: Number, // int4
  26: Number, // oid
  700: finiteOrText, // float4
  701: finiteOrText, // float8
  20: (text) => Number.isSafeInteger(Number(text)) ? Number(text) : text, // int8
  1700: (text) => exactDecimal(text) ? Number(text) : text, // numeric
  17: byteaToBase64, // bytea
};

function typeParser(oid: number, format?: string): (text: string) => SqlValue {
  if (format === "binary") return identity;
  return PARSERS[oid] ?? identity;
}

function finiteOrText(text: string): SqlValue {
  const value = Number(text);
  return Number.isFinite(value) ? value : text;
}

/** True when a numeric's text survives a round trip through a double (at most 15 significant digits). */
function exactDecimal(text: string): boolean {
  if (!/^-?\d+(\.\d+)?$/.test(text)) return false; // NaN, Infinity
  const digits = text.replace(/^-/, "").replace(".", "").replace(/^0+/, "").replace(/0+$/, "");
  return digits.length <= 15;
}

/** bytea's text form is `\x` and hex; the API returns base64, like the embedded database's blobs. */
function byteaToBase64(text: string): string {
  if (!text.startsWith("\\x")) return text;
  const hex = text.slice(2);
  let binary = "";
  for (let i = 0; i < hex.length; i += 2) binary += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return btoa(binary);
}

function approximateBytes(row: Record<string, SqlValue>): number {
  let bytes = 16;
  for (const [name, value] of Object.entries(row)) {
    bytes += name.length + (typeof value === "string" ? value.length : 8);
  }
  return bytes;
}
