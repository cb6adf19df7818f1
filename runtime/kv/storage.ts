/**
 * Durable consensus storage of one member: its current PhaseRecord, the decided log, the latest state-machine
 * snapshot and the identity of the data directory, in one SQLite database (`node:sqlite`).
 *
 * The node calls `commit()` once per engine call with everything that call asked to make durable (persist,
 * decide and installSnapshot effects) and sends the call's messages only after it returns: one transaction,
 * so a step is durable entirely or not at all (group commit).
 *
 * Invariants kept by every transaction:
 *   - the decided log is contiguous: it holds every phase from its first entry to `lastDecided`;
 *   - it holds every phase after the snapshot, so snapshot + replay rebuilds the state machine;
 *   - `lastDecided` = max(snapshot phase, last logged phase).
 *
 * What "durable" means depends on the fsync policy (see `FsyncPolicy`).
 */

import { DatabaseSync, type StatementSync } from "node:sqlite";
import { Decoder, Encoder } from "@msgpack/msgpack";
import { AetherError, isNodeId, type NodeId } from "../core/mod.ts";
import type { Batch, DecidedPhase, PhaseRecord, RestoredState, Snapshot } from "../consensus/mod.ts";
import type { KvCommand } from "./commands.ts";
import { KvState, type KvStateOptions } from "./state.ts";

/**
 * - `"always"`: WAL journal with `synchronous=FULL`. Before `commit()` returns, SQLite has written the step's
 *   WAL frames and fsynced the WAL file. A committed step survives a process crash (kill -9, OOM), an operating
 *   system crash and a power loss, as far as the disk honours flushes.
 * - `"never"`: WAL journal with `synchronous=NORMAL`. `commit()` returns once the WAL frames are written to the
 *   operating system (page cache); the WAL is fsynced only when SQLite checkpoints it into the database file.
 *   A committed step survives a process crash (kill -9, OOM), but not an operating system crash or a power loss:
 *   those may lose the most recent commits (the database stays consistent and opens at an earlier commit).
 *   Lost decisions come back from peers through catch-up, but a lost PhaseRecord lets the member vote again
 *   differently in that phase: if a majority loses power at once, agreement is no longer guaranteed.
 */
export type FsyncPolicy = "always" | "never";

export const CONSENSUS_DB_FILE = "consensus.sqlite";
/** Bumped when the layout changes; an unknown version is refused rather than misread. */
export const STORAGE_FORMAT_VERSION = 1;

export const STORAGE_DEFAULTS = {
  retainDecisions: 10_000,
  snapshotEveryDecisions: 10_000,
  snapshotEveryBytes: 64 * 1024 * 1024,
} as const;

export interface StorageOptions {
  /** This member's id; a data directory written by another member is refused. */
  nodeId: NodeId;
  /** Every core member, self included; a data directory of another cluster is refused. */
  members: NodeId[];
  fsync: FsyncPolicy;
  /**
   * Truncation keeps at least this many most recent decisions (besides everything after the snapshot), so a
   * member that lags by less catches up from the log without a snapshot transfer.
   */
  retainDecisions?: number;
  /** `snapshotDue()` turns true after this many decided phases since the last snapshot... */
  snapshotEveryDecisions?: number;
  /** ...or after this many bytes of encoded batches since the last snapshot. */
  snapshotEveryBytes?: number;
}

/** What a restarting member needs: engine state, plus snapshot and replay to rebuild its state machine. */
export interface LoadedState<C = KvCommand> {
  /** For the engine: lastDecided and the record of phase lastDecided + 1 when it had started it. */
  restored: RestoredState<C>;
  snapshot?: Snapshot;
  /** Every decision after the snapshot (from phase 1 without one), in phase order, up to lastDecided. */
  decisions: DecidedPhase<C>[];
}

/** Everything one engine call made durable; applied in this order in one transaction. */
export interface CommitStep<C = KvCommand> {
  /** A snapshot received from a peer: it replaces the state machine and the whole decided log. */
  installSnapshot?: Snapshot;
  /** Consecutive phases, continuing from lastDecided (or from the installed snapshot). */
  decisions?: DecidedPhase<C>[];
  /** The member's record of its current phase (the last one persisted in the call). */
  record?: PhaseRecord<C>;
  /**
   * Under fsync "always": false makes `commit` write the step to the WAL without fsyncing it, so it returns at
   * once; the caller then makes it durable with `syncWal()` (asynchronous: the fsync runs off the event loop,
   * and one fsync covers every commit written before it). Default true: `commit` fsyncs before it returns.
   * Ignored under "never".
   */
  sync?: boolean;
}

