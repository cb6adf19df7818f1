/**
 * The deterministic cluster simulator. One seed drives everything (one Rng, forked per concern in a fixed
 * order), time is simulated, and events run from a priority queue, so a seed replays bit for bit.
 *
 * A run: members boot; clients issue operations while faults happen (message loss, duplication, reordering,
 * partitions, crashes that lose all volatile state, restarts from simulated storage, crashes in the middle of
 * carrying out an effect list); then the heal phase heals the network and restarts every member, and the
 * cluster must quiesce, serve a linearizable read of every key through every member, and quiesce again.
 *
 * Checks: agreement (every decision of every member, across restarts and snapshots, matches the first one
 * seen for its phase, and so does the state machine's revision after it), liveness (the heal phase completes
 * in bounded simulated time), identical final state on every member, a consistent revision-to-value map,
 * linearizability of the client history per key, and increasing write revisions in real-time order.
 */

import type { NodeId } from "../../core/ids.ts";
import { Rng } from "../../core/rng.ts";
import type { KvCommand } from "../../kv/commands.ts";
import type { Batch, ConsensusMsg, Snapshot } from "../mod.ts";
import { hashBytes, hashHex } from "./_hash.ts";
import { EventQueue } from "./_queue.ts";
import { checkKvHistory } from "./linearizability.ts";
import { type MemberSettings, type SimHost, SimMember } from "./member.ts";
import { type NetworkSettings, SimNetwork } from "./network.ts";
import { type HistoryEntry, Workload } from "./workload.ts";

export const FAULT_KINDS = ["loss", "dup", "reorder", "partition", "crash"] as const;
export type FaultKind = typeof FAULT_KINDS[number];

export interface SimOptions {
  seed: number;
  members: number;
  /** "all", "none", or a comma list of loss, dup, reorder, net (= the three), partition, crash. */
  faults: string;
  /** Simulated time with clients and faults, before the heal phase. */
  durationMs: number;
  clients: number;
  keys: number;
}

export const DEFAULT_SIM_OPTIONS: Omit<SimOptions, "seed"> = {
  members: 3,
  faults: "all",
  durationMs: 3000,
  clients: 6,
  keys: 4,
};

export interface SimStats {
  simulatedMs: number;
  events: number;
  phases: number;
  operations: number;
  completed: number;
  unknown: number;
  crashes: number;
  partitions: number;
  /** Members that caught up by installing a peer's snapshot. */
  snapshotInstalls: number;
  messagesSent: number;
  messagesDelivered: number;
}

export interface SimResult {
  ok: boolean;
  failure?: string;
  /** The one command that replays this run. */
  replay: string;
  /** Hash chain over every phase's decided batch id. */
  decisionHash: string;
  historyHash: string;
  stats: SimStats;
}

/** How long the heal phase may take (simulated) before the run counts as a liveness failure. */
const HEAL_LIMIT_MS = 30_000;
const TICK_MS = 10;
const MONITOR_MS = 50;
const FINAL_READ_ATTEMPTS = 10;

export function parseFaults(faults: string): Set<FaultKind> {
  const out = new Set<FaultKind>();
  for (const part of faults.split(",").map((p) => p.trim()).filter(Boolean)) {
    if (part === "all") FAULT_KINDS.forEach((k) => out.add(k));
    else if (part === "net") ["loss", "dup", "reorder"].forEach((k) => out.add(k as FaultKind));
    else if (part === "none") continue;
    else if ((FAULT_KINDS as readonly string[]).includes(part)) out.add(part as FaultKind);
    else throw new Error(`--faults: unknown fault "${part}" (use all, none, net, ${FAULT_KINDS.join(", ")})`);
  }
  return out;
}

