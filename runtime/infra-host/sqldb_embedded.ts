/**
 * The embedded SQL database: statements that write are ordered by consensus and applied to a SQLite copy on
 * every member; reads run on the local copy (after a consensus barrier when linearizable).
 *
 * - **The statement log** is the consensus KV's `sqldb/log/{group}/{db}/{id}` (one key per write, JSON
 *   `LogEntry`); its put's revision is its position. Every member applies the entries of a batch inside the KV
 *   listener (synchronously, in revision order, one SQLite transaction per database and batch) and records the
 *   revision it applied in the same SQLite transaction (`_aether_meta`), so after a crash it resumes exactly
 *   where its file ends. `kv.write` resolves after the listener ran, so the proposer reads its outcome
 *   (rows, rowsAffected, or the SQL error) from the apply.
 * - **Determinism**: the same checks (sqldb_guard.ts) run at apply on every member; a statement that fails
 *   fails everywhere (its entry is rolled back to a savepoint on every member, the proposer gets the error).
 * - **Transactions** are optimistic: `begin` takes a read revision R (after a barrier); statements run at once
 *   on the local copy inside BEGIN ... ROLLBACK with the transaction's earlier writes replayed first (so a
 *   transaction reads its own writes and sees SQL errors at once); writes are buffered; `commit` proposes them
 *   as one entry carrying R and every table read or written. Each member refuses the entry (`conflict`) when
 *   one of those tables, or the schema, was written by an entry after R; otherwise applies all statements or
 *   none. Committed transactions are serializable (each one's reads equal the state at its commit position);
 *   reads inside a transaction that ends in `conflict` may have seen a mix of states.
 * - **The log is bounded** (`maxLogEntries` per database): the leader deletes the oldest entries beyond it and
 *   records the highest deleted revision in `sqldb/pruned/{group}/{db}`. A member whose copy ends below that
 *   mark (it was down while more than `maxLogEntries` writes went by, or it is new) copies the whole database
 *   from a member that has applied past the mark (mesh channel `sqldb`, SQLite's serialized image in chunks),
 *   then applies the log entries after the copy's revision. Until it has, it answers calls for that database
 *   with `unavailable`.
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AetherError, type Logger, type NodeId } from "../core/mod.ts";
import type { KvEvent, KvState } from "../kv/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { Mesh } from "../net/mod.ts";
import type { SqlBackend, SqlQueryOptions, SqlResult, SqlValue } from "./sql_backend.ts";
import {
  authorize,
  checkStatement,
  DEFAULT_SQL_LIMITS,
  installDeterministicFunctions,
  jsonRow,
  newAccess,
  SCHEMA_TABLE,
  sqlError,
  type SqlLimits,
  type StatementAccess,
} from "./sqldb_guard.ts";

export const SQLDB_LOG_PREFIX = "sqldb/log/";
export const SQLDB_PRUNED_PREFIX = "sqldb/pruned/";
export const SQLDB_CHANNEL = "sqldb";

export interface SqlSettings {
  limits: SqlLimits;
  /** Log entries kept per database before the leader prunes the oldest. */
  maxLogEntries: number;
  /**
   * Bytes of log entries kept per database, and for all databases together. Small on purpose: the consensus
   * KV is held in memory on every member and a member that catches up by snapshot receives it whole.
   */
  maxLogBytes: number;
  maxTotalLogBytes: number;
  /** Bytes of one log entry (a transaction's statements and parameters). */
  maxEntryBytes: number;
  /** Statements in one transaction. */
  maxTransactionStatements: number;
  /** Databases per group. */
  maxDatabasesPerGroup: number;
  /** How often the leader looks for logs to prune. */
  pruneIntervalMs: number;
}

export const DEFAULT_SQL_SETTINGS: SqlSettings = {
  limits: DEFAULT_SQL_LIMITS,
  maxLogEntries: 2_000,
  maxLogBytes: 1024 * 1024,
  maxTotalLogBytes: 2 * 1024 * 1024,
  maxEntryBytes: 256 * 1024,
  maxTransactionStatements: 500,
  maxDatabasesPerGroup: 64,
  pruneIntervalMs: 2_000,
};

interface Statement {
  sql: string;
  params: (string | number | null)[];
}

/** One write in the log. */
export type LogEntry =
  | { id: string; kind: "exec"; statement: Statement }
  | { id: string; kind: "txn"; readRevision: number; tables: string[]; statements: Statement[] }
  | { id: string; kind: "migrate"; migrations: string[] };

type Outcome =
  | { ok: true; result: SqlResult; applied?: number }
  | { ok: false; code: "bad_request" | "conflict" | "forbidden" | "too_large"; message: string };

/** `{group}/{db}`: the database's name in keys and files. */
export function dbKeyOf(group: string, db: string): string {
  return `${group}/${db}`;
}

export interface SqlReplicaOptions {
  self: NodeId;
  members: readonly NodeId[];
  dataDir: string;
  log: Logger;
  kv: KvAccess;
  state(): KvState;
  mesh: Mesh;
  isConnected(node: NodeId): boolean;
  isLeader(): boolean;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  onReset(listener: () => void): () => void;
  settings?: Partial<SqlSettings>;
}

