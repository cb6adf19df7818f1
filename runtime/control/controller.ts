/**
 * The control loop's layer 1: a deterministic decision tree, as a pure function. The leader calls
 * `controllerStep` once a second with what it observes (`ControllerInput`: per slice its target and ACTIVE
 * instances, calls in flight, request rate, CPU, p95 latency, bounds and an optional forecast; the cluster's
 * quorum and connected nodes), the windows it remembers (`ControllerMemory`, in memory only) and the state that
 * must survive a change of leader (`ControllerState`, kept in KV). It returns the target changes, each with a
 * reason and its inputs, and the next state. No clock, no IO, no randomness: the simulator (controller_sim.ts)
 * and the node run the same code.
 *
 * The tree, per slice (Knative's autoscaler in spirit):
 * - demand = calls in flight / `targetInFlightPerInstance`: the instances the slice needs now. Two windows
 *   average it: the panic window (short, 6 s) reacts to bursts, the stable window (long, 60 s) decides
 *   scale-downs.
 * - up: the panic window's mean demand exceeds the target count (`demand`); or it is `panicThreshold` times the
 *   ACTIVE instances (`panic`: the up cooldown is skipped); or p95 stayed above the slice's objective for the
 *   whole panic window (`latency`, +1); or CPU stayed above `cpuHigh` (`cpu`, +1). The last two wait until every
 *   instance already asked for is ACTIVE, so a slow start is not answered with more instances.
 * - down: only when the stable window is full, its demand is below `scaleDownUtilization` of the count, p95
 *   never passed the objective in it, CPU is below `cpuLow`, the down cooldown has passed since any change,
 *   and the forecaster (when on) does not predict the capacity will be needed.
 * - forecast (layer 2): a confident forecast of the request rate may add capacity early; it never removes any.
 * - bounds: a count below `min` is raised to it and one above `max` lowered, whatever the load.
 * - idle: a slice with `min = 0` and no call for `idleToZeroMs` (5 min) goes to zero instances; its routes stay
 *   and the next call starts an instance (controller_activation.ts). Demand alone never goes below one.
 *
 * The safety validator (`boundDecision`) then bounds every wanted count: within min/max, never more than
 * `maxPerNode` per connected node, at most `maxStepUp`/`maxStepDown` per decision, cooldowns, at most
 * `maxChangesPerMinute` changes per slice, nothing while quorum is lost, the controller is paused or the
 * slice pinned by an operator.
 */

import type {
  ControllerDecision,
  ControllerRules,
  ControllerSliceState,
  ControllerState,
  StoredControllerRules,
} from "../model/mod.ts";
import { budgetCount, MAX_STORED_DECISIONS } from "../model/mod.ts";

export const DEFAULT_CONTROLLER_RULES: Readonly<ControllerRules> = Object.freeze({
  targetInFlightPerInstance: 10,
  scaleDownUtilization: 0.6,
  cpuHigh: 0.8,
  cpuLow: 0.5,
  p95ObjectiveMs: 500,
  objectives: {},
  stableWindowMs: 60_000,
  panicWindowMs: 6_000,
  panicThreshold: 2,
  upCooldownMs: 3_000,
  downCooldownMs: 30_000,
  maxStepUp: 4,
  maxStepDown: 1,
  maxPerNode: 4,
  maxChangesPerMinute: 12,
  idleToZeroMs: 300_000,
  forecast: true,
  forecastConfidence: 0.5,
});

/** The stored rules over the defaults. */
export function effectiveRules(stored: StoredControllerRules | undefined): ControllerRules {
  return { ...DEFAULT_CONTROLLER_RULES, ...stored };
}

/** What the leader observes of one slice at one tick. */
export interface SliceObservation {
  /** `group:artifact`. */
  slice: string;
  /** The target's instance count. */
  instances: number;
  /** Instances ACTIVE now. */
  active: number;
  min: number;
  max: number;
  /** The target's disruption budget (`"2"`, `"50%"`): scale-down never goes below it (runtime/model/targets.ts). */
  minAvailable?: string;
  /** Calls in flight, summed over the slice's instances. */
  inFlight: number;
  requestsPerSecond: number;
  /** Mean CPU share (0..1) of the nodes its instances run on; undefined when not measured. */
  cpu?: number;
  /** p95 latency over the last second; undefined without calls. */
  p95Ms?: number;
  /** When the target last changed (ms): a slice just started from zero is not idle yet. */
  changedAt?: number;
  /** A forecast of the request rate a few minutes ahead (layer 2), if one is available. */
  forecast?: { requestsPerSecond: number; confidence: number };
}

