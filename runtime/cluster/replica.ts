/**
 * The replica: drives the Rabia engine with real IO. It owns the node's copy of the KV state, carries out the
 * engine's effects (durable storage first, then messages), forms client batches, and answers reads.
 *
 * Order of work for every engine call (the engine's contract, consensus/types.ts):
 *   1. persist / decide / installSnapshot effects go into one storage transaction;
 *   2. the transaction commits (fsynced under --fsync always when it holds a vote);
 *   3. only then are decisions applied to the readable KV state, messages sent, client writes acknowledged and
 *      watch events published, in the order the effects came: a read never sees what is not yet durable.
 */

import { AetherError, assert, type Logger, type NodeId, type Timers } from "../core/mod.ts";
import {
  type Batch,
  Batcher,
  type ConsensusMsg,
  type DecidedPhase,
  DEFAULT_BATCH_LIMITS,
  type Effect,
  type PhaseRecord,
  quorumOf,
  type RabiaEngine,
  type Snapshot,
} from "../consensus/mod.ts";
import { commandSize, type KvCommand, type KvEvent, type KvResult, KvState } from "../kv/mod.ts";
import type { WriteOutcome } from "./access.ts";
import { RevisionWaiters } from "./_revision_waiters.ts";
import {
  DEFAULT_MAX_SNAPSHOT_BYTES,
  DEFAULT_SNAPSHOT_CHUNK_BYTES,
  isSnapshotTransferMsg,
  type ReceiverAction,
  SnapshotReceiver,
  SnapshotSender,
  type SnapshotTransferMsg,
  splitSyncResponse,
} from "./_snapshot_transfer.ts";

export { DEFAULT_MAX_SNAPSHOT_BYTES, DEFAULT_SNAPSHOT_CHUNK_BYTES } from "./_snapshot_transfer.ts";

function runAll(actions: (() => void)[]): void {
  for (const action of actions) action();
}

/** Channel of consensus messages on the mesh. */
export const CONSENSUS_CHANNEL = "c";

/** What the replica needs from durable storage (implemented by kv/storage.ts). */
export interface ReplicaStorage {
  commit(
    step: {
      installSnapshot?: Snapshot;
      record?: PhaseRecord<KvCommand>;
      decisions?: DecidedPhase<KvCommand>[];
      sync?: boolean;
    },
  ): void;
  saveSnapshot(phase: number, data: Uint8Array): void;
  /** Enough decided since the last snapshot to take a new one. */
  snapshotDue(): boolean;
  /** Makes every commit so far durable (fsync of the WAL) without blocking the event loop. */
  syncWal(): Promise<void>;
  readForSync(fromPhase: number, maxBytes: number): {
    snapshot?: Snapshot;
    decisions: DecidedPhase<KvCommand>[];
    lastDecided: number;
  };
}

/** What the replica needs from the mesh (implemented by net/mesh.ts). */
export interface ReplicaTransport {
  send(to: NodeId, channel: string, message: unknown): boolean;
  broadcast(channel: string, message: unknown): void;
  isConnected(id: NodeId): boolean;
}

export interface ReplicaOptions {
  self: NodeId;
  members: NodeId[];
  incarnation: string;
  /** --fsync always: votes are fsynced before they are sent. */
  durable: boolean;
  /** Time, write deadlines and the deferred flush (systemClock in a node, simulated timers in the simulator). */
  clock: Timers;
  log: Logger;
  storage: ReplicaStorage;
  transport: ReplicaTransport;
  /** The state rebuilt from the latest snapshot plus the decided log. */
  state: KvState;
  engine: RabiaEngine<KvCommand>;
  maxSyncResponseBytes: number;
  /**
   * A catch-up snapshot larger than this travels in chunks of this many bytes (must fit a mesh frame with
   * room to spare; DEFAULT_SNAPSHOT_CHUNK_BYTES when absent).
   */
  snapshotChunkBytes?: number;
  /** The largest snapshot this member accepts from a peer (DEFAULT_MAX_SNAPSHOT_BYTES when absent). */
  maxSnapshotBytes?: number;
  defaultWriteTimeoutMs: number;
  maxQueuedBytes: number;
  onEvents(events: KvEvent[]): void;
  /**
   * The state was replaced by a snapshot that brought it to `revision`. Called in order with onEvents: the
   * events of decisions applied after the snapshot follow it. Caches rebuilt from the live state here may
   * already hold those later changes; the events that follow then repeat them (revisions above `revision`).
   */
  onSnapshotInstalled(revision: number): void;
  /** A decided phase was applied to the readable state, which is now at `revision` (the simulator checks that
   * every member reaches the same revision at the same phase). */
  onApplied?(phase: number, revision: number): void;
  /** The engine halted on a broken invariant; the node must stop. */
  onFatal(error: Error): void;
}