export function replayCommand(options: SimOptions): string {
  let command =
    `deno task sim --seed ${options.seed} --members ${options.members} --faults ${options.faults}`;
  if (options.durationMs !== DEFAULT_SIM_OPTIONS.durationMs) command += ` --duration ${options.durationMs}`;
  if (options.clients !== DEFAULT_SIM_OPTIONS.clients) command += ` --clients ${options.clients}`;
  if (options.keys !== DEFAULT_SIM_OPTIONS.keys) command += ` --keys ${options.keys}`;
  return command;
}

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class SimFailure extends Error {}

/** How hard a run's faults hit, drawn from its seed: ranges are [min, max] in ms. */
interface Intensity {
  crashGapMs: number[];
  downMs: number[];
  /** Chance that a member crashes part-way through carrying out one effect list. */
  midEffectCrashRate: number;
  partitionGapMs: number[];
  partitionMs: number[];
}

function drawIntensity(rng: Rng): Intensity {
  return {
    crashGapMs: rng.pick([[100, 900], [300, 2500]]),
    downMs: rng.pick([[10, 600], [10, 150]]),
    midEffectCrashRate: rng.pick([0.0005, 0.002, 0.01]),
    partitionGapMs: rng.pick([[100, 1000], [300, 2000]]),
    partitionMs: rng.pick([[50, 700], [20, 200]]),
  };
}

interface KnownDecision {
  id: string | null;
  revision: number;
  by: NodeId;
}

class Simulation implements SimHost {
  readonly #options: SimOptions;
  readonly #faults: Set<FaultKind>;
  readonly #queue = new EventQueue();
  readonly #faultRng: Rng;
  readonly #network: SimNetwork;
  readonly #workload: Workload;
  readonly members: SimMember[];
  readonly #byId = new Map<NodeId, SimMember>();
  /** decisions[phase - 1]: the first decision any member made for the phase. */
  readonly #decisions: KnownDecision[] = [];
  readonly #intensity: Intensity;
  #nowMs = 0;
  #events = 0;
  #faultsActive = true;
  #issuing = true;
  #finished = false;
  #crashes = 0;
  #partitions = 0;
  #snapshotInstalls = 0;

