/**
 * The store simulator: real StoreNode and StoreBalancer code on every simulated node, over a simulated mesh and
 * a simulated consensus KV, in virtual time, under a seeded schedule of faults.
 *
 * - Mesh: per-pair in-order delivery after 1–6 ms; a message to or from a node that is down or cut off is
 *   dropped (the mesh's at-most-once rule). `isConnected` is what each side would see.
 * - Consensus KV: one authoritative copy; a node's write applies 2–8 ms later if the node reaches a majority
 *   (refused otherwise); every change reaches each node's own view 1–15 ms later, in order. The leader is the
 *   lowest-id live node that reaches a majority; only it runs the balancer.
 * - Engines: "durable" (the node's entries survive a crash) or "memory" (a crash loses them), by seed.
 * - Faults (during `faultWindowMs`): crashes and restarts, isolation (every link of a node cut) and healing,
 *   and a node that joins late. At most `replicas - writeQuorum` nodes are down or cut off at once, and with
 *   the memory engine a node is crashed only when every partition is fully replicated again (every owner
 *   complete, as many owners as live nodes up to `replicas`): the guarantee is stated for fewer than
 *   `replicas - writeQuorum + 1` owners failing, and a memory node that restarts empty has failed until it is
 *   resynced and the partitions it owned have their copies back.
 * - Workload: clients, each with its own keys, doing puts (some with TTL far in the future), compare-and-set
 *   puts and deletes, and gets, one at a time, through a random live node.
 * - Checks: after the window every node is healed and restarted; the maps must converge (no move under way,
 *   every partition with min(replicas, nodes) live owners, load within one partition per node), every owner
 *   of a partition must hold the same entries (anti-entropy) and every key must read as its last acknowledged
 *   write, or as a later write whose outcome was unknown. Acknowledged versions of a key must increase.
 */

import { type Logger, type NodeId, Rng, SimulatedTimers, VirtualTime } from "../../core/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord, SyncReportRecord } from "../../model/mod.ts";
import { MemoryEngine } from "../engine.ts";
import { ownersOf, partitionOf } from "../partitioning.ts";
import { type Store, StoreNode, type StoreTransport } from "../store_node.ts";
import { type LeaderMeta, StoreBalancer } from "../balancer.ts";

export interface StoreSimOptions {
  seed: number;
  nodes: number;
  replicas: number;
  writeQuorum: number;
  partitions: number;
  faultWindowMs: number;
  settleBoundMs: number;
  clients: number;
  keysPerClient: number;
  verbose: boolean;
  /** "durable" | "memory" | undefined (chosen by seed). */
  engine?: "durable" | "memory";
}

export const DEFAULT_STORE_SIM_OPTIONS: Omit<StoreSimOptions, "seed"> = {
  nodes: 5,
  replicas: 3,
  writeQuorum: 2,
  partitions: 64,
  faultWindowMs: 10_000,
  settleBoundMs: 40_000,
  clients: 8,
  keysPerClient: 6,
  verbose: false,
};

export interface StoreSimResult {
  seed: number;
  ok: boolean;
  failures: string[];
  engine: "durable" | "memory";
  convergedAfterMs?: number;
  acknowledgedWrites: number;
  /** Adds to the clients' counters that were acknowledged (each must be counted exactly once). */
  acknowledgedAdds: number;
  unknownWrites: number;
  reads: number;
  staleReads: number;
  faults: number;
  mapsWritten: number;
  /** Entries anti-entropy sent to owners that lacked them or held them older (live nodes at the end). */
  entriesRepaired: number;
  /** Partitions streamed to new owners and restarted memory nodes (live nodes at the end). */
  partitionsSynced: number;
  log: string[];
}

const STORE = "sim";

// ------------------------------------------------------------------------------------------ consensus KV

interface MetaRecords {
  config?: StoreConfigRecord;
  map?: PartitionMapRecord;
  reports: Map<NodeId, SyncReportRecord>;
}

function copyRecords(r: MetaRecords): MetaRecords {
  return { config: r.config, map: r.map, reports: new Map(r.reports) };
}

