/**
 * A seeded simulator for the controller: synthetic traffic (steady, steps, ramps, cycles, bursts) against
 * slices whose latency grows with their load, instances that take time to start, node failures (with a loss of
 * quorum now and then) and leader changes. It runs the same `controllerStep` as the node, once a simulated
 * second, and checks on every tick what the controller promises:
 *
 * - bounds: a target never leaves min..max, never grows past `maxPerNode` per connected node, never moves
 *   more than a step, never changes while quorum is lost, and a pinned slice is never touched;
 * - cooldowns across leader changes: the old leader's write is fenced by the leader view (as the node's
 *   transaction compares the `leader` key), and the new one reads the cooldowns from the shared state, so no
 *   change is repeated by a new leader;
 * - no oscillation: under steady load a slice changes its count at most a few times an hour;
 * - reaction: after a step up in load the target covers the new demand within `REACTION_BOUND_MS`.
 *
 * A failing seed replays with `deno run runtime/control/sim/main.ts --seed N --shape S --verbose`.
 */

import { Rng } from "../../core/mod.ts";
import type { ControllerRules, ControllerState } from "../../model/mod.ts";
import { EMPTY_CONTROLLER_STATE } from "../../model/mod.ts";
import {
  type ControllerInput,
  ControllerMemory,
  controllerStep,
  DEFAULT_CONTROLLER_RULES,
  type SliceObservation,
} from "../controller.ts";
import { type Forecaster, RateHistory } from "../forecast.ts";

export type TrafficShape = "steady" | "step" | "ramp" | "cycle" | "burst";
export const TRAFFIC_SHAPES: readonly TrafficShape[] = ["steady", "step", "ramp", "cycle", "burst"];

export interface ControllerSimOptions {
  seed: number;
  shape: TrafficShape;
  /** Simulated time (ms). */
  durationMs: number;
  nodes: number;
  /** Node failures per simulated hour (0: none). */
  nodeFailuresPerHour: number;
  /** Leader changes per simulated hour. */
  leaderChangesPerHour: number;
  rules: ControllerRules;
  /** How long a new instance takes to serve (ms; plus up to half as much jitter). */
  startDelayMs: number;
  /** The period of the "cycle" shape (ms). */
  cyclePeriodMs: number;
  /** Seconds over the objective and instance-seconds are counted from this time on (skips the warm-up). */
  measureFromMs: number;
  /** Layer 2: fed each slice's observed rate, its forecasts go to the controller as on the leader. */
  forecaster?: Forecaster;
  verbose?: boolean;
}

export const DEFAULT_CONTROLLER_SIM_OPTIONS: Readonly<ControllerSimOptions> = {
  seed: 1,
  shape: "step",
  durationMs: 3_600_000,
  nodes: 3,
  nodeFailuresPerHour: 4,
  leaderChangesPerHour: 6,
  rules: DEFAULT_CONTROLLER_RULES,
  startDelayMs: 1_500,
  cyclePeriodMs: 20 * 60_000,
  measureFromMs: 0,
};

/** Requests per second one ACTIVE instance serves at most. */
export const INSTANCE_CAPACITY_RPS = 80;
/** Service time of one call on an idle instance (s). */
const BASE_LATENCY_S = 0.1;
/** After a step in load, the target must cover the new demand within this long. */
export const REACTION_BOUND_MS = 15_000;
/** Under steady load, at most this many count changes per hour (after the first ten minutes). */
export const STEADY_CHANGES_PER_HOUR = 6;
const TICK_MS = 1_000;

interface SimSlice {
  name: string;
  min: number;
  max: number;
  pinned: boolean;
  /** Request rate at time t (ms). */
  rate: (t: number) => number;
  target: number;
  /** Start times of instances asked for and not yet serving. */
  starting: number[];
  active: number;
  backlog: number;
  /** The target's revision: a write based on an older one fails (the node's compare-and-set). */
  revision: number;
}

export interface ControllerSimResult {
  seed: number;
  shape: TrafficShape;
  failures: string[];
  log: string[];
  /** Count changes of the main slice. */
  changes: number;
  /** Seconds the main slice's p95 was above its objective. */
  secondsOverObjective: number;
  /** Instance-seconds the main slice used, and the least that would have kept it under the objective. */
  instanceSeconds: number;
  minimumInstanceSeconds: number;
  /** Time from the step to the target covering the demand (shape "step"). */
  reactionMs?: number;
  /** Mean evaluation time of one controller step (ms). */
  stepMs: number;
}

export interface Traffic {
  /** Requests per second at time t (ms). */
  rate: (t: number) => number;
  /** When the load steps up (shape "step"). */
  stepAt?: number;
}

