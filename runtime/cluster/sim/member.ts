/**
 * One simulated cluster member, assembled like runtime/node/node.ts assembles a node: the real `Replica`
 * driving a real `RabiaEngine`, the KV state restored from storage by the real `restoreKvState`, a real
 * `WatchHub` fed by the replica's onEvents and onSnapshotInstalled, and real `Elections`. Only the IO at the
 * edges is simulated: the disk (storage.ts), the mesh (network.ts) and time (core's SimulatedTimers).
 *
 * A crash ends the process: its timers and deferred work stop, what it still tries to send or write is lost,
 * and its disk keeps what a process crash or a power loss keeps. A start rebuilds everything from the disk.
 *
 * Every member also runs a watcher over its hub, as a client of the node's watch API would: it mirrors the
 * whole key space from the watch events (re-reading the state when a snapshot ends the watch with `gone`) and
 * checks that revisions only go up; the simulator compares the mirror with the state at the end.
 */

import { AetherError, type NodeId, type Rng, SimulatedTimers, type VirtualTime } from "../../core/mod.ts";
import type { Logger } from "../../core/mod.ts";
import type { EngineConfig } from "../../consensus/mod.ts";
import { RabiaEngine } from "../../consensus/mod.ts";
import { type KvCommand, type KvEvent, restoreKvState, type Watch, WatchHub } from "../../kv/mod.ts";
import { type KvAccess, kvAccess } from "../access.ts";
import { ELECTION_CHANNEL, ELECTION_CHECK_MS, Elections } from "../elections.ts";
import type { LeaderRecord } from "../leader.ts";
import { CONSENSUS_CHANNEL, Replica, type ReplicaOptions, type ReplicaTransport } from "../replica.ts";
import type { Endpoint, SimNetwork } from "./network.ts";
import { type CommitStep, type CrashKind, SimDisk, SimStorage, type StorageSettings } from "./storage.ts";

/** Engine timings and memory bounds (small ones force catch-up from storage and snapshots). */
export type EngineTimings = Pick<
  EngineConfig,
  "retransmitMs" | "syncRetryMs" | "recentDecisions" | "maxPhasesAhead"
>;

export interface MemberSettings {
  members: NodeId[];
  engine: EngineTimings;
  storage: StorageSettings;
  /** This member's clock runs this far from simulated time (skew between members). */
  clockOffsetMs: number;
  /** Its timers fire up to this late (a busy event loop). */
  maxTimerLateMs: number;
  tickMs: number;
  maxSyncResponseBytes: number;
  /** Catch-up snapshots larger than this travel in chunks (the replica's snapshotChunkBytes). */
  snapshotChunkBytes: number;
  maxQueuedBytes: number;
  writeTimeoutMs: number;
  /** Run leader elections (a node always does; runs without them check consensus alone). */
  elections: boolean;
}

/** What a member tells the simulation, and asks it. */
export interface MemberHost {
  readonly time: VirtualTime;
  readonly network: SimNetwork;
  log(member: NodeId): Logger;
  /** Records a broken invariant; the run stops and reports the first one. */
  fail(message: string): void;
  /** How a process of `member` crashes right here (a fault drawn per IO call); undefined almost always. */
  crashHere(member: SimMember): CrashKind | undefined;
  /** A commit was written (not yet durable); returns what to run once it is durable. */
  committed(member: SimMember, step: CommitStep): () => void;
  snapshotSaved(member: SimMember, phase: number, data: Uint8Array): () => void;
  snapshotInstalled(member: SimMember, revision: number): void;
  applied(member: SimMember, events: readonly KvEvent[]): void;
  /** The member's readable state reached `revision` with `phase` applied. */
  appliedPhase(member: SimMember, phase: number, revision: number): void;
  crashed(member: SimMember): void;
}

/** One process lifetime of a member. */
interface Process {
  timers: SimulatedTimers;
  engine: RabiaEngine<KvCommand>;
  replica: Replica;
  hub: WatchHub;
  kv: KvAccess;
  elections?: Elections;
  watcher: Mirror;
}

/** What the member's watcher has seen: the key space as rebuilt from watch events. */
interface Mirror {
  entries: Map<string, { value: string; revision: number }>;
  /** The revision the mirror is at (the last delivered one, or the state's when it was re-read). */
  revision: number;
  watch?: Watch;
}

const decoder = new TextDecoder();

export class SimMember implements Endpoint {
  readonly id: NodeId;
  readonly disk: SimDisk;
  readonly #settings: MemberSettings;
  readonly #host: MemberHost;
  readonly #rng: Rng;
  #process?: Process;
  #incarnation = 0;
  snapshotInstalls = 0;
  /** Times a watcher re-read the state because a snapshot install ended its watch. */
  watchRereads = 0;

  constructor(id: NodeId, settings: MemberSettings, host: MemberHost, rng: Rng) {
    this.id = id;
    this.#settings = settings;
    this.#host = host;
    this.#rng = rng;
    this.disk = new SimDisk(settings.storage);
  }

