/**
 * A member's simulated disk, and the `ReplicaStorage` the real replica writes through (what kv/storage.ts is in
 * a node). It keeps the real storage's contract and invariants: commits are contiguous, a snapshot install
 * replaces the log, `snapshotDue` turns true after `snapshotEveryDecisions` decisions since the last snapshot,
 * and a new snapshot truncates the log but keeps the `retainDecisions` most recent decisions; `readForSync`
 * answers from the log while it holds the requested phase, else with the snapshot and what follows it.
 *
 * Durability is what makes fsync ordering testable. A commit with `sync: false` is written (a later read sees
 * it) but not durable until an fsync covers it; `syncWal()` takes a simulated time (sometimes a long stall)
 * and covers every write made before it started, like an fsync of the WAL. A commit without `sync: false`
 * (the snapshot install) is fsynced before it returns, and so is everything written before it. A process crash
 * keeps every write (the operating system has them); a power loss keeps the durable writes plus a prefix of
 * the rest (the WAL is append-only; a torn tail is discarded).
 */

import { AetherError, assert } from "../../core/mod.ts";
import type { Rng, Timers } from "../../core/mod.ts";
import type { Batch, DecidedPhase, PhaseRecord, RestoredState, Snapshot } from "../../consensus/mod.ts";
import { commandSize, type KvCommand, type LoadedState } from "../../kv/mod.ts";
import type { ReplicaStorage } from "../replica.ts";
import { copyOf } from "./_copy.ts";

export interface StorageSettings {
  /** `snapshotDue()` turns true after this many decided phases since the last snapshot. */
  snapshotEveryDecisions: number;
  /** A new snapshot truncates the log but keeps at least this many most recent decisions. */
  retainDecisions: number;
  /** How long an fsync takes, [min, max] ms... */
  fsyncMs: [number, number];
  /** ...except this share of them, which stall for [min, max] ms (a busy disk). */
  fsyncStallRate: number;
  fsyncStallMs: [number, number];
}

export type CrashKind = "process" | "power";

/** What one process lifetime of a member needs from the simulated world. */
export interface StorageIo {
  timers: Timers;
  rng: Rng;
  /** The process is still running (its storage calls after a crash are lost). */
  alive(): boolean;
  /** True when the process crashes right at this point (the write or the fsync's completion is lost). */
  crashHere(): boolean;
  /**
   * A commit was written; returns what to run once it is durable (the checks of agreement count only what a
   * member can no longer take back).
   */
  committed(step: CommitStep): () => void;
  /** A snapshot was written; returns what to run once it is durable. */
  snapshotSaved(phase: number, data: Uint8Array): () => void;
}

export interface CommitStep {
  installSnapshot?: Snapshot;
  record?: PhaseRecord<KvCommand>;
  decisions?: DecidedPhase<KvCommand>[];
  sync?: boolean;
}

/** The on-disk image: what a member that starts now would read. */
interface Image {
  record?: PhaseRecord<KvCommand>;
  snapshot?: Snapshot;
  /** Consecutive decisions ending at lastDecided (possibly empty). */
  log: DecidedPhase<KvCommand>[];
  lastDecided: number;
  decisionsSinceSnapshot: number;
}

type WriteBody =
  | { kind: "commit"; step: CommitStep }
  | { kind: "snapshot"; phase: number; data: Uint8Array; retain: number };
type Write = WriteBody & { seq: number; onDurable: () => void };

/** Most decisions one readForSync answer carries, whatever their size (like the real storage's row limit). */
const SYNC_MAX_ROWS = 10_000;
/** Unsynced writes a disk holds; the replica fsyncs continuously, so reaching this means it stopped. */
const MAX_UNSYNCED_WRITES = 100_000;

/** One member's disk; it outlives the member's processes. */
export class SimDisk {
  readonly settings: StorageSettings;
  #durable: Image = emptyImage();
  #written: Image = emptyImage();
  #unsynced: Write[] = [];
  #seq = 0;
  /** Writes lost to power failures (a statistic). */
  lostWrites = 0;

  constructor(settings: StorageSettings) {
    this.settings = settings;
  }

  get written(): Readonly<Image> {
    return this.#written;
  }

  get lastWriteSeq(): number {
    return this.#seq;
  }