/** One node's view of the consensus KV, and its writes into it. */
class NodeMeta implements LeaderMeta {
  records: MetaRecords;
  readonly #listeners = new Set<(store: string) => void>();
  constructor(readonly sim: StoreSimulation, readonly node: SimNode) {
    this.records = copyRecords(sim.authority);
  }
  stores(): string[] {
    return this.records.config ? [STORE] : [];
  }
  config(): StoreConfigRecord | undefined {
    return this.records.config;
  }
  map(): PartitionMapRecord | undefined {
    return this.records.map;
  }
  reports(): Map<NodeId, SyncReportRecord> {
    return this.records.reports;
  }
  createConfig(_store: string, config: StoreConfigRecord): Promise<void> {
    return this.sim.consensusWrite(this.node, (a) => {
      a.config ??= config;
    });
  }
  writeSyncReport(_store: string, report: SyncReportRecord): Promise<void> {
    return this.sim.consensusWrite(this.node, (a) => {
      a.reports.set(this.node.id, report);
    });
  }
  writeMap(_store: string, map: PartitionMapRecord, previousEpoch: number): Promise<void> {
    return this.sim.consensusWrite(this.node, (a) => {
      if ((a.map?.epoch ?? 0) !== previousEpoch) throw new Error("compare failed");
      a.map = map;
    });
  }
  onChange(listener: (store: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  deliver(records: MetaRecords): void {
    this.records = records;
    for (const l of this.#listeners) l(STORE);
  }
}

// ----------------------------------------------------------------------------------------------- nodes

class SimNode {
  alive = false;
  isolated = false;
  /** A crashed or cut-off node stays so at least until then (long enough, often, to count as departed). */
  downUntilMs = 0;
  incarnation = 0;
  timers!: SimulatedTimers;
  store!: StoreNode;
  balancer!: StoreBalancer;
  meta!: NodeMeta;
  leading = false;
  /** The durable engine survives crashes; the memory one is replaced on every boot. */
  readonly durableEngine: MemoryEngine;
  readonly #handlers = new Set<(from: NodeId, m: unknown) => void>();
  readonly #downHandlers = new Set<(peer: NodeId) => void>();
  constructor(readonly id: NodeId, readonly sim: StoreSimulation) {
    this.durableEngine = new MemoryEngine((k) => partitionOf(k, sim.options.partitions), { durable: true });
  }

  boot(): void {
    this.alive = true;
    this.incarnation++;
    const incarnation = this.incarnation;
    const sim = this.sim;
    this.timers = new SimulatedTimers(sim.time, {
      onError: (e) => sim.fail(`${this.id}: uncaught ${(e as Error).stack ?? e}`),
    });
    this.#handlers.clear();
    this.#downHandlers.clear();
    this.meta = new NodeMeta(sim, this);
    const transport: StoreTransport = {
      send: (to, message) => {
        if (!this.alive || this.incarnation !== incarnation) return false;
        return sim.send(this.id, to, message);
      },
      onMessage: (handler) => {
        this.#handlers.add(handler);
        return () => this.#handlers.delete(handler);
      },
      isConnected: (node) => sim.connected(this.id, node),
      onPeerDown: (handler) => {
        this.#downHandlers.add(handler);
        return () => this.#downHandlers.delete(handler);
      },
    };
    const log = sim.logger(this.id);
    const memory = new MemoryEngine((k) => partitionOf(k, sim.options.partitions));
    const durable = sim.engine === "durable" ? this.durableEngine : memory;
    this.store = new StoreNode({
      self: this.id,
      transport,
      meta: this.meta,
      timers: this.timers,
      durable: sim.engine === "durable" ? durable : undefined,
      memory,
      log,
      settings: { antiEntropyMs: 1_000, dropAfterMs: 3_000 },
    });
    this.balancer = new StoreBalancer({
      self: this.id,
      members: sim.nodes.map((n) => n.id),
      meta: this.meta,
      timers: this.timers,
      log,
      isConnected: (node) => sim.connected(this.id, node),
      settings: { departAfterMs: 1_500, joinAfterMs: 500, maxMoving: 16 },
    });
    this.leading = false;
  }

  crash(): void {
    this.alive = false;
    this.leading = false;
    this.timers.stop();
    this.#handlers.clear();
  }

  /** The mesh noticed the connection to `peer` is gone. */
  peerDown(peer: NodeId): void {
    if (!this.alive) return;
    for (const h of this.#downHandlers) h(peer);
  }

  receive(from: NodeId, message: unknown): void {
    if (!this.alive) return;
    for (const h of this.#handlers) h(from, message);
  }
}

// ------------------------------------------------------------------------------------------- workload

interface KeyHistory {
  /** The last acknowledged write: value (null for delete) and version. */
  acked?: { value: string | null; version: number; atMs: number };
  /** Writes after the last acknowledged one whose outcome is unknown. */
  unknown: (string | null)[];
  everWritten: Set<string>;
}

/** A client's counter: adds of 1, each sent again with its id after an unknown outcome until acknowledged. */
interface Counter {
  key: string;
  acked: number;
  /** The add whose outcome is unknown, sent again (same id) before any new one. */
  pending?: string;
  next: number;
}

// ---------------------------------------------------------------------------------------------- the sim

export class StoreSimulation {
  readonly time = new VirtualTime(1_000_000);
  readonly options: StoreSimOptions;
  readonly engine: "durable" | "memory";
  readonly nodes: SimNode[];
  authority: MetaRecords = { reports: new Map() };
  readonly log: string[] = [];
  readonly #rng: Rng;
  readonly #netRng: Rng;
  readonly #faultRng: Rng;
  readonly #lastDelivery = new Map<string, number>();
  readonly #history = new Map<string, KeyHistory>();
  readonly #counters: Counter[] = [];
  #failure: string | undefined;
  #stats = { acked: 0, ackedAdds: 0, unknown: 0, reads: 0, stale: 0, faults: 0 };
  #workloadOn = true;
  #lastFaultMs = 0;

  constructor(options: StoreSimOptions) {
    this.options = options;
    this.#rng = new Rng(options.seed);
    this.#netRng = this.#rng.fork();
    this.#faultRng = this.#rng.fork();
    this.engine = options.engine ?? (this.#rng.chance(0.5) ? "durable" : "memory");
    this.nodes = Array.from({ length: options.nodes }, (_, i) => new SimNode(`n${i + 1}`, this));
  }

  fail(message: string): void {
    this.#failure ??= message;
  }

  logger(node: NodeId): Logger {
    const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
      if (this.options.verbose && level !== "debug") {
        this.#note(`${node} ${level}: ${msg} ${JSON.stringify(fields ?? {})}`);
      }
    };
    const logger: Logger = {
      debug: write("debug"),
      info: write("info"),
      warn: write("warn"),
      error: (m, f) => {
        write("error")(m, f);
        this.fail(`${node} logged an error: ${m} ${JSON.stringify(f ?? {})}`);
      },
      with: () => logger,
      enabled: (level) => level !== "debug" && this.options.verbose,
    } as Logger;
    return logger;
  }

  #note(line: string): void {
    if (this.options.verbose) this.log.push(`${String(this.time.nowMs - 1_000_000).padStart(6)} ${line}`);
  }

  // --------------------------------------------------------------------------------------- network

  #node(id: NodeId): SimNode | undefined {
    return this.nodes.find((n) => n.id === id);
  }

  connected(a: NodeId, b: NodeId): boolean {
    if (a === b) return true;
    const x = this.#node(a), y = this.#node(b);
    return !!x && !!y && x.alive && y.alive && !x.isolated && !y.isolated;
  }

  send(from: NodeId, to: NodeId, message: unknown): boolean {
    if (!this.connected(from, to)) return false;
    const pair = `${from}>${to}`;
    const at = Math.max(this.#lastDelivery.get(pair) ?? 0, this.time.nowMs + this.#netRng.int(1, 6));
    this.#lastDelivery.set(pair, at);
    const copy = structuredClone(message);
    const target = this.#node(to)!;
    const incarnation = target.incarnation;
    this.time.at(at, () => {
      if (this.connected(from, to) && target.incarnation === incarnation) target.receive(from, copy);
    });
    return true;
  }

  #reachesMajority(node: SimNode): boolean {
    const reach = this.nodes.filter((n) => this.connected(node.id, n.id)).length;
    return node.alive && !node.isolated && reach > this.nodes.length / 2;
  }

  consensusWrite(node: SimNode, change: (a: MetaRecords) => void): Promise<void> {
    if (!this.#reachesMajority(node)) return Promise.reject(new Error("no quorum"));
    return new Promise((resolve, reject) => {
      this.time.after(this.#netRng.int(2, 8), () => {
        const next = copyRecords(this.authority);
        try {
          change(next);
        } catch (e) {
          reject(e);
          return;
        }
        this.authority = next;
        this.#publish(next);
        resolve();
      });
    });
  }

  #publish(records: MetaRecords): void {
    for (const node of this.nodes) {
      if (!node.alive) continue;
      const incarnation = node.incarnation;
      const key = `meta>${node.id}`;
      const at = Math.max(this.#lastDelivery.get(key) ?? 0, this.time.nowMs + this.#netRng.int(1, 15));
      this.#lastDelivery.set(key, at);
      this.time.at(at, () => {
        // An isolated node hears nothing from the majority until it is healed (then it catches up).
        if (node.alive && node.incarnation === incarnation && !node.isolated) node.meta.deliver(records);
      });
    }
  }

  #leaderCheck(): void {
    const leader = this.nodes.find((n) => this.#reachesMajority(n));
    for (const n of this.nodes) {
      const leading = n === leader;
      if (n.alive && n.leading !== leading) {
        n.leading = leading;
        n.balancer.setLeading(leading);
        if (leading) this.#note(`${n.id} leads`);
      }
    }
    this.time.after(100, () => this.#leaderCheck());
  }

  // -------------------------------------------------------------------------------------------- run

  async run(): Promise<StoreSimResult> {
    const late = this.nodes[this.nodes.length - 1];
    for (const n of this.nodes) if (n !== late) n.boot();
    this.time.after(0, () => this.#leaderCheck());
    const opener = this.nodes[0];
    let opened: Store | undefined;
    opener.store.open(STORE, {
      replicas: this.options.replicas,
      writeQuorum: this.options.writeQuorum,
      engine: this.engine === "durable" ? "sqlite" : "memory",
      partitions: this.options.partitions,
    }).then((s) => opened = s, (e) => this.fail(`open failed: ${e}`));
    await this.#runUntil(this.time.nowMs + 3_000, () => opened !== undefined);
    if (!opened) this.fail("the store did not open within 3 s");
    // The last node joins a little later: its partitions are streamed to it and moved.
    this.time.after(this.#faultRng.int(500, 3_000), () => {
      this.#note(`FAULT ${late.id} joins`);
      late.boot();
    });
    const start = this.time.nowMs;
    for (let c = 0; c < this.options.clients; c++) this.#client(c);
    this.#scheduleFault(start + this.options.faultWindowMs);
    await this.#runUntil(start + this.options.faultWindowMs, () => false);
    this.#workloadOn = false;
    // Heal: every node up and connected.
    for (const n of this.nodes) {
      if (n.isolated) this.#heal(n);
      if (!n.alive) this.#restart(n);
    }
    this.#lastFaultMs = this.time.nowMs;
    let converged = false;
    await this.#runUntil(this.time.nowMs + this.options.settleBoundMs, () => {
      converged = this.#converged() === undefined;
      return converged;
    });
    const convergedAfterMs = converged ? this.time.nowMs - this.#lastFaultMs : undefined;
    if (!converged) {
      this.fail(`did not converge within ${this.options.settleBoundMs} ms: ${this.#converged()}`);
    }
    if (converged) await this.#checkReads();
    if (converged && !this.#failure) await this.#checkCounters();
    const failures = this.#failure ? [this.#failure] : [];
    return {
      seed: this.options.seed,
      ok: failures.length === 0,
      failures,
      engine: this.engine,
      convergedAfterMs,
      acknowledgedWrites: this.#stats.acked,
      acknowledgedAdds: this.#stats.ackedAdds,
      unknownWrites: this.#stats.unknown,
      reads: this.#stats.reads,
      staleReads: this.#stats.stale,
      faults: this.#stats.faults,
      mapsWritten: this.authority.map?.epoch ?? 0,
      entriesRepaired: this.#statSum("entriesRepaired"),
      partitionsSynced: this.#statSum("partitionsSynced"),
      log: this.log,
    };
  }

  #statSum(name: "entriesRepaired" | "partitionsSynced"): number {
    return this.nodes.reduce((sum, n) => sum + (n.alive ? n.store.stats[name] : 0), 0);
  }

  async #runUntil(untilMs: number, done: () => boolean): Promise<void> {
    while (this.#failure === undefined && !done()) {
      const next = this.time.nextAtMs();
      if (next === undefined || next > untilMs) break;
      this.time.step();
      for (let i = 0; i < 8; i++) {
        await null;
        this.time.runDeferred();
      }
    }
  }

  // ----------------------------------------------------------------------------------------- faults

  #down(): number {
    return this.nodes.filter((n) => !n.alive || n.isolated).length;
  }