  get incarnation(): number {
    return this.#incarnation;
  }

  get alive(): boolean {
    return this.#process !== undefined;
  }

  get replica(): Replica | undefined {
    return this.#process?.replica;
  }

  get engine(): RabiaEngine<KvCommand> | undefined {
    return this.#process?.engine;
  }

  get hub(): WatchHub | undefined {
    return this.#process?.hub;
  }

  /** Reads and writes as a feature or the API gets them (kvAccess over the replica and the hub). */
  get kv(): KvAccess | undefined {
    return this.#process?.kv;
  }

  get mirror(): Readonly<Mirror> | undefined {
    return this.#process?.watcher;
  }

  get elections(): Elections | undefined {
    return this.#process?.elections;
  }

  /** The leader record in this member's state. */
  leader(): LeaderRecord | null {
    return this.#process?.elections?.leader() ?? null;
  }

  /** Caught up, idle, and every applied change published to the hub and seen by the watcher. */
  get quiet(): boolean {
    const p = this.#process;
    if (!p || !p.replica.ready) return false;
    const revision = p.replica.state.revision;
    return p.engine.pendingCount === 0 && !p.engine.busy && p.hub.revision === revision &&
      p.watcher.revision === revision;
  }

  /** The watcher still has events to take from its hub. */
  get watcherBehind(): boolean {
    const p = this.#process;
    return p !== undefined && p.watcher.revision < p.hub.revision;
  }

  /** Starts a process: everything is rebuilt from the disk, as node.ts builds a node. */
  boot(): void {
    if (this.#process) return;
    const incarnation = ++this.#incarnation;
    const live = () => this.#incarnation === incarnation && this.#process !== undefined;
    const timers = new SimulatedTimers(this.#host.time, {
      offsetMs: this.#settings.clockOffsetMs,
      rng: this.#rng,
      maxLateMs: this.#settings.maxTimerLateMs,
      onError: (e) => this.#host.fail(`${this.id}: uncaught ${describe(e)}`),
    });
    const storage = new SimStorage(this.disk, {
      timers,
      rng: this.#rng,
      alive: live,
      crashHere: () => this.#crashHere(),
      committed: (step) => this.#host.committed(this, step),
      snapshotSaved: (phase, data) => this.#host.snapshotSaved(this, phase, data),
    });
    const loaded = storage.load();
    const state = restoreKvState(loaded);
    const hub = new WatchHub({ revision: state.revision });
    const { members } = this.#settings;
    const engine = new RabiaEngine<KvCommand>(
      { self: this.id, members, ...this.#settings.engine },
      loaded.restored,
    );
    const transport = this.#transport(live);
    const replica = this.#replica({ incarnation, live, timers, storage, transport, state, engine, hub });
    const elections = this.#settings.elections
      ? new Elections({
        self: this.id,
        members,
        replica,
        clock: timers,
        transport,
        log: this.#host.log(this.id),
        onLeadership: () => {},
      })
      : undefined;
    const kv = kvAccess(replica, hub, this.#settings.writeTimeoutMs);
    this.#process = {
      timers,
      engine,
      replica,
      hub,
      kv,
      elections,
      watcher: { entries: new Map(), revision: 0 },
    };
    this.#follow(this.#process);
    replica.start();
    this.#every(this.#settings.tickMs, () => replica.tick());
    if (elections) this.#every(ELECTION_CHECK_MS, () => elections.check());
    this.#host.network.started(this);
  }

  /** The mesh as the replica and the elections use it; a dead process sends nothing. */
  #transport(live: () => boolean): ReplicaTransport {
    const network = this.#host.network;
    const transport = {
      send: (to: NodeId, channel: string, message: unknown) => {
        if (!live() || this.#crashHere()) return false;
        return network.send(this, to, channel, message);
      },
      broadcast: (channel: string, message: unknown) => {
        for (const peer of this.#settings.members) {
          if (!live()) return;
          if (peer !== this.id && network.isConnected(this.id, peer)) transport.send(peer, channel, message);
        }
      },
      isConnected: (id: NodeId) => network.isConnected(this.id, id),
    };
    return transport;
  }

  #replica(
    p: Pick<ReplicaOptions, "storage" | "transport" | "state" | "engine"> & {
      incarnation: number;
      live: () => boolean;
      timers: SimulatedTimers;
      hub: WatchHub;
    },
  ): Replica {
    const { live, hub } = p;
    return new Replica({
      self: this.id,
      members: this.#settings.members,
      incarnation: String(p.incarnation),
      durable: true,
      clock: p.timers,
      log: this.#host.log(this.id),
      storage: p.storage,
      transport: p.transport,
      state: p.state,
      engine: p.engine,
      maxSyncResponseBytes: this.#settings.maxSyncResponseBytes,
      snapshotChunkBytes: this.#settings.snapshotChunkBytes,
      defaultWriteTimeoutMs: this.#settings.writeTimeoutMs,
      maxQueuedBytes: this.#settings.maxQueuedBytes,
      // As node.ts wires them: the hub follows the replica's events and snapshot installs.
      onEvents: (events) => {
        if (!live()) return;
        this.#publish(hub, events);
        this.#host.applied(this, events);
      },
      onSnapshotInstalled: (revision) => {
        if (!live()) return;
        this.snapshotInstalls++;
        hub.reset(revision);
        this.#host.snapshotInstalled(this, revision);
      },
      onApplied: (phase, revision) => {
        if (live()) this.#host.appliedPhase(this, phase, revision);
      },
      onFatal: (error) => this.#host.fail(`${this.id}: the replica stopped the node: ${describe(error)}`),
    });
  }