  /** Writes `body` (a later read sees it); `onDurable` runs once no crash can take it back. */
  write(body: WriteBody, sync: boolean, onDurable: () => void): void {
    const full: Write = { ...body, seq: ++this.#seq, onDurable };
    apply(this.#written, full);
    this.#unsynced.push(full);
    if (this.#unsynced.length > MAX_UNSYNCED_WRITES) {
      throw new AetherError("internal", `sim disk: more than ${MAX_UNSYNCED_WRITES} writes never fsynced`);
    }
    if (sync) this.synced(full.seq);
  }

  /** An fsync finished: every write up to `seq` is durable. */
  synced(seq: number): void {
    let n = 0;
    while (n < this.#unsynced.length && this.#unsynced[n].seq <= seq) this.#makeDurable(this.#unsynced[n++]);
    this.#unsynced.splice(0, n);
  }

  /** Every write so far is durable (the end of a run: what still waits for an fsync gets checked too). */
  syncAll(): void {
    this.synced(this.#seq);
  }

  /** The process died: a power loss also loses a suffix of the writes not yet fsynced. */
  crash(kind: CrashKind, rng: Rng): void {
    const kept = kind === "process" ? this.#unsynced.length : rng.int(0, this.#unsynced.length);
    this.lostWrites += this.#unsynced.length - kept;
    for (let i = 0; i < kept; i++) this.#makeDurable(this.#unsynced[i]);
    this.#unsynced = [];
    this.#written = cloneImage(this.#durable);
  }

  #makeDurable(write: Write): void {
    apply(this.#durable, write);
    write.onDurable();
  }
}

/** The storage one process lifetime of a member writes through. */
export class SimStorage implements ReplicaStorage {
  readonly #disk: SimDisk;
  readonly #io: StorageIo;
  /** Like SQLite's synchronous mode: set by each commit, used by saveSnapshot too. */
  #syncing = true;

  constructor(disk: SimDisk, io: StorageIo) {
    this.#disk = disk;
    this.#io = io;
  }

  /** What a starting member reads: engine state, and the snapshot plus the log to rebuild its KV state. */
  load(): LoadedState<KvCommand> {
    const image = this.#disk.written;
    const restored: RestoredState<KvCommand> = { lastDecided: image.lastDecided };
    if (image.record && image.record.phase > image.lastDecided) restored.record = copyOf(image.record);
    const after = image.log.filter((d) => d.phase > (image.snapshot?.phase ?? 0));
    const decisions = copyOf(after);
    return image.snapshot
      ? { restored, snapshot: copyOf(image.snapshot), decisions }
      : { restored, decisions };
  }

  commit(step: CommitStep): void {
    if (!this.#io.alive()) return;
    if (this.#io.crashHere()) return;
    const image = this.#disk.written;
    let lastDecided = step.installSnapshot ? step.installSnapshot.phase : image.lastDecided;
    if (step.installSnapshot) {
      assert(
        step.installSnapshot.phase > image.lastDecided,
        `sim storage: snapshot of phase ${step.installSnapshot.phase} installed over phase ${image.lastDecided}`,
      );
    }
    for (const d of step.decisions ?? []) {
      if (d.phase !== lastDecided + 1) {
        throw new AetherError(
          "internal",
          `consensus storage: decision for phase ${d.phase} does not follow phase ${lastDecided}`,
        );
      }
      lastDecided = d.phase;
    }
    this.#syncing = step.sync ?? true;
    const copy = copyOf(step);
    this.#disk.write({ kind: "commit", step: copy }, this.#syncing, this.#io.committed(copy));
  }

  snapshotDue(): boolean {
    return this.#disk.written.decisionsSinceSnapshot >= this.#disk.settings.snapshotEveryDecisions;
  }

  saveSnapshot(phase: number, data: Uint8Array): void {
    if (!this.#io.alive()) return;
    const image = this.#disk.written;
    const snapshotPhase = image.snapshot?.phase ?? 0;
    if (!Number.isSafeInteger(phase) || phase < snapshotPhase || phase > image.lastDecided) {
      throw new AetherError(
        "internal",
        `consensus storage: snapshot at phase ${phase} must lie between the current snapshot (phase ` +
          `${snapshotPhase}) and the last decided phase ${image.lastDecided}`,
      );
    }
    if (this.#io.crashHere()) return;
    const copy = data.slice();
    this.#disk.write(
      { kind: "snapshot", phase, data: copy, retain: this.#disk.settings.retainDecisions },
      this.#syncing,
      this.#io.snapshotSaved(phase, copy),
    );
  }

  /** Resolves after a simulated fsync that covers every write made so far; never, if the process dies first. */
  syncWal(): Promise<void> {
    const covers = this.#disk.lastWriteSeq;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#io.timers.schedule(this.#fsyncMs(), () => {
      if (!this.#io.alive()) return;
      this.#disk.synced(covers);
      if (this.#io.crashHere()) return;
      resolve();
    });
    return promise;
  }

  readForSync(fromPhase: number, maxBytes: number): {
    snapshot?: Snapshot;
    decisions: DecidedPhase<KvCommand>[];
    lastDecided: number;
  } {
    const image = this.#disk.written;
    const from = Math.max(1, fromPhase);
    const lastDecided = image.lastDecided;
    if (from > lastDecided) return { decisions: [], lastDecided };
    const first = image.log[0]?.phase;
    if (first !== undefined && from >= first) {
      return { decisions: copyOf(readDecisions(image, from, maxBytes)), lastDecided };
    }
    assert(
      image.snapshot !== undefined,
      `sim storage: phase ${from} is neither in the log nor in a snapshot`,
    );
    const snapshot = image.snapshot;
    const budget = maxBytes - snapshot.data.byteLength;
    const decisions = budget > 0 ? readDecisions(image, snapshot.phase + 1, budget) : [];
    return { snapshot: copyOf(snapshot), decisions: copyOf(decisions), lastDecided };
  }

  #fsyncMs(): number {
    const { rng } = this.#io;
    const s = this.#disk.settings;
    const [min, max] = rng.chance(s.fsyncStallRate) ? s.fsyncStallMs : s.fsyncMs;
    return rng.int(min, max);
  }
}

function readDecisions(image: Image, from: number, maxBytes: number): DecidedPhase<KvCommand>[] {
  const start = from - (image.log[0]?.phase ?? from);
  const out: DecidedPhase<KvCommand>[] = [];
  let bytes = 0;
  for (let i = Math.max(0, start); i < image.log.length && out.length < SYNC_MAX_ROWS; i++) {
    const size = batchBytes(image.log[i].batch);
    if (out.length > 0 && bytes + size > maxBytes) break;
    out.push(image.log[i]);
    bytes += size;
  }
  return out;
}

/** About what the batch takes encoded (the real storage counts msgpack bytes). */
function batchBytes(batch: Batch<KvCommand> | null): number {
  if (!batch) return 1;
  let bytes = 48 + batch.id.length;
  for (const command of batch.commands) bytes += commandSize(command);
  return bytes;
}

function emptyImage(): Image {
  return { log: [], lastDecided: 0, decisionsSinceSnapshot: 0 };
}

function cloneImage(image: Image): Image {
  return { ...image, log: image.log.slice() };
}

function apply(image: Image, write: Write): void {
  if (write.kind === "snapshot") return applySnapshot(image, write.phase, write.data, write.retain);
  const step = write.step;
  if (step.installSnapshot) {
    image.snapshot = step.installSnapshot;
    image.log = [];
    image.lastDecided = step.installSnapshot.phase;
    image.decisionsSinceSnapshot = 0;
  }
  for (const d of step.decisions ?? []) {
    assert(d.phase === image.lastDecided + 1, `sim disk: decision ${d.phase} after ${image.lastDecided}`);
    image.log.push(d);
    image.lastDecided = d.phase;
    image.decisionsSinceSnapshot++;
  }
  if (step.record) image.record = step.record;
}

/** Stores the snapshot and truncates the log through min(phase, lastDecided - retain), like the real storage. */
function applySnapshot(image: Image, phase: number, data: Uint8Array, retain: number): void {
  image.snapshot = { phase, data };
  const truncateThrough = Math.min(phase, image.lastDecided - retain);
  const keepFrom = image.log.findIndex((d) => d.phase > truncateThrough);
  image.log = keepFrom < 0 ? [] : image.log.slice(keepFrom);
  image.decisionsSinceSnapshot = image.log.filter((d) => d.phase > phase).length;
}