/** Material for a SyncResponse; ask again from `lastIncluded + 1` for the rest. */
export interface SyncMaterial<C = KvCommand> {
  /** Present when the requested phase is no longer in the log. */
  snapshot?: Snapshot;
  /** Consecutive decisions from the requested phase (or from snapshot.phase + 1). */
  decisions: DecidedPhase<C>[];
  lastDecided: number;
}

export interface StorageStats {
  lastDecided: number;
  snapshotPhase: number;
  /** First phase still in the decided log (0 when the log is empty). */
  firstLogged: number;
  logEntries: number;
  decisionsSinceSnapshot: number;
  bytesSinceSnapshot: number;
}

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
  CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY CHECK (id = 1), phase INTEGER NOT NULL,
    data BLOB NOT NULL) STRICT;
  CREATE TABLE IF NOT EXISTS decided (phase INTEGER PRIMARY KEY, batch BLOB) STRICT;
  CREATE TABLE IF NOT EXISTS snapshot (id INTEGER PRIMARY KEY CHECK (id = 1), phase INTEGER NOT NULL,
    data BLOB NOT NULL) STRICT;
`;

/** Most rows read per readForSync call, whatever their size. */
const SYNC_MAX_ROWS = 10_000;

// undefined must stay undefined: `ifRevision: null` or `proposal: null` mean something else.
const encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();

interface Statements {
  insertDecided: StatementSync;
  upsertRecord: StatementSync;
  upsertSnapshot: StatementSync;
  deleteDecidedUpTo: StatementSync;
  deleteAllDecided: StatementSync;
  selectDecidedFrom: StatementSync;
  selectRecord: StatementSync;
  selectSnapshot: StatementSync;
  selectSnapshotPhase: StatementSync;
  selectLogBounds: StatementSync;
  selectLogSince: StatementSync;
}

export class ConsensusStorage<C = KvCommand> {
  readonly path: string;
  readonly fsync: FsyncPolicy;
  #db: DatabaseSync;
  #stmts: Statements;
  #retainDecisions: number;
  #snapshotEveryDecisions: number;
  #snapshotEveryBytes: number;
  #lastDecided = 0;
  #snapshotPhase = 0;
  #firstLogged = 0;
  #decisionsSinceSnapshot = 0;
  #bytesSinceSnapshot = 0;
  #closed = false;

  /** Whether commits are currently fsynced (synchronous=FULL); only toggled under the "always" policy. */
  #syncing = true;
  /** The WAL file, opened for fsync by `syncWal`. */
  #wal?: Deno.FsFile;

  private constructor(path: string, db: DatabaseSync, options: StorageOptions) {
    this.path = path;
    this.fsync = options.fsync;
    this.#db = db;
    this.#retainDecisions = options.retainDecisions ?? STORAGE_DEFAULTS.retainDecisions;
    this.#snapshotEveryDecisions = options.snapshotEveryDecisions ?? STORAGE_DEFAULTS.snapshotEveryDecisions;
    this.#snapshotEveryBytes = options.snapshotEveryBytes ?? STORAGE_DEFAULTS.snapshotEveryBytes;
    this.#stmts = prepareStatements(db);
    this.#readBounds();
  }

  /**
   * Opens (creating when new) the database at `path`. Refuses a database of another member or cluster, of an
   * unknown format, or one that another process has open.
   */
  static open<C = KvCommand>(path: string, options: StorageOptions): ConsensusStorage<C> {
    validateOptions(options);
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path);
    } catch (e) {
      throw new AetherError("unavailable", `cannot open consensus database ${path}: ${errorText(e)}`);
    }
    try {
      configure(db, path, options.fsync);
      checkIdentity(db, path, options);
      return new ConsensusStorage<C>(path, db, options);
    } catch (e) {
      db.close();
      throw e;
    }
  }

  /** Opens `consensus.sqlite` in `dataDir`, creating the directory when missing. */
  static openInDir<C = KvCommand>(dataDir: string, options: StorageOptions): ConsensusStorage<C> {
    Deno.mkdirSync(dataDir, { recursive: true });
    return ConsensusStorage.open<C>(`${dataDir.replace(/\/+$/, "")}/${CONSENSUS_DB_FILE}`, options);
  }

  get lastDecided(): number {
    return this.#lastDecided;
  }

  get snapshotPhase(): number {
    return this.#snapshotPhase;
  }

  stats(): StorageStats {
    return {
      lastDecided: this.#lastDecided,
      snapshotPhase: this.#snapshotPhase,
      firstLogged: this.#firstLogged,
      logEntries: this.#firstLogged === 0 ? 0 : this.#lastDecided - this.#firstLogged + 1,
      decisionsSinceSnapshot: this.#decisionsSinceSnapshot,
      bytesSinceSnapshot: this.#bytesSinceSnapshot,
    };
  }

  /** Reads what a restarting member needs. */
  load(): LoadedState<C> {
    this.#checkOpen();
    const snapshot = this.#readSnapshot();
    const decisions = this.#readDecisions((snapshot?.phase ?? 0) + 1, Infinity).decisions;
    const restored: RestoredState<C> = { lastDecided: this.#lastDecided };
    const row = this.#stmts.selectRecord.get() as { phase: number; data: Uint8Array } | undefined;
    // A record of a decided phase is stale. One beyond lastDecided + 1 cannot occur (decisions and records of
    // a step commit together), but it is handed back rather than dropped: forgetting votes is never safe.
    if (row && row.phase > this.#lastDecided) {
      restored.record = decodeBlob(row.data, `phase record of phase ${row.phase}`) as PhaseRecord<C>;
    }
    return snapshot ? { restored, snapshot, decisions } : { restored, decisions };
  }

  /** Makes one engine call's durable effects durable, in one transaction. */
  commit(step: CommitStep<C>): void {
    this.#checkOpen();
    const decisions = step.decisions ?? [];
    let lastDecided = step.installSnapshot ? step.installSnapshot.phase : this.#lastDecided;
    for (const d of decisions) {
      if (d.phase !== lastDecided + 1) {
        throw new AetherError(
          "internal",
          `consensus storage: decision for phase ${d.phase} does not follow phase ${lastDecided}`,
        );
      }
      lastDecided = d.phase;
    }
    let addedBytes = 0;
    this.#setSync(step.sync ?? true);
    this.#transaction(() => {
      if (step.installSnapshot) this.#installSnapshot(step.installSnapshot);
      for (const d of decisions) {
        const blob = d.batch === null ? null : encoder.encode(d.batch);
        addedBytes += blob?.byteLength ?? 0;
        this.#stmts.insertDecided.run(d.phase, blob);
      }
      if (step.record) this.#stmts.upsertRecord.run(step.record.phase, encoder.encode(step.record));
    });
    if (step.installSnapshot) {
      this.#snapshotPhase = step.installSnapshot.phase;
      this.#firstLogged = 0;
      this.#decisionsSinceSnapshot = 0;
      this.#bytesSinceSnapshot = 0;
    }
    if (decisions.length > 0 && this.#firstLogged === 0) this.#firstLogged = decisions[0].phase;
    this.#lastDecided = lastDecided;
    this.#decisionsSinceSnapshot += decisions.length;
    this.#bytesSinceSnapshot += addedBytes;
  }

  /** Whether enough was decided since the last snapshot to take a new one (the caller's choice to act). */
  snapshotDue(): boolean {
    return this.#decisionsSinceSnapshot >= this.#snapshotEveryDecisions ||
      this.#bytesSinceSnapshot >= this.#snapshotEveryBytes;
  }

  /**
   * Stores a snapshot of the state machine after applying every phase up to `phase`, then truncates the log,
   * keeping every phase after the snapshot and at least the `retainDecisions` most recent ones.
   */
  saveSnapshot(phase: number, data: Uint8Array): void {
    this.#checkOpen();
    if (!Number.isSafeInteger(phase) || phase < this.#snapshotPhase || phase > this.#lastDecided) {
      throw new AetherError(
        "internal",
        `consensus storage: snapshot at phase ${phase} must lie between the current snapshot (phase ` +
          `${this.#snapshotPhase}) and the last decided phase ${this.#lastDecided}`,
      );
    }
    const truncateThrough = Math.min(phase, this.#lastDecided - this.#retainDecisions);
    this.#transaction(() => {
      this.#stmts.upsertSnapshot.run(phase, data);
      if (truncateThrough >= this.#firstLogged && this.#firstLogged > 0) {
        this.#stmts.deleteDecidedUpTo.run(truncateThrough);
      }
    });
    this.#snapshotPhase = phase;
    if (this.#firstLogged > 0 && truncateThrough >= this.#firstLogged) {
      this.#firstLogged = truncateThrough < this.#lastDecided ? truncateThrough + 1 : 0;
    }
    const since = this.#stmts.selectLogSince.get(phase) as { count: number; bytes: number | null };
    this.#decisionsSinceSnapshot = since.count;
    this.#bytesSinceSnapshot = since.bytes ?? 0;
  }

  /**
   * What to answer a peer that asks for everything from `fromPhase` on: decisions from the log when it still
   * holds `fromPhase`, else the snapshot and what follows it. Decisions stop once their encoded size reaches
   * `maxBytes` (the snapshot counts too); at least one is included when any exists, so every answer makes
   * progress.
   */
  readForSync(fromPhase: number, maxBytes: number): SyncMaterial<C> {
    this.#checkOpen();
    if (!Number.isSafeInteger(fromPhase)) {
      throw new AetherError("bad_request", `sync request: fromPhase ${fromPhase} is not an integer`);
    }
    const from = Math.max(1, fromPhase);
    const lastDecided = this.#lastDecided;
    if (from > lastDecided) return { decisions: [], lastDecided };
    if (this.#firstLogged > 0 && from >= this.#firstLogged) {
      return { decisions: this.#readDecisions(from, maxBytes).decisions, lastDecided };
    }
    const snapshot = this.#readSnapshot();
    if (!snapshot) {
      throw new AetherError(
        "internal",
        `consensus storage: phase ${from} is neither in the log (from ${this.#firstLogged}) nor in a snapshot`,
      );
    }
    const budget = maxBytes - snapshot.data.byteLength;
    const decisions = budget > 0 ? this.#readDecisions(snapshot.phase + 1, budget).decisions : [];
    return { snapshot, decisions, lastDecided };
  }

  /** Checkpoints the WAL into the database file and closes it. Idempotent. */
  /**
   * Makes every commit written so far durable by fsyncing the WAL file, without blocking the event loop (the
   * fsync runs on Deno's blocking-task pool). With the WAL journal, frames are appended in commit order, so one
   * fsync covers all earlier commits; a checkpoint in between has already synced what it moved into the
   * database file. A no-op under fsync "never".
   */
  async syncWal(): Promise<void> {
    this.#checkOpen();
    if (this.fsync !== "always") return;
    this.#wal ??= await Deno.open(`${this.path}-wal`, { read: true });
    await this.#wal.syncData();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wal?.close();
    try {
      this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      this.#db.close();
    }
  }

  #installSnapshot(snapshot: Snapshot): void {
    if (!Number.isSafeInteger(snapshot.phase) || snapshot.phase < 0) {
      throw new AetherError("internal", `consensus storage: snapshot phase ${snapshot.phase} is not valid`);
    }
    // The engine continues from snapshot.phase + 1, so every logged phase is replaced; a log with a gap could
    // not serve catch-up anyway.
    this.#stmts.deleteAllDecided.run();
    this.#stmts.upsertSnapshot.run(snapshot.phase, snapshot.data);
  }

  #readSnapshot(): Snapshot | undefined {
    const row = this.#stmts.selectSnapshot.get() as { phase: number; data: Uint8Array } | undefined;
    return row ? { phase: row.phase, data: row.data } : undefined;
  }

  #readDecisions(from: number, maxBytes: number): { decisions: DecidedPhase<C>[]; bytes: number } {
    const decisions: DecidedPhase<C>[] = [];
    let bytes = 0;
    const limit = maxBytes === Infinity ? -1 : SYNC_MAX_ROWS;
    for (const row of this.#stmts.selectDecidedFrom.iterate(from, limit)) {
      const { phase, batch } = row as { phase: number; batch: Uint8Array | null };
      const size = batch?.byteLength ?? 1;
      if (decisions.length > 0 && bytes + size > maxBytes) break;
      const expected = from + decisions.length;
      if (phase !== expected) {
        throw new AetherError("internal", `consensus storage: decided log has no phase ${expected}`);
      }
      decisions.push({
        phase,
        batch: batch === null ? null : decodeBlob(batch, `batch of phase ${phase}`) as Batch<C>,
      });
      bytes += size;
    }
    return { decisions, bytes };
  }

  #readBounds(): void {
    const bounds = this.#stmts.selectLogBounds.get() as { first: number | null; last: number | null };
    this.#snapshotPhase = (this.#stmts.selectSnapshotPhase.get() as { phase: number } | undefined)?.phase ??
      0;
    this.#firstLogged = bounds.first ?? 0;
    this.#lastDecided = Math.max(this.#snapshotPhase, bounds.last ?? 0);
    if (bounds.first !== null && bounds.last !== null) {
      // Contiguity is what replay and catch-up rely on; check it once at open.
      const count = (this.#db.prepare("SELECT count(*) AS n FROM decided").get() as { n: number }).n;
      if (count !== bounds.last - bounds.first + 1) {
        throw new AetherError(
          "internal",
          `consensus database ${this.path} is damaged: the decided log from phase ${bounds.first} to ` +
            `${bounds.last} has ${count} entries`,
        );
      }
      if (bounds.first > this.#snapshotPhase + 1) {
        throw new AetherError(
          "internal",
          `consensus database ${this.path} is damaged: phases ${this.#snapshotPhase + 1} to ${
            bounds.first - 1
          } ` +
            `are neither in the snapshot nor in the log`,
        );
      }
    }
    const since = this.#stmts.selectLogSince.get(this.#snapshotPhase) as {
      count: number;
      bytes: number | null;
    };
    this.#decisionsSinceSnapshot = since.count;
    this.#bytesSinceSnapshot = since.bytes ?? 0;
  }

  /** Switches between fsynced (FULL) and unfsynced (NORMAL) commits under the "always" policy. */
  #setSync(sync: boolean): void {
    if (this.fsync !== "always" || sync === this.#syncing) return;
    this.#db.exec(`PRAGMA synchronous = ${sync ? "FULL" : "NORMAL"}`);
    this.#syncing = sync;
  }

  #transaction(body: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      body();
      this.#db.exec("COMMIT");
    } catch (e) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw e instanceof AetherError
        ? e
        : new AetherError("unavailable", `consensus database ${this.path}: write failed: ${errorText(e)}`);
    }
  }

  #checkOpen(): void {
    if (this.#closed) throw new AetherError("unavailable", `consensus database ${this.path} is closed`);
  }
}