export interface ControllerInput {
  nowMs: number;
  quorum: boolean;
  /** Members the leader reaches now (itself included): capacity is `maxPerNode` per connected node. */
  connectedNodes: number;
  leader: string;
  view: number;
  slices: readonly SliceObservation[];
}

interface Sample {
  at: number;
  demand: number;
  overObjective: boolean;
  cpu?: number;
}

/** Samples per slice are bounded by the stable window and by this count (an hour of 1 s ticks). */
export const MAX_SAMPLES_PER_SLICE = 3_600;
/** At most this many slices are remembered; beyond it the least recently seen are forgotten. */
export const MAX_CONTROLLED_SLICES = 1_000;

/** The windows the leader remembers between ticks (lost on a leader change: a new leader waits for them). */
export class ControllerMemory {
  readonly samples = new Map<string, Sample[]>();
  /** Mean latency (s) seen when the slice last had traffic, to turn a forecast rate into demand. */
  readonly latencyS = new Map<string, number>();
  /** When the slice last had a call (or when this leader first saw it): the idle window starts there. */
  readonly busyAt = new Map<string, number>();
}

export interface ControllerChange {
  slice: string;
  from: number;
  to: number;
}

export interface ControllerStepResult {
  /** The next persisted state; the same object when nothing changed. */
  state: ControllerState;
  decisions: ControllerDecision[];
  changes: ControllerChange[];
}

/** One evaluation of every slice. */
export function controllerStep(
  memory: ControllerMemory,
  state: ControllerState,
  rules: ControllerRules,
  input: ControllerInput,
): ControllerStepResult {
  const decisions: ControllerDecision[] = [];
  const seen = new Set<string>();
  for (const slice of input.slices) {
    seen.add(slice.slice);
    remember(memory, rules, input.nowMs, slice);
    const decision = decideSlice(memory, state, rules, input, slice);
    if (decision) decisions.push(decision);
  }
  forgetUnseen(memory, seen);
  const staleState = Object.keys(state.slices).some((s) => !seen.has(s));
  if (decisions.length === 0 && !staleState) return { state, decisions, changes: [] };
  return {
    state: nextState(state, rules, input, decisions, seen),
    decisions,
    changes: decisions.map((d) => ({ slice: d.slice, from: d.from, to: d.to })),
  };
}

function remember(memory: ControllerMemory, rules: ControllerRules, nowMs: number, s: SliceObservation) {
  let samples = memory.samples.get(s.slice);
  if (!samples) {
    if (memory.samples.size >= MAX_CONTROLLED_SLICES) {
      const oldest = memory.samples.keys().next().value!;
      memory.samples.delete(oldest);
      memory.latencyS.delete(oldest);
      memory.busyAt.delete(oldest);
    }
    samples = [];
    memory.samples.set(s.slice, samples);
  }
  samples.push({
    at: nowMs,
    demand: s.inFlight / rules.targetInFlightPerInstance,
    overObjective: s.p95Ms !== undefined && s.p95Ms > objectiveOf(rules, s.slice),
    ...(s.cpu === undefined ? {} : { cpu: s.cpu }),
  });
  const horizon = nowMs - rules.stableWindowMs;
  let drop = 0;
  while (drop < samples.length && samples[drop].at <= horizon) drop++;
  drop = Math.max(drop, samples.length - MAX_SAMPLES_PER_SLICE);
  if (drop > 0) samples.splice(0, drop);
  if (s.requestsPerSecond > 0 && s.inFlight > 0) {
    memory.latencyS.set(s.slice, s.inFlight / s.requestsPerSecond);
  }
  if (s.requestsPerSecond > 0 || s.inFlight > 0 || !memory.busyAt.has(s.slice)) {
    memory.busyAt.set(s.slice, nowMs);
  }
  if (s.changedAt !== undefined && s.changedAt > memory.busyAt.get(s.slice)!) {
    memory.busyAt.set(s.slice, Math.min(s.changedAt, nowMs));
  }
}