/** A write's result as the API reports it: the outcome, or an AetherError for a refused command. */
export function writeOutcome(result: KvResult): WriteOutcome {
  if (result.ok) return { revision: result.revision, succeeded: result.succeeded, deleted: result.deleted };
  const code = result.code === "too_large"
    ? "too_large"
    : result.code === "invalid"
    ? "bad_request"
    : "compare_failed";
  throw new AetherError(code, result.message, {
    revision: result.revision,
    ...(result.currentRevision !== undefined ? { currentRevision: result.currentRevision } : {}),
  });
}

export class Replica {
  readonly #o: ReplicaOptions;
  #state: KvState;
  readonly #batcher: Batcher<KvCommand, KvResult>;
  #ready = false;
  /** Storage writes of engine calls not yet committed, and what waits for that commit. */
  #step: { record?: PhaseRecord<KvCommand>; decisions: DecidedPhase<KvCommand>[] } = { decisions: [] };
  #afterCommit: (() => void)[] = [];
  #flushScheduled = false;
  /** Committed groups of actions waiting (in order) for their fsync; see #flush. */
  #waiting: { needsSync: boolean; actions: (() => void)[] }[] = [];
  #syncInFlight = false;
  /** The phase of the last decision applied to #state (decisions are applied once durable). */
  #appliedPhase: number;
  /** The phase of the last snapshot installed: no snapshot of our own below it (storage already holds one). */
  #snapshotFloor = 0;
  /** Callers waiting for the applied revision to reach theirs (forwarded writes), ordered and bounded. */
  readonly #revisionWaiters: RevisionWaiters;
  /** Catch-up snapshots larger than one chunk: served (sender) and fetched (receiver) chunk by chunk. */
  readonly #snapshotSender: SnapshotSender;
  readonly #snapshotReceiver: SnapshotReceiver<KvCommand>;