/** The synthetic traffic of one slice. */
export function trafficOf(shape: TrafficShape, rng: Rng, durationMs: number, cyclePeriodMs: number): Traffic {
  const at = durationMs / 4 + rng.int(0, Math.floor(durationMs / 4));
  return { rate: trafficRate(shape, rng, at, cyclePeriodMs), ...(shape === "step" ? { stepAt: at } : {}) };
}

function trafficRate(shape: TrafficShape, rng: Rng, at: number, periodMs: number): (t: number) => number {
  const base = 40 + rng.int(0, 40);
  const high = base * (3 + rng.next() * 3);
  const noise = new Rng(rng.nextUint32());
  const jitter = (rate: number) => rate * (0.95 + noise.next() * 0.1);
  switch (shape) {
    case "steady":
      return () => jitter(base * 3);
    case "step":
      return (t) => jitter(t < at ? base : high);
    case "ramp":
      return (t) => jitter(base + (high - base) * Math.min(1, Math.max(0, (t - at) / 120_000)));
    case "cycle": {
      return (t) => jitter(base + (high - base) * (0.5 - 0.5 * Math.cos((2 * Math.PI * t) / periodMs)));
    }
    case "burst":
      return (t) => {
        const inBurst = Math.floor(t / 60_000) % 7 === 3 && t % 60_000 < 20_000;
        return jitter(inBurst ? high : base);
      };
  }
}

/** Latency (s) of a slice with `active` instances at `rate` rps and `backlog` queued calls. */
function latencyOf(active: number, rate: number, backlog: number): number {
  if (active === 0) return rate > 0 ? 5 : 0;
  const capacity = active * INSTANCE_CAPACITY_RPS;
  const load = Math.min(rate / capacity, 1);
  return BASE_LATENCY_S * (1 + 2 * load * load) + backlog / capacity;
}

/** The fewest instances that keep the p95 under the objective at `rate`. */
function fewestInstances(rate: number, objectiveMs: number): number {
  for (let n = 1; n < 10_000; n++) {
    if (rate <= n * INSTANCE_CAPACITY_RPS * 0.95 && latencyOf(n, rate, 0) * 1.6 * 1000 <= objectiveMs) {
      return n;
    }
  }
  return 10_000;
}

export function runControllerSimulation(options: ControllerSimOptions): ControllerSimResult {
  return new ControllerSimulation(options).run();
}

class ControllerSimulation {
  readonly #o: ControllerSimOptions;
  readonly #rng: Rng;
  readonly #slices: SimSlice[];
  readonly #log: string[] = [];
  readonly #failures: string[] = [];
  #now = 0;
  #up: boolean[];
  #downUntil: number[];
  #leader = 0;
  #view = 1;
  #memory = new ControllerMemory();
  readonly #history = new RateHistory();
  /** The shared (KV) state: written only with a decision the fence let through. */
  #state: ControllerState = structuredClone(EMPTY_CONTROLLER_STATE);
  #changes = 0;
  #steadyChanges = 0;
  #overObjective = 0;
  #instanceSeconds = 0;
  #minimumInstanceSeconds = 0;
  readonly #stepAt?: number;
  #reactionMs?: number;
  #stepTime = 0;
  #steps = 0;

  constructor(options: ControllerSimOptions) {
    this.#o = options;
    this.#rng = new Rng(options.seed);
    const main = trafficOf(options.shape, this.#rng.fork(), options.durationMs, options.cyclePeriodMs);
    const steady = trafficOf("steady", this.#rng.fork(), options.durationMs, options.cyclePeriodMs);
    this.#stepAt = main.stepAt;
    this.#slices = [
      this.#slice("shop:main", 1, 12, false, main.rate),
      this.#slice("shop:steady", 1, 8, false, steady.rate),
      this.#slice("shop:pinned", 1, 8, true, main.rate),
    ];
    this.#up = Array.from({ length: options.nodes }, () => true);
    this.#downUntil = Array.from({ length: options.nodes }, () => 0);
    this.#state.pins["shop:pinned"] = { instances: 2, at: 0, by: "sim" };
  }

  #slice(name: string, min: number, max: number, pinned: boolean, rate: (t: number) => number): SimSlice {
    const target = pinned ? 2 : min;
    return { name, min, max, pinned, rate, target, starting: [], active: target, backlog: 0, revision: 1 };
  }