function forgetUnseen(memory: ControllerMemory, seen: Set<string>): void {
  for (const slice of memory.samples.keys()) {
    if (!seen.has(slice)) {
      memory.samples.delete(slice);
      memory.latencyS.delete(slice);
      memory.busyAt.delete(slice);
    }
  }
}

export function objectiveOf(rules: ControllerRules, slice: string): number {
  return rules.objectives[slice] ?? rules.p95ObjectiveMs;
}

interface WindowSummary {
  /** The samples reach back over (nearly) the whole window. */
  full: boolean;
  meanDemand: number;
  allOverObjective: boolean;
  anyOverObjective: boolean;
  meanCpu?: number;
}

/** A window counts as full when its samples cover all of it but one tick's worth of slack. */
const WINDOW_SLACK_MS = 1_000;

function summarize(samples: readonly Sample[], nowMs: number, windowMs: number): WindowSummary {
  const from = nowMs - windowMs;
  let count = 0, demand = 0, over = 0, cpuCount = 0, cpu = 0;
  let first = Infinity;
  for (let i = samples.length - 1; i >= 0 && samples[i].at > from; i--) {
    const s = samples[i];
    count++;
    demand += s.demand;
    if (s.overObjective) over++;
    if (s.cpu !== undefined) {
      cpuCount++;
      cpu += s.cpu;
    }
    first = s.at;
  }
  return {
    full: count > 0 && nowMs - first >= windowMs - WINDOW_SLACK_MS,
    meanDemand: count === 0 ? 0 : demand / count,
    allOverObjective: count > 0 && over === count,
    anyOverObjective: over > 0,
    ...(cpuCount === 0 ? {} : { meanCpu: cpu / cpuCount }),
  };
}

interface Wanted {
  to: number;
  rule: ControllerDecision["rule"];
  reason: string;
  /** Panic skips the up cooldown. */
  urgent?: boolean;
}

function decideSlice(
  memory: ControllerMemory,
  state: ControllerState,
  rules: ControllerRules,
  input: ControllerInput,
  s: SliceObservation,
): ControllerDecision | undefined {
  if (state.paused || state.pins[s.slice] || !input.quorum) return undefined;
  const samples = memory.samples.get(s.slice) ?? [];
  const panic = summarize(samples, input.nowMs, rules.panicWindowMs);
  const stable = summarize(samples, input.nowMs, rules.stableWindowMs);
  const forecastDemand = forecastDemandOf(memory, rules, s);
  const idleMs = input.nowMs - (memory.busyAt.get(s.slice) ?? input.nowMs);
  const wanted = wantedCount(rules, s, panic, stable, forecastDemand, idleMs);
  if (!wanted) return undefined;
  const bounded = boundDecision(rules, input, s, state.slices[s.slice], wanted);
  if (bounded.to === s.instances) return undefined;
  return {
    at: input.nowMs,
    slice: s.slice,
    from: s.instances,
    to: bounded.to,
    reason: wanted.reason,
    rule: wanted.rule,
    ...(bounded.note ? { bounded: bounded.note } : {}),
    leader: input.leader,
    view: input.view,
    inputs: decisionInputs(rules, s, panic, stable, forecastDemand),
  };
}

function forecastDemandOf(memory: ControllerMemory, rules: ControllerRules, s: SliceObservation) {
  if (!rules.forecast || !s.forecast || s.forecast.confidence < rules.forecastConfidence) return undefined;
  const latencyS = memory.latencyS.get(s.slice);
  if (latencyS === undefined) return undefined;
  return (s.forecast.requestsPerSecond * latencyS) / rules.targetInFlightPerInstance;
}

