/**
 * The deterministic cluster simulator. It runs the production shell, not a model of it: every member is the
 * real `Replica` (with the real engine, KV state, watch hub and elections) over simulated storage, network and
 * time (member.ts). One seed drives everything (one Rng, forked per concern in a fixed order), time is virtual
 * (core's VirtualTime), and callbacks run in a fixed order, so a seed replays bit for bit.
 *
 * A run: members boot; clients issue operations while faults happen (see FAULT_KINDS); then the heal phase
 * heals the network (no message is lost any more) and restarts every member, and the cluster must settle,
 * serve a linearizable read of every key through every member, and quiesce.
 *
 * Checks: agreement (every decision that became durable on a member, across restarts and snapshots, matches
 * the first one seen for its phase, and so do the state's revision after it and every durable snapshot taken
 * at it), a snapshot install
 * restarts the watch hub at the snapshot's own revision, no watch hub ever crashes and every member's watcher
 * ends with a mirror equal to its state, liveness (the heal phase completes in bounded simulated time),
 * identical final state on every member, a consistent revision-to-value map, linearizability of the client
 * history per key, and leader stability: at most one leader change per one-link cut, and a new leader within
 * 2 s when the leader crashes or is cut off from a quorum of the members.
 *
 * The simulation is async because the real shell uses promises (fsync completions, write acknowledgements,
 * watches): after every callback the loop lets the promise jobs it started run before virtual time moves on.
 */

import { assert, type NodeId, Rng, VirtualTime } from "../../core/mod.ts";
import type { Logger, LogLevel } from "../../core/mod.ts";
import { quorumOf } from "../../consensus/mod.ts";
import type { KvEvent } from "../../kv/mod.ts";
import { Agreement } from "./_agreement.ts";
import { hashBytes, hashHex } from "./_hash.ts";
import { type Episode, Leadership, NEW_LEADER_WITHIN_MS } from "./_leadership.ts";
import { checkKvHistory } from "./linearizability.ts";
import { type MemberHost, type MemberSettings, SimMember } from "./member.ts";
import { type NetworkSettings, SimNetwork } from "./network.ts";
import type { CommitStep, CrashKind, StorageSettings } from "./storage.ts";
import { type HistoryEntry, Workload } from "./workload.ts";

/**
 * - loss, dup, reorder: per-message faults ("net" is the three);
 * - partition: every link between two groups cut for a while;
 * - link: one link cut for a while, each end still seeing the others (a partial partition);
 * - crash: process crashes (at random times and in the middle of IO), restarts from the disk;
 * - power: the same, but the disk loses a suffix of the writes not yet fsynced;
 * - lag: one member down or cut off until the others have taken snapshots past everything it has and
 *   truncated their logs behind them, so it must catch up by installing a snapshot;
 * - leader: the agreed leader crashes or is cut off from a quorum of the members, and a new one must be in place
 *   within 2 s.
 */
export const FAULT_KINDS = [
  "loss",
  "dup",
  "reorder",
  "partition",
  "link",
  "crash",
  "power",
  "lag",
  "leader",
] as const;
export type FaultKind = typeof FAULT_KINDS[number];