  /**
   * No live node that restarted empty (memory engine) is still catching up on a partition it owns: crashing
   * another node now would be a second failure for the partitions they share.
   */
  #noAmnesia(): boolean {
    for (const n of this.nodes) {
      const local = n.alive ? n.store.local(STORE) : undefined;
      if (!local) continue;
      for (let p = 0; p < local.config.partitions; p++) {
        const role = local.role(p);
        if ((role === "owner" || role === "primary") && !local.complete[p]) return false;
      }
    }
    return true;
  }

  /** Every partition has as many owners as there are live nodes (up to replicas), each live and complete. */
  #fullyReplicated(): boolean {
    const map = this.authority.map;
    if (!map) return false;
    const live = this.nodes.filter((n) => n.alive && !n.isolated);
    const replicas = Math.min(this.options.replicas, live.length);
    for (let p = 0; p < map.owners.length; p++) {
      const owners = ownersOf(map, p);
      if (owners.length < replicas) return false;
      for (const o of owners) {
        const local = this.#node(o)?.alive ? this.#node(o)!.store.local(STORE) : undefined;
        if (!local || !local.complete[p]) return false;
      }
    }
    return true;
  }

  #scheduleFault(endMs: number): void {
    const at = this.time.nowMs + this.#faultRng.int(100, 700);
    if (at >= endMs) return;
    this.time.at(at, () => {
      this.#fault();
      this.#scheduleFault(endMs);
    });
  }

  #fault(): void {
    const maxDown = this.options.replicas - this.options.writeQuorum;
    const now = this.time.nowMs;
    const down = this.nodes.filter((n) => n.alive && n.isolated && n.downUntilMs <= now);
    const dead = this.nodes.filter((n) => !n.alive && n.incarnation > 0 && n.downUntilMs <= now);
    const kind = this.#faultRng.int(0, 3);
    if (kind === 0 && dead.length > 0) return this.#restart(this.#faultRng.pick(dead));
    if (kind === 1 && down.length > 0) return this.#heal(this.#faultRng.pick(down));
    if (this.#down() >= maxDown) {
      if (dead.length > 0) return this.#restart(this.#faultRng.pick(dead));
      if (down.length > 0) return this.#heal(this.#faultRng.pick(down));
      return;
    }
    // A memory node's crash loses its copies: only while every partition is fully replicated is that one
    // failure (otherwise an earlier failure has not been repaired yet and this would be a second).
    if (kind !== 2 && this.engine === "memory" && !(this.#noAmnesia() && this.#fullyReplicated())) return;
    const up = this.nodes.filter((n) => n.alive && !n.isolated);
    const victim = this.#faultRng.pick(up);
    this.#stats.faults++;
    this.#lastFaultMs = now;
    // Down for 0.3-4 s (at least one leader tick sees it gone): often longer than the leader's departure grace (1.5 s), so partitions fail over and
    // move back when the node returns.
    victim.downUntilMs = now + this.#faultRng.int(300, 4_000);
    if (kind === 2) {
      this.#note(`FAULT isolate ${victim.id}`);
      victim.isolated = true;
    } else {
      this.#note(`FAULT crash ${victim.id}`);
      victim.crash();
    }
    // Both sides' meshes notice a few ms later (a crash: the kernel closes the sockets; a cut: heartbeats).
    this.time.after(this.#faultRng.int(5, 50), () => {
      for (const n of this.nodes) {
        if (n === victim) continue;
        n.peerDown(victim.id);
        victim.peerDown(n.id);
      }
    });
  }

  #restart(n: SimNode): void {
    this.#note(`FAULT restart ${n.id}`);
    this.#lastFaultMs = this.time.nowMs;
    n.boot();
  }

  #heal(n: SimNode): void {
    this.#note(`FAULT heal ${n.id}`);
    this.#lastFaultMs = this.time.nowMs;
    n.isolated = false;
    // Catching up with consensus after the cut.
    n.meta.deliver(copyRecords(this.authority));
  }

  // ---------------------------------------------------------------------------------------- clients

  #client(c: number): void {
    const rng = this.#rng.fork();
    const keys = Array.from({ length: this.options.keysPerClient }, (_, i) => `c${c}-k${i}`);
    const counter: Counter = { key: `c${c}-counter`, acked: 0, next: 0 };
    this.#counters.push(counter);
    let seq = 0;
    const step = async () => {
      if (!this.#workloadOn || this.#failure) return;
      const via = this.nodes.filter((n) => n.alive && !n.isolated);
      if (via.length > 0) {
        const node = rng.pick(via);
        const store = node.store.handle(STORE);
        // A third of the writes go to a key written only once, so a lost write cannot hide behind a later one.
        if (store && rng.chance(0.15)) await this.#add(node, store, counter);
        else if (store && rng.chance(0.3)) {
          await this.#writeOnce(node, store, `c${c}-once-${seq}`, `c${c}-${seq++}`);
        } else if (store) await this.#operation(rng, node, store, rng.pick(keys), `c${c}-${seq++}`);
      }
      this.time.after(rng.int(5, 40), () => void step());
    };
    this.time.after(rng.int(0, 50), () => void step());
  }

  async #writeOnce(node: SimNode, store: Store, key: string, value: string): Promise<void> {
    const h = this.#historyOf(key);
    h.everWritten.add(value);
    h.unknown.push(value);
    try {
      const result = await this.#bounded(store.put(key, value, { timeoutMs: 2_000 }), 2_500);
      if (result === "lost") {
        this.#stats.unknown++;
        return;
      }
      h.acked = { value, version: result.version, atMs: this.time.nowMs };
      h.unknown = [];
      this.#stats.acked++;
      this.#note(`ACK ${key} once -> ${result.version} via ${node.id}`);
    } catch {
      this.#stats.unknown++;
    }
  }

  /** Adds 1 to the client's counter; an unknown outcome leaves the add pending, sent again with its id. */
  async #add(node: SimNode, store: Store, counter: Counter): Promise<void> {
    const op = counter.pending ?? `${counter.key}-${counter.next++}`;
    counter.pending = op;
    try {
      const result = await this.#bounded(store.add(counter.key, 1, { op, timeoutMs: 2_000 }), 2_500);
      if (result === "lost" || counter.pending !== op) return;
      counter.pending = undefined;
      counter.acked++;
      this.#stats.ackedAdds++;
      this.#note(`ACK ${counter.key} add ${op} -> ${result.value} @${result.version} via ${node.id}`);
    } catch {
      this.#stats.unknown++;
    }
  }

  /** Every acknowledged add is counted exactly once (the pending one, sent again or not, at most once). */
  async #checkCounters(): Promise<void> {
    const store = this.nodes.find((n) => n.alive)!.store.handle(STORE)!;
    for (const counter of this.#counters) {
      let got;
      try {
        got = await this.#drive(store.get(counter.key, { timeoutMs: 2_000 }));
      } catch (e) {
        return this.fail(`final read of ${counter.key} failed: ${(e as Error).message}`);
      }
      const n = got ? JSON.parse(got.value).$n as number : 0;
      const most = counter.acked + (counter.pending ? 1 : 0);
      if (n < counter.acked || n > most) {
        return this.fail(
          `COUNTER ${counter.key} reads ${n}; ${counter.acked} adds acknowledged` +
            (counter.pending ? `, ${counter.pending} unknown` : ""),
        );
      }
    }
  }

  #historyOf(key: string): KeyHistory {
    let h = this.#history.get(key);
    if (!h) this.#history.set(key, h = { unknown: [], everWritten: new Set() });
    return h;
  }

  /** Races an operation against a deadline on the simulation's clock (a crashed node never answers). */
  #bounded<T>(promise: Promise<T>, ms: number): Promise<T | "lost"> {
    return new Promise((resolve, reject) => {
      let settled = false;
      this.time.after(ms, () => {
        if (!settled) {
          settled = true;
          resolve("lost");
        }
      });
      promise.then((v) => {
        if (!settled) {
          settled = true;
          resolve(v);
        }
      }, (e) => {
        if (!settled) {
          settled = true;
          reject(e);
        }
      });
    });
  }

  async #operation(rng: Rng, node: SimNode, store: Store, key: string, value: string): Promise<void> {
    const h = this.#historyOf(key);
    const kind = rng.int(0, 9);
    if (kind < 4) {
      // get: never older than the last write acknowledged before it began (unless served by a deposed primary).
      const before = h.acked;
      const unknownBefore = new Set(h.unknown);
      try {
        const got = await this.#bounded(store.get(key, { timeoutMs: 1_000 }), 1_500);
        if (got === "lost") return;
        this.#stats.reads++;
        const value = got?.value ?? null;
        if (got && !h.everWritten.has(got.value)) {
          this.fail(`read of ${key} returned ${got.value}, never written`);
        }
        if (
          before && value !== before.value && !unknownBefore.has(value) && !this.#writtenSince(h, value)
        ) {
          this.#stats.stale++;
          this.#note(`STALE read of ${key} via ${node.id}: ${value}, last acknowledged ${before.value}`);
        }
      } catch { /* unavailable: allowed under faults */ }
      return;
    }
    const cas = kind >= 7;
    const del = kind === 6;
    const ifVersion = cas
      ? (h.acked && h.unknown.length === 0 ? (h.acked.value === null ? 0 : h.acked.version) : undefined)
      : undefined;
    if (cas && ifVersion === undefined) return;
    const written = del ? null : value;
    if (written !== null) h.everWritten.add(written);
    h.unknown.push(written);
    this.#note(
      `OP ${key} ${del ? "delete" : "put"} ${written}${
        ifVersion !== undefined ? ` if ${ifVersion}` : ""
      } via ${node.id}`,
    );
    try {
      const result = await this.#bounded(
        del
          ? store.delete(key, { ifVersion, timeoutMs: 2_000 }).then(() => ({ version: -1 }))
          : store.put(key, value, {
            ifVersion,
            timeoutMs: 2_000,
            ...(rng.chance(0.2) ? { ttlMs: 3_600_000 } : {}),
          }),
        2_500,
      );
      if (result === "lost") {
        this.#stats.unknown++;
        return;
      }
      if (result.version !== -1 && h.acked && result.version <= h.acked.version) {
        this.fail(
          `${key}: acknowledged version ${result.version} is not above the previous ${h.acked.version}`,
        );
      }
      h.acked = {
        value: written,
        version: result.version === -1 ? (h.acked?.version ?? 0) : result.version,
        atMs: this.time.nowMs,
      };
      h.unknown = [];
      this.#stats.acked++;
      const map = this.authority.map;
      this.#note(
        `ACK ${key} ${del ? "delete" : "put"}${
          ifVersion !== undefined ? ` if ${ifVersion}` : ""
        } -> ${result.version} via ` +
          `${node.id}; owners ${
            map ? ownersOf(map, partitionOf(key, this.options.partitions)) : "?"
          } epoch ${map?.epoch}`,
      );
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === "compare_failed") {
        // Refused before applying: not a write at all.
        h.unknown.pop();
        if (h.acked && h.unknown.length === 0) {
          const map = this.authority.map!;
          const p = partitionOf(key, this.options.partitions);
          this.#note(
            `CAS FAIL ${key} via ${node.id}, owners ${ownersOf(map, p)} epoch ${map.epoch}; ` +
              this.nodes.map((n) =>
                `${n.id}(alive ${n.alive}, epoch ${n.store.local(STORE)?.epoch}, role ${
                  n.store.local(STORE)?.role(p)
                }, promoted ${n.store.local(STORE)?.promoted[p]}): ${
                  JSON.stringify(n.store.local(STORE)?.get(key))
                }`
              ).join("; "),
          );
          this.fail(
            `${key}: compare-and-set at ${ifVersion} failed though the last write was acknowledged at ${h.acked.version}: ${
              (e as Error).message
            }`,
          );
        }
        return;
      }
      this.#stats.unknown++;
    }
  }

  #writtenSince(h: KeyHistory, value: string | null): boolean {
    // A value written after the read began (acknowledged or not) is not stale.
    return h.acked?.value === value || h.unknown.includes(value);
  }

  // ------------------------------------------------------------------------------------------ checks

  /** undefined when converged; otherwise what is not yet. */
  #converged(): string | undefined {
    const map = this.authority.map;
    if (!map) return "no map";
    const live = this.nodes.filter((n) => n.alive && !n.isolated).map((n) => n.id);
    const moving = Object.keys(map.moving).length;
    if (moving > 0) {
      const [p, move] = Object.entries(map.moving)[0];
      const states = [...new Set([...ownersOf(map, Number(p)), ...move.next.map((i) => map.nodes[i])])].map(
        (n) => {
          const local = this.#node(n)?.store.local(STORE);
          return `${n}: alive ${this.#node(n)?.alive} epoch ${local?.epoch} role ${
            local?.role(Number(p))
          } promoted ${local?.promoted[Number(p)]} complete ` +
            `${local?.complete[Number(p)]} syncing ${local?.syncing.has(Number(p))} syncedSince ` +
            `${local?.syncedSince.get(Number(p))} report ${JSON.stringify(this.authority.reports.get(n))}`;
        },
      );
      return `${moving} partitions moving, e.g. ${p} from ${ownersOf(map, Number(p))} to ${
        move.next.map((i) => map.nodes[i])
      } since ${move.since} (epoch ${map.epoch}); ${states.join("; ")}`;
    }
    const replicas = Math.min(this.options.replicas, live.length);
    const load = new Map<NodeId, number>(live.map((n) => [n, 0]));
    for (let p = 0; p < map.owners.length; p++) {
      const owners = ownersOf(map, p);
      if (owners.length !== replicas || owners.some((o) => !live.includes(o))) {
        return `partition ${p} owned by ${owners.join(",")}`;
      }
      for (const o of owners) load.set(o, (load.get(o) ?? 0) + 1);
      for (const [i, o] of owners.entries()) {
        const node = this.#node(o)!;
        const local = node.store.local(STORE);
        if (!local || local.epoch !== map.epoch) return `${o} has not applied map epoch ${map.epoch}`;
        if (!local.complete[p]) return `${o} is not complete for partition ${p}`;
        if (i === 0 && !local.promoted[p]) return `${o} is not promoted for partition ${p}`;
      }
      const primary = this.#node(owners[0])!.store.local(STORE)!;
      for (const o of owners.slice(1)) {
        const other = this.#node(o)!.store.local(STORE)!;
        if (other.count[p] !== primary.count[p] || other.hash[p] !== primary.hash[p]) {
          return `partition ${p}: ${o} differs from primary ${owners[0]} (${other.count[p]} vs ${
            primary.count[p]
          } entries)`;
        }
      }
    }
    const loads = [...load.values()];
    if (Math.max(...loads) - Math.min(...loads) > 1) return `unbalanced load ${JSON.stringify([...load])}`;
    return undefined;
  }

  async #checkReads(): Promise<void> {
    const node = this.nodes.find((n) => n.alive)!;
    const store = node.store.handle(STORE)!;
    for (const [key, h] of [...this.#history].sort()) {
      let got;
      try {
        const result = await this.#drive(store.get(key, { timeoutMs: 2_000 }));
        got = result?.value ?? null;
      } catch (e) {
        this.fail(`final read of ${key} failed: ${(e as Error).message}`);
        return;
      }
      const allowed = [...(h.acked ? [h.acked.value] : [null]), ...h.unknown];
      if (!allowed.includes(got)) {
        this.fail(
          `LOST WRITE: ${key} reads ${JSON.stringify(got)}; last acknowledged ${
            JSON.stringify(h.acked?.value)
          } ` +
            `(version ${h.acked?.version}), unknown after it ${JSON.stringify(h.unknown)}`,
        );
        return;
      }
    }
  }

  /** Runs virtual time until the promise settles. */
  async #drive<T>(promise: Promise<T>): Promise<T> {
    let settled = false;
    const watched = promise.finally(() => settled = true);
    await this.#runUntil(this.time.nowMs + 10_000, () => settled);
    return await watched;
  }
}

export function runStoreSimulation(options: StoreSimOptions): Promise<StoreSimResult> {
  return new StoreSimulation(options).run();
}