/** The tree itself: which count the slice should have and why; undefined to keep it. */
export function wantedCount(
  rules: ControllerRules,
  s: SliceObservation,
  panic: WindowSummary,
  stable: WindowSummary,
  forecastDemand: number | undefined,
  idleMs = 0,
): Wanted | undefined {
  const current = s.instances;
  if (current < s.min) return { to: s.min, rule: "min", reason: `${current} below min ${s.min}` };
  if (current > s.max) return { to: s.max, rule: "max", reason: `${current} above max ${s.max}` };
  const objective = objectiveOf(rules, s.slice);
  if (panic.full) {
    const need = Math.ceil(panic.meanDemand);
    if (panic.meanDemand >= rules.panicThreshold * Math.max(s.active, 1) && need > current) {
      return {
        to: need,
        rule: "panic",
        reason: `demand ${fmt(panic.meanDemand)} over ${seconds(rules.panicWindowMs)} is ` +
          `${rules.panicThreshold}x the ${s.active} active`,
        urgent: true,
      };
    }
    if (need > current) {
      return {
        to: need,
        rule: "demand",
        reason: `demand ${fmt(panic.meanDemand)} instances over ${seconds(rules.panicWindowMs)} > ${current}`,
      };
    }
    const settled = s.active >= current;
    if (settled && panic.allOverObjective) {
      return {
        to: current + 1,
        rule: "latency",
        reason: `p95 above objective ${objective}ms for ${seconds(rules.panicWindowMs)}`,
      };
    }
    if (settled && panic.meanCpu !== undefined && panic.meanCpu > rules.cpuHigh) {
      return {
        to: current + 1,
        rule: "cpu",
        reason: `cpu ${fmt(panic.meanCpu)} > ${rules.cpuHigh} over ${seconds(rules.panicWindowMs)}`,
      };
    }
  }
  if (forecastDemand !== undefined && Math.ceil(forecastDemand) > current) {
    return {
      to: Math.ceil(forecastDemand),
      rule: "forecast",
      reason: `forecast demand ${fmt(forecastDemand)} instances > ${current}`,
    };
  }
  if (s.min === 0 && current > 0 && idleMs >= rules.idleToZeroMs && forecastNeed(forecastDemand) === 0) {
    return { to: 0, rule: "idle", reason: `no calls for ${seconds(idleMs)}: scale to zero` };
  }
  // Demand alone never goes below one instance: only the idle rule scales to zero (a request activates it).
  const floor = Math.max(s.min, 1);
  if (!stable.full || current <= floor) return undefined;
  const keep = Math.max(
    Math.ceil(stable.meanDemand / rules.scaleDownUtilization),
    forecastNeed(forecastDemand),
  );
  if (keep >= current || stable.anyOverObjective) return undefined;
  if (stable.meanCpu !== undefined && stable.meanCpu >= rules.cpuLow) return undefined;
  return {
    to: Math.max(keep, floor),
    rule: "demand",
    reason: `demand ${fmt(stable.meanDemand)} instances over ${seconds(rules.stableWindowMs)} ` +
      `< ${rules.scaleDownUtilization} of ${current}`,
  };
}

function forecastNeed(forecastDemand: number | undefined): number {
  return forecastDemand === undefined ? 0 : Math.ceil(forecastDemand);
}

export interface BoundedCount {
  to: number;
  /** What the validator changed, if anything. */
  note?: string;
}

/**
 * The safety validator: bounds a wanted count by min/max, cluster capacity, step sizes, cooldowns and the
 * change rate. Returns the slice's current count when the change is not allowed now.
 */
