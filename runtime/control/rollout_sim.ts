/**
 * A seeded simulator for the rollout reducer, in the deployment simulator's style: the real `stepRollout`
 * against a real `KvState` standing for the replicated store, with writes applied after a random consensus
 * delay (so decisions race with instance changes and operator actions, and compares decide), a model of the
 * deployment manager's side of `routing/` (each version at its count, a version no longer kept retired while
 * the target version lacks ACTIVE instances), instances that take time to start and to drain, steady traffic
 * split by the real `VersionChooser`, per-version failure rates and latencies feeding the analysis, node
 * deaths and leader changes (a new leader starts with empty analysis windows).
 *
 * What a run checks on every tick is in `RolloutSimResult.violations`: at most one rollout per slice, the
 * rolling capacity bounds (never fewer than `count − maxUnavailable` ACTIVE while no node is down, never more
 * than `count + maxSurge` instances), blue-green preview traffic never reaching the new version before the
 * switch; and at the end, the outcome the scenario expects.
 */

import { LatencyHistogram, type NodeId, Rng } from "../core/mod.ts";
import { type KvCommand, KvState } from "../kv/mod.ts";
import { VersionChooser } from "../invoke/mod.ts";
import {
  decodeValue,
  encodeValue,
  kvKeys,
  LEADER_KEY,
  type RolloutRecord,
  type RoutingRecord,
  type TargetRecord,
} from "../model/mod.ts";
import { budgetedBatch, stepRollout, type WindowStats } from "./rollout.ts";
import { RolloutWindows } from "./rollout_metrics.ts";
import {
  applyRolloutAction,
  newRolloutRecord,
  type RolloutAction,
  type RolloutSpec,
} from "./rollout_spec.ts";

export const SIM_SLICE = "org.example:inventory";
const STABLE = "1.0.0";
const NEW = "1.1.0";
const TICK_MS = 10;

export interface RolloutSimOptions {
  seed: number;
  spec: RolloutSpec;
  /** The slice's instance count. */
  instances: number;
  /** The slice's disruption budget. */
  minAvailable?: string;
  nodes: number;
  /** Requests per second (split over ticks). */
  rate: number;
  /** Share of the new version's calls that fail. */
  newFailureRate: number;
  /** The new version's instances never become ACTIVE (it fails to start). */
  newNeverStarts?: boolean;
  /** Alert rules firing from a simulated time on (an alert board's firing rules). */
  firingFrom?: { atMs: number; rule: string };
  progressDeadlineMs?: number;
  /** Operator actions at simulated times. */
  actions: Array<{ atMs: number; action: RolloutAction }>;
  /** A node dies at this time (and comes back `nodeDownMs` later). */
  nodeDeathAtMs?: number;
  nodeDownMs?: number;
  /** The leader changes at these times. */
  leaderChangesAtMs: number[];
  /** The run ends by then. */
  maxMs: number;
  /** Load runs at least this long even when the rollout ended earlier (an e2e run's steady load). */
  minRunMs?: number;
  verbose: boolean;
}

export interface RolloutSimResult {
  record: RolloutRecord;
  target: TargetRecord;
  routing: RoutingRecord | undefined;
  requests: number;
  failed: number;
  /** Requests each version served. */
  served: Record<string, number>;
  /** Served by the new version before blue-green switched (must be 0). */
  previewLeaks: number;
  /** When the run reached its end state (ms). */
  finishedAtMs?: number;
  /** The first failed analysis, and when traffic was all on the stable version after it (ms). */
  failedAnalysisAtMs?: number;
  stableAgainAtMs?: number;
  /** Instances left per version at the end. */
  left: Record<string, number>;
  violations: string[];
  log: string[];
}

interface SimInstance {
  id: number;
  version: string;
  node: NodeId;
  state: "starting" | "active" | "draining";
  until: number;
}

interface Pending {
  at: number;
  command: KvCommand;
  note?: string;
}

export function runRolloutSimulation(options: RolloutSimOptions): RolloutSimResult {
  return new RolloutSim(options).run();
}

class RolloutSim {
  readonly #o: RolloutSimOptions;
  readonly #rng: Rng;
  readonly #kv = new KvState();
  readonly #chooser = new VersionChooser();
  #windows: RolloutWindows;
  readonly #counters = new Map<string, { calls: number; errors: number; latency: LatencyHistogram }>();
  #instances: SimInstance[] = [];
  #nextId = 1;
  #now = 0;
  #pending: Pending[] = [];
  #inFlight = false;
  #wakeAt = 0;
  #leaderView = 1;
  #downNode: NodeId | undefined;
  #upAgainAt = Infinity;
  #requestCarry = 0;
  readonly #r: RolloutSimResult;