/** Rebuilds the KV state machine from a loaded state: the snapshot, then every later decision in order. */
export function restoreKvState(loaded: LoadedState<KvCommand>, options: KvStateOptions = {}): KvState {
  const state = loaded.snapshot ? KvState.fromSnapshot(loaded.snapshot.data, options) : new KvState(options);
  for (const d of loaded.decisions) {
    if (d.batch) state.applyBatch(d.batch);
  }
  return state;
}

function validateOptions(options: StorageOptions): void {
  if (!isNodeId(options.nodeId)) {
    throw new AetherError("bad_request", `consensus storage: "${options.nodeId}" is not a valid node id`);
  }
  if (!Array.isArray(options.members) || !options.members.includes(options.nodeId)) {
    throw new AetherError(
      "bad_request",
      `consensus storage: the member list [${options.members}] must include this node "${options.nodeId}"`,
    );
  }
  if (options.fsync !== "always" && options.fsync !== "never") {
    throw new AetherError(
      "bad_request",
      `consensus storage: fsync must be "always" or "never", not "${options.fsync}"`,
    );
  }
  for (const [name, value] of Object.entries(options)) {
    if (name.startsWith("retain") || name.startsWith("snapshotEvery")) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) {
        throw new AetherError("bad_request", `consensus storage: ${name} must be a non-negative integer`);
      }
    }
  }
}

