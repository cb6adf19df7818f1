/**
 * ClusterDeploymentManager: the leader's side of deployment, as a deterministic reducer.
 *
 * Each `step` reads the replicated state (a `KvReader`), the member set as the mesh sees it, and the time, and
 * returns KV transactions to submit plus the time it wants to run again. It is level-triggered: it compares
 * desired state (targets) with actual state (instance records) every time, so it does not matter which event
 * caused the step, and a new leader needs nothing but KV to carry on. The only memory it keeps is which of its
 * own transactions are still in flight (so it does not send the same decision twice) and a decode cache.
 *
 * Run `step` whenever the KV state changed, membership changed, one of its writes completed, or `wakeAtMs`
 * passed; calls may be coalesced. It acts only while the `leader` record names this node.
 *
 * Every decision is one `txn` whose compares include the `leader` key's modRevision (a deposed leader's
 * writes fail) and the modRevision of every key it rewrites (it never overwrites a state it did not see).
 *
 * Behaviour (the rules the tests and the simulator check):
 * - Allocation: a slice's instances spread evenly over live nodes; a new instance goes to the node with the
 *   fewest instances of that slice, then the fewest instances overall, then the lowest node id. Several
 *   instances may share a node (instance number `n` in the key).
 * - Lifecycle: the leader writes LOAD; on LOADED it writes ACTIVATE only when every slice the manifest calls
 *   has an ACTIVE instance (of a version in range) on a live node, and the transaction compares those
 *   instances' keys, so at the revision where ACTIVATE is written each of them is still ACTIVE. Removing an
 *   ACTIVE instance: DEACTIVATE (marked `retiring`) → node: DEACTIVATING → LOADED → leader: UNLOAD → node:
 *   UNLOADING → the node deletes the key. A LOAD the node has not taken up yet is deleted instead.
 * - Failure: a FAILED instance gets UNLOAD; its slice's `backoff` in the target record grows (base × 2^k, up
 *   to a maximum) and no replacement is placed before `retryAt`, preferring a node other than the one that
 *   failed. The backoff is cleared after the slice has been healthy for `backoffResetMs`. A FAILED record
 *   marked `lost` (its node restarted and no longer runs it) is not the slice's failure: it is unloaded and
 *   replaced at once, without backoff.
 * - Stuck: an instance whose record is past its `deadline` by `stuckSlackMs` on a live node is marked FAILED
 *   (UNLOAD / UNLOADING past it: the key is deleted). That covers a node that restarted mid-way and a command
 *   the node never took up.
 * - Node departure: a member down for `departureGraceMs` (or not a member at all) loses its instance keys,
 *   endpoints and route memberships in one transaction. Its instances stop counting as soon as it is down,
 *   so replacements start at once; if it comes back within the grace period, the surplus is removed again,
 *   preferring instances that are not ACTIVE yet.
 * - Node join and rebalancing: when everything is settled and no node is down, the leader moves one instance
 *   at a time from the most to the least loaded node, only when a slice's spread differs by more than one
 *   between two nodes, or the total number of instances does. It moves the instance placed last on the
 *   fuller node (so a long-running instance is not replaced while a newer one can move). A move creates the
 *   new instance first (`replaces` in its record) and retires the old one only when the new one is ACTIVE.
 * - Version change: new-version instances are placed first; old ones are retired as new ones become ACTIVE
 *   (ACTIVE old instances kept = desired − ACTIVE new ones).
 * - Version routing: while `routing/{g}:{a}` names the target's version and another one, the slice keeps both:
 *   the target version at its instance count and the other ("routed") version at the same count (the same
 *   capacity on either side, so the weights can move all traffic to either version without waiting for
 *   instances). Each version is allocated, spread, activated, replaced on failure and rebalanced on its own;
 *   the routed version's failures back off in `routedBackoff` of the target record, so a failing canary never
 *   delays the target version. A weight of 0 keeps the version running (the original's first stage of a rolling
 *   update: the new version comes up with no traffic). Deploying the other version while the record names both
 *   swaps the roles and stops nothing. When the record goes, the version the target does not name is retired
 *   like an old version above (DEACTIVATE → UNLOAD, never below the target's ACTIVE count). A record that does
 *   not name the target's version is ignored (only the target version runs; `waiting` says so). Decisions
 *   that keep or retire versions compare the routing key, so they never apply over a newer routing change.
 * - Cordon and drain (`nodes/{node}/cordon`): a cordoned node gets no new instances (placement, replacement,
 *   rebalancing); its instances are the first removed when a slice shrinks. A draining node also loses its
 *   instances, one move at a time cluster-wide, only while everything is settled, by the same move as
 *   rebalancing (the replacement ACTIVE before the old one is deactivated), so a slice's ACTIVE count never
 *   drops below its target, and never below its disruption budget.
 * - Placement rules (`placement` in the target): only nodes carrying every `require` label take the slice's
 *   instances, spread first over the values of the `spread` label; with no such node the slice waits, and
 *   `waiting` says which labels no schedulable node has.
 * - Undeployed dependency: instances of slices that call it keep running (stopping healthy instances would
 *   turn one missing slice into an outage of everything above it; their calls fail with "no live instance"
 *   until it returns); new instances of those slices load and wait in LOADED until it is deployed again.
 */

import { baseOf, type NodeId, satisfies } from "../core/mod.ts";
import type { KvCommand, KvCompare, KvOp, KvResult } from "../kv/mod.ts";
import {
  type CrashReport,
  encodeValue,
  type InstanceRecord,
  KEY_PREFIXES,
  kvKeys,
  labelsText,
  LEADER_KEY,
  type LifecycleState,
  MAX_CRASH_REPORTS,
  nodeMatches,
  type PlacementRule,
  type RoutedBackoff,
  type RouteRecord,
  type TargetBackoff,
  type TargetRecord,
} from "../model/mod.ts";
import { callsOf, type DeployManifest } from "./artifacts.ts";
import {
  type DeploymentView,
  type InstanceView,
  type KvReader,
  type MemberStatus,
  type NodeCondition,
  nodeCondition,
  routedVersion,
  type RoutingView,
  type TargetView,
  versionCount,
  ViewReader,
} from "./view.ts";

export interface ClusterManagerOptions {
  /** A member down this long departs: its keys are removed and it stops being a placement candidate. */
  departureGraceMs: number;
  /** A node must take up a command (LOAD, ACTIVATE, DEACTIVATE, UNLOAD) within this long. */
  commandDeadlineMs: number;
  /** Added to a record's deadline before the leader calls it stuck (covers clock skew between nodes). */
  stuckSlackMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** A slice healthy this long after its last retry forgets its failures. */
  backoffResetMs: number;
  /** A write whose result never came back stops blocking its slice after this long. */
  pendingTimeoutMs: number;
  /** Move instances to restore the spread (node join). */
  rebalance: boolean;
  /**
   * How often the leader looks for endpoints and route places no serving instance backs (a safety net: nodes
   * withdraw their own, and departure cleanup removes a dead node's). Also done when a term starts and when
   * membership changes.
   */
  sweepIntervalMs: number;
}

export const DEFAULT_CLUSTER_MANAGER_OPTIONS: Readonly<ClusterManagerOptions> = Object.freeze({
  departureGraceMs: 5_000,
  commandDeadlineMs: 15_000,
  stuckSlackMs: 10_000,
  backoffBaseMs: 1_000,
  backoffMaxMs: 60_000,
  backoffResetMs: 30_000,
  pendingTimeoutMs: 15_000,
  rebalance: true,
  sweepIntervalMs: 10_000,
});

