/**
 * The node feature "controller": the pure decision tree (controller.ts) run on the leader once a second.
 *
 * Each tick on the leader: read the rules and the shared state (`config/controller.*`), the targets with
 * `max` set (a slice without bounds is left alone), the ACTIVE instances per slice, and the load the metrics
 * feature reports (calls in flight, request rate, p95, CPU per instance); add a forecast when the forecaster
 * is confident; evaluate; write every change in ONE transaction that also writes the new shared state and
 * compares the `leader` key, the state key and every changed target. So a deposed leader's write fails (the
 * leader key moved), a new leader reads the cooldowns its predecessor wrote, and an operator's scale or pin
 * that raced the tick wins (the controller re-reads and decides again). Each decision that lands is published
 * on the event bus (`controller.decision`, relayed to every node) and kept with its inputs in the state.
 *
 * Operators act through this service too (the API calls it): rules, pause/resume, pins. Their writes are
 * compare-and-set on the state key and retried a few times when the leader wrote in between.
 */

import { AetherError, type Clock, type Logger, type NodeId } from "../core/mod.ts";
import type { KvCommand, KvCompare, KvOp } from "../kv/mod.ts";
import type { KvAccess, LeaderRecord } from "../cluster/mod.ts";
import {
  checkControllerRules,
  checkControllerState,
  CONTROLLER_RULES_KEY,
  CONTROLLER_STATE_KEY,
  type ControllerDecision,
  type ControllerRules,
  type ControllerState,
  decodeValue,
  EMPTY_CONTROLLER_STATE,
  encodeValue,
  type InstanceRecord,
  KEY_PREFIXES,
  LEADER_KEY,
  parseKey,
  type StoredControllerRules,
  type TargetRecord,
} from "../model/mod.ts";
import { type KvReader, planScale } from "../deployment/mod.ts";
import type { EventInput, MetricsView } from "../metrics/mod.ts";
import {
  type ControllerInput,
  ControllerMemory,
  controllerStep,
  effectiveRules,
  type SliceObservation,
} from "./controller.ts";
import { type Forecast, type Forecaster, RateHistory } from "./forecast.ts";
import { loadBySlice, type SliceLoad } from "./controller_load.ts";

export interface ControllerFeatureOptions {
  self: NodeId;
  members: readonly NodeId[];
  log: Logger;
  clock: Clock;
  kv: Pick<KvAccess, "write">;
  state(): KvReader;
  isConnected(node: NodeId): boolean;
  ready(): boolean;
  quorum(): boolean;
  leader(): LeaderRecord | null;
  isLeader(): boolean;
  onLeadership(listener: (leading: boolean) => void): () => void;
  /** Where decisions are published (the node's cluster event bus). */
  events?: { publish(input: EventInput): unknown };
  /** The cluster's load; without it only min/max bounds are enforced. */
  metrics?: Pick<MetricsView, "snapshot" | "invocations">;
  /** Layer 2; without it the decision tree runs alone. */
  forecaster?: Forecaster;
  /** How often the leader evaluates (ms); default 1000. */
  intervalMs?: number;
}

export interface ControllerStatus {
  leading: boolean;
  paused: boolean;
  pins: number;
  /** Slices the controller evaluates (targets with `max`). */
  slices: number;
  ticks: number;
  decisions: number;
  /** Writes that lost a race (an operator or a leader change came first): decided again next tick. */
  lostWrites: number;
  /** Time of the last evaluation (ms) and its mean. */
  lastEvaluationMs: number;
  meanEvaluationMs: number;
  forecaster: string;
}

export interface ControllerForecastRow {
  slice: string;
  /** Per-minute request rates, oldest first (the last hour at most). */
  actual: { at: number; requestsPerSecond: number }[];
  forecast?: Forecast;
}

/** The operator's side and the status, for the API. */
export interface ControllerService {
  readonly name: "controller";
  status(): ControllerStatus;
  rules(): { stored: StoredControllerRules; effective: ControllerRules; revision: number };
  putRules(rules: unknown): Promise<{ stored: StoredControllerRules; effective: ControllerRules }>;
  sharedState(): ControllerState;
  setPaused(paused: boolean, by?: string): Promise<ControllerState>;
  /** Pins a slice at `instances` (or its current count), scaling it in the same transaction. */
  pin(slice: string, instances: number | undefined, by?: string): Promise<ControllerState>;
  unpin(slice: string): Promise<ControllerState>;
  decisions(slice?: string, limit?: number): ControllerDecision[];
  forecast(slice?: string): ControllerForecastRow[];
  stop(): Promise<void>;
}