function configure(db: DatabaseSync, path: string, fsync: FsyncPolicy): void {
  // Exclusive locking before WAL: the wal-index lives in process memory (no -shm file) and the lock, taken by
  // the first transaction and held until close, keeps a second process off this member's data.
  db.exec("PRAGMA locking_mode = EXCLUSIVE");
  db.exec("PRAGMA busy_timeout = 0");
  try {
    const mode = (db.prepare("PRAGMA journal_mode = WAL").get() as { journal_mode: string }).journal_mode;
    if (mode !== "wal") throw new Error(`journal mode is ${mode}, not wal`);
    db.exec(`PRAGMA synchronous = ${fsync === "always" ? "FULL" : "NORMAL"}`);
    db.exec("BEGIN IMMEDIATE");
    db.exec(SCHEMA);
    db.exec("COMMIT");
  } catch (e) {
    const text = errorText(e);
    if (/locked|busy/i.test(text)) {
      throw new AetherError(
        "conflict",
        `consensus database ${path} is in use by another process (is another node running on this data dir?)`,
      );
    }
    throw new AetherError("unavailable", `cannot open consensus database ${path}: ${text}`);
  }
}

function checkIdentity(db: DatabaseSync, path: string, options: StorageOptions): void {
  const rows = db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[];
  const meta = new Map(rows.map((r) => [r.key, r.value]));
  const members = JSON.stringify([...options.members].sort());
  if (meta.size === 0) {
    const insert = db.prepare("INSERT INTO meta (key, value) VALUES (?, ?)");
    db.exec("BEGIN IMMEDIATE");
    insert.run("formatVersion", String(STORAGE_FORMAT_VERSION));
    insert.run("nodeId", options.nodeId);
    insert.run("members", members);
    db.exec("COMMIT");
    return;
  }
  const version = Number(meta.get("formatVersion"));
  if (version !== STORAGE_FORMAT_VERSION) {
    throw new AetherError(
      "conflict",
      `consensus database ${path} has format version ${
        meta.get("formatVersion")
      }; this build reads version ` +
        `${STORAGE_FORMAT_VERSION}`,
    );
  }
  const storedNode = meta.get("nodeId");
  const storedMembers = meta.get("members");
  if (storedNode !== options.nodeId || storedMembers !== members) {
    const found = `member "${storedNode}" of the cluster ${formatMembers(storedMembers)}`;
    const wanted = `member "${options.nodeId}" of the cluster ${formatMembers(members)}`;
    throw new AetherError(
      "conflict",
      `data in ${path} belongs to ${found}, but this node is ${wanted}; give each member its own data ` +
        `directory (or an empty one to join as a new member)`,
      { path, storedNodeId: storedNode, storedMembers: storedMembers ? JSON.parse(storedMembers) : null },
    );
  }
}