/** Deno's node:sqlite has these; the @types/node it type-checks against does not list them. */
interface SqliteExtras {
  enableDefensive(on: boolean): void;
  setAuthorizer(
    callback: (action: number, arg1: string | null, arg2: string | null, dbName: string | null) => number,
  ): void;
}

/** One database's copy on this member. */
class LocalDb {
  readonly conn: DatabaseSync;
  readonly #plain: DatabaseSync;
  /** The statement being prepared for a slice, collecting what the authorizer saw (null: the runtime's own). */
  access: StatementAccess | null = null;
  applied: number;
  /** Set while the copy ends below the pruned mark: waits for a copy from another member. */
  stale = false;
  readonly #getMeta: StatementSync;
  readonly #setMeta: StatementSync;
  readonly #tableRevision: StatementSync;
  readonly #setTableRevision: StatementSync;

  constructor(readonly key: string, readonly path: string) {
    this.conn = new DatabaseSync(path, { enableForeignKeyConstraints: true });
    this.#plain = new DatabaseSync(":memory:");
    this.conn.exec("PRAGMA journal_mode = WAL");
    // The same bounds on every member (so a statement that passes one passes all): values and rows up to
    // 4 MiB, no attached databases, shallow triggers, and the file's size (SQLITE_FULL beyond, every member).
    const limits = (this.conn as unknown as { limits: Record<string, number> }).limits;
    limits.length = MAX_VALUE_BYTES;
    limits.attach = 0;
    limits.triggerDepth = 16;
    this.conn.exec(`PRAGMA max_page_count = ${Math.floor(MAX_DATABASE_BYTES / 4096)}`);
    // The log in consensus is durable: a commit lost to a power cut is applied again from it.
    this.conn.exec("PRAGMA synchronous = NORMAL");
    this.conn.exec(`CREATE TABLE IF NOT EXISTS _aether_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS _aether_tables (name TEXT PRIMARY KEY, revision INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS _aether_migrations (idx INTEGER PRIMARY KEY, digest TEXT NOT NULL,
        sql TEXT NOT NULL, revision INTEGER NOT NULL)`);
    // Present in Deno's node:sqlite, missing from the @types/node it type-checks against.
    const conn = this.conn as unknown as SqliteExtras;
    conn.enableDefensive(true);
    conn.setAuthorizer((action, a1, a2, dbName) => authorize(this.access, action, a1, a2, dbName));
    installDeterministicFunctions(this.conn, this.#plain);
    this.#getMeta = this.conn.prepare("SELECT value FROM _aether_meta WHERE key = ?");
    this.#setMeta = this.conn.prepare("INSERT OR REPLACE INTO _aether_meta (key, value) VALUES (?, ?)");
    this.#tableRevision = this.conn.prepare("SELECT revision FROM _aether_tables WHERE name = ?");
    this.#setTableRevision = this.conn.prepare(
      "INSERT OR REPLACE INTO _aether_tables (name, revision) VALUES (?, ?)",
    );
    this.applied = this.#meta("applied");
  }

  #meta(key: string): number {
    const row = this.#getMeta.get(key) as { value: number } | undefined;
    return row ? Number(row.value) : 0;
  }

  setApplied(revision: number): void {
    this.#setMeta.run("applied", revision);
    this.applied = revision;
  }

  tableRevision(table: string): number {
    const row = this.#tableRevision.get(table) as { revision: number } | undefined;
    return row ? Number(row.revision) : 0;
  }

  touchTables(tables: Iterable<string>, revision: number): void {
    for (const table of tables) this.#setTableRevision.run(table, revision);
  }

  /** Prepares and runs one slice statement; throws the caller's error. */
  run(where: string, statement: Statement, maxRows: number): { result: SqlResult; access: StatementAccess } {
    const access = newAccess();
    let prepared: StatementSync;
    this.access = access;
    try {
      prepared = this.conn.prepare(statement.sql);
    } catch (e) {
      throw sqlError(where, statement.sql, e, access);
    } finally {
      this.access = null;
    }
    if (access.denied.length > 0) throw sqlError(where, statement.sql, new Error("denied"), access);
    try {
      prepared.setReadBigInts(true);
      if (prepared.columns().length > 0) {
        const rows: Record<string, SqlValue>[] = [];
        let bytes = 0;
        // all(), not iterate(): Deno 2.9.6's iterate() ends silently on a step error (a constraint, a value
        // too big), which would turn a failed statement into an empty success. The limits are checked after.
        for (const row of prepared.all(...statement.params)) {
          if (rows.length >= maxRows) {
            throw new AetherError(
              "too_large",
              `${where}: more than ${maxRows} rows; select fewer (LIMIT/OFFSET or a narrower WHERE)`,
            );
          }
          const json = jsonRow(row as Record<string, unknown>);
          bytes += approximateBytes(json);
          if (bytes > MAX_RESULT_BYTES) {
            throw new AetherError(
              "too_large",
              `${where}: the result is over ${MAX_RESULT_BYTES} bytes; select fewer rows or columns`,
            );
          }
          rows.push(json);
        }
        const rowsAffected = access.writes.size > 0 ? this.#changes() : 0;
        return { result: { rows, rowsAffected }, access };
      }
      const outcome = prepared.run(...statement.params);
      const result: SqlResult = { rows: [], rowsAffected: Number(outcome.changes) };
      if (access.writes.size > 0 && outcome.changes > 0) {
        const id = outcome.lastInsertRowid;
        result.lastInsertId = typeof id === "bigint" && !Number.isSafeInteger(Number(id))
          ? id.toString()
          : Number(id);
      }
      return { result, access };
    } catch (e) {
      throw sqlError(where, statement.sql, e);
    }
  }

  #changes(): number {
    const row = this.conn.prepare("SELECT changes() AS c").get() as { c: number };
    return Number(row.c);
  }

  migrationShas(): Map<number, string> {
    const rows = this.conn.prepare("SELECT idx, digest FROM _aether_migrations").all() as {
      idx: number;
      digest: string;
    }[];
    return new Map(rows.map((r) => [Number(r.idx), r.digest]));
  }

  recordMigration(idx: number, sha: string, sql: string, revision: number): void {
    this.conn.prepare("INSERT INTO _aether_migrations (idx, digest, sql, revision) VALUES (?, ?, ?, ?)")
      .run(idx, sha, sql, revision);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
    this.#plain.close();
  }
}

