/**
 * Deployment simulator: the ClusterDeploymentManager and NodeDeploymentManager reducers, run against a real
 * `KvState` standing for the replicated store, under a seeded schedule of faults.
 *
 * - Consensus is modelled as a delay: a command from a node in the majority applies to the one store after a
 *   random 1–8 ms (so commands from different nodes interleave); a node cut off from the majority gets its
 *   writes refused at once. Every node in the majority reads the store; an isolated node reads a frozen copy.
 * - Each node runs an NDM against an honest executor model: operations take random time and fail with a
 *   seeded probability during the fault window; illegal requests (activate before load, ...) are recorded as
 *   violations. ACTIVE instances crash now and then.
 * - Faults: node crashes (its instances die with it) and restarts, isolation and healing, forced leader
 *   changes; the leader record moves to the lowest live node when the leader is gone. Operators scale slices,
 *   change versions, set and clear version weights (`routing/`, which keeps two versions running), and apply
 *   and delete a second blueprint that shares a slice.
 * - Checks: at the revision where an instance is given ACTIVATE, every slice it calls has an ACTIVE instance
 *   in range (dependency order); after the last fault the cluster converges within a bound (every target at
 *   its count of ACTIVE instances of its version, and of the routed version while weights name both, nothing
 *   else, endpoints and routes exactly matching, every node's executor matching KV, no key on a departed node,
 *   spread within one per node and version); then a node leaves
 *   and rejoins, and while the spread is restored no target ever has fewer ACTIVE instances than desired.
 */

import { type NodeId, Rng, satisfies } from "../../core/mod.ts";
import { type KvCommand, type KvEvent, KvState } from "../../kv/mod.ts";
import {
  decodeValue,
  encodeValue,
  kvKeys,
  LEADER_KEY,
  type LeaderRecord,
  parseKey,
  type TargetRecord,
} from "../../model/mod.ts";
import type { SliceManifest } from "../../../slices/host.ts";
import {
  ClusterDeploymentManager,
  type ClusterManagerOptions,
  isWriteOk,
  type WriteResult,
} from "../cluster_manager.ts";
import { NodeDeploymentManager, type NodeManagerOptions } from "../node_manager.ts";
import type { ExecutorAction, ExecutorCrash, ExecutorOutcome } from "../executor.ts";
import { planBlueprintDelete, planBlueprintSource, planDeploy, planScale } from "../targets.ts";
import { callsOf } from "../artifacts.ts";
import { routedVersion, ViewReader } from "../view.ts";
import { artifactValue, manifest } from "../_testing.ts";

export interface DeploySimOptions {
  seed: number;
  nodes: number;
  /** Faults and operator actions happen from 0 to this time (simulated ms). */
  faultWindowMs: number;
  /** After the last fault, the cluster must converge within this long. */
  settleBoundMs: number;
  /** Probability that a load or activation fails, during the fault window. */
  failureRate: number;
  /** After converging, one node leaves and comes back; the spread must be restored without dropping below count. */
  joinPhase: boolean;
  verbose: boolean;
}

export const DEFAULT_DEPLOY_SIM_OPTIONS: Omit<DeploySimOptions, "seed"> = {
  nodes: 5,
  faultWindowMs: 6_000,
  settleBoundMs: 30_000,
  failureRate: 0.1,
  joinPhase: true,
  verbose: false,
};

export interface DeploySimResult {
  seed: number;
  ok: boolean;
  failures: string[];
  /** Simulated ms from the last fault to convergence. */
  convergedAfterMs?: number;
  commandsApplied: number;
  compareFailures: number;
  events: number;
  log: string[];
}

export const SIM_CDM_OPTIONS: Partial<ClusterManagerOptions> = {
  departureGraceMs: 1_000,
  commandDeadlineMs: 2_000,
  stuckSlackMs: 500,
  backoffBaseMs: 200,
  backoffMaxMs: 2_000,
  backoffResetMs: 1_000,
  pendingTimeoutMs: 2_000,
  sweepIntervalMs: 1_000,
};

export const SIM_NDM_OPTIONS: Partial<NodeManagerOptions> = {
  loadingMs: 2_000,
  activatingMs: 1_000,
  deactivatingMs: 1_000,
  unloadingMs: 1_000,
  pendingTimeoutMs: 2_000,
};

// ---------------------------------------------------------------------------------------------------------------
// Workload

const ROUTE_GET = "GET" as const;
const UTF8 = new TextDecoder();
const CDM_COALESCE_MS = 10;

