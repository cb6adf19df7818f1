/**
 * One simulated cluster member: a RabiaEngine, a Batcher and the real KvState, over simulated durable storage.
 * It carries out the engine's effects exactly as types.ts says a node must: in order, `persist` durable before
 * anything after it, `decide` applied to the state machine and logged in phase order. A crash loses everything
 * but the storage; a boot rebuilds the engine and the state machine from it.
 */

import { AetherError, assert } from "../../core/errors.ts";
import type { NodeId } from "../../core/ids.ts";
import type { KvCommand, KvResult } from "../../kv/commands.ts";
import type { KvState } from "../../kv/state.ts";
import {
  type Batch,
  Batcher,
  type ConsensusMsg,
  type Effect,
  type EngineConfig,
  RabiaEngine,
  type Snapshot,
  type Ticket,
} from "../mod.ts";
import { SimStorage, type StorageLimits } from "./storage.ts";
import { copyOf } from "./_copy.ts";

/** What a member needs from the simulated world. */
export type EngineTimings = Pick<
  EngineConfig,
  "retransmitMs" | "syncRetryMs" | "recentDecisions" | "maxPhasesAhead"
>;

export interface SimHost {
  now(): number;
  send(from: SimMember, to: NodeId, msg: ConsensusMsg<KvCommand>): void;
  /** After a decision was applied to `member.kv` (agreement checks). */
  decided(member: SimMember, phase: number, batch: Batch<KvCommand> | null): void;
  snapshotInstalled(member: SimMember, snapshot: Snapshot): void;
  /** How many of `count` effects to carry out before a crash, or undefined for no crash. */
  crashPoint(member: SimMember, count: number): number | undefined;
  crashed(member: SimMember): void;
}

export interface MemberSettings extends StorageLimits {
  members: NodeId[];
  /** Engine timings and memory bounds (small ones force catch-up from storage and snapshots). */
  engine: EngineTimings;
  /** This member's clock runs this far from simulated time (skew between members). */
  clockOffsetMs: number;
  maxBatchCommands: number;
}

export class SimMember {
  readonly id: NodeId;
  readonly storage: SimStorage;
  readonly #settings: MemberSettings;
  readonly #host: SimHost;
  alive = false;
  engine?: RabiaEngine<KvCommand>;
  batcher?: Batcher<KvCommand, KvResult>;
  kv?: KvState;

  constructor(id: NodeId, settings: MemberSettings, host: SimHost) {
    this.id = id;
    this.#settings = settings;
    this.#host = host;
    this.storage = new SimStorage(settings);
  }

  get incarnation(): number {
    return this.storage.boots;
  }

  get active(): boolean {
    return this.alive && this.engine?.status === "active";
  }

  /** True when this member holds no work: no pending batch, nothing queued or in flight, no open phase. */
  get quiet(): boolean {
    return this.active && this.engine!.pendingCount === 0 && !this.engine!.busy && this.batcher!.idle;
  }

  #clock(): number {
    return this.#host.now() + this.#settings.clockOffsetMs;
  }

  boot(): void {
    assert(!this.alive, `${this.id} booted twice`);
    const storage = this.storage;
    storage.boots++;
    this.kv = storage.rebuildKv();
    this.engine = new RabiaEngine<KvCommand>(
      { self: this.id, members: this.#settings.members, ...this.#settings.engine },
      { lastDecided: storage.lastDecided, record: storage.record },
    );
    this.batcher = new Batcher<KvCommand, KvResult>({
      self: this.id,
      incarnation: String(storage.boots),
      maxBatchBytes: 64 * 1024,
      maxBatchCommands: this.#settings.maxBatchCommands,
      maxQueuedBytes: 256 * 1024,
    });
    this.alive = true;
    this.#run(this.engine.start(this.#clock()));
  }

  /** Loses all volatile state; clients waiting on this member learn that their outcome is unknown. */
  crash(): void {
    if (!this.alive) return;
    this.alive = false;
    const batcher = this.batcher!;
    this.engine = undefined;
    this.batcher = undefined;
    this.kv = undefined;
    batcher.failAll(new AetherError("unavailable", `${this.id} crashed before the command was batched`));
    this.#host.crashed(this);
  }

  receive(from: NodeId, msg: ConsensusMsg<KvCommand>): void {
    if (this.alive) this.#run(this.engine!.receive(from, msg, this.#clock()));
  }

  tick(): void {
    if (this.alive) this.#run(this.engine!.tick(this.#clock()));
  }

  peerConnected(peer: NodeId): void {
    if (this.alive) this.#run(this.engine!.peerConnected(peer, this.#clock()));
  }

  /** A client command; throws AetherError when this member cannot take it (the command then never runs). */
  submit(command: KvCommand, sizeBytes: number, ticket: Ticket<KvResult>): void {
    if (!this.active) throw new AetherError("unavailable", `${this.id} is not active`);
    this.batcher!.enqueue(command, sizeBytes, ticket);
    this.#pump();
  }

  /** Hands the next batch to consensus when none of this member's batches is in flight. */
  #pump(): void {
    while (this.active) {
      const batch = this.batcher!.takeBatch(this.#clock());
      if (!batch) return;
      this.#run(this.engine!.submit(batch, this.#clock()));
    }
  }

  #run(effects: Effect<KvCommand>[]): void {
    const cut = this.#host.crashPoint(this, effects.length);
    const count = cut ?? effects.length;
    for (let i = 0; i < count; i++) this.#carryOut(effects[i]);
    if (cut !== undefined) return this.crash();
    this.#pump();
  }

  #carryOut(effect: Effect<KvCommand>): void {
    switch (effect.type) {
      case "send":
        return this.#host.send(this, effect.to, effect.msg);
      case "broadcast":
        for (const peer of this.#settings.members) {
          if (peer !== this.id) this.#host.send(this, peer, effect.msg);
        }
        return;
      case "persist":
        this.storage.record = copyOf(effect.record);
        return;
      case "decide":
        return this.#decide(effect.phase, effect.batch);
      case "installSnapshot":
        return this.#install(effect.snapshot);
      case "serveSync":
        return this.#host.send(this, effect.to, this.storage.serve(effect.request));
      case "dropped":
        return this.batcher!.onDropped(effect.batchIds);
      case "status":
        return;
    }
  }

  #decide(phase: number, batch: Batch<KvCommand> | null): void {
    this.storage.append(phase, batch);
    const outcome = batch ? this.kv!.applyBatch(batch) : undefined;
    this.#host.decided(this, phase, batch);
    this.storage.maybeSnapshot(this.kv!);
    // Tickets run here, inside the decision: a barrier read sees the state right after its batch.
    if (batch) this.batcher!.onDecided(batch.id, outcome!.results);
  }

  #install(snapshot: Snapshot): void {
    this.storage.install(snapshot);
    this.kv = this.storage.rebuildKv();
    this.#host.snapshotInstalled(this, snapshot);
  }
}