  constructor(options: RolloutSimOptions) {
    this.#o = options;
    this.#rng = new Rng(options.seed);
    this.#windows = new RolloutWindows({ counters: (_slice, version) => this.#snapshot(version) });
    this.#r = {
      record: undefined as unknown as RolloutRecord,
      target: undefined as unknown as TargetRecord,
      routing: undefined,
      requests: 0,
      failed: 0,
      served: {},
      previewLeaks: 0,
      left: {},
      violations: [],
      log: [],
    };
  }

  run(): RolloutSimResult {
    this.#setup();
    const actions = [...this.#o.actions].sort((a, b) => a.atMs - b.atMs);
    const leaderChanges = [...this.#o.leaderChangesAtMs].sort((a, b) => a - b);
    while (this.#now <= this.#o.maxMs) {
      while (actions.length > 0 && actions[0].atMs <= this.#now) this.#operator(actions.shift()!.action);
      while (leaderChanges.length > 0 && leaderChanges[0] <= this.#now) {
        leaderChanges.shift();
        this.#changeLeader();
      }
      this.#faults();
      this.#applyDue();
      this.#deployment();
      this.#leaderStep();
      this.#traffic();
      this.#check();
      if (this.#done()) break;
      this.#now += TICK_MS;
    }
    const rollout = this.#rollout();
    this.#r.record = rollout.record;
    this.#r.target = this.#target()!;
    this.#r.routing = this.#routing();
    for (const i of this.#instances) this.#r.left[i.version] = (this.#r.left[i.version] ?? 0) + 1;
    return this.#r;
  }

  #say(line: string): void {
    if (this.#o.verbose) this.#r.log.push(`${String(this.#now).padStart(6)} ${line}`);
  }

  #setup(): void {
    this.#put(LEADER_KEY, "leader", { nodeId: "n1", view: this.#leaderView, electedAt: 1 });
    const target: TargetRecord = { version: STABLE, instances: this.#o.instances, owners: [], updatedAt: 1 };
    if (this.#o.minAvailable !== undefined) target.minAvailable = this.#o.minAvailable;
    this.#put(kvKeys.target(SIM_SLICE), "target", target);
    for (let k = 0; k < this.#o.instances; k++) {
      this.#instances.push({
        id: this.#nextId++,
        version: STABLE,
        node: this.#emptiest(),
        state: "active",
        until: 0,
      });
    }
    const record = newRolloutRecord(this.#o.spec, {
      stableVersion: STABLE,
      newVersion: NEW,
      instances: this.#o.instances,
      nowMs: 1,
    });
    this.#put(kvKeys.rollout(SIM_SLICE), "rollout", record);
    this.#say(`start ${record.strategy} ${STABLE} -> ${NEW}, ${this.#o.instances} instances`);
  }

  #put(key: string, family: "leader" | "target" | "rollout", value: unknown): void {
    this.#kv.apply({ type: "put", key, value: encodeValue(family, value as never) });
  }

  #rollout(): { record: RolloutRecord; modRevision: number } {
    const entry = this.#kv.get(kvKeys.rollout(SIM_SLICE))!;
    return { record: decodeValue("rollout", entry.value), modRevision: entry.modRevision };
  }

  #target(): TargetRecord | undefined {
    const entry = this.#kv.get(kvKeys.target(SIM_SLICE));
    return entry ? decodeValue("target", entry.value) : undefined;
  }

  #routing(): RoutingRecord | undefined {
    const entry = this.#kv.get(kvKeys.routing(SIM_SLICE));
    return entry ? decodeValue("routing", entry.value) : undefined;
  }

  // ---- operator, faults, consensus ----

  #operator(action: RolloutAction): void {
    const { record, modRevision } = this.#rollout();
    if (record.phase === "Succeeded" || record.phase === "RolledBack") return;
    const next = applyRolloutAction(record, action, this.#now);
    this.#submit({
      type: "txn",
      compare: [{ key: kvKeys.rollout(SIM_SLICE), modRevision }],
      success: [{ op: "put", key: kvKeys.rollout(SIM_SLICE), value: encodeValue("rollout", next) }],
      failure: [],
    }, `operator ${action}`);
  }

  #changeLeader(): void {
    this.#leaderView++;
    this.#put(LEADER_KEY, "leader", {
      nodeId: `n${1 + (this.#leaderView % this.#o.nodes)}`,
      view: this.#leaderView,
      electedAt: this.#now + 1,
    });
    // The new leader has none of the old one's memory: its analysis windows start from its first reading.
    this.#windows = new RolloutWindows({ counters: (_slice, version) => this.#snapshot(version) });
    this.#inFlight = false;
    this.#say(`FAULT leader change (view ${this.#leaderView})`);
  }

  #faults(): void {
    if (
      this.#o.nodeDeathAtMs !== undefined && this.#downNode === undefined &&
      this.#now >= this.#o.nodeDeathAtMs &&
      this.#upAgainAt === Infinity
    ) {
      this.#downNode = `n${this.#rng.int(1, this.#o.nodes)}`;
      this.#instances = this.#instances.filter((i) => i.node !== this.#downNode);
      this.#upAgainAt = this.#now + (this.#o.nodeDownMs ?? 2_000);
      this.#say(`FAULT node ${this.#downNode} died`);
    }
    if (this.#downNode !== undefined && this.#now >= this.#upAgainAt) {
      this.#say(`node ${this.#downNode} is back`);
      this.#downNode = undefined;
    }
  }

  #submit(command: KvCommand, note?: string): void {
    this.#pending.push({ at: this.#now + this.#rng.int(1, 8), command, note });
  }

  #applyDue(): void {
    const due = this.#pending.filter((p) => p.at <= this.#now);
    this.#pending = this.#pending.filter((p) => p.at > this.#now);
    for (const p of due) {
      const before = this.#routing();
      const result = this.#kv.apply(p.command);
      const ok = result.ok && result.succeeded !== false;
      if (p.note) this.#say(`${ok ? "applied" : "refused"}: ${p.note}`);
      if (p.note?.startsWith("leader")) this.#inFlight = false;
      const after = this.#routing();
      if (this.#r.failedAnalysisAtMs !== undefined && this.#r.stableAgainAtMs === undefined) {
        if ((after === undefined && before !== undefined) || (after && after.newWeight === 0)) {
          this.#r.stableAgainAtMs = this.#now;
        }
      }
    }
  }

  #leaderStep(): void {
    if (this.#inFlight) return;
    const { record, modRevision } = this.#rollout();
    const target = this.#kv.get(kvKeys.target(SIM_SLICE));
    const routing = this.#kv.get(kvKeys.routing(SIM_SLICE));
    const stepKey = `${record.step}/${record.stepStartedAt}`;
    const decision = stepRollout({
      slice: SIM_SLICE,
      rollout: { record, modRevision },
      target: target
        ? { record: decodeValue("target", target.value), modRevision: target.modRevision }
        : undefined,
      routing: routing
        ? { record: decodeValue("routing", routing.value), modRevision: routing.modRevision }
        : undefined,
      leaderRevision: this.#kv.get(LEADER_KEY)!.modRevision,
      counts: (version) => this.#counts(version),
      window: (version) => this.#windows.window(SIM_SLICE, stepKey, version),
      firingRules: () =>
        new Set(this.#o.firingFrom && this.#now >= this.#o.firingFrom.atMs ? [this.#o.firingFrom.rule] : []),
      nowMs: this.#now,
      progressDeadlineMs: this.#o.progressDeadlineMs,
    });
    this.#wakeAt = decision.wakeAtMs ?? Infinity;
    if (!decision.command) return;
    for (const e of decision.events) {
      if (e.type === "analysis" && e.details.ok === false && this.#r.failedAnalysisAtMs === undefined) {
        this.#r.failedAnalysisAtMs = this.#now;
      }
    }
    this.#inFlight = true;
    const events = decision.events.map((e) => `${e.type} ${JSON.stringify(e.details)}`).join("; ");
    this.#submit(
      decision.command,
      `leader: ${decision.note ?? decision.record.reason ?? decision.record.phase}` +
        (events ? ` [${events}]` : ""),
    );
  }

  // ---- the deployment manager's side ----

  #counts(version: string): { active: number; present: number } {
    let active = 0;
    let present = 0;
    for (const i of this.#instances) {
      if (i.version !== version || i.state === "draining") continue;
      present++;
      if (i.state === "active") active++;
    }
    return { active, present };
  }

  #deployment(): void {
    for (const i of this.#instances) {
      if (i.state === "starting" && this.#now >= i.until && !(this.#o.newNeverStarts && i.version === NEW)) {
        i.state = "active";
      }
    }
    this.#instances = this.#instances.filter((i) => !(i.state === "draining" && this.#now >= i.until));
    const target = this.#target();
    if (!target) return;
    const routing = this.#routing();
    const other = routing?.oldVersion === target.version
      ? routing.newVersion
      : routing?.newVersion === target.version
      ? routing.oldVersion
      : undefined;
    const kept = other === undefined ? [target.version] : [target.version, other];
    for (const version of kept) {
      const count = routing === undefined || other === undefined
        ? target.instances
        : (version === routing.oldVersion ? routing.oldInstances : routing.newInstances) ?? target.instances;
      this.#scale(version, count);
    }
    let stillNeeded = target.instances - this.#counts(target.version).active;
    for (const i of this.#instances) {
      if (kept.includes(i.version) || i.state === "draining") continue;
      if (i.state === "active" && stillNeeded > 0) {
        stillNeeded--;
        continue;
      }
      this.#drain(i);
    }
  }

  #scale(version: string, desired: number): void {
    const up = this.#instances.filter((i) => i.version === version && i.state !== "draining");
    for (let k = up.length; k < desired; k++) {
      const node = this.#emptiest();
      this.#instances.push({
        id: this.#nextId++,
        version,
        node,
        state: "starting",
        until: this.#now + this.#rng.int(50, 300),
      });
    }
    if (up.length > desired) {
      const surplus = [...up].sort((a, b) =>
        (a.state === "starting" ? 0 : 1) - (b.state === "starting" ? 0 : 1) || b.id - a.id
      );
      for (const i of surplus.slice(0, up.length - desired)) this.#drain(i);
    }
  }

  #drain(i: SimInstance): void {
    if (i.state === "starting") {
      this.#instances = this.#instances.filter((x) => x !== i);
      return;
    }
    // DEACTIVATE withdraws the endpoints first: a draining instance takes no new request.
    i.state = "draining";
    i.until = this.#now + this.#rng.int(20, 100);
  }

  #emptiest(): NodeId {
    const live = Array.from({ length: this.#o.nodes }, (_, k) => `n${k + 1}`).filter((n) =>
      n !== this.#downNode
    );
    const load = (n: string) => this.#instances.filter((i) => i.node === n).length;
    return live.sort((a, b) => load(a) - load(b) || (a < b ? -1 : 1))[0];
  }

  // ---- traffic and metrics ----

  #snapshot(version: string): WindowStats {
    const c = this.#counters.get(version);
    return c
      ? { calls: c.calls, errors: c.errors, latency: c.latency.data() }
      : { calls: 0, errors: 0, latency: new LatencyHistogram().data() };
  }

  #traffic(): void {
    this.#requestCarry += (this.#o.rate * TICK_MS) / 1000;
    const routing = this.#routing();
    const record = this.#rollout().record;
    while (this.#requestCarry >= 1) {
      this.#requestCarry--;
      this.#r.requests++;
      const version = this.#pickVersion(routing);
      if (version === undefined) {
        this.#r.failed++;
        continue;
      }
      this.#r.served[version] = (this.#r.served[version] ?? 0) + 1;
      if (record.strategy === "blue-green" && version === NEW && record.switchedAt === undefined) {
        this.#r.previewLeaks++;
      }
      const fails = version === NEW && this.#rng.chance(this.#o.newFailureRate);
      if (fails) this.#r.failed++;
      let c = this.#counters.get(version);
      if (!c) {
        c = { calls: 0, errors: 0, latency: new LatencyHistogram() };
        this.#counters.set(version, c);
      }
      c.calls++;
      if (fails) c.errors++;
      c.latency.observe(2 + this.#rng.next() * 6);
    }
  }

  /** Routing weights when they name two versions (the invoker's rule), else instance counts. */
  #pickVersion(routing: RoutingRecord | undefined): string | undefined {
    const active = (v: string) => this.#counts(v).active > 0;
    if (routing) {
      const chosen = this.#chooser.choose(SIM_SLICE, routing, active);
      if (chosen !== undefined) return chosen;
    }
    const serving = this.#instances.filter((i) => i.state === "active");
    if (serving.length === 0) return undefined;
    return serving[this.#rng.int(0, serving.length - 1)].version;
  }

  // ---- checks ----

  #check(): void {
    const record = this.#rollout().record;
    if (record.strategy !== "rolling" || record.phase !== "Progressing" || this.#downNode !== undefined) {
      return;
    }
    const { surge, unavailable } = budgetedBatch(record, this.#target()!);
    const active = this.#instances.filter((i) => i.state === "active").length;
    const present = this.#instances.filter((i) => i.state !== "draining").length;
    if (active < record.instances - unavailable) {
      this.#violation(`rolling: ${active} ACTIVE < ${record.instances} - maxUnavailable ${unavailable}`);
    }
    if (present > record.instances + surge) {
      this.#violation(`rolling: ${present} instances > ${record.instances} + maxSurge ${surge}`);
    }
  }

  #violation(text: string): void {
    const line = `${this.#now} ms: ${text}`;
    if (this.#r.violations.length < 20) this.#r.violations.push(line);
    this.#say(`VIOLATION ${text}`);
  }

  #done(): boolean {
    const record = this.#rollout().record;
    if (record.phase !== "Succeeded" && record.phase !== "RolledBack") return false;
    this.#r.finishedAtMs ??= this.#now;
    if (this.#now < (this.#o.minRunMs ?? 0)) return false;
    // Run on until the retired version's instances are gone (or 5 s more at most).
    const retired = record.phase === "Succeeded" ? STABLE : NEW;
    return this.#instances.every((i) => i.version !== retired) && this.#pending.length === 0 ||
      this.#now > this.#r.finishedAtMs + 5_000;
  }
}

export const SIM_VERSIONS = { stable: STABLE, new: NEW } as const;