/** Operator writes retried this often when the leader wrote the state in between. */
const OPERATOR_WRITE_TRIES = 5;

export function startController(options: ControllerFeatureOptions): ControllerService {
  return new ControllerLoop(options);
}

class ControllerLoop implements ControllerService {
  readonly name = "controller" as const;
  readonly #o: ControllerFeatureOptions;
  readonly #log: Logger;
  #memory = new ControllerMemory();
  readonly #history = new RateHistory();
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #stopLeadership: () => void;
  #writing = false;
  #ticks = 0;
  #decided = 0;
  #lostWrites = 0;
  #lastEvaluationMs = 0;
  #totalEvaluationMs = 0;
  #slices = 0;

  constructor(options: ControllerFeatureOptions) {
    this.#o = options;
    this.#log = options.log.with({ component: "controller" });
    // A new leader starts with empty windows: it decides from what it saw itself, never from a guess.
    this.#stopLeadership = options.onLeadership((leading) => {
      this.#memory = new ControllerMemory();
      // The forecaster's runtime is loaded only on a leader, when it becomes one.
      if (leading) void options.forecaster?.ready?.();
    });
    if (options.isLeader()) void options.forecaster?.ready?.();
    this.#timer = setInterval(() => this.#tick(), options.intervalMs ?? 1_000);
  }

  status(): ControllerStatus {
    const shared = this.sharedState();
    return {
      leading: this.#o.isLeader(),
      paused: shared.paused,
      pins: Object.keys(shared.pins).length,
      slices: this.#slices,
      ticks: this.#ticks,
      decisions: this.#decided,
      lostWrites: this.#lostWrites,
      lastEvaluationMs: round3(this.#lastEvaluationMs),
      meanEvaluationMs: this.#ticks === 0 ? 0 : round3(this.#totalEvaluationMs / this.#ticks),
      forecaster: this.#o.forecaster?.describe() ?? "off",
    };
  }

  rules() {
    const entry = this.#o.state().get(CONTROLLER_RULES_KEY);
    const stored = this.#storedRules();
    return { stored, effective: effectiveRules(stored), revision: entry?.modRevision ?? 0 };
  }

  async putRules(rules: unknown) {
    const stored = checkControllerRules(rules, "controller rules");
    await this.#o.kv.write({
      type: "put",
      key: CONTROLLER_RULES_KEY,
      value: encodeValue("config", { value: stored as never, updatedAt: this.#now() }),
    });
    this.#log.info("controller rules changed", { rules: JSON.stringify(stored) });
    return { stored, effective: effectiveRules(stored) };
  }

  sharedState(): ControllerState {
    return this.#readState().state;
  }

  setPaused(paused: boolean, by?: string): Promise<ControllerState> {
    return this.#updateState((state) => {
      const next: ControllerState = { ...state, paused, updatedAt: this.#now() };
      if (paused && by) next.pausedBy = by;
      else delete next.pausedBy;
      return { state: next };
    });
  }

  pin(slice: string, instances: number | undefined, by?: string): Promise<ControllerState> {
    return this.#updateState((state, kv) => {
      const target = readTarget(kv, slice);
      if (!target) throw new AetherError("not_found", `pin: ${slice} is not deployed`, { field: "slice" });
      const count = instances ?? target.instances;
      const scale = count === target.instances ? undefined : planScale(kv, slice, count, this.#now()).command;
      const pins = { ...state.pins, [slice]: { instances: count, at: this.#now(), ...(by ? { by } : {}) } };
      return { state: { ...state, pins, updatedAt: this.#now() }, extra: scale };
    });
  }

  unpin(slice: string): Promise<ControllerState> {
    return this.#updateState((state) => {
      if (!state.pins[slice]) {
        throw new AetherError("not_found", `unpin: ${slice} is not pinned`, { field: "slice" });
      }
      const pins = { ...state.pins };
      delete pins[slice];
      return { state: { ...state, pins, updatedAt: this.#now() } };
    });
  }

  decisions(slice?: string, limit = 64): ControllerDecision[] {
    const all = this.sharedState().decisions.filter((d) => slice === undefined || d.slice === slice);
    return all.slice(-limit);
  }

  forecast(slice?: string): ControllerForecastRow[] {
    const rows: ControllerForecastRow[] = [];
    for (const name of this.#history.slices()) {
      if (slice !== undefined && name !== slice) continue;
      const prediction = this.#o.forecaster?.predict(name, this.#history.minutes(name));
      rows.push({
        slice: name,
        actual: this.#history.points(name),
        ...(prediction ? { forecast: prediction } : {}),
      });
    }
    return rows;
  }

  stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopLeadership();
    return Promise.resolve();
  }

  #now(): number {
    return Math.floor(this.#o.clock.now());
  }

  #storedRules(): StoredControllerRules {
    const entry = this.#o.state().get(CONTROLLER_RULES_KEY);
    if (!entry) return {};
    try {
      const record = decodeValue("config", entry.value, CONTROLLER_RULES_KEY);
      return checkControllerRules(record.value, CONTROLLER_RULES_KEY);
    } catch (e) {
      // Someone wrote the key around the API: keep the defaults rather than stop controlling.
      this.#log.warn("stored controller rules are invalid; using the defaults", {
        error: (e as Error).message,
      });
      return {};
    }
  }

  #readState(kv: KvReader = this.#o.state()): { state: ControllerState; revision: number } {
    const entry = kv.get(CONTROLLER_STATE_KEY);
    if (!entry) return { state: structuredClone(EMPTY_CONTROLLER_STATE), revision: 0 };
    try {
      const record = decodeValue("config", entry.value, CONTROLLER_STATE_KEY);
      return { state: checkControllerState(record.value, CONTROLLER_STATE_KEY), revision: entry.modRevision };
    } catch (e) {
      this.#log.warn("stored controller state is invalid; starting afresh", { error: (e as Error).message });
      return { state: structuredClone(EMPTY_CONTROLLER_STATE), revision: entry.modRevision };
    }
  }

  async #updateState(
    change: (state: ControllerState, kv: KvReader) => { state: ControllerState; extra?: KvCommand },
  ): Promise<ControllerState> {
    for (let attempt = 1;; attempt++) {
      const kv = this.#o.state();
      const { state, revision } = this.#readState(kv);
      const next = change(state, kv);
      const compare: KvCompare[] = [{ key: CONTROLLER_STATE_KEY, modRevision: revision }];
      const ops: KvOp[] = [stateOp(next.state, this.#now())];
      if (next.extra?.type === "txn") {
        compare.push(...next.extra.compare);
        ops.push(...next.extra.success);
      }
      const outcome = await this.#o.kv.write({ type: "txn", compare, success: ops, failure: [] });
      if (outcome.succeeded !== false) return next.state;
      if (attempt >= OPERATOR_WRITE_TRIES) {
        throw new AetherError("conflict", "the controller state kept changing; try again");
      }
    }
  }

  #tick(): void {
    if (!this.#o.isLeader() || this.#writing) return;
    try {
      this.#evaluate();
    } catch (e) {
      this.#log.error("controller tick failed", { error: (e as Error).stack ?? String(e) });
    }
  }

  #evaluate(): void {
    const kv = this.#o.state();
    const leaderEntry = kv.get(LEADER_KEY);
    const leader = this.#o.leader();
    if (!leaderEntry || !leader || leader.nodeId !== this.#o.self) return;
    const rules = effectiveRules(this.#storedRules());
    const { state, revision: stateRevision } = this.#readState(kv);
    const targets = controlledTargets(kv);
    this.#slices = targets.size;
    const nowMs = this.#now();
    const load = this.#o.metrics
      ? loadBySlice(this.#o.metrics, targets.keys())
      : new Map<string, SliceLoad>();
    const active = activeBySlice(kv);
    const slices: SliceObservation[] = [];
    for (const [slice, { record }] of targets) {
      const l = load.get(slice);
      this.#history.add(slice, nowMs, l?.requestsPerSecond ?? 0);
      const forecast = rules.forecast
        ? this.#o.forecaster?.predict(slice, this.#history.minutes(slice))
        : undefined;
      slices.push({
        slice,
        instances: record.instances,
        active: active.get(slice) ?? 0,
        changedAt: record.updatedAt,
        min: record.min ?? 1,
        max: record.max!,
        ...(record.minAvailable === undefined ? {} : { minAvailable: record.minAvailable }),
        inFlight: l?.inFlight ?? 0,
        requestsPerSecond: l?.requestsPerSecond ?? 0,
        ...(l?.cpu === undefined ? {} : { cpu: l.cpu }),
        ...(l?.p95Ms === undefined ? {} : { p95Ms: l.p95Ms }),
        ...(forecast ? { forecast } : {}),
      });
    }
    this.#history.retain(new Set(targets.keys()));
    const input: ControllerInput = {
      nowMs,
      quorum: this.#o.ready() && this.#o.quorum(),
      connectedNodes: this.#o.members.filter((m) => m === this.#o.self || this.#o.isConnected(m)).length,
      leader: this.#o.self,
      view: leader.view,
      slices,
    };
    const started = performance.now();
    const result = controllerStep(this.#memory, state, rules, input);
    this.#lastEvaluationMs = performance.now() - started;
    this.#totalEvaluationMs += this.#lastEvaluationMs;
    this.#ticks++;
    if (result.state === state) return;
    const compare: KvCompare[] = [
      { key: LEADER_KEY, modRevision: leaderEntry.modRevision },
      { key: CONTROLLER_STATE_KEY, modRevision: stateRevision },
    ];
    const ops: KvOp[] = [stateOp(result.state, nowMs)];
    for (const change of result.changes) {
      const { record, modRevision } = targets.get(change.slice)!;
      compare.push({ key: `${KEY_PREFIXES.targets}${change.slice}`, modRevision });
      ops.push({
        op: "put",
        key: `${KEY_PREFIXES.targets}${change.slice}`,
        value: encodeValue("target", { ...record, instances: change.to, updatedAt: nowMs }),
      });
    }
    this.#write({ type: "txn", compare, success: ops, failure: [] }, result.decisions);
  }

  #write(command: KvCommand, decisions: ControllerDecision[]): void {
    this.#writing = true;
    this.#o.kv.write(command).then(
      (outcome) => {
        if (outcome.succeeded === false) {
          this.#lostWrites++;
          this.#log.debug("controller write lost a race; deciding again");
          return;
        }
        this.#decided += decisions.length;
        for (const d of decisions) this.#published(d);
      },
      (e) => {
        this.#lostWrites++;
        this.#log.warn("controller write failed", { error: (e as Error).message });
      },
    ).finally(() => (this.#writing = false));
  }

  #published(d: ControllerDecision): void {
    this.#log.info("controller decision", {
      slice: d.slice,
      from: d.from,
      to: d.to,
      rule: d.rule,
      reason: d.reason,
    });
    try {
      this.#o.events?.publish({
        type: "controller.decision",
        subject: d.slice,
        details: {
          from: d.from,
          to: d.to,
          rule: d.rule,
          reason: d.reason,
          ...(d.bounded ? { bounded: d.bounded } : {}),
          inputs: d.inputs,
        },
        everywhere: true,
      });
    } catch (e) {
      this.#log.warn("controller decision event refused", { error: (e as Error).message });
    }
  }
}