  /** The process dies; the disk keeps what `kind` keeps. */
  crash(kind: CrashKind): void {
    const p = this.#process;
    if (!p) return;
    this.#process = undefined;
    p.timers.stop();
    p.watcher.watch?.cancel();
    this.disk.crash(kind, this.#rng);
    this.#host.network.stopped(this);
    this.#host.crashed(this);
  }

  /** Ends the process at the end of a run (nothing of it may act afterwards); not a fault. */
  stop(): void {
    const p = this.#process;
    if (!p) return;
    this.#process = undefined;
    p.timers.stop();
    p.watcher.watch?.cancel();
  }

  // ---------------------------------------------------------------- Endpoint (the network calls these)

  deliver(from: NodeId, channel: string, message: unknown): void {
    const p = this.#process;
    if (!p) return;
    if (channel === CONSENSUS_CHANNEL) p.replica.receive(from, message);
    else if (channel === ELECTION_CHANNEL) p.elections?.receive(from, message);
    else this.#host.fail(`${this.id}: a message on unknown channel "${channel}" from ${from}`);
  }

  peerUp(peer: NodeId): void {
    const p = this.#process;
    if (!p) return;
    p.elections?.peerUp(peer);
    p.replica.peerConnected(peer);
  }

  peerDown(peer: NodeId): void {
    this.#process?.elections?.peerDown(peer);
  }

  // ---------------------------------------------------------------- internals

  #crashHere(): boolean {
    const kind = this.#host.crashHere(this);
    if (kind === undefined) return false;
    this.crash(kind);
    return true;
  }

  /** A periodic timer of this process, like setInterval (stops with the process). */
  #every(intervalMs: number, run: () => void): void {
    const p = this.#process!;
    const again = () => {
      run();
      if (this.#process === p) p.timers.schedule(intervalMs, again);
    };
    p.timers.schedule(this.#rng.int(1, intervalMs), again);
  }

  /** What node.ts does with the replica's events, except that a crash of the hub is a finding, not an exit. */
  #publish(hub: WatchHub, events: KvEvent[]): void {
    try {
      hub.publish(events);
    } catch (e) {
      this.#host.fail(
        `${this.id}: the watch hub crashed (in a node this is an uncaught error): ${describe(e)}`,
      );
    }
  }

  /** The watcher: reads the key space, then watches from the next revision; again after every `gone`. */
  #follow(p: Process): void {
    const mirror = p.watcher;
    const reread = () => {
      mirror.entries.clear();
      for (const entry of p.replica.state.range("")) {
        mirror.entries.set(entry.key, { value: decoder.decode(entry.value), revision: entry.modRevision });
      }
      mirror.revision = p.replica.state.revision;
      mirror.watch = p.hub.watch("", mirror.revision + 1);
    };
    const consume = async () => {
      for (;;) {
        try {
          for await (const batch of mirror.watch!) {
            if (this.#process !== p) return;
            if (batch.revision <= mirror.revision) {
              return this.#host.fail(
                `${this.id}: watch delivered revision ${batch.revision} after revision ${mirror.revision}`,
              );
            }
            for (const event of batch.events) {
              if (event.revision !== batch.revision) {
                return this.#host.fail(
                  `${this.id}: an event of revision ${event.revision} in batch ${batch.revision}`,
                );
              }
              if (event.type === "put") {
                mirror.entries.set(event.key, {
                  value: decoder.decode(event.value),
                  revision: event.revision,
                });
              } else mirror.entries.delete(event.key);
            }
            mirror.revision = batch.revision;
          }
          return; // cancelled: the process ended
        } catch (e) {
          if (this.#process !== p) return;
          if (!(e instanceof AetherError && e.code === "gone")) {
            return this.#host.fail(`${this.id}: the watch failed: ${describe(e)}`);
          }
          // A snapshot replaced the state: read everything again, as a client of the watch API must.
          this.watchRereads++;
          reread();
        }
      }
    };
    reread();
    consume().catch((e) => this.#host.fail(`${this.id}: the watcher crashed: ${describe(e)}`));
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}
