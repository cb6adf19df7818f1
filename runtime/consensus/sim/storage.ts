/**
 * A member's simulated durable storage: what survives a crash. The phase record, a snapshot taken every
 * `snapshotEvery` decisions, and the decided log after it (truncated to keep `logTail` phases before the
 * snapshot, so sync requests just behind the snapshot can still be answered from the log).
 */

import { assert } from "../../core/errors.ts";
import type { KvCommand } from "../../kv/commands.ts";
import { KvState } from "../../kv/state.ts";
import {
  type Batch,
  type DecidedPhase,
  MAX_SYNC_DECISIONS,
  type PhaseRecord,
  type Snapshot,
  type SyncRequestMsg,
  type SyncResponseMsg,
} from "../mod.ts";

export interface StorageLimits {
  snapshotEvery: number;
  logTail: number;
}

export class SimStorage {
  readonly #limits: StorageLimits;
  /** How many times the member has started; the batcher's incarnation. */
  boots = 0;
  record?: PhaseRecord<KvCommand>;
  snapshot?: Snapshot;
  /** Consecutive decisions ending at lastDecided. */
  log: DecidedPhase<KvCommand>[] = [];
  lastDecided = 0;

  constructor(limits: StorageLimits) {
    this.#limits = limits;
  }

  append(phase: number, batch: Batch<KvCommand> | null): void {
    assert(phase === this.lastDecided + 1, `storage: decision ${phase} after ${this.lastDecided}`);
    this.log.push({ phase, batch });
    this.lastDecided = phase;
  }

  /** Called after the decision of `lastDecided` was applied to `kv`. */
  maybeSnapshot(kv: KvState): void {
    if (this.lastDecided % this.#limits.snapshotEvery !== 0) return;
    this.snapshot = { phase: this.lastDecided, data: kv.snapshot() };
    const keepFrom = this.lastDecided - this.#limits.logTail + 1;
    const drop = this.log.findIndex((d) => d.phase >= keepFrom);
    this.log = drop < 0 ? [] : this.log.slice(drop);
  }

  install(snapshot: Snapshot): void {
    assert(snapshot.phase > this.lastDecided, "storage: snapshot older than the log");
    this.snapshot = snapshot;
    this.log = [];
    this.lastDecided = snapshot.phase;
  }

  /** The state machine as of lastDecided: the snapshot plus the log after it. */
  rebuildKv(): KvState {
    const kv = this.snapshot ? KvState.fromSnapshot(this.snapshot.data) : new KvState();
    const from = this.snapshot?.phase ?? 0;
    for (const d of this.log) if (d.phase > from && d.batch) kv.applyBatch(d.batch);
    return kv;
  }

  /** Answers a sync request the way a node answers it from its database. */
  serve(request: SyncRequestMsg): SyncResponseMsg<KvCommand> {
    const response: SyncResponseMsg<KvCommand> = {
      t: "syncRes",
      nonce: request.nonce,
      lastDecided: this.lastDecided,
      decisions: [],
    };
    if (request.fromPhase > this.lastDecided) return response;
    const first = this.log[0]?.phase ?? this.lastDecided + 1;
    if (request.fromPhase >= first) {
      const start = request.fromPhase - first;
      response.decisions = this.log.slice(start, start + MAX_SYNC_DECISIONS);
      return response;
    }
    assert(this.snapshot !== undefined, `storage: log starts at ${first} without a snapshot`);
    response.snapshot = this.snapshot;
    const after = this.log.findIndex((d) => d.phase > this.snapshot!.phase);
    if (after >= 0) response.decisions = this.log.slice(after, after + MAX_SYNC_DECISIONS);
    return response;
  }
}