  constructor(options: SimOptions) {
    if (![1, 3, 5].includes(options.members)) {
      throw new Error(`--members must be 1, 3 or 5, got ${options.members}`);
    }
    this.#options = options;
    this.#faults = parseFaults(options.faults);
    const root = new Rng(options.seed);
    const netRng = root.fork();
    this.#faultRng = root.fork();
    const clientRng = root.fork();
    const setupRng = root.fork();
    const ids = Array.from({ length: options.members }, (_, i) => `n${i + 1}`);
    this.#intensity = drawIntensity(setupRng);
    this.members = this.#makeMembers(ids, setupRng);
    this.#network = new SimNetwork(netRng, this.#networkSettings(setupRng), {
      schedule: (delayMs, run) => this.schedule(delayMs, run),
      member: (id) => this.#byId.get(id)!,
    });
    this.#workload = new Workload(
      {
        now: () => this.#nowMs,
        schedule: (delayMs, run) => this.schedule(delayMs, run),
        members: this.members,
        issuing: () => this.#issuing,
      },
      clientRng,
      { clients: options.clients, keys: options.keys, opDeadlineMs: 1500, thinkMaxMs: 20 },
    );
  }

  /** Members share engine settings, storage limits and batch size (drawn per run); each has its own clock skew. */
  #makeMembers(ids: NodeId[], rng: Rng): SimMember[] {
    const storage = { snapshotEvery: rng.pick([4, 16, 64]), logTail: rng.pick([0, 2, 16]) };
    const maxBatchCommands = rng.pick([1, 4, 64]);
    // Small in-memory rings and buffers force catch-up from storage and snapshots.
    const engine = {
      retransmitMs: rng.pick([50, 150]),
      syncRetryMs: rng.pick([100, 300]),
      recentDecisions: rng.pick([2, 16, 512]),
      maxPhasesAhead: rng.pick([2, 64]),
    };
    return ids.map((id) => {
      const settings: MemberSettings = {
        ...storage,
        engine,
        members: ids,
        clockOffsetMs: rng.int(-40, 40),
        maxBatchCommands,
      };
      const member = new SimMember(id, settings, this);
      this.#byId.set(id, member);
      return member;
    });
  }

  #networkSettings(rng: Rng): NetworkSettings {
    const f = this.#faults;
    return {
      lossRate: f.has("loss") ? rng.pick([0.01, 0.05, 0.15]) : 0,
      duplicateRate: f.has("dup") ? rng.pick([0.01, 0.05]) : 0,
      reorderRate: f.has("reorder") ? rng.pick([0.05, 0.25]) : 0,
      minDelayMs: 1,
      maxDelayMs: rng.pick([2, 5, 15]),
      maxDetourMs: 80,
    };
  }

  // ---------------------------------------------------------------- SimHost

  now(): number {
    return this.#nowMs;
  }

  send(from: SimMember, to: NodeId, msg: ConsensusMsg<KvCommand>): void {
    this.#network.send(from, to, msg);
  }

  decided(member: SimMember, phase: number, batch: Batch<KvCommand> | null): void {
    const id = batch?.id ?? null;
    const revision = member.kv!.revision;
    const known = this.#decisions[phase - 1];
    if (!known) {
      if (phase - 1 !== this.#decisions.length) {
        this.#fail(`phase ${phase} decided before phase ${phase - 1}`);
      }
      this.#decisions.push({ id, revision, by: member.id });
      return;
    }
    if (known.id !== id) {
      this.#fail(
        `agreement violated at phase ${phase}: ${member.id} decided ${id}, ${known.by} decided ${known.id}`,
      );
    }
    if (known.revision !== revision) {
      this.#fail(
        `state diverged at phase ${phase}: ${member.id} has revision ${revision}, ${known.by} had ${known.revision}`,
      );
    }
  }

  snapshotInstalled(member: SimMember, snapshot: Snapshot): void {
    this.#snapshotInstalls++;
    const known = this.#decisions[snapshot.phase - 1];
    if (!known) {
      this.#fail(`${member.id} installed a snapshot of phase ${snapshot.phase}, which nobody decided`);
    }
    if (known.revision !== member.kv!.revision) {
      this.#fail(
        `${member.id} installed a snapshot of phase ${snapshot.phase} at revision ${
          member.kv!.revision
        }, not ${known.revision}`,
      );
    }
  }

  crashPoint(_member: SimMember, count: number): number | undefined {
    if (!this.#faultsActive || !this.#faults.has("crash") || count === 0) return undefined;
    const rate = this.#intensity.midEffectCrashRate;
    return this.#faultRng.chance(rate) ? this.#faultRng.int(0, count - 1) : undefined;
  }

  crashed(member: SimMember): void {
    this.#crashes++;
    this.schedule(this.#between(this.#intensity.downMs), () => this.#boot(member));
  }

  schedule(delayMs: number, run: () => void): void {
    this.#queue.push(this.#nowMs + delayMs, run);
  }

  // ---------------------------------------------------------------- the run

  run(): SimResult {
    let failure: string | undefined;
    try {
      this.#setUp();
      this.#loop();
      this.#verify();
    } catch (e) {
      failure = e instanceof SimFailure
        ? e.message
        : `${e instanceof Error ? e.stack ?? e.message : String(e)}`;
      failure += `\n  at simulated time ${this.#nowMs} ms (event ${this.#events})`;
    }
    return {
      ok: failure === undefined,
      failure,
      replay: replayCommand(this.#options),
      decisionHash: this.#decisionHash(),
      historyHash: hashHex(this.#workload.history.map(serializeEntry).join("\n")),
      stats: this.#stats(),
    };
  }

  #setUp(): void {
    for (const member of this.members) this.schedule(this.#faultRng.int(0, 10), () => this.#boot(member));
    this.schedule(20, () => this.#workload.start());
    if (this.#faults.has("crash")) this.#scheduleCrash();
    if (this.#faults.has("partition")) this.#schedulePartition();
    this.schedule(this.#options.durationMs, () => this.#heal());
  }

  #loop(): void {
    const limit = this.#options.durationMs + HEAL_LIMIT_MS;
    while (!this.#finished) {
      const event = this.#queue.pop();
      if (!event) this.#fail("the event queue ran dry");
      this.#nowMs = event.atMs;
      if (this.#nowMs > limit) {
        this.#fail(
          `liveness: the heal phase did not complete in ${HEAL_LIMIT_MS} ms\n${this.#describeMembers()}`,
        );
      }
      this.#events++;
      event.run();
    }
  }

  #boot(member: SimMember): void {
    if (member.alive) return;
    member.boot();
    if (!member.alive) return; // crashed while starting
    const incarnation = member.incarnation;
    const tick = () => {
      if (!member.alive || member.incarnation !== incarnation) return;
      member.tick();
      this.schedule(TICK_MS, tick);
    };
    this.schedule(this.#faultRng.int(1, TICK_MS), tick);
    for (const peer of this.members) {
      if (peer !== member && peer.alive && this.#network.connected(member.id, peer.id)) {
        this.#connect(member, peer);
      }
    }
  }

  /** The mesh noticed a (re)connection: both ends learn it after a short handshake. */
  #connect(a: SimMember, b: SimMember): void {
    const [ia, ib] = [a.incarnation, b.incarnation];
    this.schedule(this.#faultRng.int(1, 5), () => {
      if (a.incarnation !== ia || b.incarnation !== ib || !this.#network.connected(a.id, b.id)) return;
      a.peerConnected(b.id);
      b.peerConnected(a.id);
    });
  }

  #scheduleCrash(): void {
    this.schedule(this.#between(this.#intensity.crashGapMs), () => {
      if (!this.#faultsActive) return;
      const alive = this.members.filter((m) => m.alive);
      if (alive.length > 0) this.#faultRng.pick(alive).crash();
      this.#scheduleCrash();
    });
  }

  #schedulePartition(): void {
    this.schedule(this.#between(this.#intensity.partitionGapMs), () => {
      if (!this.#faultsActive) return;
      const ids = this.#shuffled(this.members.map((m) => m.id));
      const cutAt = this.#faultRng.int(1, Math.max(1, Math.floor(ids.length / 2)));
      this.#network.partition(ids.slice(0, cutAt), ids.slice(cutAt));
      this.#partitions++;
      this.schedule(this.#between(this.#intensity.partitionMs), () => {
        this.#healNetwork();
        this.#schedulePartition();
      });
    });
  }

  #between([min, max]: number[]): number {
    return this.#faultRng.int(min, max);
  }

  #shuffled<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.#faultRng.int(0, i);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  #healNetwork(): void {
    for (const [a, b] of this.#network.heal()) {
      const ma = this.#byId.get(a)!;
      const mb = this.#byId.get(b)!;
      if (ma.alive && mb.alive) this.#connect(ma, mb);
    }
  }

  /** End of the faulty period: heal everything, restart everyone, then wait for quiet and read everything. */
  #heal(): void {
    this.#faultsActive = false;
    this.#issuing = false;
    this.#healNetwork();
    for (const member of this.members) this.#boot(member);
    this.#whenQuiet(() => this.#finalReads());
  }

  #quiet(): boolean {
    const decided = this.members[0].engine?.lastDecided;
    return this.#workload.outstanding === 0 &&
      this.members.every((m) => m.quiet && m.engine!.lastDecided === decided) &&
      decided === this.#decisions.length;
  }

  #whenQuiet(then: () => void): void {
    const check = () => this.#quiet() ? then() : this.schedule(MONITOR_MS, check);
    this.schedule(MONITOR_MS, check);
  }

  /**
   * A linearizable read of every key through every member. A read may end with an unknown outcome without
   * anything being wrong (its batch was decided inside a snapshot its member installed); it is tried again.
   * Liveness means every member eventually serves one, within the heal limit.
   */
  #finalReads(): void {
    let remaining = this.members.length * this.#workload.keys.length;
    const read = (member: SimMember, key: string, attempt: number) => {
      this.#workload.finalRead(member, key, (ok) => {
        if (!ok) {
          if (attempt >= FINAL_READ_ATTEMPTS) {
            this.#fail(`liveness: ${attempt} final reads of ${key} through ${member.id} did not complete`);
          }
          return this.schedule(MONITOR_MS, () => read(member, key, attempt + 1));
        }
        if (--remaining === 0) this.#whenQuiet(() => this.#finished = true);
      });
    };
    for (const member of this.members) for (const key of this.#workload.keys) read(member, key, 1);
  }

  // ---------------------------------------------------------------- checks

  #verify(): void {
    const states = this.members.map((m) => `${m.id}:${m.engine!.lastDecided}:${hashBytes(m.kv!.snapshot())}`);
    const distinct = new Set(states.map((s) => s.slice(s.indexOf(":") + 1)));
    if (distinct.size !== 1) this.#fail(`members ended in different states: ${states.join(", ")}`);
    this.#checkRevisionValues();
    const history = this.#workload.history;
    if (history.some((e) => !e.settled)) this.#fail("an operation never settled");
    const result = checkKvHistory(history);
    if (!result.ok) this.#fail(result.problem);
  }

  /** A revision belongs to one write: one key and one value, whoever observed it. */
  #checkRevisionValues(): void {
    const seen = new Map<number, string>();
    const note = (revision: number, key: string, value: string | null, what: string) => {
      const fact = `${key}=${value}`;
      const known = seen.get(revision);
      if (known !== undefined && known !== fact) {
        this.#fail(`revision ${revision} is both ${known} and ${fact} (${what})`);
      }
      seen.set(revision, fact);
    };
    for (const e of this.#workload.history) {
      if (e.returnMs === Infinity || e.output === undefined) continue;
      const input = e.input;
      if ((input.kind === "put" || input.kind === "cas") && e.revision !== undefined) {
        note(e.revision, e.key, input.value, `${e.client} wrote it`);
      }
      if (input.kind === "get" && e.readRevision) {
        note(e.readRevision, e.key, e.output.value ?? null, `${e.client} read it`);
      }
    }
  }

  #fail(message: string): never {
    throw new SimFailure(message);
  }

  #describeMembers(): string {
    return this.members.map((m) => {
      if (!m.alive) return `  ${m.id}: down`;
      const e = m.engine!;
      return `  ${m.id}: ${e.status}, decided ${e.lastDecided}, busy ${e.busy}, pending ${e.pendingCount}, ` +
        `queued ${m.batcher!.queuedCommands}, in flight ${m.batcher!.inFlight ?? "none"}`;
    }).join("\n") +
      `\n  decided in the cluster: ${this.#decisions.length}; operations outstanding: ${this.#workload.outstanding}`;
  }

  #decisionHash(): string {
    let chain = "";
    this.#decisions.forEach((d, i) => chain = hashHex(`${chain}|${i + 1}:${d.id}:${d.revision}`));
    return chain;
  }

  #stats(): SimStats {
    const history = this.#workload.history;
    return {
      simulatedMs: this.#nowMs,
      events: this.#events,
      phases: this.#decisions.length,
      operations: history.length,
      completed: history.filter((e) => e.returnMs !== Infinity).length,
      unknown: history.filter((e) => e.returnMs === Infinity).length,
      crashes: this.#crashes,
      partitions: this.#partitions,
      snapshotInstalls: this.#snapshotInstalls,
      messagesSent: this.#network.sent,
      messagesDelivered: this.#network.delivered,
    };
  }
}

function serializeEntry(e: HistoryEntry): string {
  const ret = e.returnMs === Infinity ? "inf" : e.returnMs;
  return `${e.client} ${e.member} ${e.key} ${JSON.stringify(e.input)} ${
    JSON.stringify(e.output ?? null)
  } ${e.callMs} ${ret} ${e.revision ?? "-"}`;
}