export interface SimOptions {
  seed: number;
  members: number;
  /** "all", "none", or a comma list of FAULT_KINDS and "net" (= loss, dup, reorder). */
  faults: string;
  /** Simulated time with clients and faults, before the heal phase. */
  durationMs: number;
  clients: number;
  keys: number;
  /**
   * A mesh frame limit the simulated network enforces as the mesh does (a bigger message throws at the send);
   * catch-up snapshots then travel in chunks of a quarter of it. Absent: no limit (chunk sizes drawn per run).
   */
  maxFrameBytes?: number;
  /** Values written are padded to this many bytes (a bigger state); absent: short values. */
  valueBytes?: number;
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
  powerLosses: number;
  /** Writes lost to power failures (never fsynced). */
  lostWrites: number;
  partitions: number;
  linkCuts: number;
  /** Members that caught up by installing a peer's snapshot... */
  snapshotInstalls: number;
  /** ...of which with decisions applied after the snapshot in the same step (the path of the old crash). */
  snapshotInstallsWithTail: number;
  lags: number;
  /** Watchers that re-read the state because a snapshot ended their watch. */
  watchRereads: number;
  /** Changes of the agreed leader over the run. */
  leaderChanges: number;
  /** One-link cuts checked for leader stability (others overlapped another fault), and the most changes in one. */
  linkEpisodesChecked: number;
  maxLeaderChangesPerLinkEpisode: number;
  /** Leader crashes and isolations checked, and the longest time until a new leader (ms, -1 if none). */
  leaderEpisodesChecked: number;
  slowestNewLeaderMs: number;
  messagesSent: number;
  messagesDelivered: number;
  /** Chunks of catch-up snapshots delivered (snapshots larger than one chunk). */
  snapshotChunks: number;
  /** Offers of catch-up snapshots larger than the frame limit (maxFrameBytes), delivered. */
  snapshotOffersOverFrame: number;
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
const MONITOR_MS = 50;
const FINAL_READ_ATTEMPTS = 10;
/** Promise jobs the loop lets run after every callback (a write acknowledgement takes about five). */
const SETTLE_TURNS = 8;
/** More turns while a watcher is behind its hub (each watch batch takes a few). */
const MAX_WATCH_TURNS = 100_000;
/** After a one-link cut heals, changes this soon still count to it. */
const LINK_EPISODE_TAIL_MS = 1_500;
/** An episode is checked only when the cluster was whole and fault-free for this long before it. */
const STABLE_BEFORE_EPISODE_MS = 1_500;
/** A lag ends at the latest after this long, caught up by snapshot or not (an idle cluster decides nothing). */
const MAX_LAG_MS = 10_000;
const LOG_LINES_KEPT = 40;
const MORE_FAILURES_SHOWN = 3;

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
  if (options.maxFrameBytes !== undefined) command += ` --max-frame-bytes ${options.maxFrameBytes}`;
  if (options.valueBytes !== undefined) command += ` --value-bytes ${options.valueBytes}`;
  return command;
}

export function runSimulation(options: SimOptions): Promise<SimResult> {
  return new Simulation(options).run();
}

class SimFailure extends Error {}

/** How hard a run's faults hit, drawn from its seed: ranges are [min, max] in ms. */
interface Intensity {
  crashGapMs: [number, number];
  downMs: [number, number];
  /** Chance that a member crashes at one IO call (a send, a write, an fsync's completion). */
  ioCrashRate: number;
  partitionGapMs: [number, number];
  partitionMs: [number, number];
  linkGapMs: [number, number];
  linkMs: [number, number];
  lagGapMs: [number, number];
  leaderGapMs: [number, number];
  leaderOutMs: [number, number];
}

function drawIntensity(rng: Rng): Intensity {
  return {
    crashGapMs: rng.pick([[100, 900], [300, 2500]]),
    downMs: rng.pick([[10, 600], [10, 150]]),
    ioCrashRate: rng.pick([0.00005, 0.0002, 0.001]),
    partitionGapMs: rng.pick([[100, 1000], [300, 2000]]),
    partitionMs: rng.pick([[50, 700], [20, 200]]),
    // Long enough for the cluster to settle between cuts, so that each cut can be checked on its own.
    linkGapMs: rng.pick([[1600, 2500], [1600, 4000]]),
    linkMs: rng.pick([[300, 1500], [1000, 3000]]),
    lagGapMs: rng.pick([[300, 1000], [1000, 3000]]),
    leaderGapMs: [200, 800],
    leaderOutMs: [2500, 4000],
  };
}

