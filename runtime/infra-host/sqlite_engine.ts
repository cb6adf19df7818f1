/**
 * The durable engine: one SQLite database (`node:sqlite`, WAL) in the node's data directory holding every
 * durable store's entries. Writes are staged in memory (visible to reads at once) and committed together in one
 * transaction at the end of the task that staged them, so a burst of puts costs one fsync, not one each.
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { AetherError } from "../core/mod.ts";
import type { StoredEntry, StoreEngine } from "./engine.ts";

export const STORE_DB_FILE = "store.sqlite";

interface Row {
  key: string;
  value: string | null;
  version: number;
  origin: string;
  written_at: number;
  expires_at: number;
}

interface Staged {
  store: string;
  partition: number;
  entry: StoredEntry;
}

export interface SqliteEngineOptions {
  dataDir: string;
  /** fsync every commit (synchronous = FULL); otherwise NORMAL (a power loss may lose the last commits). */
  fsync: boolean;
  /** Defers the commit to the end of the current task; setTimeout(0) in a node. */
  schedule?: (fn: () => void) => void;
}

export class SqliteEngine implements StoreEngine {
  readonly kind = "sqlite" as const;
  readonly durable = true;
  readonly #db: DatabaseSync;
  readonly #staged = new Map<string, Staged>();
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #commitScheduled = false;
  readonly #schedule: (fn: () => void) => void;
  readonly #stmt: Record<
    "get" | "upsert" | "scan" | "liveBytes" | "partitions" | "drop" | "all" | "sweepable" | "deleteVersion",
    StatementSync
  >;
  #closed = false;