  constructor(options: ReplicaOptions) {
    this.#o = options;
    this.#state = options.state;
    const chunkBytes = options.snapshotChunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES;
    assert(
      Number.isSafeInteger(chunkBytes) && chunkBytes > 0,
      "snapshotChunkBytes must be a positive integer",
    );
    this.#snapshotSender = new SnapshotSender(chunkBytes);
    this.#snapshotReceiver = new SnapshotReceiver(options.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES);
    this.#appliedPhase = options.engine.lastDecided;
    this.#revisionWaiters = new RevisionWaiters(options.clock);
    this.#batcher = new Batcher<KvCommand, KvResult>({
      ...DEFAULT_BATCH_LIMITS,
      self: options.self,
      incarnation: options.incarnation,
      maxQueuedBytes: options.maxQueuedBytes,
    });
  }

  get state(): KvState {
    return this.#state;
  }

  /** Caught up and taking part in consensus. */
  get ready(): boolean {
    return this.#ready;
  }

  /** The last phase applied to the readable state (the engine may have decided more, waiting for an fsync). */
  get phase(): number {
    return this.#appliedPhase;
  }

  get quorum(): boolean {
    const connected =
      this.#o.members.filter((m) => m === this.#o.self || this.#o.transport.isConnected(m)).length;
    return connected >= quorumOf(this.#o.members.length);
  }

  start(): void {
    this.#call(() => this.#o.engine.start(this.#now()));
  }

  tick(): void {
    this.#call(() => this.#o.engine.tick(this.#now()));
    this.#snapshotSender.expire(this.#now());
    this.#onTransfer(
      this.#snapshotReceiver.tick(
        this.#now(),
        this.#o.engine.lastDecided,
        (id) => this.#o.transport.isConnected(id),
      ),
    );
    this.#pump();
  }

  /** A snapshot transfer in progress here: from whom, which snapshot, how far (undefined when none). */
  get snapshotTransfer(): { from: NodeId; phase: number; received: number; bytes: number } | undefined {
    return this.#snapshotReceiver.inProgress;
  }

  receive(from: NodeId, message: unknown): void {
    if (isSnapshotTransferMsg(message)) {
      this.#receiveTransfer(from, message as SnapshotTransferMsg<KvCommand>);
      this.#pump();
      return;
    }
    this.#call(() => this.#o.engine.receive(from, message as ConsensusMsg<KvCommand>, this.#now()), from);
    this.#pump();
  }

  peerConnected(id: NodeId): void {
    this.#call(() => this.#o.engine.peerConnected(id, this.#now()));
  }

  /**
   * One engine call. An AetherError means a malformed message: the engine is unchanged, so it is logged and
   * dropped. Anything else is a broken invariant: the engine has halted for good, and a member that can no
   * longer take part must not keep serving stale state, so the node stops (onFatal).
   */
  #call(engineCall: () => Effect<KvCommand>[], from?: NodeId): void {
    let effects: Effect<KvCommand>[];
    try {
      effects = engineCall();
    } catch (e) {
      if (e instanceof AetherError) {
        this.#o.log.warn("dropped a malformed consensus message", { from, error: e.message });
        return;
      }
      this.#o.onFatal(e as Error);
      return;
    }
    this.#run(effects);
  }

  /** Replicates one command; resolves when it is applied here. */
  write(command: KvCommand, timeoutMs = this.#o.defaultWriteTimeoutMs): Promise<KvResult> {
    if (!this.quorum) {
      return Promise.reject(
        new AetherError(
          "no_quorum",
          "no quorum: fewer than a majority of members are connected; nothing was written",
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<KvResult>();
    const timer = this.#o.clock.schedule(timeoutMs, () => {
      reject(
        this.quorum
          ? new AetherError("timeout", `not applied within ${timeoutMs} ms; it may still be applied later`)
          : new AetherError(
            "no_quorum",
            `quorum lost; not applied within ${timeoutMs} ms (it may be applied later)`,
          ),
      );
    });
    try {
      this.#batcher.enqueue(command, commandSize(command), (outcome) => {
        timer.cancel();
        if (outcome.ok) resolve(outcome.result);
        else reject(outcome.error);
      });
    } catch (e) {
      timer.cancel();
      return Promise.reject(e);
    }
    this.#pump();
    return promise;
  }

  /**
   * Resolves once this node has applied (and published the events of) `revision`, the revision another member
   * reported for a write. False when `timeoutMs` passes first.
   */
  waitForRevision(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.#state.revision >= revision) return Promise.resolve(true);
    return this.#revisionWaiters.waitFor(revision, timeoutMs);
  }

  /** Writes refused because this member's queue of writes waiting for a batch was full (maxQueuedBytes). */
  get writeQueueRefused(): number {
    return this.#batcher.refusedQueueFull;
  }

  /** Callers waiting for a revision to be applied here: how many, the limit, and how many were refused. */
  get revisionWaiterStats(): { waiting: number; maxWaiting: number; refused: number } {
    return this.#revisionWaiters.stats;
  }

  #releaseRevisionWaiters(): void {
    this.#revisionWaiters.release(this.#state.revision);
  }

  async writeOk(command: KvCommand, timeoutMs?: number): Promise<WriteOutcome> {
    return writeOutcome(await this.write(command, timeoutMs));
  }

  /** Forms the next batch when the engine can take one. */
  #pump(): void {
    if (!this.#ready) return;
    const batch = this.#batcher.takeBatch(this.#now());
    if (!batch) return;
    let effects: Effect<KvCommand>[];
    try {
      effects = this.#o.engine.submit(batch, this.#now());
    } catch (e) {
      if (!(e instanceof AetherError)) {
        this.#o.onFatal(e as Error);
        return;
      }
      // Refused before it entered consensus (overloaded, not active): its writes did not run, and the next
      // batch may go once the engine takes one again.
      this.#batcher.onRefused(batch.id, e);
      return;
    }
    this.#run(effects);
  }

  #now(): number {
    return this.#o.clock.now();
  }

  /**
   * Carries out one engine call's effects. Storage writes join the pending transaction, and everything that
   * must wait for durability (applying decisions, messages, acknowledgements, watch events) waits for its
   * commit. Engine calls made in the same event-loop turn (several messages in one frame, messages from
   * several peers) share one transaction: one fsync instead of one per message (group commit).
   */
  #run(effects: Effect<KvCommand>[]): void {
    if (effects.length === 0) return;
    for (const effect of effects) {
      switch (effect.type) {
        case "persist":
          this.#step.record = effect.record;
          break;
        case "decide":
          this.#applyDecision(effect.phase, effect.batch as Batch<KvCommand> | null);
          break;
        case "installSnapshot":
          this.#commit();
          this.#o.storage.commit({ installSnapshot: effect.snapshot });
          this.#installSnapshot(effect.snapshot);
          break;
        case "send": {
          const messages = effect.msg.t === "syncRes"
            ? splitSyncResponse(effect.msg, this.#o.maxSyncResponseBytes, commandSize)
            : [effect.msg];
          for (const msg of messages) this.#afterCommit.push(() => this.#send(effect.to, msg));
          break;
        }
        case "broadcast":
          this.#afterCommit.push(() => this.#send(undefined, effect.msg));
          break;
        case "serveSync":
          this.#afterCommit.push(() =>
            this.#serveSync(effect.to, effect.request.fromPhase, effect.request.nonce)
          );
          break;
        case "dropped":
          this.#afterCommit.push(() => this.#batcher.onDropped(effect.batchIds));
          break;
        case "status":
          this.#afterCommit.push(() => this.#setReady(effect.status === "active"));
          break;
      }
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      this.#o.clock.defer(() => this.#flush());
    }
  }

  /**
   * A decision joins the pending storage step now, and is applied to the readable state only once that step
   * is durable (in order with everything else that waits for it): a read never returns a write that a power
   * loss could take back (the decision may rest on this member's own vote, fsynced with the same step).
   */
  #applyDecision(phase: number, batch: Batch<KvCommand> | null): void {
    this.#step.decisions.push({ phase, batch });
    this.#afterCommit.push(() => {
      assert(phase === this.#appliedPhase + 1, "decisions are applied in phase order without gaps");
      this.#appliedPhase = phase;
      const outcome = batch ? this.#state.applyBatch(batch) : undefined;
      this.#o.onApplied?.(phase, this.#state.revision);
      if (!batch || !outcome) return;
      if (outcome.events.length > 0) {
        this.#o.onEvents(outcome.events);
        this.#releaseRevisionWaiters();
      }
      if (batch.submitter === this.#o.self) {
        this.#batcher.onDecided(batch.id, outcome.results);
        this.#pump();
      }
    });
  }

  /** The snapshot replaces the readable state once it is durable, in order with the decisions around it. */
  #installSnapshot(snapshot: Snapshot): void {
    this.#snapshotFloor = snapshot.phase;
    this.#afterCommit.push(() => {
      this.#state = KvState.fromSnapshot(snapshot.data, { maxValueBytes: this.#state.maxValueBytes });
      this.#appliedPhase = snapshot.phase;
      this.#o.onSnapshotInstalled(this.#state.revision);
      this.#releaseRevisionWaiters();
    });
  }

  /**
   * Writes the pending transaction to the WAL (no fsync: returns in microseconds), then releases what waited
   * for it once it is durable. Under fsync "always", a step with a record (votes) is durable only after an
   * fsync of the WAL, which runs off the event loop: meanwhile messages and requests keep being processed and
   * their steps join the next fsync (group commit). Waiting groups are released strictly in flush order, so
   * messages to each peer keep their order.
   */
  #flush(): void {
    this.#flushScheduled = false;
    const needsSync = this.#commit();
    const actions = this.#afterCommit;
    this.#afterCommit = [];
    this.#waiting.push({ needsSync, actions });
    this.#release();
    this.#maybeSnapshot();
  }

  #release(): void {
    if (this.#syncInFlight) return;
    while (this.#waiting.length > 0 && !this.#waiting[0].needsSync) runAll(this.#waiting.shift()!.actions);
    if (this.#waiting.length === 0) return;
    // Every group queued now was written before this fsync starts, so this one fsync makes all of them durable.
    const covered = this.#waiting.length;
    this.#syncInFlight = true;
    this.#o.storage.syncWal().then(() => {
      this.#syncInFlight = false;
      for (const group of this.#waiting.splice(0, covered)) runAll(group.actions);
      this.#release();
    }, (e) => this.#o.onFatal(e as Error));
  }

  /** Writes the pending step; true when it must be fsynced before what waits for it may happen. */
  #commit(): boolean {
    const step = this.#step;
    if (!step.record && step.decisions.length === 0) return false;
    this.#o.storage.commit({ record: step.record, decisions: step.decisions, sync: false });
    this.#step = { decisions: [] };
    // Votes must be durable before they are sent. Decisions alone need no fsync of their own: what decided
    // them was fsynced by the voters, and a lost one is learned again from the peers. A single member casts no
    // votes, so its decisions are fsynced before they are acknowledged.
    return this.#o.durable && (step.record !== undefined || this.#o.members.length === 1);
  }

  /**
   * Answers a peer's catch-up request from storage, with only what is durable here: storage also holds later
   * steps that are written but still wait for their fsync, and a power loss could take those back after a peer
   * applied them. What is applied here is durable (#appliedPhase), and so is an installed snapshot (fsynced as
   * it is written).
   */
  #serveSync(to: NodeId, fromPhase: number, nonce: number): void {
    // Runs from a message handler: a failure here (storage, a refused send) must not take the node down; the
    // peer asks again after its sync retry.
    try {
      const answer = this.#o.storage.readForSync(fromPhase, this.#o.maxSyncResponseBytes);
      const durableThrough = Math.max(this.#appliedPhase, answer.snapshot?.phase ?? 0);
      const response = {
        nonce,
        lastDecided: Math.min(answer.lastDecided, durableThrough),
        decisions: answer.decisions.filter((d) => d.phase <= durableThrough),
      };
      const snapshot = answer.snapshot;
      const message = snapshot && this.#snapshotSender.needsChunks(snapshot)
        ? this.#snapshotSender.offer(snapshot, response, this.#now())
        : { t: "syncRes", ...response, snapshot } satisfies ConsensusMsg<KvCommand>;
      this.#o.transport.send(to, CONSENSUS_CHANNEL, message);
    } catch (e) {
      this.#o.log.error("could not answer a catch-up request", {
        to,
        fromPhase,
        error: (e as Error).message,
      });
    }
  }

  /**
   * Sends (or broadcasts, without `to`) a consensus message. A refused send (a message larger than a mesh
   * frame) is logged, never thrown: it runs after a commit, from a message handler or a timer, and throwing
   * there would crash the node; the engine's retransmissions and sync retries cover a lost message.
   */
  #send(to: NodeId | undefined, msg: ConsensusMsg<KvCommand>): void {
    try {
      if (to === undefined) this.#o.transport.broadcast(CONSENSUS_CHANNEL, msg);
      else this.#o.transport.send(to, CONSENSUS_CHANNEL, msg);
    } catch (e) {
      this.#o.log.error("could not send a consensus message", { to, t: msg.t, error: (e as Error).message });
    }
  }

  /** The messages of a chunked snapshot transfer (see _snapshot_transfer.ts); never throws. */
  #receiveTransfer(from: NodeId, message: SnapshotTransferMsg<KvCommand>): void {
    try {
      switch (message.t) {
        case "snapGet":
          this.#o.transport.send(from, CONSENSUS_CHANNEL, this.#snapshotSender.chunk(message, this.#now()));
          return;
        case "snapOffer":
          this.#onTransfer(
            this.#snapshotReceiver.onOffer(from, message, this.#o.engine.lastDecided, this.#now()),
          );
          return;
        case "snapChunk":
          this.#onTransfer(this.#snapshotReceiver.onChunk(from, message, this.#now()));
          return;
      }
    } catch (e) {
      this.#o.log.error("snapshot transfer message failed", {
        from,
        t: message.t,
        error: (e as Error).message,
      });
    }
  }

  #onTransfer(action: ReceiverAction<KvCommand>): void {
    switch (action.type) {
      case "send":
        try {
          this.#o.transport.send(action.to, CONSENSUS_CHANNEL, action.msg);
        } catch (e) {
          this.#o.log.warn("could not ask for a snapshot chunk", {
            to: action.to,
            error: (e as Error).message,
          });
        }
        return;
      case "complete":
        if (action.fetched && action.msg.snapshot) {
          this.#o.log.info("received a catch-up snapshot in chunks", {
            from: action.from,
            phase: action.msg.snapshot.phase,
            bytes: action.msg.snapshot.data.byteLength,
            ...action.fetched,
          });
        }
        // The whole snapshot, checked: the engine installs it as if it had come in one sync answer.
        this.#call(() => this.#o.engine.receive(action.from, action.msg, this.#now()), action.from);
        return;
      case "abandoned":
        this.#o.log.warn(action.reason);
        return;
      case "refused":
        this.#o.log.error(action.reason);
        return;
    }
  }

  #setReady(ready: boolean): void {
    if (ready !== this.#ready) this.#o.log.info(ready ? "consensus active" : "consensus syncing");
    this.#ready = ready;
    this.#pump();
  }

  #maybeSnapshot(): void {
    // Until an installed snapshot is applied here, the readable state is older than the one storage holds.
    if (this.#appliedPhase < this.#snapshotFloor) return;
    if (this.#o.storage.snapshotDue()) {
      // The readable state holds what is durable, up to #appliedPhase (later decisions wait for an fsync).
      this.#o.storage.saveSnapshot(this.#appliedPhase, this.#state.snapshot());
    }
  }
}