class Simulation implements MemberHost {
  readonly #options: SimOptions;
  readonly #faults: Set<FaultKind>;
  readonly time = new VirtualTime();
  readonly network: SimNetwork;
  readonly #faultRng: Rng;
  readonly #workload: Workload;
  readonly members: SimMember[];
  readonly #byId = new Map<NodeId, SimMember>();
  readonly #agreement = new Agreement((message) => this.fail(message));
  readonly #leadership = new Leadership((message) => this.fail(message));
  readonly #openEpisodes = new Set<Episode>();
  /** What the heal phase must end early (episodes restore their own links and members). */
  readonly #onHeal: (() => void)[] = [];
  readonly #intensity: Intensity;
  readonly #logLines: string[] = [];
  #events = 0;
  #faultsActive = true;
  #issuing = true;
  #finished = false;
  #failure?: string;
  #laterFailures = 0;
  #lastFaultMs = 0;
  #crashes = 0;
  #powerLosses = 0;
  #partitions = 0;
  #linkCuts = 0;
  #lags = 0;

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
    // Forked last, so that the draws of the other streams stay what they were before it existed.
    const transferRng = root.fork();
    this.#intensity = drawIntensity(setupRng);
    this.members = this.#makeMembers(ids, setupRng, transferRng);
    this.network = new SimNetwork(
      netRng,
      { ...this.#networkSettings(setupRng), maxFrameBytes: options.maxFrameBytes },
      this.time,
      this.members,
    );
    this.#workload = new Workload(
      {
        now: () => this.time.nowMs,
        schedule: (delayMs, run) => this.time.after(delayMs, run),
        members: this.members,
        issuing: () => this.#issuing,
        fail: (message) => this.fail(message),
      },
      clientRng,
      {
        clients: options.clients,
        keys: options.keys,
        opDeadlineMs: 1500,
        thinkMaxMs: 20,
        valueBytes: options.valueBytes,
      },
    );
  }

  /** Members share engine, storage and timing settings (drawn per run); each has its own clock skew. */
  #makeMembers(ids: NodeId[], rng: Rng, transferRng: Rng): SimMember[] {
    const lag = this.#faults.has("lag");
    const storage: StorageSettings = {
      // Small intervals reach snapshots and truncated logs within a few simulated seconds.
      snapshotEveryDecisions: rng.pick(lag ? [4, 16, 32] : [4, 16, 64]),
      retainDecisions: rng.pick([0, 2, 16]),
      fsyncMs: rng.pick([[0, 1], [0, 3], [1, 6]]),
      fsyncStallRate: rng.pick([0, 0.01, 0.05]),
      fsyncStallMs: [20, 200],
    };
    // Small in-memory rings and buffers force catch-up from storage and snapshots.
    const engine = {
      retransmitMs: rng.pick([50, 150]),
      syncRetryMs: rng.pick([100, 300]),
      recentDecisions: rng.pick(lag ? [2, 16] : [2, 16, 512]),
      maxPhasesAhead: rng.pick([2, 64]),
    };
    const shared = {
      members: ids,
      engine,
      storage,
      maxTimerLateMs: rng.pick([0, 2, 10]),
      tickMs: rng.pick([10, 20]),
      maxSyncResponseBytes: rng.pick([2048, 64 * 1024, 4 * 1024 * 1024]),
      // Tiny chunks split even the small snapshots of a run, so chunked catch-up meets every fault.
      snapshotChunkBytes: transferRng.pick([64, 512, 1024 * 1024]),
      maxQueuedBytes: 256 * 1024,
      writeTimeoutMs: 1500,
      elections: true,
    };
    const frame = this.#options.maxFrameBytes;
    if (frame !== undefined) {
      shared.snapshotChunkBytes = Math.floor(frame / 4);
      shared.maxSyncResponseBytes = Math.min(shared.maxSyncResponseBytes, Math.floor(frame / 4));
    }
    return ids.map((id) => {
      const settings: MemberSettings = { ...shared, clockOffsetMs: rng.int(-40, 40) };
      const member = new SimMember(id, settings, this, rng.fork());
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
      // The mesh's defaults: silent for deadAfterMs (1000), checked every 100 ms; a heartbeat every 200 ms.
      silenceDetectMs: [800, 1100],
      closeDetectMs: [1, 5],
      connectMs: rng.pick([[5, 50], [20, 300]]),
    };
  }

  // ---------------------------------------------------------------- MemberHost

  log(member: NodeId): Logger {
    return simLogger((level, message, fields) => {
      if (level === "debug") return;
      const tail = Object.entries(fields).map(([k, v]) => ` ${k}=${JSON.stringify(v)}`).join("");
      this.#note(`${level} [${member}] ${message}${tail}`);
    });
  }

  /** A line in the run's log (shown with a failure). */
  #note(message: string): void {
    this.#logLines.push(`${this.time.nowMs} sim ${message}`);
    if (this.#logLines.length > LOG_LINES_KEPT) this.#logLines.shift();
  }

  fail(message: string): void {
    // The first failure stops the run; the next few (what it led to) are shown after it.
    if (this.#failure === undefined) this.#failure = message;
    else if (++this.#laterFailures <= MORE_FAILURES_SHOWN) this.#failure += `\n  then: ${message}`;
  }

  crashHere(member: SimMember): CrashKind | undefined {
    if (!this.#faultsActive || this.#crashKinds.length === 0) return undefined;
    if (!this.#faultRng.chance(this.#intensity.ioCrashRate)) return undefined;
    this.#noteFault();
    const kind = this.#faultRng.pick(this.#crashKinds);
    if (kind === "power") this.#powerLosses++;
    // It comes back after a while, like after any crash.
    this.time.after(this.#between(this.#intensity.downMs), () => this.#boot(member));
    return kind;
  }

  get #crashKinds(): CrashKind[] {
    const kinds: CrashKind[] = [];
    if (this.#faults.has("crash")) kinds.push("process");
    if (this.#faults.has("power")) kinds.push("power");
    return kinds;
  }

  committed(member: SimMember, step: CommitStep): () => void {
    return this.#agreement.committed(member.id, step);
  }

  appliedPhase(member: SimMember, phase: number, revision: number): void {
    this.#agreement.applied(member.id, phase, revision);
  }

  snapshotSaved(member: SimMember, phase: number, data: Uint8Array): () => void {
    return this.#agreement.snapshotSaved(member.id, phase, data, member.replica!.state.revision);
  }

  snapshotInstalled(member: SimMember, revision: number): void {
    this.#agreement.snapshotInstalled(member.id, revision, member.replica!.state.revision);
  }

  applied(_member: SimMember, events: readonly KvEvent[]): void {
    this.#leadership.applied(events, this.time.nowMs);
  }

  crashed(member: SimMember): void {
    this.#crashes++;
    this.#workload.memberCrashed(member);
    this.#agreement.crashed(member.id);
  }

  // ---------------------------------------------------------------- the run

  async run(): Promise<SimResult> {
    const onRejection = (event: PromiseRejectionEvent) => {
      event.preventDefault();
      this.fail(`unhandled promise rejection: ${event.reason?.stack ?? event.reason}`);
    };
    globalThis.addEventListener("unhandledrejection", onRejection);
    let failure: string | undefined;
    try {
      this.#setUp();
      await this.#loop();
      if (this.#failure === undefined) this.#verify();
      if (this.#failure !== undefined) throw new SimFailure(this.#failure);
    } catch (e) {
      failure = e instanceof SimFailure
        ? e.message
        : `${e instanceof Error ? e.stack ?? e.message : String(e)}`;
      failure += `\n  at simulated time ${this.time.nowMs} ms (event ${this.#events})`;
      failure += `\n  last log lines:\n    ${this.#logLines.slice(-15).join("\n    ")}`;
    } finally {
      // Stop whatever is still scheduled: nothing of this run may act after it.
      for (const member of this.members) member.stop();
      globalThis.removeEventListener("unhandledrejection", onRejection);
    }
    return {
      ok: failure === undefined,
      failure,
      replay: replayCommand(this.#options),
      decisionHash: this.#agreement.hash(),
      historyHash: hashHex(this.#workload.history.map(serializeEntry).join("\n")),
      stats: this.#stats(),
    };
  }

  #setUp(): void {
    for (const member of this.members) this.time.after(this.#faultRng.int(0, 10), () => this.#boot(member));
    this.time.after(20, () => this.#workload.start());
    if (this.#crashKinds.length > 0) this.#scheduleCrash();
    if (this.#faults.has("partition")) this.#schedulePartition();
    if (this.#faults.has("link") && this.members.length > 1) this.#scheduleLinkCut();
    if (this.#faults.has("lag") && this.members.length > 1) this.#scheduleLag();
    if (this.#faults.has("leader") && this.members.length > 1) this.#scheduleLeaderFault();
    this.time.after(this.#options.durationMs, () => this.#heal());
  }

  async #loop(): Promise<void> {
    const limit = this.#options.durationMs + HEAL_LIMIT_MS;
    while (!this.#finished && this.#failure === undefined) {
      const next = this.time.nextAtMs();
      if (next === undefined) throw new SimFailure("the event queue ran dry");
      if (next > limit) {
        throw new SimFailure(
          `liveness: the heal phase did not complete in ${HEAL_LIMIT_MS} ms\n${this.#describe()}`,
        );
      }
      this.#events++;
      this.time.step();
      await this.#settle();
    }
    // Let the failure's consequences show (a crash of the watch hub follows a wrong reset, for example).
    for (let i = 0; i < 20 && this.#failure !== undefined && this.time.step(); i++) await this.#settle();
  }

  /** Lets the promise jobs of the last callback run (and what they defer), before time moves on. */
  async #settle(): Promise<void> {
    for (let i = 0; i < SETTLE_TURNS; i++) {
      await null;
      this.time.runDeferred();
    }
    for (let i = 0; i < MAX_WATCH_TURNS && this.members.some((m) => m.watcherBehind); i++) {
      await null;
      this.time.runDeferred();
    }
  }

  #boot(member: SimMember): void {
    if (member.alive) return;
    member.boot();
  }

  /** A fault's crash: a power loss or a process crash as the run's faults allow (a process crash when neither). */
  #crash(member: SimMember): void {
    const kinds = this.#crashKinds;
    const kind = kinds.length > 0 ? this.#faultRng.pick(kinds) : "process";
    if (kind === "power") this.#powerLosses++;
    member.crash(kind);
  }

  #noteFault(): void {
    this.#lastFaultMs = this.time.nowMs;
    for (const episode of this.#openEpisodes) episode.spoiled = true;
  }

  #scheduleCrash(): void {
    this.time.after(this.#between(this.#intensity.crashGapMs), () => {
      if (!this.#faultsActive) return;
      const alive = this.members.filter((m) => m.alive);
      if (alive.length > 0) {
        this.#noteFault();
        const member = this.#faultRng.pick(alive);
        this.#crash(member);
        this.time.after(this.#between(this.#intensity.downMs), () => this.#boot(member));
      }
      this.#scheduleCrash();
    });
  }

  #schedulePartition(): void {
    this.time.after(this.#between(this.#intensity.partitionGapMs), () => {
      if (!this.#faultsActive) return;
      const ids = this.#shuffled(this.members.map((m) => m.id));
      const cutAt = this.#faultRng.int(1, Math.max(1, Math.floor(ids.length / 2)));
      const [groupA, groupB] = [ids.slice(0, cutAt), ids.slice(cutAt)];
      this.#noteFault();
      this.network.partition(groupA, groupB);
      this.#partitions++;
      this.time.after(this.#between(this.#intensity.partitionMs), () => {
        if (!this.#faultsActive) return; // the heal phase restored everything
        for (const a of groupA) for (const b of groupB) this.network.restore(a, b);
        this.#noteFault();
        this.#schedulePartition();
      });
    });
  }

  /** One link cut for a while; the leader must not change more than once because of it. */
  #scheduleLinkCut(): void {
    this.time.after(this.#between(this.#intensity.linkGapMs), () => {
      if (!this.#faultsActive) return;
      const [a, b] = this.#shuffled(this.members.map((m) => m.id));
      const stable = this.#stable();
      this.#noteFault();
      const episode: Episode = { kind: "link", startMs: this.time.nowMs, link: [a, b], spoiled: !stable };
      this.#openEpisodes.add(episode);
      this.network.cut(a, b);
      this.#linkCuts++;
      const end = () => {
        this.#openEpisodes.delete(episode);
        this.network.restore(a, b);
        this.#noteFault();
        this.time.after(LINK_EPISODE_TAIL_MS, () => this.#leadership.checkLinkEpisode(episode));
        this.#scheduleLinkCut();
      };
      const endTimer = this.time.after(this.#between(this.#intensity.linkMs), end);
      this.#onHeal.push(() => {
        endTimer.cancel();
        if (this.#openEpisodes.has(episode)) end();
      });
    });
  }

  /**
   * One member falls far behind: down, or cut off from everyone, until no running peer's log holds the next
   * phase it needs (their snapshots moved past it and truncated the log), so it must install a snapshot.
   */
  #scheduleLag(): void {
    this.time.after(this.#between(this.#intensity.lagGapMs), () => {
      if (!this.#faultsActive) return;
      const member = this.#faultRng.pick(this.members);
      const isolate = member.alive && this.#faultRng.chance(0.5);
      this.#noteFault();
      this.#lags++;
      const peers = this.members.filter((m) => m !== member).map((m) => m.id);
      if (isolate) { for (const peer of peers) this.network.cut(member.id, peer); }
      else if (member.alive) this.#crash(member);
      const startedMs = this.time.nowMs;
      this.#note(
        `lag: ${member.id} ${isolate ? "cut off" : "down"} at phase ${member.disk.written.lastDecided}`,
      );
      const release = () => {
        this.#note(`lag: ${member.id} back; cluster at phase ${this.#agreement.lastDecided}`);
        this.#noteFault();
        if (isolate) { for (const peer of peers) this.network.restore(member.id, peer); }
        else this.#boot(member);
        this.#scheduleLag();
      };
      const check = () => {
        if (!this.#faultsActive) return release();
        if (this.#outgrown(member) || this.time.nowMs - startedMs >= MAX_LAG_MS) {
          // Let the others decide a little more, so decisions follow the snapshot in the catch-up answer.
          return this.time.after(this.#faultRng.int(0, 200), release);
        }
        this.time.after(MONITOR_MS, check);
      };
      this.time.after(MONITOR_MS, check);
    });
  }

  /** No running peer can give `member` its next phase from its log. */
  #outgrown(member: SimMember): boolean {
    const next = member.disk.written.lastDecided + 1;
    const peers = this.members.filter((m) => m !== member && m.alive);
    return peers.length > 0 && peers.every((peer) => {
      const image = peer.disk.written;
      return (image.snapshot?.phase ?? 0) >= next && (image.log[0]?.phase ?? Infinity) > next;
    });
  }

  /**
   * The agreed leader crashes, or is cut off from a quorum of the members (from every other member in a
   * 3-member cluster; from 3 or all 4 of them in a 5-member one); the others must agree on a new one within 2 s.
   */
  #scheduleLeaderFault(): void {
    this.time.after(this.#between(this.#intensity.leaderGapMs), () => {
      if (!this.#faultsActive) return;
      const leader = this.#leadership.current;
      const member = leader ? this.#byId.get(leader) : undefined;
      if (!member?.alive || !this.#stable()) return this.#scheduleLeaderFault();
      const crash = this.#faultRng.chance(0.5);
      this.#noteFault();
      const episode: Episode = {
        kind: crash ? "leader-crash" : "leader-isolated",
        startMs: this.time.nowMs,
        leader: member.id,
        // The 2 s bound holds on a network that loses only whole connections (the mesh runs over TCP); with
        // messages lost at random, two members decide a few phases a second and the proposal waits its turn.
        spoiled: this.#lossy,
      };
      this.#openEpisodes.add(episode);
      const others = this.#shuffled(this.members.filter((m) => m !== member).map((m) => m.id));
      const peers = crash
        ? []
        : others.slice(0, this.#faultRng.int(quorumOf(this.members.length), others.length));
      episode.cutFrom = peers.length;
      if (crash) this.#crash(member);
      else for (const peer of peers) this.network.cut(member.id, peer);
      this.time.after(
        NEW_LEADER_WITHIN_MS,
        () => this.#leadership.checkLeaderEpisode(episode, () => this.#describe()),
      );
      const end = () => {
        this.#openEpisodes.delete(episode);
        this.#noteFault();
        if (crash) this.#boot(member);
        else for (const peer of peers) this.network.restore(member.id, peer);
        this.#scheduleLeaderFault();
      };
      const endTimer = this.time.after(this.#between(this.#intensity.leaderOutMs), end);
      this.#onHeal.push(() => {
        endTimer.cancel();
        if (this.#openEpisodes.has(episode)) end();
      });
    });
  }

  get #lossy(): boolean {
    return this.#faults.has("loss");
  }

  /** Whole (every member up and connected to every other) and free of faults for a while. */
  #stable(): boolean {
    return this.network.whole && this.time.nowMs - this.#lastFaultMs >= STABLE_BEFORE_EPISODE_MS &&
      this.#leadership.current !== undefined;
  }

  #between([min, max]: [number, number]): number {
    return this.#faultRng.int(min, max);
  }

  #shuffled<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.#faultRng.int(0, i);
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }

  /** End of the faulty period: heal everything, restart everyone, then wait for quiet and read everything. */
  #heal(): void {
    this.#faultsActive = false;
    this.#issuing = false;
    for (const end of this.#onHeal.splice(0)) end();
    // Leader episodes still open are cut short: their leader is back before it could be replaced.
    for (const episode of this.#openEpisodes) episode.spoiled = true;
    this.network.healAll();
    this.network.calm();
    for (const member of this.members) this.#boot(member);
    // Not "quiet": a member that missed the last decisions of an idle cluster over a lossy network learns of
    // them only from new traffic, which the final reads bring.
    this.#when(() => this.#settled(), () => this.#finalReads());
  }

  /** No operation in flight, and every member has decided and applied (once durable) the same phases. */
  #quiet(): boolean {
    const decided = this.members[0].engine?.lastDecided;
    return this.#workload.outstanding === 0 &&
      this.members.every((m) =>
        m.quiet && m.engine!.lastDecided === decided && m.replica!.phase === decided
      ) &&
      decided! >= this.#agreement.lastDecided;
  }

  /** Every member is up and taking part, and no client operation is in flight. */
  #settled(): boolean {
    return this.#workload.outstanding === 0 && this.members.every((m) => m.replica?.ready);
  }

  #when(condition: () => boolean, then: () => void): void {
    const check = () => condition() ? then() : this.time.after(MONITOR_MS, check);
    this.time.after(MONITOR_MS, check);
  }

  /**
   * A linearizable read of every key through every member. A read may end with an unknown outcome without
   * anything being wrong (its batch was decided inside a snapshot its member installed); it is tried again.
   * Liveness means every member eventually serves one, within the heal limit.
   */
  #finalReads(): void {
    let remaining = this.members.length * this.#workload.keys.length;
    const read = (member: SimMember, key: string, attempt: number) => {
      const sent = this.#workload.finalRead(member, key, (ok) => {
        if (!ok) return retry(member, key, attempt);
        if (--remaining === 0) this.#when(() => this.#quiet(), () => this.#finished = true);
      });
      if (!sent) retry(member, key, attempt);
    };
    const retry = (member: SimMember, key: string, attempt: number) => {
      if (attempt >= FINAL_READ_ATTEMPTS) {
        return this.fail(`liveness: ${attempt} final reads of ${key} through ${member.id} did not complete`);
      }
      this.time.after(MONITOR_MS, () => read(member, key, attempt + 1));
    };
    for (const member of this.members) for (const key of this.#workload.keys) read(member, key, 1);
  }

  // ---------------------------------------------------------------- checks

  #verify(): void {
    // Whatever is still waiting for an fsync is checked now, as if the disks were flushed.
    for (const member of this.members) member.disk.syncAll();
    if (this.#failure !== undefined) throw new SimFailure(this.#failure);
    const states = this.members.map((m) =>
      `${m.id}:${m.engine!.lastDecided}:${hashBytes(m.replica!.state.snapshot())}`
    );
    const distinct = new Set(states.map((s) => s.slice(s.indexOf(":") + 1)));
    if (distinct.size !== 1) throw new SimFailure(`members ended in different states: ${states.join(", ")}`);
    for (const member of this.members) this.#checkMirror(member);
    this.#checkRevisionValues();
    const history = this.#workload.history;
    if (history.some((e) => !e.settled)) throw new SimFailure("an operation never settled");
    const result = checkKvHistory(history);
    if (!result.ok) throw new SimFailure(result.problem);
  }

  /** What the member's watcher rebuilt from watch events is exactly its state. */
  #checkMirror(member: SimMember): void {
    const state = member.replica!.state;
    const mirror = member.mirror!;
    assert(
      member.hub!.revision === state.revision,
      `${member.id}: hub and state revisions differ at the end`,
    );
    const entries = state.range("");
    const problem = mirror.revision !== state.revision
      ? `is at revision ${mirror.revision}, the state at ${state.revision}`
      : mirror.entries.size !== entries.length
      ? `holds ${mirror.entries.size} keys, the state ${entries.length}`
      : entries.map((e) => {
        const seen = mirror.entries.get(e.key);
        const value = new TextDecoder().decode(e.value);
        return seen?.value === value && seen.revision === e.modRevision
          ? undefined
          : `differs at key ${e.key}`;
      }).find((p) => p !== undefined);
    if (problem) throw new SimFailure(`${member.id}: the key space rebuilt from watch events ${problem}`);
  }

  /** A revision belongs to one write: one key and one value, whoever observed it. */
  #checkRevisionValues(): void {
    const seen = new Map<number, { fact: string; what: string }>();
    const note = (revision: number, key: string, value: string | null, what: string) => {
      const fact = `${key}=${value}`;
      const known = seen.get(revision);
      if (known !== undefined && known.fact !== fact) {
        throw new SimFailure(
          `revision ${revision} is both ${known.fact} (${known.what}) and ${fact} (${what})`,
        );
      }
      seen.set(revision, { fact, what });
    };
    for (const e of this.#workload.history) {
      if (e.returnMs === Infinity || e.output === undefined) continue;
      const input = e.input;
      if ((input.kind === "put" || input.kind === "cas") && e.revision !== undefined) {
        note(e.revision, e.key, input.value, `${e.client} wrote it through ${e.member} at ${e.callMs} ms`);
      }
      if (input.kind === "get" && e.readRevision) {
        note(
          e.readRevision,
          e.key,
          e.output.value ?? null,
          `${e.client} read it through ${e.member} at ${e.callMs} ms`,
        );
      }
    }
  }

  #describe(): string {
    return this.members.map((m) => {
      const engine = m.engine;
      if (!engine) return `  ${m.id}: down`;
      const peers = this.members.filter((p) => p !== m && this.network.isConnected(m.id, p.id)).map((p) =>
        p.id
      );
      return `  ${m.id}: ${engine.status}, decided ${engine.lastDecided}, busy ${engine.busy}, pending ` +
        `${engine.pendingCount}, ready ${m.replica!.ready}, revision ${m.replica!.state.revision}, hub ` +
        `${m.hub!.revision}, watcher ${m.mirror!.revision}, leader ${m.leader()?.nodeId ?? "none"}, ` +
        `connected to [${peers}]`;
    }).join("\n") +
      `\n  decided in the cluster: ${this.#agreement.lastDecided}; operations outstanding: ${this.#workload.outstanding}`;
  }

  #stats(): SimStats {
    const history = this.#workload.history;
    return {
      simulatedMs: this.time.nowMs,
      events: this.#events,
      phases: this.#agreement.lastDecided,
      operations: history.length,
      completed: history.filter((e) => e.returnMs !== Infinity).length,
      unknown: history.filter((e) => e.returnMs === Infinity).length,
      crashes: this.#crashes,
      powerLosses: this.#powerLosses,
      lostWrites: this.members.reduce((n, m) => n + m.disk.lostWrites, 0),
      partitions: this.#partitions,
      linkCuts: this.#linkCuts,
      snapshotInstalls: this.members.reduce((n, m) => n + m.snapshotInstalls, 0),
      snapshotInstallsWithTail: this.#agreement.installsWithTail,
      lags: this.#lags,
      watchRereads: this.members.reduce((n, m) => n + m.watchRereads, 0),
      leaderChanges: this.#leadership.changesSince(0).length,
      linkEpisodesChecked: this.#leadership.linkEpisodesChecked,
      maxLeaderChangesPerLinkEpisode: this.#leadership.maxChangesPerLinkEpisode,
      leaderEpisodesChecked: this.#leadership.leaderEpisodesChecked,
      slowestNewLeaderMs: this.#leadership.slowestNewLeaderMs,
      messagesSent: this.network.sent,
      messagesDelivered: this.network.delivered,
      snapshotChunks: this.network.snapshotChunks,
      snapshotOffersOverFrame: this.network.snapshotOffersOverFrame,
    };
  }
}

/** A Logger over one line sink (levels below info are dropped by the sink's owner). */
function simLogger(
  sink: (level: LogLevel, message: string, fields: Record<string, unknown>) => void,
  base: Record<string, unknown> = {},
): Logger {
  const write = (level: LogLevel) => (message: string, fields?: Record<string, unknown>) =>
    sink(level, message, { ...base, ...fields });
  return {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    with: (fields) => simLogger(sink, { ...base, ...fields }),
    enabled: (level) => level !== "debug",
  };
}

function serializeEntry(e: HistoryEntry): string {
  const ret = e.returnMs === Infinity ? "inf" : e.returnMs;
  return `${e.client} ${e.member} ${e.key} ${JSON.stringify(e.input)} ${
    JSON.stringify(e.output ?? null)
  } ${e.callMs} ${ret} ${e.revision ?? "-"}`;
}