/** The outcome of a command this manager emitted: `ok` when it applied and its compares held. */
export interface WriteResult {
  id: string;
  ok: boolean;
}

/** A command to submit, with an id to report its result under and a sentence for logs. */
export interface DeploymentCommand {
  id: string;
  command: KvCommand;
  reason: string;
}

export interface ClusterManagerInput {
  kv: KvReader;
  /** Every cluster member, as this node's mesh sees it (this node included). */
  members: readonly MemberStatus[];
  nowMs: number;
  /** Results of earlier commands (any order; unknown ids are ignored). */
  results?: readonly WriteResult[];
  /**
   * Whether this node is connected to a majority (default true). Without quorum its view may be stale and its
   * writes cannot be decided, so it decides nothing.
   */
  hasQuorum?: boolean;
}

export interface ClusterManagerOutput {
  /** Whether this node is the leader at the state read. */
  leader: boolean;
  commands: DeploymentCommand[];
  /** Run `step` again at this time even if nothing else happens. */
  wakeAtMs?: number;
  /** Slices that cannot make progress now, and why (for logs and status). */
  waiting: string[];
}

/** `ok` for a KV result: applied, and a transaction's compares held. */
export function isWriteOk(result: KvResult | Error): boolean {
  return !(result instanceof Error) && result.ok && result.succeeded !== false;
}

export class ClusterDeploymentManager {
  readonly self: NodeId;
  readonly options: Readonly<ClusterManagerOptions>;
  readonly #reader = new ViewReader();
  /** Scope (`slice:g:a`, `node:n1`, `sweep`) -> the command in flight for it. */
  readonly #pending = new Map<string, { id: string; sentAtMs: number }>();
  #leaderRevision = -1;
  #seq = 0;
  #sweptAtMs: number | undefined;
  #membership = "";

  constructor(self: NodeId, options: Partial<ClusterManagerOptions> = {}) {
    this.self = self;
    this.options = { ...DEFAULT_CLUSTER_MANAGER_OPTIONS, ...options };
  }

  /** Commands sent and not yet reported (for tests and status). */
  get inFlight(): number {
    return this.#pending.size;
  }