  run(): ControllerSimResult {
    for (this.#now = 0; this.#now < this.#o.durationMs; this.#now += TICK_MS) this.#tick();
    return {
      seed: this.#o.seed,
      shape: this.#o.shape,
      failures: this.#failures,
      log: this.#log,
      changes: this.#changes,
      secondsOverObjective: this.#overObjective,
      instanceSeconds: this.#instanceSeconds,
      minimumInstanceSeconds: this.#minimumInstanceSeconds,
      ...(this.#reactionMs === undefined ? {} : { reactionMs: this.#reactionMs }),
      stepMs: this.#steps === 0 ? 0 : this.#stepTime / this.#steps,
    };
  }

  #say(line: string): void {
    if (this.#o.verbose) this.#log.push(`${(this.#now / 1000).toFixed(0)}s ${line}`);
  }

  #fail(what: string): void {
    if (this.#failures.length < 20) this.#failures.push(`at ${(this.#now / 1000).toFixed(0)}s: ${what}`);
  }

  #connected(): number {
    return this.#up.filter((u) => u).length;
  }

  #quorum(): boolean {
    return this.#connected() >= Math.floor(this.#o.nodes / 2) + 1;
  }

  #tick(): void {
    this.#chaos();
    const observations = this.#slices.map((s) => this.#serve(s));
    const quorum = this.#quorum();
    if (quorum && this.#rng.chance((this.#o.leaderChangesPerHour * TICK_MS) / 3_600_000)) {
      this.#changeLeader();
    }
    const input: ControllerInput = {
      nowMs: this.#now,
      quorum,
      connectedNodes: this.#connected(),
      leader: `n${this.#leader}`,
      view: this.#view,
      slices: observations,
    };
    const started = performance.now();
    const result = controllerStep(this.#memory, this.#state, this.#o.rules, input);
    this.#stepTime += performance.now() - started;
    this.#steps++;
    for (const decision of result.decisions) {
      const slice = this.#slices.find((s) => s.name === decision.slice)!;
      this.#check(slice, decision, input);
      this.#apply(slice, decision.to);
      this.#say(
        `${decision.slice} ${decision.from} -> ${decision.to} (${decision.rule}: ${decision.reason})`,
      );
    }
    this.#state = result.state;
    this.#measure(observations[0]);
  }

  /** Node failures: one node for 10–60 s; now and then a second one too, which loses quorum. */
  #chaos(): void {
    for (let n = 0; n < this.#o.nodes; n++) {
      if (!this.#up[n] && this.#now >= this.#downUntil[n]) {
        this.#up[n] = true;
        this.#say(`node n${n} back`);
      }
    }
    if (!this.#rng.chance((this.#o.nodeFailuresPerHour * TICK_MS) / 3_600_000)) return;
    const victim = this.#rng.int(0, this.#o.nodes - 1);
    if (!this.#up[victim]) return;
    this.#up[victim] = false;
    this.#downUntil[victim] = this.#now + this.#rng.int(10_000, 60_000);
    this.#say(`node n${victim} down`);
    // Its share of every slice's instances is lost; the deployment replaces them on the others.
    for (const s of this.#slices) {
      const lost = Math.round(s.active / this.#o.nodes);
      s.active -= lost;
      for (let i = 0; i < lost; i++) s.starting.push(this.#now + 3_000 + this.#rng.int(0, 1_000));
    }
    if (victim === this.#leader) this.#changeLeader();
  }

  /**
   * A new leader: the old one's windows are gone, and a decision it computes on its last tick is fenced (its
   * view is stale), as the node's transaction fails when the `leader` key moved.
   */
  #changeLeader(): void {
    const stale = controllerStep(this.#memory, this.#state, this.#o.rules, {
      nowMs: this.#now,
      quorum: this.#quorum(),
      connectedNodes: this.#connected(),
      leader: `n${this.#leader}`,
      view: this.#view,
      slices: this.#slices.map((s) => this.#observe(s, s.rate(this.#now))),
    });
    const candidates = this.#up.map((u, i) => (u ? i : -1)).filter((i) => i >= 0 && i !== this.#leader);
    if (candidates.length === 0) return;
    this.#leader = this.#rng.pick(candidates);
    this.#view++;
    this.#memory = new ControllerMemory();
    for (const decision of stale.decisions) {
      if (decision.view === this.#view) this.#fail(`a deposed leader's decision applied: ${decision.slice}`);
    }
    this.#say(`leader n${this.#leader} view ${this.#view}`);
  }

  /** One second of traffic on a slice; returns what the leader observes of it. */
  #serve(s: SimSlice): SliceObservation {
    const ready = s.starting.filter((t) => t <= this.#now).length;
    s.starting = s.starting.filter((t) => t > this.#now);
    s.active = Math.min(s.active + ready, s.target);
    const rate = s.rate(this.#now);
    this.#history.add(s.name, this.#now, rate);
    const capacity = s.active * INSTANCE_CAPACITY_RPS;
    const served = Math.min(rate + s.backlog, capacity);
    // Calls wait at most 30 s of capacity; the rest are refused (a bound like the node's queues).
    s.backlog = Math.min(Math.max(0, s.backlog + rate - served), Math.max(capacity, 1) * 30);
    return this.#observe(s, rate);
  }

  #observe(s: SimSlice, rate: number): SliceObservation {
    const latency = latencyOf(s.active, rate, s.backlog);
    const capacity = s.active * INSTANCE_CAPACITY_RPS;
    return {
      slice: s.name,
      instances: s.target,
      active: s.active,
      min: s.min,
      max: s.max,
      inFlight: rate * latency,
      requestsPerSecond: rate,
      cpu: capacity === 0 ? 1 : Math.min(1, (0.9 * Math.min(rate, capacity)) / capacity),
      ...(rate > 0 ? { p95Ms: latency * 1.6 * 1000 } : {}),
      ...(this.#o.forecaster ? this.#forecastOf(s.name) : {}),
    };
  }

  #forecastOf(slice: string): Pick<SliceObservation, "forecast"> {
    const forecast = this.#o.forecaster?.predict(slice, this.#history.minutes(slice));
    return forecast ? { forecast } : {};
  }

  #apply(s: SimSlice, to: number): void {
    if (to > s.target) {
      for (let i = s.target; i < to; i++) {
        s.starting.push(this.#now + this.#o.startDelayMs + this.#rng.int(0, this.#o.startDelayMs / 2));
      }
    } else {
      const drop = s.target - to;
      const notStarted = Math.min(drop, s.starting.length);
      s.starting.splice(s.starting.length - notStarted, notStarted);
      s.active = Math.max(0, s.active - (drop - notStarted));
    }
    s.target = to;
    s.revision++;
    if (s.name === "shop:main") this.#changes++;
    if (s.name === "shop:steady" && this.#now >= 600_000) this.#steadyChanges++;
  }

  #check(s: SimSlice, d: { from: number; to: number; rule: string }, input: ControllerInput): void {
    const r = this.#o.rules;
    const history = this.#state.slices[s.name];
    if (s.pinned) this.#fail(`pinned ${s.name} changed ${d.from} -> ${d.to}`);
    if (!input.quorum) this.#fail(`${s.name} changed without quorum`);
    if (d.from !== s.target) this.#fail(`${s.name}: decided from ${d.from}, target is ${s.target}`);
    if (d.to < s.min || d.to > s.max) this.#fail(`${s.name}: ${d.to} outside ${s.min}..${s.max}`);
    if (d.to > d.from && d.to > r.maxPerNode * input.connectedNodes) {
      this.#fail(`${s.name}: ${d.to} above capacity ${r.maxPerNode} x ${input.connectedNodes}`);
    }
    if (d.to - d.from > r.maxStepUp || d.from - d.to > r.maxStepDown) {
      this.#fail(`${s.name}: step ${d.from} -> ${d.to} too large`);
    }
    if (d.to > d.from && d.rule !== "panic" && history?.lastUpAt !== undefined) {
      if (this.#now - history.lastUpAt < r.upCooldownMs) this.#fail(`${s.name}: up within the up cooldown`);
    }
    const lastChange = Math.max(history?.lastUpAt ?? -Infinity, history?.lastDownAt ?? -Infinity);
    if (d.to < d.from && this.#now - lastChange < r.downCooldownMs) {
      this.#fail(`${s.name}: down within the down cooldown`);
    }
  }

  #measure(main: SliceObservation): void {
    const objective = this.#o.rules.objectives["shop:main"] ?? this.#o.rules.p95ObjectiveMs;
    if (this.#now >= this.#o.measureFromMs) {
      if ((main.p95Ms ?? 0) > objective) this.#overObjective++;
      this.#instanceSeconds += main.instances;
      this.#minimumInstanceSeconds += fewestInstances(main.requestsPerSecond, objective);
    }
    if (this.#o.shape !== "step") return;
    const s = this.#slices[0];
    if (this.#stepAt !== undefined && this.#now >= this.#stepAt && this.#reactionMs === undefined) {
      // Enough to carry the load (the controller aims at its in-flight target, which is below full load).
      const want = Math.min(Math.ceil(main.requestsPerSecond / INSTANCE_CAPACITY_RPS), s.max);
      if (s.target >= want && s.active >= want) this.#reactionMs = this.#now - this.#stepAt;
      else if (this.#now - this.#stepAt > REACTION_BOUND_MS && this.#connected() === this.#o.nodes) {
        this.#fail(
          `no reaction to the step within ${REACTION_BOUND_MS}ms (target ${s.target}, want ${want})`,
        );
        this.#reactionMs = this.#now - this.#stepAt;
      }
    }
  }

  get steadyChanges(): number {
    return this.#steadyChanges;
  }
}

/** Runs a steady-load simulation and returns the count changes per hour of its steady slice. */
export function steadyChangesPerHour(options: ControllerSimOptions): number {
  const sim = new ControllerSimulation({ ...options, shape: "steady" });
  sim.run();
  return sim.steadyChanges / Math.max((options.durationMs - 600_000) / 3_600_000, 1 / 60);
}