function workloadManifests(): SliceManifest[] {
  return [
    manifest("sim.shop:db:1.0.0", { methods: ["get", "put"], routes: [[ROUTE_GET, "/{id}", "get"]] }),
    manifest("sim.shop:db:1.1.0", { methods: ["get", "put"], routes: [[ROUTE_GET, "/{id}", "get"]] }),
    manifest("sim.shop:inventory:1.0.0", { calls: { db: ["sim.shop:db", "^1.0.0"] }, methods: ["stock"] }),
    manifest("sim.shop:inventory:1.2.0", {
      calls: { db: ["sim.shop:db", "^1.0.0"] },
      methods: ["stock", "reserve"],
      routes: [[ROUTE_GET, "/stock", "stock"]],
    }),
    manifest("sim.shop:payments:2.0.0", { calls: { db: ["sim.shop:db", "^1.0.0"] }, methods: ["charge"] }),
    manifest("sim.shop:payments:2.1.0", { calls: { db: ["sim.shop:db", "^1.0.0"] }, methods: ["charge"] }),
    manifest("sim.shop:orders:1.0.0", {
      calls: { inventory: ["sim.shop:inventory", "^1.0.0"], payments: ["sim.shop:payments", "^2.0.0"] },
      methods: ["place", "status"],
      routes: [["POST", "/", "place"], [ROUTE_GET, "/{id}", "status"]],
    }),
    manifest("sim.shop:audit:1.0.0", { methods: ["record"] }),
    manifest("sim.extra:reports:1.0.0", { calls: { db: ["sim.shop:db", "^1.0.0"] }, methods: ["daily"] }),
  ];
}

const BLUEPRINT_SHOP = `id = "sim.shop:shop:1.0.0"

[[slices]]
artifact = "sim.shop:orders:1.0.0"
instances = 2
min = 1
max = 5

[[slices]]
artifact = "sim.shop:audit:1.0.0"
instances = 3
`;

const BLUEPRINT_REPORTS = `id = "sim.extra:reports-app:1.0.0"

[[slices]]
artifact = "sim.extra:reports:1.0.0"
instances = 2
`;

/** Versions an operator may switch a slice to (all satisfy every caller's range). */
const VERSION_CHOICES: Record<string, string[]> = {
  "sim.shop:db": ["1.0.0", "1.1.0"],
  "sim.shop:inventory": ["1.0.0", "1.2.0"],
  "sim.shop:payments": ["2.0.0", "2.1.0"],
};

// ---------------------------------------------------------------------------------------------------------------
// The model

type ExecState = "loading" | "loaded" | "activating" | "active" | "deactivating" | "unloading" | "failed";

interface SimNode {
  id: NodeId;
  up: boolean;
  isolated: boolean;
  /** Bumped on every crash, so completions of a previous life are dropped. */
  incarnation: number;
  /** When `up && !isolated` last changed. */
  connectedSince: number;
  frozen?: KvState;
  ndm: NodeDeploymentManager;
  cdm: ClusterDeploymentManager;
  executor: Map<string, { coordinates: string; state: ExecState }>;
  outcomes: ExecutorOutcome[];
  crashes: ExecutorCrash[];
  ndmResults: WriteResult[];
  cdmResults: WriteResult[];
  ndmDirty: boolean;
  cdmDirty: boolean;
  wasLeader: boolean;
  cdmSteppedAt: number;
  cdmWakeAt: number;
  ndmWakeAt: number;
}

type SimEvent =
  | {
    type: "apply";
    from: NodeId;
    incarnation: number;
    id: string;
    command: KvCommand;
    component: "cdm" | "ndm" | "op";
  }
  | { type: "refused"; from: NodeId; incarnation: number; id: string; component: "cdm" | "ndm" }
  | { type: "complete"; node: NodeId; incarnation: number; action: ExecutorAction; ok: boolean }
  | { type: "wake"; node: NodeId; component: "cdm" | "ndm" }
  | { type: "fault" }
  | { type: "check" };

class Heap {
  #items: { at: number; seq: number; event: SimEvent }[] = [];
  #seq = 0;

  get size(): number {
    return this.#items.length;
  }

  push(at: number, event: SimEvent): void {
    const items = this.#items;
    items.push({ at, seq: this.#seq++, event });
    let i = items.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.#less(items[i], items[p])) {
        [items[i], items[p]] = [items[p], items[i]];
        i = p;
      } else break;
    }
  }

  peekTime(): number | undefined {
    return this.#items[0]?.at;
  }

  pop(): { at: number; event: SimEvent } {
    const items = this.#items;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < items.length && this.#less(items[l], items[m])) m = l;
        if (r < items.length && this.#less(items[r], items[m])) m = r;
        if (m === i) break;
        [items[i], items[m]] = [items[m], items[i]];
        i = m;
      }
    }
    return top;
  }

  #less(a: { at: number; seq: number }, b: { at: number; seq: number }): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }
}

export function runDeploymentSimulation(options: DeploySimOptions): DeploySimResult {
  return new Simulation(options).run();
}