function stateOp(state: ControllerState, nowMs: number): KvOp {
  return {
    op: "put",
    key: CONTROLLER_STATE_KEY,
    value: encodeValue("config", { value: state as never, updatedAt: nowMs }),
  };
}

function readTarget(kv: KvReader, slice: string): TargetRecord | undefined {
  const entry = kv.get(`${KEY_PREFIXES.targets}${slice}`);
  return entry ? decodeValue("target", entry.value) : undefined;
}

/** Targets with `max` set, by `group:artifact`. */
function controlledTargets(kv: KvReader): Map<string, { record: TargetRecord; modRevision: number }> {
  const out = new Map<string, { record: TargetRecord; modRevision: number }>();
  for (const entry of kv.range(KEY_PREFIXES.targets)) {
    const record = decodeValue("target", entry.value, entry.key);
    if (record.max === undefined) continue;
    out.set(entry.key.slice(KEY_PREFIXES.targets.length), { record, modRevision: entry.modRevision });
  }
  return out;
}

/** ACTIVE instances per `group:artifact`, over every version. */
function activeBySlice(kv: KvReader): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of kv.range(KEY_PREFIXES.instances)) {
    const record: InstanceRecord = decodeValue("instance", entry.value, entry.key);
    if (record.state !== "ACTIVE") continue;
    const key = parseKey(entry.key);
    if (key.family !== "instance") continue;
    const base = `${key.artifact.group}:${key.artifact.artifact}`;
    out.set(base, (out.get(base) ?? 0) + 1);
  }
  return out;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}