interface OpenTransaction {
  id: string;
  key: string;
  readRevision: number;
  statements: Statement[];
  bytes: number;
  tables: Set<string>;
  timer: ReturnType<typeof setTimeout>;
}

/** The embedded databases of this member: the applier, the proposer and the transactions. */
export class SqlReplica {
  readonly #o: SqlReplicaOptions;
  readonly #settings: SqlSettings;
  readonly #log: Logger;
  readonly #dir: string;
  readonly #dbs = new Map<string, LocalDb>();
  readonly #pending = new Map<string, (outcome: Outcome) => void>();
  readonly #transactions = new Map<string, OpenTransaction>();
  readonly #offs: (() => void)[] = [];
  readonly #copies = new Map<
    string,
    { chunks: Uint8Array[]; revision: number; total: number; from: NodeId }
  >();
  readonly #copyAskedAtMs = new Map<string, number>();
  /** The barrier running now, and the one the reads that arrived meanwhile wait for. */
  #barrierInFlight: Promise<void> | undefined;
  #nextBarrier: Promise<void> | undefined;
  #pruneTimer: ReturnType<typeof setInterval> | undefined;
  #counter = 0;
  #stopped = false;

  constructor(options: SqlReplicaOptions) {
    this.#o = options;
    this.#settings = { ...DEFAULT_SQL_SETTINGS, ...options.settings };
    this.#log = options.log.with({ component: "sqldb" });
    this.#dir = join(options.dataDir, "sqldb");
    mkdirSync(this.#dir, { recursive: true });
    this.#openExisting();
    this.#catchUp();
    this.#offs.push(options.onEvents((events) => this.#onEvents(events)));
    this.#offs.push(options.onReset(() => this.#catchUp()));
    this.#offs.push(options.mesh.onMessage(SQLDB_CHANNEL, (from, message) => this.#onMesh(from, message)));
    this.#pruneTimer = setInterval(() => {
      void this.#prune();
      // A stale copy asks again (peers may not have been connected when it first asked).
      for (const db of this.#dbs.values()) if (db.stale) this.#requestCopy(db);
    }, this.#settings.pruneIntervalMs);
  }

  get settings(): SqlSettings {
    return this.#settings;
  }

  /** The databases this member holds a copy of, with the revision applied. */
  status(): Array<{ database: string; appliedRevision: number; stale: boolean }> {
    return [...this.#dbs.values()].map((db) => ({
      database: db.key,
      appliedRevision: db.applied,
      stale: db.stale,
    }));
  }

  /** The database's statement log as consensus keeps it now: entries, bytes, the highest pruned revision. */
  logStats(key: string): { entries: number; bytes: number; prunedThroughRevision: number } {
    const entries = this.#o.state().range(`${SQLDB_LOG_PREFIX}${key}/`);
    return {
      entries: entries.length,
      bytes: entries.reduce((n, e) => n + e.value.byteLength, 0),
      prunedThroughRevision: this.#prunedThrough(key),
    };
  }

  /** Names (`group/db`) of every embedded database the log or this member knows. */
  databases(): string[] {
    const names = new Set(this.#dbs.keys());
    for (const entry of this.#o.state().range(SQLDB_LOG_PREFIX)) names.add(logDbKey(entry.key));
    return [...names].sort();
  }

  openTransactions(group?: string): number {
    let n = 0;
    for (const t of this.#transactions.values()) if (!group || t.key.startsWith(`${group}/`)) n++;
    return n;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#pruneTimer);
    for (const off of this.#offs) off();
    for (const t of this.#transactions.values()) clearTimeout(t.timer);
    this.#transactions.clear();
    for (const db of this.#dbs.values()) db.close();
    this.#dbs.clear();
  }

  // ------------------------------------------------------------------------------------------- the calls

  async query(key: string, sql: unknown, params: unknown, options: SqlQueryOptions): Promise<SqlResult> {
    const where = `db.query(${key})`;
    const statement = checkStatement(where, sql, params, this.#settings.limits);
    const db = await this.#usable(key, options.deadlineMs);
    let access: StatementAccess;
    try {
      access = this.#inspect(db, where, statement);
    } catch (e) {
      // This copy may lag behind a CREATE TABLE applied elsewhere: catch up once, then decide.
      if (!/no such (table|column)/.test(String((e as Error).message))) throw e;
      await this.#barrier(options.deadlineMs);
      access = this.#inspect(db, where, statement);
    }
    if (access.writes.size === 0) {
      if (options.consistency !== "local") await this.#barrier(options.deadlineMs);
      return this.#usableNow(key).run(where, statement, this.#settings.limits.maxRows).result;
    }
    const outcome = await this.#propose(
      key,
      { id: this.#newId(), kind: "exec", statement },
      options.deadlineMs,
    );
    return outcome.result;
  }

  async begin(key: string, deadlineMs: number): Promise<string> {
    await this.#usable(key, deadlineMs);
    await this.#barrier(deadlineMs);
    const id = `tx-${crypto.randomUUID()}`;
    const timer = setTimeout(() => {
      if (this.#transactions.delete(id)) {
        this.#log.info("a transaction passed its deadline; rolled back", { id });
      }
    }, Math.max(0, deadlineMs - Date.now()));
    this.#transactions.set(id, {
      id,
      key,
      readRevision: this.#o.state().revision,
      statements: [],
      bytes: 0,
      tables: new Set([SCHEMA_TABLE]),
      timer,
    });
    return id;
  }

  queryIn(key: string, transactionId: string, sql: unknown, params: unknown): SqlResult {
    const where = `db.transaction(${key})`;
    const tx = this.#transaction(key, transactionId);
    const statement = checkStatement(where, sql, params, this.#settings.limits);
    if (tx.statements.length >= this.#settings.maxTransactionStatements) {
      throw new AetherError(
        "too_large",
        `${where}: more than ${this.#settings.maxTransactionStatements} writing statements in one transaction`,
      );
    }
    const db = this.#usableNow(key);
    // Everything below is synchronous: no entry is applied while the transaction's writes are replayed.
    db.conn.exec("BEGIN");
    let ran: { result: SqlResult; access: StatementAccess };
    try {
      for (const earlier of tx.statements) db.run(where, earlier, Number.MAX_SAFE_INTEGER);
      ran = db.run(where, statement, this.#settings.limits.maxRows);
    } finally {
      db.conn.exec("ROLLBACK");
    }
    for (const table of ran.access.reads) tx.tables.add(table);
    for (const table of ran.access.writes) tx.tables.add(table);
    if (ran.access.writes.size > 0) {
      const bytes = statementBytes(statement);
      if (tx.bytes + bytes > this.#settings.maxEntryBytes) {
        throw new AetherError(
          "too_large",
          `${where}: the transaction's writes exceed ${this.#settings.maxEntryBytes} bytes`,
        );
      }
      tx.bytes += bytes;
      tx.statements.push(statement);
    }
    return ran.result;
  }

  async commit(key: string, transactionId: string, deadlineMs: number): Promise<void> {
    const tx = this.#transaction(key, transactionId);
    this.#end(tx);
    if (tx.statements.length === 0) {
      // Read-only: its reads were of one state when no table it read changed after R (checked locally, where
      // every read ran).
      const db = this.#usableNow(key);
      for (const table of tx.tables) {
        if (db.tableRevision(table) > tx.readRevision) throw conflictError(key, table);
      }
      return;
    }
    await this.#propose(key, {
      id: this.#newId(),
      kind: "txn",
      readRevision: tx.readRevision,
      tables: [...tx.tables].sort(),
      statements: tx.statements,
    }, deadlineMs);
  }

  rollback(key: string, transactionId: string): void {
    this.#end(this.#transaction(key, transactionId));
  }

  /**
   * Applies the migrations not applied yet, in order, once across the cluster: each is recorded with its
   * digest (FNV-1a 64) in the database; one changed after it was applied is refused. Returns how many this call applied.
   */
  async migrate(
    key: string,
    migrations: unknown,
    deadlineMs: number,
  ): Promise<{ applied: number; total: number }> {
    if (!Array.isArray(migrations) || migrations.length > 1000) {
      throw new AetherError(
        "bad_request",
        `db.migrate(${key}): migrations must be an array of up to 1000 statements`,
        {
          field: "migrations",
        },
      );
    }
    const list = migrations.map((m, i) => checkStatement(`db.migrate(${key}) migrations[${i}]`, m, []).sql);
    const db = await this.#usable(key, deadlineMs);
    await this.#barrier(deadlineMs);
    const recorded = db.migrationShas();
    const shas = list.map(syncSha);
    checkRecorded(key, recorded, shas);
    if (list.every((_, i) => recorded.has(i))) return { applied: 0, total: list.length };
    const outcome = await this.#propose(
      key,
      { id: this.#newId(), kind: "migrate", migrations: list },
      deadlineMs,
    );
    return { applied: outcome.applied ?? 0, total: list.length };
  }

  /** A SqlBackend over one database (`group/db`). */
  backend(key: string): SqlBackend {
    return {
      kind: "embedded",
      query: (sql, params, options) => this.query(key, sql, params, options),
      begin: (options) => this.begin(key, options.deadlineMs),
      queryIn: (id, sql, params) => Promise.resolve().then(() => this.queryIn(key, id, sql, params)),
      commit: (id) => this.commit(key, id, Date.now() + 10_000),
      rollback: (id) => Promise.resolve(this.rollback(key, id)),
      close: () => Promise.resolve(),
    };
  }

  // ------------------------------------------------------------------------------------------- proposing

  #newId(): string {
    return `${this.#o.self}-${Date.now().toString(36)}-${(++this.#counter).toString(36)}`;
  }

  async #propose(key: string, entry: LogEntry, deadlineMs: number): Promise<Outcome & { ok: true }> {
    const value = new TextEncoder().encode(JSON.stringify(entry));
    if (value.byteLength > this.#settings.maxEntryBytes) {
      throw new AetherError(
        "too_large",
        `db(${key}): the write is ${value.byteLength} bytes; the limit is ${this.#settings.maxEntryBytes}`,
      );
    }
    this.#checkDatabaseCount(key);
    let outcome: Outcome | undefined;
    this.#pending.set(entry.id, (o) => outcome = o);
    try {
      const timeoutMs = Math.max(1, deadlineMs - Date.now());
      await this.#o.kv.write({ type: "put", key: `${SQLDB_LOG_PREFIX}${key}/${entry.id}`, value }, {
        timeoutMs,
      });
    } catch (e) {
      throw new AetherError(
        "unavailable",
        `db(${key}): the write may or may not have been applied: ${(e as Error).message}`,
      );
    } finally {
      this.#pending.delete(entry.id);
    }
    if (!outcome) {
      throw new AetherError(
        "unavailable",
        `db(${key}): the write was ordered but this member has not applied it`,
      );
    }
    if (!outcome.ok) throw new AetherError(outcome.code, outcome.message);
    return outcome;
  }

  #checkDatabaseCount(key: string): void {
    if (this.#dbs.has(key)) return;
    const group = key.slice(0, key.lastIndexOf("/"));
    const known = this.databases();
    if (known.includes(key)) return; // in the log already: not a new database
    const count = known.filter((k) => k.startsWith(`${group}/`)).length;
    if (count >= this.#settings.maxDatabasesPerGroup) {
      throw new AetherError(
        "overloaded",
        `db(${key}): the group ${group} has ${count} databases; the limit is ${this.#settings.maxDatabasesPerGroup}`,
      );
    }
  }

  /**
   * A consensus barrier that starts after the call: reads that arrive while one is in flight share the next
   * one (it starts after all of them arrived, so it orders after every write acknowledged before each read).
   */
  #barrier(deadlineMs: number): Promise<void> {
    if (!this.#nextBarrier) {
      const start = this.#barrierInFlight ?? Promise.resolve();
      this.#nextBarrier = start.catch(() => {}).then(() => {
        this.#barrierInFlight = this.#nextBarrier;
        this.#nextBarrier = undefined;
        return this.#o.kv.write({ type: "barrier" }, { timeoutMs: 5_000 }).then(() => {});
      }).finally(() => {
        this.#barrierInFlight = undefined;
      });
    }
    const barrier = this.#nextBarrier;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new AetherError("timeout", "db: the linearizable read's barrier passed the call's deadline"),
          ),
        Math.max(1, deadlineMs - Date.now()),
      );
    });
    return Promise.race([barrier, timeout]).catch((e) => {
      if (e instanceof AetherError && e.code === "timeout") throw e;
      throw new AetherError("unavailable", `db: a linearizable read needs a quorum: ${(e as Error).message}`);
    }).finally(() => clearTimeout(timer));
  }

  #inspect(db: LocalDb, where: string, statement: Statement): StatementAccess {
    const access = newAccess();
    db.access = access;
    try {
      db.conn.prepare(statement.sql);
    } catch (e) {
      throw sqlError(where, statement.sql, e, access);
    } finally {
      db.access = null;
    }
    if (access.denied.length > 0) throw sqlError(where, statement.sql, new Error("denied"), access);
    return access;
  }

  #transaction(key: string, id: string): OpenTransaction {
    const tx = this.#transactions.get(id);
    if (!tx || tx.key !== key) {
      throw new AetherError(
        "not_found",
        `db(${key}): no open transaction ${JSON.stringify(id)} (ended or expired)`,
      );
    }
    return tx;
  }

  #end(tx: OpenTransaction): void {
    clearTimeout(tx.timer);
    this.#transactions.delete(tx.id);
  }

  // ------------------------------------------------------------------------------------------- applying

  #pathOf(key: string): string {
    return join(this.#dir, `${encodeURIComponent(key)}.sqlite`);
  }

  #db(key: string): LocalDb {
    let db = this.#dbs.get(key);
    if (!db) {
      db = new LocalDb(key, this.#pathOf(key));
      this.#dbs.set(key, db);
    }
    return db;
  }

  #openExisting(): void {
    for (const file of Deno.readDirSync(this.#dir)) {
      if (!file.isFile || !file.name.endsWith(".sqlite")) continue;
      const key = decodeURIComponent(file.name.slice(0, -".sqlite".length));
      try {
        this.#db(key);
      } catch (e) {
        this.#log.error("sqldb: a database file could not be opened", { file: file.name, error: String(e) });
      }
    }
  }

  /** A copy that may serve: waits (until the deadline) for a copy from another member when stale. */
  async #usable(key: string, deadlineMs: number): Promise<LocalDb> {
    // A call naming a new database (a read creates its empty file here) counts against the group's limit.
    this.#checkDatabaseCount(key);
    // An installed copy replaces the LocalDb: look it up again every round.
    for (let db = this.#db(key); db.stale && Date.now() < deadlineMs; db = this.#db(key)) {
      this.#requestCopy(db);
      await new Promise((r) => setTimeout(r, 50));
    }
    return this.#usableNow(key);
  }

  #usableNow(key: string): LocalDb {
    const db = this.#db(key);
    if (db.stale) {
      throw new AetherError(
        "unavailable",
        `db(${key}): this member's copy is behind the kept statement log and is being copied from another member`,
      );
    }
    return db;
  }

  #onEvents(events: readonly KvEvent[]): void {
    if (this.#stopped) return;
    const byDb = new Map<string, { revision: number; value: Uint8Array }[]>();
    for (const event of events) {
      if (event.type !== "put" || !event.key.startsWith(SQLDB_LOG_PREFIX)) continue;
      const key = logDbKey(event.key);
      let list = byDb.get(key);
      if (!list) byDb.set(key, list = []);
      list.push({ revision: event.revision, value: event.value! });
    }
    for (const [key, entries] of byDb) this.#applyAll(key, entries);
  }

  /** On start and after a snapshot: applies every kept entry above each copy's revision. */
  #catchUp(): void {
    const byDb = new Map<string, { revision: number; value: Uint8Array }[]>();
    for (const entry of this.#o.state().range(SQLDB_LOG_PREFIX)) {
      const key = logDbKey(entry.key);
      let list = byDb.get(key);
      if (!list) byDb.set(key, list = []);
      list.push({ revision: entry.modRevision, value: entry.value });
    }
    for (const key of new Set([...byDb.keys(), ...this.#dbs.keys()])) {
      const list = (byDb.get(key) ?? []).sort((a, b) => a.revision - b.revision);
      const db = this.#db(key);
      const pruned = this.#prunedThrough(key);
      if (db.applied < pruned) {
        db.stale = true;
        this.#log.info("sqldb: copy is behind the kept log; asking a member for a copy", {
          database: key,
          applied: db.applied,
          pruned,
        });
        this.#requestCopy(db);
        continue;
      }
      this.#applyAll(key, list);
    }
  }

  #prunedThrough(key: string): number {
    const entry = this.#o.state().get(`${SQLDB_PRUNED_PREFIX}${key}`);
    return entry ? Number(new TextDecoder().decode(entry.value)) || 0 : 0;
  }

  #applyAll(key: string, entries: { revision: number; value: Uint8Array }[]): void {
    let db: LocalDb;
    try {
      db = this.#db(key);
    } catch (e) {
      this.#log.error("sqldb: cannot open a database copy", { database: key, error: String(e) });
      return;
    }
    if (db.stale) return; // the copy will bring these; the log after the copy's revision is applied then
    const fresh = entries.filter((e) => e.revision > db.applied);
    if (fresh.length === 0) return;
    db.conn.exec("BEGIN");
    try {
      for (const { revision, value } of fresh) {
        let entry: LogEntry;
        try {
          entry = JSON.parse(new TextDecoder().decode(value)) as LogEntry;
        } catch {
          this.#log.warn("sqldb: an unreadable log entry was skipped", { database: key, revision });
          continue;
        }
        const outcome = this.#applyEntry(db, entry, revision);
        this.#pending.get(entry.id)?.(outcome);
      }
      db.setApplied(fresh[fresh.length - 1].revision);
      db.conn.exec("COMMIT");
    } catch (e) {
      // Not a statement's error (those are rolled back to their savepoint): the disk or the file failed.
      try {
        db.conn.exec("ROLLBACK");
      } catch { /* nothing open */ }
      db.applied = Number(
        db.conn.prepare("SELECT value FROM _aether_meta WHERE key = 'applied'").get()?.value ?? 0,
      );
      this.#log.error("sqldb: applying the log failed; retried with the next entry or restart", {
        database: key,
        error: String(e),
      });
    }
  }

  #applyEntry(db: LocalDb, entry: LogEntry, revision: number): Outcome {
    if (entry.kind === "txn") {
      for (const table of entry.tables) {
        if (db.tableRevision(table) > entry.readRevision) {
          const e = conflictError(db.key, table);
          return { ok: false, code: "conflict", message: e.message };
        }
      }
    }
    db.conn.exec("SAVEPOINT entry");
    try {
      const outcome = this.#runEntry(db, entry, revision);
      db.conn.exec("RELEASE entry");
      return outcome;
    } catch (e) {
      db.conn.exec("ROLLBACK TO entry");
      db.conn.exec("RELEASE entry");
      const error = e instanceof AetherError ? e : sqlError(`db(${db.key})`, "", e);
      const code = error.code === "conflict" || error.code === "forbidden" || error.code === "too_large"
        ? error.code
        : "bad_request";
      return { ok: false, code, message: error.message };
    }
  }

  #runEntry(db: LocalDb, entry: LogEntry, revision: number): Outcome {
    const maxRows = this.#settings.limits.maxRows;
    const where = `db(${db.key})`;
    if (entry.kind === "exec") {
      const { result, access } = db.run(where, entry.statement, maxRows);
      db.touchTables(access.writes, revision);
      return { ok: true, result };
    }
    if (entry.kind === "txn") {
      let rowsAffected = 0;
      for (const statement of entry.statements) {
        const { result, access } = db.run(where, statement, maxRows);
        rowsAffected += result.rowsAffected;
        db.touchTables(access.writes, revision);
      }
      return { ok: true, result: { rows: [], rowsAffected } };
    }
    // migrate: the ones not recorded yet, in order; the hash is computed synchronously here (deterministic).
    const recorded = db.migrationShas();
    let applied = 0;
    for (let i = 0; i < entry.migrations.length; i++) {
      const sql = entry.migrations[i];
      const sha = syncSha(sql);
      const known = recorded.get(i);
      if (known !== undefined) {
        if (known !== sha) throw new AetherError("conflict", migrationChanged(db.key, i));
        continue;
      }
      const { access } = db.run(`${where} migration ${i}`, { sql, params: [] }, maxRows);
      db.touchTables(access.writes, revision);
      db.recordMigration(i, sha, sql, revision);
      applied++;
    }
    return { ok: true, result: { rows: [], rowsAffected: 0 }, applied };
  }

  // ------------------------------------------------------------------------------------------- pruning

  /** The leader keeps each database's log within maxLogEntries, deleting the oldest in one transaction. */
  async #prune(): Promise<void> {
    if (!this.#o.isLeader() || this.#stopped) return;
    type Kept = { key: string; db: string; revision: number; bytes: number };
    const byDb = new Map<string, Kept[]>();
    for (const entry of this.#o.state().range(SQLDB_LOG_PREFIX)) {
      const db = logDbKey(entry.key);
      let list = byDb.get(db);
      if (!list) byDb.set(db, list = []);
      list.push({ key: entry.key, db, revision: entry.modRevision, bytes: entry.value.byteLength });
    }
    const doomed: Kept[] = [];
    const kept: Kept[] = [];
    for (const list of byDb.values()) {
      list.sort((a, b) => a.revision - b.revision);
      let bytes = list.reduce((n, e) => n + e.bytes, 0);
      let count = 0;
      while (
        count < list.length &&
        (list.length - count > this.#settings.maxLogEntries || bytes > this.#settings.maxLogBytes)
      ) {
        bytes -= list[count].bytes;
        count++;
      }
      doomed.push(...list.slice(0, count));
      kept.push(...list.slice(count));
    }
    // Then the cluster-wide bound: the oldest entries of any database go first.
    kept.sort((a, b) => a.revision - b.revision);
    let total = kept.reduce((n, e) => n + e.bytes, 0);
    for (const e of kept) {
      if (total <= this.#settings.maxTotalLogBytes) break;
      doomed.push(e);
      total -= e.bytes;
    }
    const perDb = new Map<string, Kept[]>();
    for (const e of doomed) {
      let list = perDb.get(e.db);
      if (!list) perDb.set(e.db, list = []);
      list.push(e);
    }
    for (const [db, list] of perDb) {
      // At most 1000 deletions in one consensus entry; the next round takes the rest.
      const batch = list.sort((a, b) => a.revision - b.revision).slice(0, 1000);
      const through = batch[batch.length - 1].revision;
      try {
        await this.#o.kv.write({
          type: "txn",
          compare: [],
          success: [
            ...batch.map((d) => ({ op: "delete" as const, key: d.key })),
            {
              op: "put" as const,
              key: `${SQLDB_PRUNED_PREFIX}${db}`,
              value: new TextEncoder().encode(String(through)),
            },
          ],
          failure: [],
        });
      } catch (e) {
        this.#log.warn("sqldb: pruning the log failed; tried again later", {
          database: db,
          error: String(e),
        });
      }
    }
  }

  // ------------------------------------------------------------------------------------------- copies

  #requestCopy(db: LocalDb): void {
    // Every member that has the database answers with a whole image: ask at most once a second.
    const nowMs = Date.now();
    if (nowMs - (this.#copyAskedAtMs.get(db.key) ?? 0) < 1_000) return;
    this.#copyAskedAtMs.set(db.key, nowMs);
    const pruned = this.#prunedThrough(db.key);
    for (const peer of this.#o.members) {
      if (peer === this.#o.self || !this.#o.isConnected(peer)) continue;
      try {
        this.#o.mesh.send(peer, SQLDB_CHANNEL, {
          type: "copy-request",
          database: db.key,
          minRevision: pruned,
        });
      } catch { /* the next attempt asks again */ }
    }
  }

  #onMesh(from: NodeId, message: unknown): void {
    if (this.#stopped || message === null || typeof message !== "object") return;
    const m = message as Record<string, unknown>;
    if (m.type === "copy-request" && typeof m.database === "string") return this.#sendCopy(from, m);
    if (m.type === "copy-chunk" && typeof m.database === "string") return this.#receiveChunk(from, m);
  }

  #sendCopy(to: NodeId, m: Record<string, unknown>): void {
    const key = m.database as string;
    const db = this.#dbs.get(key);
    if (!db || db.stale || db.applied < Number(m.minRevision)) return;
    const image = db.conn.serialize();
    const chunkBytes = 512 * 1024;
    const total = Math.max(1, Math.ceil(image.byteLength / chunkBytes));
    for (let i = 0; i < total; i++) {
      const ok = this.#o.mesh.send(to, SQLDB_CHANNEL, {
        type: "copy-chunk",
        database: key,
        revision: db.applied,
        index: i,
        total,
        bytes: image.subarray(i * chunkBytes, (i + 1) * chunkBytes),
      });
      if (!ok) return; // the receiver asks again
    }
  }

  #receiveChunk(from: NodeId, m: Record<string, unknown>): void {
    const key = m.database as string;
    const db = this.#dbs.get(key);
    if (!db?.stale || !(m.bytes instanceof Uint8Array)) return;
    const index = Number(m.index);
    const total = Number(m.total);
    let copy = this.#copies.get(key);
    if (index === 0) this.#copies.set(key, copy = { chunks: [], revision: Number(m.revision), total, from });
    if (!copy || copy.from !== from || copy.chunks.length !== index) return;
    copy.chunks.push(m.bytes);
    if (copy.chunks.length < copy.total) return;
    this.#copies.delete(key);
    this.#installCopy(db, copy.chunks, copy.revision);
  }

  #installCopy(old: LocalDb, chunks: Uint8Array[], revision: number): void {
    if (revision < this.#prunedThrough(old.key)) return;
    const image = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
    let at = 0;
    for (const c of chunks) {
      image.set(c, at);
      at += c.byteLength;
    }
    old.close();
    this.#dbs.delete(old.key);
    const tmp = `${old.path}.copy`;
    writeFileSync(tmp, image);
    for (const suffix of ["-wal", "-shm"]) {
      try {
        Deno.removeSync(`${old.path}${suffix}`);
      } catch { /* absent */ }
    }
    renameSync(tmp, old.path);
    const db = this.#db(old.key);
    this.#log.info("sqldb: installed a copy from another member", {
      database: old.key,
      revision: db.applied,
    });
    const list = this.#o.state().range(`${SQLDB_LOG_PREFIX}${old.key}/`)
      .map((e) => ({ revision: e.modRevision, value: e.value }))
      .sort((a, b) => a.revision - b.revision);
    this.#applyAll(old.key, list);
  }
}