  constructor(options: SqliteEngineOptions) {
    mkdirSync(options.dataDir, { recursive: true });
    this.#db = new DatabaseSync(join(options.dataDir, STORE_DB_FILE));
    this.#db.exec("PRAGMA journal_mode = WAL");
    this.#db.exec(`PRAGMA synchronous = ${options.fsync ? "FULL" : "NORMAL"}`);
    this.#db.exec(`CREATE TABLE IF NOT EXISTS entries (
      store TEXT NOT NULL, key TEXT NOT NULL, partition INTEGER NOT NULL, value TEXT, version INTEGER NOT NULL,
      origin TEXT NOT NULL, written_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,
      PRIMARY KEY (store, key)) WITHOUT ROWID`);
    this.#db.exec("CREATE INDEX IF NOT EXISTS entries_partition ON entries (store, partition, key)");
    this.#stmt = {
      get: this.#db.prepare(
        "SELECT key, value, version, origin, written_at, expires_at FROM entries WHERE store = ? AND key = ?",
      ),
      upsert: this.#db.prepare(
        "INSERT OR REPLACE INTO entries (store, key, partition, value, version, origin, written_at, expires_at) " +
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      ),
      scan: this.#db.prepare(
        "SELECT key, value, version, origin, written_at, expires_at FROM entries " +
          "WHERE store = ? AND partition = ? ORDER BY key",
      ),
      // The range [prefix, prefix's successor) of the (store, partition, key) index: only the group's rows.
      liveBytes: this.#db.prepare(
        "SELECT COALESCE(SUM(length(key) + length(value) + ?), 0) AS bytes FROM entries " +
          "WHERE store = ? AND partition = ? AND key >= ? AND key < ? AND value IS NOT NULL " +
          "AND (expires_at = 0 OR expires_at > ?)",
      ),
      partitions: this.#db.prepare(
        "SELECT DISTINCT partition FROM entries WHERE store = ? ORDER BY partition",
      ),
      drop: this.#db.prepare("DELETE FROM entries WHERE store = ? AND partition = ?"),
      // Tombstones written before the first bound, and entries that expired before the second.
      sweepable: this.#db.prepare(
        "SELECT partition, key, value, version, origin, written_at, expires_at FROM entries WHERE store = ? AND " +
          "((value IS NULL AND written_at < ?) OR (expires_at > 0 AND expires_at < ?))",
      ),
      deleteVersion: this.#db.prepare("DELETE FROM entries WHERE store = ? AND key = ? AND version = ?"),
      all: this.#db.prepare(
        "SELECT partition, key, value, version, origin, written_at, expires_at FROM entries WHERE store = ?",
      ),
    };
    this.#schedule = options.schedule ?? ((fn) => setTimeout(fn, 0));
  }

  get(store: string, key: string): StoredEntry | undefined {
    const staged = this.#staged.get(stagedKey(store, key));
    if (staged) return staged.entry;
    const row = this.#stmt.get.get(store, key) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  put(store: string, partition: number, entry: StoredEntry): Promise<void> {
    if (this.#closed) return Promise.reject(new AetherError("unavailable", "the store engine is closed"));
    this.#staged.set(stagedKey(store, entry.key), { store, partition, entry });
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#commitScheduled) {
      this.#commitScheduled = true;
      this.#schedule(() => this.#commit());
    }
    return done;
  }

  flush(): Promise<void> {
    if (this.#staged.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  scan(store: string, partition: number): StoredEntry[] {
    this.#commit();
    return (this.#stmt.scan.all(store, partition) as unknown as Row[]).map(fromRow);
  }

  liveBytes(store: string, partition: number, prefix: string, nowMs: number, perEntryBytes: number): number {
    this.#commit();
    if (prefix === "") throw new Error("liveBytes: the prefix must not be empty");
    const successor = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
    const row = this.#stmt.liveBytes.get(perEntryBytes, store, partition, prefix, successor, nowMs) as {
      bytes: number;
    };
    return Number(row.bytes);
  }

  partitions(store: string): number[] {
    this.#commit();
    return (this.#stmt.partitions.all(store) as { partition: number }[]).map((r) => r.partition);
  }

  dropPartition(store: string, partition: number): void {
    this.#commit();
    this.#stmt.drop.run(store, partition);
  }

  sweep(store: string, expiredBeforeMs: number, tombstonesBeforeMs: number) {
    this.#commit();
    const rows = this.#stmt.sweepable.all(store, tombstonesBeforeMs, expiredBeforeMs) as unknown as (
      & Row
      & { partition: number }
    )[];
    const removed = rows.map((row) => ({ partition: row.partition, entry: fromRow(row) }));
    if (removed.length > 0) {
      this.#db.exec("BEGIN");
      for (const { entry } of removed) this.#stmt.deleteVersion.run(store, entry.key, entry.version);
      this.#db.exec("COMMIT");
    }
    return removed;
  }

  /** Every entry of a store with its partition (startup: rebuilds the node's digests and versions). */
  *all(store: string): Iterable<{ partition: number; entry: StoredEntry }> {
    this.#commit();
    for (const row of this.#stmt.all.iterate(store) as Iterable<Row & { partition: number }>) {
      yield { partition: row.partition, entry: fromRow(row) };
    }
  }

  /** Names of the stores with entries on disk. */
  storeNames(): string[] {
    return (this.#db.prepare("SELECT DISTINCT store FROM entries").all() as { store: string }[]).map((r) =>
      r.store
    );
  }

  close(): void {
    if (this.#closed) return;
    this.#commit();
    this.#closed = true;
    this.#db.close();
  }

  #commit(): void {
    this.#commitScheduled = false;
    if (this.#staged.size === 0 || this.#closed) return;
    const staged = [...this.#staged.values()];
    const waiters = this.#waiters;
    this.#staged.clear();
    this.#waiters = [];
    try {
      this.#db.exec("BEGIN");
      for (const { store, partition, entry } of staged) {
        this.#stmt.upsert.run(
          store,
          entry.key,
          partition,
          entry.value,
          entry.version,
          entry.origin,
          entry.writtenAtMs,
          entry.expiresAtMs,
        );
      }
      this.#db.exec("COMMIT");
    } catch (e) {
      try {
        this.#db.exec("ROLLBACK");
      } catch { /* the transaction may not have begun */ }
      const error = new AetherError(
        "unavailable",
        `the store's SQLite commit failed: ${(e as Error).message}`,
      );
      for (const w of waiters) w.reject(error);
      return;
    }
    for (const w of waiters) w.resolve();
  }
}

function stagedKey(store: string, key: string): string {
  return `${store}\u0000${key}`;
}

function fromRow(row: Row): StoredEntry {
  return {
    key: row.key,
    value: row.value,
    version: Number(row.version),
    origin: row.origin,
    writtenAtMs: Number(row.written_at),
    expiresAtMs: Number(row.expires_at),
  };
}