class Simulation {
  readonly #o: DeploySimOptions;
  readonly #rng: Rng;
  readonly #faultRng: Rng;
  readonly #store = new KvState();
  readonly #heap = new Heap();
  readonly #nodes: SimNode[] = [];
  readonly #manifests = new Map<string, SliceManifest>();
  readonly #failures: string[] = [];
  /** The checks' own reader of the store. */
  readonly #checker = new ViewReader();
  #leaderCache: { bytes: Uint8Array; record: LeaderRecord } | undefined;
  readonly #ranges = new Map<string, boolean>();
  readonly #log: string[] = [];
  #now = 0;
  #applied = 0;
  #compareFailures = 0;
  #events = 0;
  #opSeq = 0;
  #lastFaultAt = 0;
  #faultsOver = false;
  #convergedAt: number | undefined;
  #phase: "faults" | "settle" | "leave" | "rejoin" | "done" = "faults";
  #phaseDeadline = 0;
  #leaver: SimNode | undefined;
  #reportsApplied = false;
  #minActiveChecked = false;

  constructor(options: DeploySimOptions) {
    this.#o = options;
    const root = new Rng(options.seed);
    this.#rng = root.fork();
    this.#faultRng = root.fork();
    for (let i = 1; i <= options.nodes; i++) this.#nodes.push(this.#newNode(`n${i}`));
    for (const m of workloadManifests()) this.#manifests.set(m.coordinates, m);
  }