function prepareStatements(db: DatabaseSync): Statements {
  return {
    insertDecided: db.prepare("INSERT INTO decided (phase, batch) VALUES (?, ?)"),
    upsertRecord: db.prepare("INSERT OR REPLACE INTO record (id, phase, data) VALUES (1, ?, ?)"),
    upsertSnapshot: db.prepare("INSERT OR REPLACE INTO snapshot (id, phase, data) VALUES (1, ?, ?)"),
    deleteDecidedUpTo: db.prepare("DELETE FROM decided WHERE phase <= ?"),
    deleteAllDecided: db.prepare("DELETE FROM decided"),
    selectDecidedFrom: db.prepare("SELECT phase, batch FROM decided WHERE phase >= ? ORDER BY phase LIMIT ?"),
    selectRecord: db.prepare("SELECT phase, data FROM record WHERE id = 1"),
    selectSnapshot: db.prepare("SELECT phase, data FROM snapshot WHERE id = 1"),
    selectSnapshotPhase: db.prepare("SELECT phase FROM snapshot WHERE id = 1"),
    selectLogBounds: db.prepare("SELECT min(phase) AS first, max(phase) AS last FROM decided"),
    selectLogSince: db.prepare(
      "SELECT count(*) AS count, sum(coalesce(length(batch), 0)) AS bytes FROM decided WHERE phase > ?",
    ),
  };
}

function decodeBlob(data: Uint8Array, what: string): unknown {
  try {
    return decoder.decode(data);
  } catch (e) {
    throw new AetherError("internal", `consensus database: cannot decode the ${what}: ${errorText(e)}`);
  }
}

function formatMembers(json: string | undefined): string {
  try {
    return `[${(JSON.parse(json ?? "[]") as string[]).join(", ")}]`;
  } catch {
    return String(json);
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