export function boundDecision(
  rules: ControllerRules,
  input: Pick<ControllerInput, "nowMs" | "quorum" | "connectedNodes">,
  s:
    & Pick<SliceObservation, "instances" | "min" | "max">
    & Partial<Pick<SliceObservation, "active" | "minAvailable">>,
  history: ControllerSliceState | undefined,
  wanted: Pick<Wanted, "to" | "urgent">,
): BoundedCount {
  const current = s.instances;
  if (!input.quorum) return { to: current, note: "quorum lost" };
  const capacity = rules.maxPerNode * Math.max(input.connectedNodes, 0);
  const notes: string[] = [];
  let to = wanted.to;
  if (to > s.max) (to = s.max, notes.push(`max ${s.max}`));
  if (to < s.min) (to = s.min, notes.push(`min ${s.min}`));
  if (to < current && s.minAvailable !== undefined) {
    // Disruption budget: the instances left must be able to keep minAvailable ACTIVE (the deployment manager
    // removes instances that are not ACTIVE first); while fewer are ACTIVE, scale-down waits.
    const budget = budgetCount(s.minAvailable, current);
    const active = s.active ?? current;
    if (active < budget) {
      return {
        to: current,
        note: `budget: ${active} ACTIVE, minAvailable ${s.minAvailable} needs ${budget}`,
      };
    }
    if (to < budget) (to = budget, notes.push(`budget minAvailable ${s.minAvailable}`));
  }
  if (to > current && to > capacity) {
    to = Math.max(current, capacity);
    notes.push(`capacity ${capacity} (${rules.maxPerNode} per node)`);
  }
  if (to > current + rules.maxStepUp) {
    (to = current + rules.maxStepUp, notes.push(`step +${rules.maxStepUp}`));
  }
  if (to < current - rules.maxStepDown) {
    to = current - rules.maxStepDown;
    notes.push(`step -${rules.maxStepDown}`);
  }
  if (to === current) return { to, ...(notes.length ? { note: notes.join(", ") } : {}) };
  const outOfBounds = current < s.min || current > s.max;
  if (!outOfBounds && !cooledDown(rules, input.nowMs, history, to > current, wanted.urgent === true)) {
    return { to: current, note: "cooldown" };
  }
  const recent = (history?.changes ?? []).filter((t) => t > input.nowMs - 60_000).length;
  if (!outOfBounds && recent >= rules.maxChangesPerMinute) return { to: current, note: "rate limit" };
  return { to, ...(notes.length ? { note: notes.join(", ") } : {}) };
}

function cooledDown(
  rules: ControllerRules,
  nowMs: number,
  history: ControllerSliceState | undefined,
  up: boolean,
  urgent: boolean,
): boolean {
  if (!history) return true;
  const lastChange = Math.max(history.lastUpAt ?? -Infinity, history.lastDownAt ?? -Infinity);
  if (up) return urgent || history.lastUpAt === undefined || nowMs - history.lastUpAt >= rules.upCooldownMs;
  return nowMs - lastChange >= rules.downCooldownMs;
}

function decisionInputs(
  rules: ControllerRules,
  s: SliceObservation,
  panic: WindowSummary,
  stable: WindowSummary,
  forecastDemand: number | undefined,
): Record<string, number> {
  const inputs: Record<string, number> = {
    instances: s.instances,
    active: s.active,
    min: s.min,
    max: s.max,
    inFlight: round(s.inFlight),
    requestsPerSecond: round(s.requestsPerSecond),
    panicDemand: round(panic.meanDemand),
    stableDemand: round(stable.meanDemand),
    objectiveMs: objectiveOf(rules, s.slice),
  };
  if (s.p95Ms !== undefined) inputs.p95Ms = round(s.p95Ms);
  if (s.cpu !== undefined) inputs.cpu = round(s.cpu);
  if (forecastDemand !== undefined) inputs.forecastDemand = round(forecastDemand);
  if (s.forecast) inputs.forecastRequestsPerSecond = round(s.forecast.requestsPerSecond);
  return inputs;
}

function nextState(
  state: ControllerState,
  rules: ControllerRules,
  input: ControllerInput,
  decisions: readonly ControllerDecision[],
  seen: Set<string>,
): ControllerState {
  const slices: Record<string, ControllerSliceState> = {};
  for (const [slice, history] of Object.entries(state.slices)) if (seen.has(slice)) slices[slice] = history;
  for (const d of decisions) {
    const previous = slices[d.slice] ?? { changes: [] };
    const changes = [...previous.changes.filter((t) => t > input.nowMs - 60_000), input.nowMs]
      .slice(-rules.maxChangesPerMinute);
    slices[d.slice] = d.to > d.from
      ? { ...previous, lastUpAt: input.nowMs, changes }
      : { ...previous, lastDownAt: input.nowMs, changes };
  }
  return {
    ...state,
    slices,
    decisions: [...state.decisions, ...decisions].slice(-MAX_STORED_DECISIONS),
    updatedAt: input.nowMs,
  };
}

function fmt(n: number): string {
  return String(round(n));
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function seconds(ms: number): string {
  return `${round(ms / 1000)}s`;
}