  step(input: ClusterManagerInput): ClusterManagerOutput {
    for (const result of input.results ?? []) {
      for (const [scope, pending] of this.#pending) {
        if (pending.id === result.id) this.#pending.delete(scope);
      }
    }
    const view = this.#reader.read(input.kv);
    if (view.leader?.record.nodeId !== this.self) {
      this.#pending.clear();
      this.#leaderRevision = -1;
      return { leader: false, commands: [], waiting: [] };
    }
    if (view.leader.modRevision !== this.#leaderRevision) {
      // A new term (even of this node): nothing sent before can still apply.
      this.#pending.clear();
      this.#leaderRevision = view.leader.modRevision;
      this.#sweptAtMs = undefined;
    }
    if (input.hasQuorum === false) {
      return { leader: true, commands: [], waiting: ["no quorum: deciding nothing"] };
    }
    let wakeAtMs: number | undefined;
    for (const [scope, pending] of this.#pending) {
      const expiresAt = pending.sentAtMs + this.options.pendingTimeoutMs;
      if (input.nowMs >= expiresAt) this.#pending.delete(scope);
      else wakeAtMs = Math.min(wakeAtMs ?? Infinity, expiresAt);
    }
    const membership = input.members.map((m) => `${m.id}${m.connected ? "+" : "-"}`).join(",");
    const sweep = this.#sweptAtMs === undefined || membership !== this.#membership ||
      input.nowMs >= this.#sweptAtMs + this.options.sweepIntervalMs;
    if (sweep) {
      this.#sweptAtMs = input.nowMs;
      this.#membership = membership;
    }
    wakeAtMs = Math.min(wakeAtMs ?? Infinity, this.#sweptAtMs! + this.options.sweepIntervalMs);
    const result = reconcile(
      view,
      input.members,
      input.nowMs,
      this.self,
      this.options,
      new Set(this.#pending.keys()),
      sweep,
    );
    const commands = result.decisions.map((d) => {
      const id = `${this.self}/${this.#leaderRevision}/${++this.#seq}`;
      this.#pending.set(d.scope, { id, sentAtMs: input.nowMs });
      const command: KvCommand = { type: "txn", compare: d.compare, success: d.ops, failure: [] };
      return { id, command, reason: d.reason };
    });
    if (result.wakeAtMs !== undefined) wakeAtMs = Math.min(wakeAtMs ?? Infinity, result.wakeAtMs);
    const waiting = [...result.waiting, ...view.problems.map((p) => `unreadable record skipped: ${p}`)];
    return { leader: true, commands, ...(wakeAtMs !== undefined ? { wakeAtMs } : {}), waiting };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The reconciliation itself: pure.

export interface Decision {
  /** What the decision is about; one decision per scope is in flight at a time. */
  scope: string;
  compare: KvCompare[];
  ops: KvOp[];
  reason: string;
}

export interface Reconciliation {
  decisions: Decision[];
  wakeAtMs?: number;
  waiting: string[];
}

const UP_STATES: ReadonlySet<LifecycleState> = new Set([
  "LOAD",
  "LOADING",
  "LOADED",
  "ACTIVATE",
  "ACTIVATING",
  "ACTIVE",
]);

/** Counts toward the slice: on its way up or serving (LOADED after a deactivation is on its way out). */
function isUp(record: InstanceRecord): boolean {
  return UP_STATES.has(record.state) && !(record.state === "LOADED" && record.retiring);
}

/** Removal preference: cancel work that has not started, then idle instances, then serving ones. */
const REMOVAL_RANK: Partial<Record<LifecycleState, number>> = {
  LOAD: 0,
  LOADED: 1,
  LOADING: 2,
  ACTIVATE: 3,
  ACTIVATING: 4,
  ACTIVE: 5,
};

class DecisionBuilder {
  readonly scope: string;
  readonly #compare = new Map<string, number>();
  readonly #ops: KvOp[] = [];
  readonly #reasons: string[] = [];

  constructor(scope: string, leaderRevision: number) {
    this.scope = scope;
    this.#compare.set(LEADER_KEY, leaderRevision);
  }

  get empty(): boolean {
    return this.#ops.length === 0;
  }

  expect(key: string, modRevision: number): void {
    this.#compare.set(key, modRevision);
  }

  putInstance(instance: { key: string; modRevision: number }, record: InstanceRecord, reason: string): void {
    this.expect(instance.key, instance.modRevision);
    this.#ops.push({ op: "put", key: instance.key, value: encodeValue("instance", record) });
    this.#reasons.push(reason);
  }

  deleteKey(key: string, modRevision: number | undefined, reason?: string): void {
    if (modRevision !== undefined) this.expect(key, modRevision);
    this.#ops.push({ op: "delete", key });
    if (reason) this.#reasons.push(reason);
  }

  deletePrefix(prefix: string): void {
    this.#ops.push({ op: "deletePrefix", prefix });
  }

  putTarget(target: TargetView, record: TargetRecord, reason: string): void {
    this.expect(target.key, target.modRevision);
    this.#ops.push({ op: "put", key: target.key, value: encodeValue("target", record) });
    this.#reasons.push(reason);
  }

  putRoute(key: string, modRevision: number, record: RouteRecord): void {
    this.expect(key, modRevision);
    this.#ops.push({ op: "put", key, value: encodeValue("route", record) });
  }

  note(reason: string): void {
    this.#reasons.push(reason);
  }

  build(): Decision {
    return {
      scope: this.scope,
      compare: [...this.#compare].map(([key, modRevision]) => ({ key, modRevision })),
      ops: this.#ops,
      reason: this.#reasons.join("; "),
    };
  }
}

/** What the per-slice pass learned, for the rebalancing pass (one per version the slice keeps). */
interface SliceSummary {
  base: string;
  target: TargetView;
  /** The whole slice settled (every version it keeps). */
  settled: boolean;
  /** Live instances of the version, by node. */
  byNode: Map<NodeId, InstanceView[]>;
  moving: boolean;
}

/** FAILED instances of one version seen in this step. */
interface FailureTally {
  count: number;
  lastNode?: NodeId;
  lastReason?: string;
}

/** What keeping one version decided. */
interface VersionOutcome {
  version: string;
  manifest: DeployManifest | undefined;
  /** Its up instances, minus sources of finished moves. */
  counted: InstanceView[];
  movers: number;
  /** ACTIVE instances that stay. */
  active: number;
  /** Instances the version should run. */
  desired: number;
  /** The version's backoff after this step. */
  backoff: TargetBackoff | undefined;
  /** Set when the backoff changed (the target record is rewritten). */
  backoffNote?: string;
}

/** What `#keepVersion` works on: one kept version of a target. */
interface KeepVersionInput {
  target: TargetView;
  version: string;
  /** Instances the version should run. */
  desired: number;
  /** The up instances of every kept version (the placement tie-break). */
  keptUp: InstanceView[];
  /** This step's new failures of the version. */
  tally: FailureTally | undefined;
  /** The version's backoff before this step. */
  previousBackoff: TargetBackoff | undefined;
}

/** What `#scale` brings to `desired` instances. */
interface ScaleInput {
  /** How the version is named in notes: the slice, or its coordinates when it is the routed one. */
  label: string;
  coordinates: string;
  manifest: DeployManifest | undefined;
  desired: number;
  counted: InstanceView[];
  movers: ReadonlySet<InstanceView>;
  sources: ReadonlySet<InstanceView>;
  keptUp: InstanceView[];
  backoff: TargetBackoff | undefined;
  placement?: PlacementRule;
}

/** Instances that crashed during one request, seen FAILED in this step. */
interface CrashTally {
  count: number;
  lastReason?: string;
}

/** Counts a FAILED instance against the requests that were in flight when it crashed. */
function tallyCrash(crashes: Map<string, CrashTally>, i: InstanceView): void {
  for (const requestId of i.record.crashedBy ?? []) {
    const tally = crashes.get(requestId) ?? { count: 0 };
    tally.count++;
    if (i.record.reason !== undefined) tally.lastReason = `${i.node}: ${i.record.reason}`.slice(0, 1024);
    crashes.set(requestId, tally);
  }
}

/** The target's crash reports with this step's added: a request seen again moves last; the oldest go first. */
export function mergeCrashReports(
  previous: readonly CrashReport[] | undefined,
  crashes: ReadonlyMap<string, CrashTally>,
  nowMs: number,
): CrashReport[] {
  const reports = new Map((previous ?? []).map((r) => [r.requestId, r]));
  for (const [requestId, tally] of crashes) {
    const before = reports.get(requestId);
    reports.delete(requestId);
    const report: CrashReport = { requestId, count: (before?.count ?? 0) + tally.count, lastAt: nowMs };
    const lastReason = tally.lastReason ?? before?.lastReason;
    if (lastReason !== undefined) report.lastReason = lastReason;
    reports.set(requestId, report);
  }
  return [...reports.values()].slice(-MAX_CRASH_REPORTS);
}

/** Counts a FAILED instance against its version. */
function tallyFailure(failures: Map<string, FailureTally>, i: InstanceView): void {
  const tally = failures.get(i.version) ?? { count: 0 };
  tally.count++;
  tally.lastNode = i.node;
  if (i.record.reason !== undefined) tally.lastReason = `${i.node}: ${i.record.reason}`.slice(0, 1024);
  failures.set(i.version, tally);
}

function withoutVersion(backoff: RoutedBackoff): TargetBackoff {
  const { version: _, ...rest } = backoff;
  return rest;
}

/** Decides everything that should be written now. Pure: same inputs, same decisions. */
export function reconcile(
  view: DeploymentView,
  members: readonly MemberStatus[],
  nowMs: number,
  self: NodeId,
  options: Readonly<ClusterManagerOptions>,
  busy: ReadonlySet<string> = new Set(),
  sweep = true,
): Reconciliation {
  return new Reconciler(view, members, nowMs, self, options, busy).run(sweep);
}

class Reconciler {
  readonly #view: DeploymentView;
  readonly #now: number;
  readonly #o: Readonly<ClusterManagerOptions>;
  readonly #busy: ReadonlySet<string>;
  readonly #leaderRevision: number;
  readonly #conditions = new Map<NodeId, NodeCondition>();
  readonly #members: Map<NodeId, MemberStatus>;
  /** Live nodes, sorted. */
  readonly #live: NodeId[];
  /** Live nodes that take new instances (not cordoned), sorted. */
  readonly #schedulable: NodeId[];
  /** Instances counting toward a slice, per live node (all slices): the load measure for placement. */
  readonly #total = new Map<NodeId, number>();
  readonly #decisions: Decision[] = [];
  readonly #waiting: string[] = [];
  readonly #summaries: SliceSummary[] = [];
  /** Instance numbers handed out in this step, by `node|coordinates`. */
  readonly #taken = new Map<string, Set<number>>();
  /** Nodes given a new instance of a slice in this step, by `group:artifact` (for affinity rules). */
  readonly #placedNow = new Map<string, Set<NodeId>>();
  #wake: number | undefined;
  #anySuspect = false;

  constructor(
    view: DeploymentView,
    members: readonly MemberStatus[],
    nowMs: number,
    self: NodeId,
    options: Readonly<ClusterManagerOptions>,
    busy: ReadonlySet<string>,
  ) {
    this.#view = view;
    this.#now = nowMs;
    this.#o = options;
    this.#busy = busy;
    this.#leaderRevision = view.leader?.modRevision ?? 0;
    this.#members = new Map(members.map((m) => [m.id, m]));
    // The leader is live by definition, whatever the member list says.
    this.#members.set(self, {
      id: self,
      connected: true,
      sinceMs: this.#members.get(self)?.sinceMs ?? nowMs,
    });
    const nodes = new Set<NodeId>(this.#members.keys());
    for (const i of view.instances) nodes.add(i.node);
    for (const e of view.endpoints) nodes.add(e.node);
    for (const r of view.routes) for (const n of r.record.nodes) nodes.add(n);
    for (const node of nodes) {
      const condition = nodeCondition(node, this.#members, nowMs, options.departureGraceMs);
      this.#conditions.set(node, condition);
      if (condition === "suspect") {
        this.#anySuspect = true;
        this.#wakeAt(this.#members.get(node)!.sinceMs + options.departureGraceMs);
      }
    }
    this.#live = [...nodes].filter((n) => this.#conditions.get(n) === "live").sort();
    this.#schedulable = this.#live.filter((n) => !view.nodes.get(n)?.cordon);
    for (const node of this.#live) this.#total.set(node, 0);
    for (const i of view.instances) {
      if (this.#isLive(i.node) && isUp(i.record)) this.#total.set(i.node, this.#total.get(i.node)! + 1);
    }
  }

  run(sweep: boolean): Reconciliation {
    for (const [node, condition] of this.#conditions) if (condition === "departed") this.#cleanDeparted(node);
    if (sweep) this.#sweepStale();
    const bases = new Set([...this.#view.targets.keys(), ...this.#view.instancesByBase.keys()]);
    for (const base of [...bases].sort()) this.#slice(base);
    const quiet = this.#decisions.length === 0 && this.#busy.size === 0 && !this.#anySuspect &&
      !this.#summaries.some((s) => s.moving);
    if (quiet) this.#drain();
    if (this.#o.rebalance && quiet && this.#decisions.length === 0) this.#rebalance();
    return {
      decisions: this.#decisions,
      ...(this.#wake !== undefined ? { wakeAtMs: this.#wake } : {}),
      waiting: this.#waiting,
    };
  }

  #isLive(node: NodeId): boolean {
    return this.#conditions.get(node) === "live";
  }

  #wakeAt(ms: number): void {
    this.#wake = Math.min(this.#wake ?? Infinity, ms);
  }

  #builder(scope: string): DecisionBuilder {
    return new DecisionBuilder(scope, this.#leaderRevision);
  }

  #emit(b: DecisionBuilder): void {
    if (!b.empty) this.#decisions.push(b.build());
  }

  #manifest(coordinates: string): DeployManifest | undefined {
    return this.#view.catalog.manifest(coordinates);
  }

  // -- departure -------------------------------------------------------------------------------------------

  /** Removes everything a departed node held, in one transaction. */
  #cleanDeparted(node: NodeId): void {
    const scope = `node:${node}`;
    if (this.#busy.has(scope)) return;
    const b = this.#builder(scope);
    const instances = this.#view.instances.filter((i) => i.node === node);
    if (instances.length > 0) b.deletePrefix(`${KEY_PREFIXES.instances}${node}/`);
    const endpoints = this.#view.endpoints.filter((e) => e.node === node);
    for (const e of endpoints) b.deleteKey(e.key, undefined);
    let routes = 0;
    for (const r of this.#view.routes) {
      if (!r.record.nodes.includes(node)) continue;
      routes++;
      this.#stripRoute(b, r.key, r.modRevision, r.record, [node]);
    }
    if (b.empty) return;
    const member = this.#members.get(node);
    const since = member ? `down since ${member.sinceMs}` : "not a member";
    b.note(
      `node ${node} departed (${since}): removing its ${instances.length} instance(s), ${endpoints.length} ` +
        `endpoint(s) and its place in ${routes} route(s)`,
    );
    this.#emit(b);
  }

  #stripRoute(
    b: DecisionBuilder,
    key: string,
    modRevision: number,
    record: RouteRecord,
    nodes: NodeId[],
  ): void {
    const remaining = record.nodes.filter((n) => !nodes.includes(n));
    if (remaining.length === 0) b.deleteKey(key, modRevision);
    else b.putRoute(key, modRevision, { ...record, nodes: remaining });
  }

  // -- stale endpoints and routes ----------------------------------------------------------------------------

  /**
   * Endpoints and route memberships that no serving instance backs (a node died between steps, a previous
   * leader was cut off mid-way). Nodes publish and withdraw them in the same transaction as the state change,
   * so in a consistent view they exist only next to an ACTIVE (or DEACTIVATE) instance.
   */
  #sweepStale(): void {
    if (this.#busy.has("sweep")) return;
    const serving = new Map<string, InstanceView[]>();
    for (const i of this.#view.instances) {
      if (i.record.state !== "ACTIVE" && i.record.state !== "DEACTIVATE") continue;
      const key = `${i.node}|${i.base}`;
      const list = serving.get(key);
      if (list) list.push(i);
      else serving.set(key, [i]);
    }
    const b = this.#builder("sweep");
    const stale: string[] = [];
    for (const e of this.#view.endpoints) {
      if (this.#conditions.get(e.node) === "departed") continue;
      const backed = serving.get(`${e.node}|${e.base}`)?.some((i) =>
        i.coordinates === e.coordinates && i.n === e.n
      );
      if (!backed) {
        b.deleteKey(e.key, e.modRevision);
        stale.push(e.key);
      }
    }
    for (const r of this.#view.routes) {
      const unbacked = r.record.nodes.filter((node) => {
        if (this.#conditions.get(node) === "departed") return false;
        return !(serving.get(`${node}|${r.record.slice}`) ?? []).some((i) =>
          this.#serves(i.coordinates, r.httpMethod, r.path)
        );
      });
      if (unbacked.length > 0) {
        this.#stripRoute(b, r.key, r.modRevision, r.record, unbacked);
        stale.push(`${r.key} on ${unbacked.join(", ")}`);
      }
    }
    if (stale.length === 0) return;
    b.note(`removing what no serving instance backs: ${stale.join(", ")}`);
    this.#emit(b);
  }

  /** Whether the manifest of `coordinates` declares the route (unknown manifest: assume it does). */
  #serves(coordinates: string, httpMethod: string, path: string): boolean {
    const manifest = this.#manifest(coordinates);
    if (!manifest) return true;
    return (manifest.routes?.entries ?? []).some((e) => e.httpMethod === httpMethod && e.fullPath === path);
  }

  // -- one slice ---------------------------------------------------------------------------------------------

  #command(previous: InstanceRecord | undefined, state: LifecycleState, extra: Partial<InstanceRecord> = {}) {
    const record: InstanceRecord = {
      state,
      updatedAt: this.#now,
      deadline: this.#now + this.#o.commandDeadlineMs,
      ...extra,
    };
    if (state === "UNLOAD" && previous?.reason !== undefined) record.reason = previous.reason;
    if (state === "UNLOAD" && previous?.retiring) record.retiring = true;
    if (state === "ACTIVATE" && previous?.replaces) record.replaces = previous.replaces;
    this.#wakeAt(record.deadline! + this.#o.stuckSlackMs + 1);
    return record;
  }

  #isStuck(i: InstanceView): boolean {
    const deadline = i.record.deadline;
    if (deadline === undefined) return false;
    const limit = deadline + this.#o.stuckSlackMs;
    if (this.#now > limit) return true;
    this.#wakeAt(limit + 1);
    return false;
  }

  /** Takes an instance out of service the way its state allows; false when it must finish what it does first. */
  #remove(b: DecisionBuilder, i: InstanceView, why: string): boolean {
    switch (i.record.state) {
      case "LOAD":
        b.deleteKey(i.key, i.modRevision, `cancel LOAD of ${i.key} (${why})`);
        return true;
      case "LOADED":
        b.putInstance(i, this.#command(i.record, "UNLOAD"), `UNLOAD ${i.key} (${why})`);
        return true;
      case "ACTIVE":
        b.putInstance(
          i,
          this.#command(i.record, "DEACTIVATE", { retiring: true }),
          `DEACTIVATE ${i.key} (${why})`,
        );
        return true;
      default:
        return false; // LOADING, ACTIVATE, ACTIVATING: removed once they settle
    }
  }

  #slice(base: string): void {
    const scope = `slice:${base}`;
    const target = this.#view.targets.get(base);
    const all = this.#view.instancesByBase.get(base) ?? [];
    const live = all.filter((i) => this.#isLive(i.node));
    if (this.#busy.has(scope)) {
      if (target) this.#summaries.push({ base, target, settled: false, byNode: new Map(), moving: true });
      return;
    }
    const b = this.#builder(scope);
    if (!target) {
      const { handled } = this.#clearUnhealthy(b, live, []);
      this.#removeAll(b, base, live.filter((i) => !handled.has(i) && isUp(i.record)));
      this.#emit(b);
      return;
    }
    const routing = this.#view.routing.get(base);
    const routed = this.#routedVersion(target, routing);
    /** The versions that run: the target's, and the other version `routing/` names (if any). */
    const kept = [target.record.version, ...(routed !== undefined ? [routed] : [])];
    const { failures, crashes, handled } = this.#clearUnhealthy(b, live, kept);
    const up = live.filter((i) => !handled.has(i) && isUp(i.record));
    const keptUp = up.filter((i) => kept.includes(i.version));
    const outcomes = kept.map((version) =>
      this.#keepVersion(b, {
        target,
        version,
        // Both at the target's count, unless a rolling update gives each version its own (routing/).
        desired: routed === undefined ? target.record.instances : versionCount(
          target.record.instances,
          version,
          routing?.record,
        ),
        keptUp,
        tally: failures.get(version),
        previousBackoff: this.#previousBackoff(target, version),
      })
    );
    this.#writeBackoffs(b, target, routed, outcomes, crashes);
    const old = up.filter((i) => !kept.includes(i.version));
    this.#retireOldVersions(b, {
      base,
      kept,
      old,
      stillNeeded: outcomes[0].desired - outcomes[0].active,
    });
    // Whether a version is kept or retired depends on `routing/`: a decision made without seeing its latest
    // change must not apply (an operator setting weights must not find the version they name retired).
    if (!b.empty && (routing !== undefined || old.length > 0)) {
      b.expect(routing?.key ?? kvKeys.routing(base), routing?.modRevision ?? 0);
    }
    const settled = b.empty && old.length === 0 &&
      outcomes.every((o) => o.manifest && !o.backoff && o.movers === 0 && o.counted.length === o.desired) &&
      live.every((i) => kept.includes(i.version) && i.record.state === "ACTIVE") &&
      all.every((i) => this.#isLive(i.node));
    this.#summarize(target, outcomes, settled);
    this.#emit(b);
  }

  /**
   * FAILED instances are unloaded (those of a kept version counted as failures, by version), instances stuck
   * past their deadline are failed (or deleted when stuck unloading), retired LOADED ones are unloaded. Returns
   * the tallies and the instances handled here (the rest of the step leaves them alone).
   */
  #clearUnhealthy(
    b: DecisionBuilder,
    live: readonly InstanceView[],
    kept: readonly string[],
  ): { failures: Map<string, FailureTally>; crashes: Map<string, CrashTally>; handled: Set<InstanceView> } {
    const failures = new Map<string, FailureTally>();
    const crashes = new Map<string, CrashTally>();
    const handled = new Set<InstanceView>();
    for (const i of live) {
      if (i.record.state === "FAILED") {
        b.putInstance(i, this.#command(i.record, "UNLOAD"), `UNLOAD failed ${i.key}`);
        handled.add(i);
        if (i.record.crashedBy !== undefined && i.record.crashedBy.length > 0) {
          // It crashed during calls: charged to those requests (reported), not to the slice. One request
          // that kills every instance it reaches must not lock the whole slice out with a growing backoff;
          // the invoker keeps such a request from reaching more than two instances.
          tallyCrash(crashes, i);
        } else if (kept.includes(i.version) && !i.record.retiring && !i.record.lost) {
          // A lost instance (its node restarted) says nothing about the slice: replaced without backoff.
          tallyFailure(failures, i);
        }
      } else if (this.#isStuck(i)) {
        handled.add(i);
        this.#endStuck(b, i);
      } else if (i.record.state === "LOADED" && i.record.retiring) {
        b.putInstance(i, this.#command(i.record, "UNLOAD"), `UNLOAD retired ${i.key}`);
        handled.add(i);
      }
    }
    return { failures, crashes, handled };
  }

  /** An instance past its deadline: deleted when it was being unloaded anyway, else FAILED. */
  #endStuck(b: DecisionBuilder, i: InstanceView): void {
    const state = i.record.state;
    if (state === "UNLOAD" || state === "UNLOADING") {
      b.deleteKey(i.key, i.modRevision, `delete ${i.key}: stuck in ${state} past its deadline`);
      return;
    }
    const reason =
      `stuck in ${state} past its deadline (${i.record.deadline}); node ${i.node} did not finish`;
    const failed: InstanceRecord = { state: "FAILED", updatedAt: this.#now, reason };
    if (i.record.retiring) failed.retiring = true;
    b.putInstance(i, failed, `FAILED ${i.key}: ${reason}`);
  }

  /** A slice without a target: every instance goes, each as soon as its state allows. */
  #removeAll(b: DecisionBuilder, base: string, up: readonly InstanceView[]): void {
    for (const i of up) {
      if (!this.#remove(b, i, `${base} is not deployed`)) {
        this.#waiting.push(`${i.key}: removed once ${i.record.state} ends`);
      }
    }
  }

  /** The backoff a kept version carries into this step (the target record holds both versions'). */
  #previousBackoff(target: TargetView, version: string): TargetBackoff | undefined {
    if (version === target.record.version) return target.record.backoff;
    const routedBackoff = target.record.routedBackoff;
    return routedBackoff?.version === version ? withoutVersion(routedBackoff) : undefined;
  }

  /** The target record holds both versions' backoffs: one write for whatever changed. */
  #writeBackoffs(
    b: DecisionBuilder,
    target: TargetView,
    routed: string | undefined,
    outcomes: readonly VersionOutcome[],
    crashes: ReadonlyMap<string, CrashTally>,
  ): void {
    const notes = outcomes.flatMap((o) => o.backoffNote !== undefined ? [o.backoffNote] : []);
    const stale = target.record.routedBackoff !== undefined && target.record.routedBackoff.version !== routed;
    if (crashes.size > 0) {
      const counts = [...crashes].map(([id, t]) => `${id} (${t.count})`).join(", ");
      notes.push(`${target.base}: instance(s) crashed during request(s) ${counts}; replaced without backoff`);
    }
    if (notes.length === 0 && !stale) return;
    const next: TargetRecord = { ...target.record };
    if (crashes.size > 0) next.crashes = mergeCrashReports(target.record.crashes, crashes, this.#now);
    delete next.backoff;
    delete next.routedBackoff;
    const [main, other] = outcomes;
    if (main.backoff) next.backoff = main.backoff;
    if (other?.backoff) next.routedBackoff = { version: other.version, ...other.backoff };
    if (stale) notes.push(`${target.base}: ${target.record.routedBackoff!.version} is no longer routed`);
    b.putTarget(target, next, notes.join("; "));
  }

  /**
   * Instances of versions no longer kept: ACTIVE ones stay, least loaded nodes first, while the target version
   * still lacks `stillNeeded` ACTIVE instances; the others go.
   */
  #retireOldVersions(
    b: DecisionBuilder,
    { base, kept, old, stillNeeded }: {
      base: string;
      kept: string[];
      old: InstanceView[];
      stillNeeded: number;
    },
  ): void {
    let keepOld = Math.max(0, stillNeeded);
    const oldOrdered = [...old].sort((x, y) =>
      (this.#total.get(x.node)! - this.#total.get(y.node)!) || cmp(x.key, y.key)
    );
    for (const i of oldOrdered) {
      if (i.record.state === "ACTIVE" && keepOld > 0) {
        keepOld--;
        continue;
      }
      if (!this.#remove(b, i, `${base} moves to ${kept.join(" and ")}`)) {
        this.#waiting.push(`${i.key}: removed once ${i.record.state} ends`);
      }
    }
  }

  /** One summary per kept version, for rebalancing and status. */
  #summarize(target: TargetView, outcomes: readonly VersionOutcome[], settled: boolean): void {
    const moving = outcomes.some((o) => o.movers > 0);
    for (const o of outcomes) {
      const byNode = new Map<NodeId, InstanceView[]>();
      for (const i of o.counted) {
        const list = byNode.get(i.node);
        if (list) list.push(i);
        else byNode.set(i.node, [i]);
      }
      this.#summaries.push({ base: target.base, target, settled, byNode, moving });
    }
  }

  /**
   * The other version `routing/` keeps running, when it names the target version and another one; undefined
   * (with a note) when it names two versions neither of which is the target's: it then does not describe this
   * deployment, and only the target version runs.
   */
  #routedVersion(target: TargetView, routing: RoutingView | undefined): string | undefined {
    const version = target.record.version;
    const routed = routedVersion(version, routing?.record);
    if (!routing || routed !== undefined) return routed;
    const { oldVersion, newVersion } = routing.record;
    this.#waiting.push(
      `${target.base}: routing names ${oldVersion} and ${newVersion}, not the target version ${version}; ` +
        `only ${version} runs`,
    );
    return undefined;
  }