/** A string or blob value's bytes in the embedded database (SQLite's length limit). */
export const MAX_VALUE_BYTES = 4 * 1024 * 1024;
/** An embedded database's file, at most (4 KiB pages; `database or disk is full` beyond). */
export const MAX_DATABASE_BYTES = 1024 * 1024 * 1024;

/** Bytes of the rows one query may return (about: UTF-16 length of strings, 8 per number). */
export const MAX_RESULT_BYTES = 8 * 1024 * 1024;

function approximateBytes(row: Record<string, SqlValue>): number {
  let n = 0;
  for (const [k, v] of Object.entries(row)) n += k.length + (typeof v === "string" ? v.length : 8);
  return n;
}

/** `sqldb/log/{group}/{db}/{id}` → `{group}/{db}`. */
function logDbKey(key: string): string {
  const rest = key.slice(SQLDB_LOG_PREFIX.length);
  return rest.slice(0, rest.lastIndexOf("/"));
}

function statementBytes(statement: Statement): number {
  return new TextEncoder().encode(JSON.stringify(statement)).byteLength;
}

function conflictError(key: string, table: string): AetherError {
  const what = table === SCHEMA_TABLE ? "the schema" : `the table ${table}`;
  return new AetherError(
    "conflict",
    `db(${key}): the transaction conflicts: ${what} changed after it began; retry it`,
  );
}

function migrationChanged(key: string, index: number): string {
  return `db(${key}): migration ${index} differs from the one applied; add a new migration instead of editing one`;
}

function checkRecorded(key: string, recorded: Map<number, string>, shas: string[]): void {
  for (const [i, sha] of recorded) {
    if (i < shas.length && shas[i] !== sha) throw new AetherError("conflict", migrationChanged(key, i));
  }
}

/** A synchronous digest for the applier (it runs inside the KV listener): FNV-1a 64 over UTF-8, as hex. */
function syncSha(text: string): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, "0");
}

export { syncSha as migrationDigest };