  #newNode(id: NodeId, previous?: SimNode): SimNode {
    return {
      id,
      up: true,
      isolated: false,
      incarnation: (previous?.incarnation ?? 0) + 1,
      connectedSince: this.#now,
      ndm: new NodeDeploymentManager(id, SIM_NDM_OPTIONS),
      cdm: new ClusterDeploymentManager(id, SIM_CDM_OPTIONS),
      executor: new Map(),
      outcomes: [],
      crashes: [],
      ndmResults: [],
      cdmResults: [],
      ndmDirty: true,
      cdmDirty: true,
      wasLeader: false,
      cdmSteppedAt: -Infinity,
      cdmWakeAt: -1,
      ndmWakeAt: -1,
    };
  }

  #say(message: string): void {
    if (this.#o.verbose) this.#log.push(`${String(this.#now).padStart(6)} ${message}`);
  }

  #fail(message: string): void {
    if (this.#failures.length < 20) this.#failures.push(`t=${this.#now}: ${message}`);
    this.#say(`VIOLATION ${message}`);
  }

  run(): DeploySimResult {
    // Set-up: artifacts published, a leader, the shop blueprint applied.
    for (const m of this.#manifests.values()) {
      this.#applyNow({ type: "put", key: kvKeys.artifact(m.coordinates), value: artifactValue(m) });
    }
    this.#applyNow({
      type: "put",
      key: LEADER_KEY,
      value: encodeValue("leader", { nodeId: "n1", view: 1, electedAt: 0 }),
    });
    this.#applyNow(planBlueprintSource(this.#store, BLUEPRINT_SHOP, 0).command);
    this.#heap.push(this.#faultRng.int(300, 1500), { type: "fault" });
    this.#heap.push(100, { type: "check" });

    const limitMs = this.#o.faultWindowMs + this.#o.settleBoundMs * 4 + 60_000;
    while (this.#heap.size > 0 && this.#phase !== "done") {
      const at = this.#heap.peekTime()!;
      if (at > limitMs) {
        this.#fail(`simulation ran past ${limitMs} ms in phase ${this.#phase}`);
        break;
      }
      this.#now = at;
      while (this.#heap.size > 0 && this.#heap.peekTime() === at) this.#handle(this.#heap.pop().event);
      this.#stepRound();
      if (this.#failures.length >= 20) break;
    }
    return {
      seed: this.#o.seed,
      ok: this.#failures.length === 0,
      failures: this.#failures,
      ...(this.#convergedAt !== undefined ? { convergedAfterMs: this.#convergedAt - this.#lastFaultAt } : {}),
      commandsApplied: this.#applied,
      compareFailures: this.#compareFailures,
      events: this.#events,
      log: this.#log,
    };
  }

  // -- events ----------------------------------------------------------------------------------------------

  #handle(event: SimEvent): void {
    this.#events++;
    switch (event.type) {
      case "apply":
        return this.#apply(event);
      case "refused": {
        const node = this.#node(event.from);
        if (node.up && node.incarnation === event.incarnation) {
          (event.component === "cdm" ? node.cdmResults : node.ndmResults).push({ id: event.id, ok: false });
          if (event.component === "cdm") node.cdmDirty = true;
          else node.ndmDirty = true;
        }
        return;
      }
      case "complete":
        return this.#complete(event);
      case "wake": {
        const node = this.#node(event.node);
        if (event.component === "cdm") node.cdmDirty = true;
        else node.ndmDirty = true;
        return;
      }
      case "fault":
        return this.#fault();
      case "check":
        return this.#check();
    }
  }

  #node(id: NodeId): SimNode {
    return this.#nodes[Number(id.slice(1)) - 1];
  }

  /** Applies at once (set-up and simulated elections go straight to the store). */
  #applyNow(command: KvCommand): boolean {
    const events: KvEvent[] = [];
    const result = this.#store.apply(command, events);
    if (!result.ok && result.code !== "compare_failed") {
      this.#fail(`command refused as invalid: ${result.message}`);
    }
    this.#afterApply(events);
    return isWriteOk(result);
  }

  #apply(event: Extract<SimEvent, { type: "apply" }>): void {
    const events: KvEvent[] = [];
    const result = this.#store.apply(event.command, events);
    this.#applied++;
    if (!result.ok && result.code !== "compare_failed") {
      this.#fail(`command from ${event.from} refused as invalid: ${result.message}`);
    }
    const ok = isWriteOk(result);
    if (!ok) this.#compareFailures++;
    this.#afterApply(events);
    const node = this.#node(event.from);
    if (event.component !== "op" && node.up && node.incarnation === event.incarnation) {
      (event.component === "cdm" ? node.cdmResults : node.ndmResults).push({ id: event.id, ok });
      if (event.component === "cdm") node.cdmDirty = true;
      else node.ndmDirty = true;
    }
  }

  #afterApply(events: KvEvent[]): void {
    if (events.length === 0) return;
    for (const node of this.#nodes) {
      if (node.up && !node.isolated) {
        // A node manager only acts on its own instance keys (what a node's watch of `instances/{self}/` sees).
        const prefix = `instances/${node.id}/`;
        if (events.some((e) => e.key.startsWith(prefix))) node.ndmDirty = true;
        node.cdmDirty = true;
      }
    }
    for (const e of events) {
      if (e.type !== "put" || !e.key.startsWith("instances/")) continue;
      if (JSON.parse(UTF8.decode(e.value!)).state === "ACTIVATE") this.#checkDependencies(e.key);
    }
    if (this.#phase === "rejoin") this.#checkMinimumActive();
  }

  /** At the revision where ACTIVATE is written, every slice the instance calls has an ACTIVE instance in range. */
  #checkDependencies(key: string): void {
    const parsed = parseKey(key);
    if (parsed.family !== "instance") return;
    const coordinates = `${parsed.artifact.group}:${parsed.artifact.artifact}:${parsed.artifact.version}`;
    const m = this.#manifests.get(coordinates);
    if (!m) return this.#fail(`ACTIVATE for ${key} whose manifest is unknown`);
    const view = this.#checker.read(this.#store);
    for (const call of callsOf(m)) {
      const active = (view.instancesByBase.get(call.base) ?? []).some((i) =>
        i.record.state === "ACTIVE" && this.#inRange(i.version, call.range)
      );
      if (!active) {
        this.#fail(`${key} was told to ACTIVATE while ${call.base} ${call.range} had no ACTIVE instance`);
      }
    }
  }

  #inRange(version: string, range: string): boolean {
    const key = `${version} ${range}`;
    let hit = this.#ranges.get(key);
    if (hit === undefined) this.#ranges.set(key, hit = satisfies(version, range));
    return hit;
  }

  #complete(event: Extract<SimEvent, { type: "complete" }>): void {
    const node = this.#node(event.node);
    if (!node.up || node.incarnation !== event.incarnation) return;
    const entry = node.executor.get(event.action.instanceId);
    if (!entry) return;
    const { op } = event.action;
    if (op === "unload") {
      node.executor.delete(event.action.instanceId);
    } else if (entry.state !== "failed") {
      entry.state = !event.ok ? "failed" : op === "load" ? "loaded" : op === "activate" ? "active" : "loaded";
    }
    node.outcomes.push(
      event.ok || op === "unload"
        ? { instanceId: event.action.instanceId, op, ok: true }
        : { instanceId: event.action.instanceId, op, ok: false, reason: `simulated ${op} failure` },
    );
    node.ndmDirty = true;
  }

  // -- executor model --------------------------------------------------------------------------------------

  #execute(node: SimNode, action: ExecutorAction): void {
    const entry = node.executor.get(action.instanceId);
    const illegal = (why: string) =>
      this.#fail(`${node.id}: executor asked to ${action.op} ${action.instanceId}: ${why}`);
    const failing = !this.#faultsOver && this.#rng.chance(this.#o.failureRate);
    let duration: number;
    switch (action.op) {
      case "load":
        if (entry) return illegal(`it already exists (${entry.state})`);
        node.executor.set(action.instanceId, { coordinates: action.artifact, state: "loading" });
        duration = this.#rng.int(20, 300);
        break;
      case "activate":
        if (entry?.state !== "loaded") return illegal(`it is ${entry?.state ?? "absent"}, not loaded`);
        entry.state = "activating";
        duration = this.#rng.int(10, 120);
        break;
      case "deactivate":
        if (entry?.state !== "active") return illegal(`it is ${entry?.state ?? "absent"}, not active`);
        entry.state = "deactivating";
        duration = this.#rng.int(10, 60);
        break;
      case "unload":
        if (entry?.state !== "loaded" && entry?.state !== "failed") {
          return illegal(`it is ${entry?.state ?? "absent"}, not loaded or failed`);
        }
        entry.state = "unloading";
        duration = this.#rng.int(5, 50);
        break;
    }
    const ok = action.op === "load" || action.op === "activate" ? !failing : true;
    this.#heap.push(this.#now + duration, {
      type: "complete",
      node: node.id,
      incarnation: node.incarnation,
      action,
      ok,
    });
  }

  // -- steps -----------------------------------------------------------------------------------------------

  #viewOf(node: SimNode): KvState {
    return node.isolated ? node.frozen! : this.#store;
  }

  #majority(): SimNode[] {
    return this.#nodes.filter((n) => n.up && !n.isolated);
  }

  #members(node: SimNode) {
    return this.#nodes.map((m) => {
      if (m === node) return { id: m.id, connected: true, sinceMs: m.connectedSince };
      if (node.isolated) return { id: m.id, connected: false, sinceMs: node.connectedSince };
      return { id: m.id, connected: m.up && !m.isolated, sinceMs: m.connectedSince };
    });
  }

  #submit(node: SimNode, component: "cdm" | "ndm", id: string, command: KvCommand): void {
    if (node.isolated) {
      this.#heap.push(this.#now + 1, {
        type: "refused",
        from: node.id,
        incarnation: node.incarnation,
        id,
        component,
      });
      return;
    }
    this.#heap.push(this.#now + this.#rng.int(1, 8), {
      type: "apply",
      from: node.id,
      incarnation: node.incarnation,
      id,
      command,
      component,
    });
  }

  #stepRound(): void {
    this.#elect();
    for (const node of this.#nodes) {
      if (!node.up) continue;
      const kv = this.#viewOf(node);
      if (node.ndmDirty) {
        node.ndmDirty = false;
        const out = node.ndm.step({
          kv,
          nowMs: this.#now,
          hasQuorum: !node.isolated,
          outcomes: node.outcomes.splice(0),
          crashes: node.crashes.splice(0),
          results: node.ndmResults.splice(0),
        });
        for (const action of out.actions) this.#execute(node, action);
        for (const c of out.commands) {
          this.#say(`${node.id} ndm: ${c.reason}`);
          this.#submit(node, "ndm", c.id, c.command);
        }
        if (out.wakeAtMs !== undefined) this.#wake(node, "ndm", out.wakeAtMs);
      }
      if (node.cdmDirty) {
        const leader = this.#leaderOf(kv);
        if (leader !== node.id && !node.wasLeader) {
          node.cdmDirty = false;
          node.cdmResults.length = 0;
          continue;
        }
        // Coalesce: the glue runs the leader's step at most once per CDM_COALESCE_MS as well.
        if (this.#now - node.cdmSteppedAt < CDM_COALESCE_MS) {
          this.#wake(node, "cdm", node.cdmSteppedAt + CDM_COALESCE_MS);
          continue;
        }
        node.cdmDirty = false;
        node.cdmSteppedAt = this.#now;
        const out = node.cdm.step({
          kv,
          members: this.#members(node),
          nowMs: this.#now,
          results: node.cdmResults.splice(0),
          hasQuorum: !node.isolated,
        });
        node.wasLeader = out.leader;
        for (const c of out.commands) {
          this.#say(`${node.id} cdm: ${c.reason}`);
          this.#submit(node, "cdm", c.id, c.command);
        }
        if (out.wakeAtMs !== undefined) this.#wake(node, "cdm", out.wakeAtMs);
      }
    }
  }

  /** Schedules a wake-up unless an earlier one (still in the future) is already scheduled. */
  #wake(node: SimNode, component: "cdm" | "ndm", atMs: number): void {
    const at = Math.max(atMs, this.#now + 1);
    const scheduled = component === "cdm" ? node.cdmWakeAt : node.ndmWakeAt;
    if (scheduled > this.#now && scheduled <= at) return;
    if (component === "cdm") node.cdmWakeAt = at;
    else node.ndmWakeAt = at;
    this.#heap.push(at, { type: "wake", node: node.id, component });
  }

  #leaderOf(kv: KvState): NodeId | undefined {
    const entry = kv.get(LEADER_KEY);
    return entry ? this.#leaderRecord(entry.value).nodeId : undefined;
  }

  /** Decoded leader records by their bytes (the record changes rarely; decoding it every round is waste). */
  #leaderRecord(bytes: Uint8Array): LeaderRecord {
    if (this.#leaderCache?.bytes !== bytes) {
      this.#leaderCache = { bytes, record: decodeValue("leader", bytes) };
    }
    return this.#leaderCache.record;
  }

  /** The leader record moves to the lowest connected node once the leader has been gone for a while. */
  #elect(): void {
    const entry = this.#store.get(LEADER_KEY)!;
    const record = this.#leaderRecord(entry.value);
    const leader = this.#node(record.nodeId);
    const majority = this.#majority();
    if (majority.includes(leader)) return;
    if (this.#now - leader.connectedSince < 300) return;
    const next = majority.map((n) => n.id).sort()[0];
    if (!next) return;
    this.#say(`election: ${next} replaces ${record.nodeId}`);
    this.#applyNow({
      type: "put",
      key: LEADER_KEY,
      value: encodeValue("leader", { nodeId: next, view: record.view + 1, electedAt: this.#now }),
      ifRevision: entry.modRevision,
    });
  }

  // -- faults and operators ----------------------------------------------------------------------------------

  #fault(): void {
    if (this.#now >= this.#o.faultWindowMs) return this.#endFaults();
    this.#lastFaultAt = this.#now;
    const rng = this.#faultRng;
    const maxDown = Math.floor((this.#o.nodes - 1) / 2);
    const down = this.#nodes.filter((n) => !n.up || n.isolated);
    const roll = rng.next();
    if (roll < 0.18 && down.length < maxDown) {
      this.#crash(rng.pick(this.#nodes.filter((n) => n.up && !n.isolated)));
    } else if (roll < 0.3 && down.some((n) => !n.up)) {
      this.#restart(rng.pick(down.filter((n) => !n.up)));
    } else if (roll < 0.4 && down.length < maxDown) {
      this.#isolate(rng.pick(this.#nodes.filter((n) => n.up && !n.isolated)));
    } else if (roll < 0.5 && down.some((n) => n.isolated)) {
      this.#heal(rng.pick(down.filter((n) => n.isolated)));
    } else if (roll < 0.58) {
      this.#forceLeaderChange();
    } else if (roll < 0.68) {
      this.#crashInstance();
    } else {
      this.#operatorAction();
    }
    this.#heap.push(this.#now + rng.int(200, 1500), { type: "fault" });
  }

  #endFaults(): void {
    this.#faultsOver = true;
    for (const node of this.#nodes) {
      if (!node.up) this.#restart(node);
      else if (node.isolated) this.#heal(node);
    }
    this.#lastFaultAt = this.#now;
    this.#phase = "settle";
    this.#phaseDeadline = this.#now + this.#o.settleBoundMs;
    this.#say("faults over; settling");
  }

  #crash(node: SimNode): void {
    this.#say(`FAULT crash ${node.id}`);
    node.up = false;
    node.isolated = false;
    node.frozen = undefined;
    node.executor.clear();
    node.incarnation++;
    node.connectedSince = this.#now;
    this.#markAllCdm();
  }

  #restart(node: SimNode): void {
    this.#say(`FAULT restart ${node.id}`);
    const fresh = this.#newNode(node.id, node);
    Object.assign(node, fresh);
    this.#markAllCdm();
  }

  #isolate(node: SimNode): void {
    this.#say(`FAULT isolate ${node.id}`);
    node.isolated = true;
    node.frozen = KvState.fromSnapshot(this.#store.snapshot());
    node.connectedSince = this.#now;
    node.ndmDirty = true;
    this.#markAllCdm();
  }

  #heal(node: SimNode): void {
    this.#say(`FAULT heal ${node.id}`);
    node.isolated = false;
    node.frozen = undefined;
    node.connectedSince = this.#now;
    node.ndmDirty = true;
    this.#markAllCdm();
  }

  #markAllCdm(): void {
    for (const n of this.#nodes) n.cdmDirty = true;
  }

  #forceLeaderChange(): void {
    const entry = this.#store.get(LEADER_KEY)!;
    const record = decodeValue("leader", entry.value);
    const candidates = this.#majority().filter((n) => n.id !== record.nodeId);
    if (candidates.length === 0) return;
    const next = this.#faultRng.pick(candidates).id;
    this.#say(`FAULT leader change ${record.nodeId} -> ${next}`);
    this.#applyNow({
      type: "put",
      key: LEADER_KEY,
      value: encodeValue("leader", { nodeId: next, view: record.view + 1, electedAt: this.#now }),
      ifRevision: entry.modRevision,
    });
  }

  #crashInstance(): void {
    const candidates: [SimNode, string][] = [];
    for (const node of this.#nodes) {
      if (!node.up) continue;
      for (const [id, e] of node.executor) if (e.state === "active") candidates.push([node, id]);
    }
    if (candidates.length === 0) return;
    const [node, id] = this.#faultRng.pick(candidates);
    this.#say(`FAULT instance ${id} crashes on ${node.id}`);
    node.executor.get(id)!.state = "failed";
    node.crashes.push({ instanceId: id, reason: "simulated crash" });
    node.ndmDirty = true;
  }

  #operatorAction(): void {
    const rng = this.#faultRng;
    const roll = rng.next();
    let command: KvCommand | undefined;
    try {
      if (roll < 0.3) {
        const slice = rng.pick(["sim.shop:orders", "sim.shop:audit", "sim.shop:db", "sim.shop:inventory"]);
        const target = this.#target(slice);
        if (!target) return;
        const instances = rng.int(target.min ?? 1, Math.min(target.max ?? 4, 4));
        this.#say(`OPERATOR scale ${slice} to ${instances}`);
        command = planScale(this.#store, slice, instances, this.#now).command;
      } else if (roll < 0.55) {
        const slice = rng.pick(Object.keys(VERSION_CHOICES));
        const target = this.#target(slice);
        if (!target) return;
        const version = rng.pick(VERSION_CHOICES[slice]);
        this.#say(`OPERATOR deploy ${slice}:${version}`);
        command = planDeploy(this.#store, `${slice}:${version}`, target.instances, this.#now).command;
      } else if (roll < 0.75) {
        // Version weights: both versions run while they exist; clearing them retires the non-target one.
        const routed = Object.keys(VERSION_CHOICES).filter((s) => this.#store.get(kvKeys.routing(s)));
        const clear = routed.length > 0 && rng.next() < 0.6;
        const slice = rng.pick(clear ? routed : Object.keys(VERSION_CHOICES));
        const key = kvKeys.routing(slice);
        if (clear) {
          this.#say(`OPERATOR routing clear ${slice}`);
          command = { type: "delete", key };
        } else {
          const [oldVersion, newVersion] = VERSION_CHOICES[slice];
          const [oldWeight, newWeight] = [rng.int(0, 3), rng.int(1, 3)];
          this.#say(`OPERATOR routing ${slice} ${oldVersion}=${oldWeight} ${newVersion}=${newWeight}`);
          const record = { oldVersion, newVersion, oldWeight, newWeight, updatedAt: this.#now };
          command = { type: "put", key, value: encodeValue("routing", record) };
        }
      } else if (!this.#reportsApplied) {
        this.#say("OPERATOR apply the reports blueprint");
        command = planBlueprintSource(this.#store, BLUEPRINT_REPORTS, this.#now).command;
        this.#reportsApplied = true;
      } else {
        this.#say("OPERATOR delete the reports blueprint");
        command = planBlueprintDelete(this.#store, "sim.extra:reports-app:1.0.0", this.#now).command;
        this.#reportsApplied = false;
      }
    } catch (e) {
      this.#fail(`operator action failed: ${(e as Error).message}`);
      return;
    }
    this.#heap.push(this.#now + this.#rng.int(1, 8), {
      type: "apply",
      from: "n1",
      incarnation: -1,
      id: `op/${++this.#opSeq}`,
      command,
      component: "op",
    });
  }

  #target(slice: string): TargetRecord | undefined {
    const entry = this.#store.get(kvKeys.target(slice));
    return entry ? decodeValue("target", entry.value) : undefined;
  }

  // -- convergence -------------------------------------------------------------------------------------------

  #check(): void {
    this.#heap.push(this.#now + 100, { type: "check" });
    if (this.#phase === "faults") return;
    const problems = this.#divergence();
    if (problems.length === 0) {
      switch (this.#phase) {
        case "settle":
          this.#convergedAt = this.#now;
          this.#say(`converged ${this.#now - this.#lastFaultAt} ms after the last fault`);
          // A node leaving a cluster of fewer than three takes the quorum with it: no rejoin phase then.
          if (!this.#o.joinPhase || this.#o.nodes < 3) this.#phase = "done";
          else this.#leave();
          return;
        case "leave":
          this.#rejoin();
          return;
        case "rejoin":
          this.#say("spread restored after the rejoin");
          this.#phase = "done";
          return;
      }
    }
    if (this.#now > this.#phaseDeadline) {
      this.#fail(
        `no convergence in phase ${this.#phase} within its bound: ${problems.slice(0, 8).join("; ")}`,
      );
      this.#phase = "done";
    }
  }

  /** A node leaves for good (crash past the grace period): its instances must be replaced elsewhere. */
  #leave(): void {
    const loads = this.#nodes.map((n) => ({ n, count: n.executor.size })).sort((a, b) => b.count - a.count);
    this.#leaver = loads[0].n;
    this.#crash(this.#leaver);
    this.#phase = "leave";
    this.#phaseDeadline = this.#now + this.#o.settleBoundMs;
  }

  /** It comes back: the spread must be restored, never dropping a target below its ACTIVE count. */
  #rejoin(): void {
    this.#restart(this.#leaver!);
    this.#phase = "rejoin";
    this.#phaseDeadline = this.#now + this.#o.settleBoundMs;
    this.#minActiveChecked = true;
  }

  #checkMinimumActive(): void {
    if (!this.#minActiveChecked) return;
    const view = this.#checker.read(this.#store);
    for (const [base, t] of view.targets) {
      for (
        const version of [t.record.version, routedVersion(t.record.version, view.routing.get(base)?.record)]
      ) {
        if (version === undefined) continue;
        const active = (view.instancesByBase.get(base) ?? []).filter((i) =>
          i.record.state === "ACTIVE" && i.version === version && this.#node(i.node).up
        ).length;
        if (active < t.record.instances) {
          this.#fail(
            `during the rejoin ${base}:${version} had ${active} ACTIVE instance(s), fewer than ${t.record.instances}`,
          );
        }
      }
    }
  }

  /** Everything that is not as it should be once the cluster settled; empty when converged. */
  #divergence(): string[] {
    const problems: string[] = [];
    const view = this.#checker.read(this.#store);
    const live = new Set(this.#majority().map((n) => n.id));
    const expectedEndpoints = new Set<string>();
    const expectedRoutes = new Map<string, Set<NodeId>>();
    const routedOf = (base: string, t: TargetRecord) =>
      routedVersion(t.version, view.routing.get(base)?.record);
    for (const i of view.instances) {
      const t = view.targets.get(i.base);
      if (!live.has(i.node)) problems.push(`${i.key} is on ${i.node}, which is not live`);
      if (!t) problems.push(`${i.key} exists but ${i.base} is not deployed`);
      else if (t.record.version !== i.version && routedOf(i.base, t.record) !== i.version) {
        problems.push(`${i.key} is neither the target version ${t.record.version} nor a routed one`);
      }
      if (i.record.state !== "ACTIVE") problems.push(`${i.key} is ${i.record.state}`);
      const m = this.#manifests.get(i.coordinates)!;
      for (const method of m.methods) {
        expectedEndpoints.add(`endpoints/${i.coordinates}/${method}/${i.node}/${i.n}`);
      }
      for (const r of m.routes?.entries ?? []) {
        const key = `routes/${r.httpMethod}${r.fullPath}`;
        expectedRoutes.set(key, new Set([...(expectedRoutes.get(key) ?? []), i.node]));
      }
    }
    for (const [base, t] of view.targets) {
      // While routing names the target version and another, each runs at the target's count.
      for (const version of [t.record.version, routedOf(base, t.record)]) {
        if (version === undefined) continue;
        const count = (view.instancesByBase.get(base) ?? []).filter((i) => i.version === version).length;
        if (count !== t.record.instances) {
          problems.push(`${base}:${version} has ${count} instance(s), wants ${t.record.instances}`);
        }
      }
      if (t.record.backoff || t.record.routedBackoff) problems.push(`${base} still backs off`);
    }
    const endpoints = new Set(view.endpoints.map((e) => e.key));
    for (const key of expectedEndpoints) if (!endpoints.has(key)) problems.push(`endpoint ${key} is missing`);
    for (const key of endpoints) if (!expectedEndpoints.has(key)) problems.push(`endpoint ${key} is stale`);
    for (const r of view.routes) {
      const expected = [...(expectedRoutes.get(r.key) ?? [])].sort().join(",");
      if (r.record.nodes.join(",") !== expected) {
        problems.push(`route ${r.key} lists ${r.record.nodes} not ${expected}`);
      }
    }
    for (const key of expectedRoutes.keys()) {
      if (!view.routes.some((r) => r.key === key)) problems.push(`route ${key} is missing`);
    }
    // Every node runs exactly what KV says it runs.
    for (const node of this.#nodes) {
      if (!node.up) continue;
      const keys = new Set(
        view.instances.filter((i) => i.node === node.id).map((i) => `${i.coordinates}/${i.n}`),
      );
      for (const [id, e] of node.executor) {
        if (!keys.has(id)) problems.push(`${node.id} runs ${id} (${e.state}) without a key`);
        else if (e.state !== "active") problems.push(`${node.id} has ${id} ${e.state}`);
      }
      for (const id of keys) if (!node.executor.has(id)) problems.push(`${node.id} does not run ${id}`);
      if (node.ndm.instances.length !== node.executor.size) {
        problems.push(
          `${node.id}: the NDM tracks ${node.ndm.instances.length} instance(s), the executor has ${node.executor.size}`,
        );
      }
    }
    // Spread: per slice version and overall, within one instance between live nodes.
    const totals = new Map([...live].map((n) => [n, 0]));
    for (const [base] of view.targets) {
      const perVersion = new Map<string, Map<NodeId, number>>();
      for (const i of view.instancesByBase.get(base) ?? []) {
        let per = perVersion.get(i.version);
        if (!per) perVersion.set(i.version, per = new Map([...live].map((n) => [n, 0])));
        if (per.has(i.node)) per.set(i.node, per.get(i.node)! + 1);
        if (totals.has(i.node)) totals.set(i.node, totals.get(i.node)! + 1);
      }
      for (const [version, per] of perVersion) {
        const counts = [...per.values()];
        if (Math.max(...counts) - Math.min(...counts) > 1) {
          problems.push(`${base}:${version} is spread unevenly: ${[...per]}`);
        }
      }
    }
    const counts = [...totals.values()];
    if (counts.length && Math.max(...counts) - Math.min(...counts) > 1) {
      problems.push(`nodes carry uneven loads: ${[...totals]}`);
    }
    return problems;
  }
}