  /**
   * One version the slice keeps at the target's instance count: moves in progress, failure backoff, scaling
   * and activation. `keptUp` holds the up instances of every kept version (the placement tie-break).
   */
  #keepVersion(b: DecisionBuilder, input: KeepVersionInput): VersionOutcome {
    const { target, version, keptUp, tally } = input;
    const base = target.base;
    const desired = input.desired;
    const coordinates = `${base}:${version}`;
    const label = version !== target.record.version ? `${coordinates} (routed)` : base;
    const manifest = this.#manifest(coordinates);
    const current = keptUp.filter((i) => i.version === version);
    const { movers, sources, retiredSources } = this.#moves(b, current);
    const counted = current.filter((i) => !retiredSources.has(i));
    let { backoff, backoffNote } = this.#recordFailures(label, tally, input.previousBackoff);
    const removed = this.#scale(b, {
      placement: target.record.placement,
      label,
      coordinates,
      manifest,
      desired,
      counted,
      movers,
      sources,
      keptUp,
      backoff,
    });
    const loaded = counted.filter((i) => i.record.state === "LOADED" && !removed.has(i));
    if (loaded.length > 0 && manifest) this.#activate(b, label, manifest, loaded);
    const active = counted.filter((i) => i.record.state === "ACTIVE" && !removed.has(i)).length;
    if (!tally && backoff) {
      const forgotten = this.#forgetFailures(backoff, active >= desired);
      if (forgotten) {
        backoff = undefined;
        backoffNote = `${label}: healthy again, failures forgotten`;
      }
    }
    return { version, manifest, counted, movers: movers.size, active, desired, backoff, backoffNote };
  }

  /**
   * Moves in progress among a version's instances: a mover and its source count once; a mover that is ACTIVE
   * retires its source (or, when the source cannot be removed yet, both stay a move in progress).
   */
  #moves(
    b: DecisionBuilder,
    current: readonly InstanceView[],
  ): { movers: Set<InstanceView>; sources: Set<InstanceView>; retiredSources: Set<InstanceView> } {
    const movers = new Set<InstanceView>();
    const sources = new Set<InstanceView>();
    const retiredSources = new Set<InstanceView>();
    if (!current.some((i) => i.record.replaces)) return { movers, sources, retiredSources };
    const byNodeN = new Map(current.map((i) => [`${i.node}/${i.n}`, i]));
    for (const m of current) {
      const r = m.record.replaces;
      if (!r) continue;
      const source = byNodeN.get(`${r.node}/${r.n}`);
      // A source created after the mover is a later instance that happens to reuse the number: not the one.
      if (!source || source.createRevision >= m.createRevision) continue;
      if (sources.has(source) || movers.has(source) || retiredSources.has(source)) continue;
      if (m.record.state === "ACTIVE" && this.#remove(b, source, `moved to ${m.key}`)) {
        retiredSources.add(source);
      } else {
        movers.add(m);
        sources.add(source);
      }
    }
    return { movers, sources, retiredSources };
  }

  /** New failures of this step raise the backoff (exponential, capped) before replacements are decided. */
  #recordFailures(
    label: string,
    tally: FailureTally | undefined,
    previous: TargetBackoff | undefined,
  ): { backoff: TargetBackoff | undefined; backoffNote?: string } {
    if (!tally) return { backoff: previous };
    const count = (previous?.failures ?? 0) + tally.count;
    const delay = Math.min(this.#o.backoffBaseMs * 2 ** Math.min(count - 1, 30), this.#o.backoffMaxMs);
    const backoff: TargetBackoff = {
      failures: count,
      retryAt: this.#now + delay,
      ...(tally.lastNode ? { lastFailedNode: tally.lastNode } : {}),
      ...(tally.lastReason ? { lastReason: tally.lastReason } : {}),
    };
    return {
      backoff,
      backoffNote: `${label}: ${count} failure(s) in a row, next replacement not before ${backoff.retryAt}`,
    };
  }

  /**
   * Brings a version to `desired` instances (a mover and its source counting once): removes the surplus, or
   * places what is missing unless the version is not published or backs off. Returns the instances removed.
   */
  #scale(b: DecisionBuilder, s: ScaleInput): Set<InstanceView> {
    const removed = new Set<InstanceView>();
    const effective = s.counted.length - s.movers.size;
    if (effective > s.desired) {
      const free = s.counted.filter((i) => !s.movers.has(i) && !s.sources.has(i));
      const ordered = this.#removalOrder(free, s.counted);
      const picks = [...ordered, ...s.movers].slice(0, effective - s.desired);
      for (const i of picks) {
        removed.add(i);
        if (!this.#remove(b, i, `${s.label} wants ${s.desired}`)) {
          this.#waiting.push(`${i.key}: removed once ${i.record.state} ends`);
        }
      }
    } else if (effective < s.desired) {
      if (!s.manifest) {
        this.#waiting.push(`${s.label}: ${s.coordinates} is not published; nothing is placed`);
      } else if (s.backoff && this.#now < s.backoff.retryAt) {
        this.#waiting.push(
          `${s.label}: backing off after ${s.backoff.failures} failure(s) until ${s.backoff.retryAt}`,
        );
        this.#wakeAt(s.backoff.retryAt);
      } else {
        this.#place(
          b,
          s.coordinates,
          s.desired - effective,
          s.counted,
          s.keptUp,
          s.backoff?.lastFailedNode,
          s.placement,
        );
      }
    }
    return removed;
  }

  /** Activation in dependency order: LOADED instances go ACTIVATE once every slice they call has an ACTIVE one. */
  #activate(
    b: DecisionBuilder,
    label: string,
    manifest: DeployManifest,
    loaded: readonly InstanceView[],
  ): void {
    const justification = this.#dependenciesActive(manifest);
    if (typeof justification === "string") {
      this.#waiting.push(`${label}: ${loaded.length} LOADED instance(s) wait for ${justification}`);
      return;
    }
    for (const i of loaded) {
      for (const j of justification) b.expect(j.key, j.modRevision);
      b.putInstance(i, this.#command(i.record, "ACTIVATE"), `ACTIVATE ${i.key}`);
    }
  }

  /** Whether to forget a version's failures: it has been healthy for `backoffResetMs` past its retry time. */
  #forgetFailures(backoff: TargetBackoff, healthy: boolean): boolean {
    const healthyAt = backoff.retryAt + this.#o.backoffResetMs;
    if (healthy && this.#now >= healthyAt) return true;
    this.#wakeAt(Math.max(healthyAt, this.#now + 1));
    return false;
  }

  /** Instances in the order they should be removed. */
  #removalOrder(candidates: InstanceView[], sameSlice: InstanceView[]): InstanceView[] {
    const perNode = countBy(sameSlice, (i) => i.node);
    return [...candidates].sort((x, y) =>
      (REMOVAL_RANK[x.record.state] ?? 9) - (REMOVAL_RANK[y.record.state] ?? 9) ||
      Number(this.#cordoned(y.node)) - Number(this.#cordoned(x.node)) ||
      perNode.get(y.node)! - perNode.get(x.node)! ||
      this.#total.get(y.node)! - this.#total.get(x.node)! ||
      cmp(y.node, x.node) ||
      y.createRevision - x.createRevision ||
      y.n - x.n
    );
  }

  /** The ACTIVE instances that justify activating a slice with this manifest, or what is missing. */
  #scaledToZero(base: string): boolean {
    const target = this.#view.targets.get(base)?.record;
    return target !== undefined && target.instances === 0 && target.min === 0;
  }

  #dependenciesActive(manifest: DeployManifest): InstanceView[] | string {
    const justification: InstanceView[] = [];
    for (const call of callsOf(manifest)) {
      const active = (this.#view.instancesByBase.get(call.base) ?? []).find((i) =>
        i.record.state === "ACTIVE" && this.#isLive(i.node) && inRange(i.version, call.range)
      );
      if (active) justification.push(active);
      // A dependency scaled to zero (min 0, no instance asked for) is started by the first call to it.
      else if (!this.#scaledToZero(call.base)) return `${call.base} ${call.range} to have an ACTIVE instance`;
    }
    return justification;
  }

  /**
   * Places `count` new instances of `coordinates`, spreading them: the node with the fewest instances of that
   * version, then of the slice's kept versions together (`sameSlice`), then overall, then the lowest id.
   */
  #place(
    b: DecisionBuilder,
    coordinates: string,
    count: number,
    existing: InstanceView[],
    sameSlice: InstanceView[],
    avoid: NodeId | undefined,
    placement?: PlacementRule,
  ): void {
    const base = baseOf(coordinates);
    const eligible = this.#eligible(placement, base);
    if (eligible.length === 0) {
      this.#waiting.push(
        `${coordinates}: cannot place ${count} instance(s): ${this.#whyNoNode(placement, base)}`,
      );
      return;
    }
    const perNode = countBy(existing, (i) => i.node);
    const perNodeSlice = countBy(sameSlice, (i) => i.node);
    const spread = placement?.spread;
    const perValue = spread === undefined
      ? new Map<string, number>()
      : countBy(existing.filter((i) => this.#isLive(i.node)), (i) => this.#label(i.node, spread));
    for (let k = 0; k < count; k++) {
      const candidates = avoid !== undefined && eligible.length > 1
        ? eligible.filter((n) => n !== avoid)
        : eligible;
      const valueCount = (n: NodeId) => spread === undefined ? 0 : perValue.get(this.#label(n, spread)) ?? 0;
      const node = [...candidates].sort((x, y) =>
        valueCount(x) - valueCount(y) ||
        (perNode.get(x) ?? 0) - (perNode.get(y) ?? 0) ||
        (perNodeSlice.get(x) ?? 0) - (perNodeSlice.get(y) ?? 0) ||
        this.#total.get(x)! - this.#total.get(y)! || cmp(x, y)
      )[0];
      const n = this.#freeNumber(node, coordinates);
      const key = kvKeys.instance(node, coordinates, n);
      b.putInstance({ key, modRevision: 0 }, this.#command(undefined, "LOAD"), `LOAD ${key}`);
      perNode.set(node, (perNode.get(node) ?? 0) + 1);
      if (spread !== undefined) perValue.set(this.#label(node, spread), valueCount(node) + 1);
      perNodeSlice.set(node, (perNodeSlice.get(node) ?? 0) + 1);
      this.#total.set(node, this.#total.get(node)! + 1);
      const placed = this.#placedNow.get(base) ?? new Set<NodeId>();
      this.#placedNow.set(base, placed.add(node));
    }
  }

  #cordoned(node: NodeId): boolean {
    return this.#view.nodes.get(node)?.cordon !== undefined;
  }

  #label(node: NodeId, name: string): string {
    return this.#view.nodes.get(node)?.labels[name] ?? "";
  }

  /** Schedulable nodes whose labels satisfy the rule and where slice `base`'s affinity rules allow it, sorted. */
  #eligible(placement: PlacementRule | undefined, base: string): NodeId[] {
    return this.#labelled(placement).filter((n) => this.#affinityAllows(base, placement, n));
  }

  #labelled(placement: PlacementRule | undefined): NodeId[] {
    return this.#schedulable.filter((n) => nodeMatches(placement, this.#view.nodes.get(n)?.labels ?? {}));
  }

  /** Nodes running an instance of slice `base` (on its way up or serving), or given one in this step. */
  #hosts(base: string): Set<NodeId> {
    const nodes = new Set(this.#placedNow.get(base) ?? []);
    for (const i of this.#view.instancesByBase.get(base) ?? []) if (isUp(i.record)) nodes.add(i.node);
    return nodes;
  }

  /** Slices `base` stays apart from: its own antiAffinity, and every slice whose antiAffinity names it. */
  #apart(base: string, placement: PlacementRule | undefined): string[] {
    const apart = new Set(placement?.antiAffinity ?? []);
    for (const [other, t] of this.#view.targets) {
      if (other !== base && t.record.placement?.antiAffinity?.includes(base)) apart.add(other);
    }
    return [...apart].sort();
  }

  /** Whether another slice's affinity or antiAffinity names slice `base`. */
  #namedByAffinity(base: string): boolean {
    for (const t of this.#view.targets.values()) {
      const rule = t.record.placement;
      if (rule?.affinity?.includes(base) || rule?.antiAffinity?.includes(base)) return true;
    }
    return false;
  }

  /** Affinity: the node runs every slice named; anti-affinity (both ways): it runs none of them. */
  #affinityAllows(base: string, placement: PlacementRule | undefined, node: NodeId): boolean {
    for (const slice of placement?.affinity ?? []) if (!this.#hosts(slice).has(node)) return false;
    for (const slice of this.#apart(base, placement)) if (this.#hosts(slice).has(node)) return false;
    return true;
  }

  /** Why no node can take an instance of slice `base`: for `waiting` (and so `slices`). */
  #whyNoNode(placement: PlacementRule | undefined, base: string): string {
    if (this.#live.length === 0) return "no live node";
    const cordoned = this.#live.filter((n) => this.#cordoned(n));
    const note = cordoned.length > 0 ? ` (cordoned: ${cordoned.join(", ")})` : "";
    if (this.#schedulable.length === 0) return `every live node is cordoned${note}`;
    if (this.#labelled(placement).length === 0) {
      return `no schedulable node has the labels ${labelsText(placement?.require)}${note}`;
    }
    const rules: string[] = [];
    if (placement?.affinity?.length) rules.push(`runs ${placement.affinity.join(" and ")} (affinity)`);
    const apart = this.#apart(base, placement);
    if (apart.length > 0) rules.push(`runs none of ${apart.join(", ")} (anti-affinity)`);
    const labels = placement?.require ? ` with the labels ${labelsText(placement.require)}` : "";
    return `no schedulable node${labels} ${rules.join(" and ")}${note}`;
  }

  // -- drain -------------------------------------------------------------------------------------------------

  /**
   * One move off a draining node (or off a node a slice's `require` rule no longer allows), when nothing else
   * is under way: an instance of a settled slice goes to the eligible node with the fewest instances of the
   * slice (then overall). The move keeps the old instance until the new one is ACTIVE, so no slice's ACTIVE
   * count (or budget) drops.
   */
  #drain(): void {
    const draining = new Set(this.#live.filter((n) => this.#view.nodes.get(n)?.cordon?.mode === "drain"));
    for (const s of this.#summaries) {
      const placement = s.target.record.placement;
      // Nodes this slice must leave: draining ones, and ones its `require` rule no longer allows.
      const leaving = [...s.byNode.keys()].filter((n) =>
        (s.byNode.get(n)?.length ?? 0) > 0 &&
        (draining.has(n) || !nodeMatches(placement, this.#view.nodes.get(n)?.labels ?? {}))
      ).sort();
      if (leaving.length === 0) continue;
      const from = leaving[0];
      const why = draining.has(from)
        ? `node ${from} is draining`
        : `node ${from} lacks ${labelsText(placement?.require)}`;
      if (!s.settled) {
        this.#waiting.push(`${s.base}: moves off ${from} (${why}) once the slice is settled`);
        continue;
      }
      const countOn = (n: NodeId) => s.byNode.get(n)?.length ?? 0;
      const spread = placement?.spread;
      const valueCount = (n: NodeId) =>
        spread === undefined
          ? 0
          : [...s.byNode].filter(([m]) => m !== from && this.#label(m, spread) === this.#label(n, spread))
            .reduce((sum, [, list]) => sum + list.length, 0);
      const to = this.#eligible(placement, s.base).sort((x, y) =>
        valueCount(x) - valueCount(y) || countOn(x) - countOn(y) ||
        this.#total.get(x)! - this.#total.get(y)! || cmp(x, y)
      )[0];
      if (to === undefined) {
        this.#waiting.push(
          `${s.base}: cannot move off ${from} (${why}): ${this.#whyNoNode(placement, s.base)}`,
        );
        continue;
      }
      return this.#move(s, from, to, why);
    }
    for (const node of draining) {
      const left = this.#view.instances.filter((i) => i.node === node).length;
      if (left > 0) this.#waiting.push(`drain ${node}: ${left} instance(s) left`);
    }
  }

  /** The lowest instance number of `coordinates` not used on `node` (by any key, or earlier in this step). */
  #freeNumber(node: NodeId, coordinates: string): number {
    const taken = this.#taken;
    const used = new Set(
      this.#view.instances.filter((i) => i.node === node && i.coordinates === coordinates).map((i) => i.n),
    );
    const mine = taken.get(`${node}|${coordinates}`) ?? new Set<number>();
    let n = 0;
    while (used.has(n) || mine.has(n)) n++;
    mine.add(n);
    taken.set(`${node}|${coordinates}`, mine);
    return n;
  }

  // -- rebalancing -------------------------------------------------------------------------------------------

  /** One move at a time, only when everything is settled and the spread is off by more than one. */
  #rebalance(): void {
    const nodes = this.#schedulable;
    if (nodes.length < 2 || this.#summaries.some((s) => s.moving)) return;
    // Slices with placement rules stay where their rules put them (moving one could break the spread), and
    // so do slices other slices' affinity rules name (moving one would leave those beside nothing).
    const settled = this.#summaries.filter((s) =>
      s.settled && !s.target.record.placement && !this.#namedByAffinity(s.base)
    );
    const countOn = (s: SliceSummary, node: NodeId) => s.byNode.get(node)?.length ?? 0;
    // A slice crowded on one node: from the fullest (then busiest, lowest id) to the emptiest (then idlest).
    for (const s of settled) {
      let from = nodes[0];
      let to = nodes[0];
      for (const node of nodes) {
        const c = countOn(s, node);
        const t = this.#total.get(node)!;
        const cf = countOn(s, from);
        const ct = countOn(s, to);
        if (c > cf || (c === cf && t > this.#total.get(from)!)) from = node;
        if (c < ct || (c === ct && t < this.#total.get(to)!)) to = node;
      }
      if (countOn(s, from) - countOn(s, to) > 1) return this.#move(s, from, to, "its instances are crowded");
    }
    // One node carrying more than its share overall.
    const byTotal = [...nodes].sort((x, y) => this.#total.get(x)! - this.#total.get(y)! || cmp(x, y));
    const to = byTotal[0];
    const from = [...nodes].sort((x, y) => this.#total.get(y)! - this.#total.get(x)! || cmp(x, y))[0];
    if (this.#total.get(from)! - this.#total.get(to)! <= 1) return;
    // The slice whose instance on `from` was placed last: a long-running instance stays where it is while a
    // newer one (say, a replacement placed while other nodes were down) can move instead.
    const s = settled
      .filter((s) => countOn(s, from) > countOn(s, to))
      .sort((x, y) =>
        youngest(y.byNode.get(from)!).createRevision - youngest(x.byNode.get(from)!).createRevision
      )[0];
    if (s) {
      this.#move(
        s,
        from,
        to,
        `node ${from} runs ${this.#total.get(from)} instances, ${to} runs ${this.#total.get(to)}`,
      );
    }
  }

  #move(s: SliceSummary, from: NodeId, to: NodeId, why: string): void {
    const source = youngest(s.byNode.get(from)!);
    const b = this.#builder(`slice:${s.base}`);
    const coordinates = source.coordinates;
    const n = this.#freeNumber(to, coordinates);
    const key = kvKeys.instance(to, coordinates, n);
    b.expect(source.key, source.modRevision);
    b.putInstance(
      { key, modRevision: 0 },
      this.#command(undefined, "LOAD", { replaces: { node: source.node, n: source.n } }),
      `move ${source.key} to ${key} (${why})`,
    );
    this.#emit(b);
  }
}

/** `satisfies`, memoized: the same few versions and ranges come up at every step. */
const RANGE_MEMO = new Map<string, boolean>();
function inRange(version: string, range: string): boolean {
  const key = `${version} ${range}`;
  let hit = RANGE_MEMO.get(key);
  if (hit === undefined) {
    hit = satisfies(version, range);
    if (RANGE_MEMO.size > 10_000) RANGE_MEMO.clear();
    RANGE_MEMO.set(key, hit);
  }
  return hit;
}

/** The instance whose record was created last; of instances placed in one transaction, the highest number. */
function youngest(instances: readonly InstanceView[]): InstanceView {
  let out = instances[0];
  for (const i of instances) {
    if (i.createRevision > out.createRevision || (i.createRevision === out.createRevision && i.n > out.n)) {
      out = i;
    }
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Map<string, number> {
  const out = new Map<string, number>();
  for (const item of items) out.set(key(item), (out.get(key(item)) ?? 0) + 1);
  return out;
}
