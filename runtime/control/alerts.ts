/**
 * Alerts: the rules in `thresholds/{name}` (runtime/model/thresholds.ts) evaluated over the cluster picture.
 *
 * - `stepAlert` is the state machine of one alert, pure: inactive → pending when the condition starts to
 *   hold, pending → firing once it held for the rule's `forMs`, pending → inactive ("cleared") when it stops
 *   before that, firing → inactive ("resolved") when it stops. A condition that flaps faster than `forMs`
 *   never fires: each return to pending starts the wait again.
 * - `AlertEvaluator` turns rules and an `AlertSeries` (the measured values: a small lookup interface, so the
 *   evaluator runs over any source — the metrics feature's snapshot in a node, literals in tests) into alerts
 *   and their transitions, once per tick. Rates and quantiles over a rule's window come from cumulative
 *   counters sampled at most WINDOW_SAMPLES times per window (a fixed memory bound per rule).
 *
 * A rule about every node (`cpu of nodes > 90%`) is one alert per node (`rule/node`); any other rule is one
 * alert (`rule`). Missing data (no calls in the window, an unknown slice, a stale or gone node) counts as "the
 * condition does not hold", except that a pending or firing alert keeps its state through NO_DATA_GRACE_MS of
 * missing data (a node's metrics stale for a few seconds on a loaded machine must not resolve and re-fire it).
 */

import {
  emptyHistogram,
  type HistogramData,
  histogramDelta,
  histogramQuantileMs,
  mergeHistogramInto,
} from "../core/mod.ts";
import {
  type AlertRuleRecord,
  type AlertSeverity,
  DEFAULT_ALERT_WINDOW_MS,
  expressionOf,
  MAX_ALERT_RULES,
} from "../model/mod.ts";

export type AlertState = "inactive" | "pending" | "firing";
export type AlertTransition = "pending" | "firing" | "resolved" | "cleared";

/** One alert's state between ticks. */
export interface AlertStatus {
  state: AlertState;
  /** When the condition started to hold (pending and firing). */
  activeSince?: number;
  firedAt?: number;
}

export const INACTIVE: AlertStatus = Object.freeze({ state: "inactive" });

/**
 * One tick of one alert: whether its condition holds now, at `nowMs`, for a rule that must hold `forMs`.
 * Returns the next status and the transitions taken (pending and firing together when `forMs` is 0).
 */
export function stepAlert(
  status: AlertStatus,
  holds: boolean,
  nowMs: number,
  forMs: number,
): { next: AlertStatus; transitions: AlertTransition[] } {
  if (!holds) {
    if (status.state === "pending") return { next: INACTIVE, transitions: ["cleared"] };
    if (status.state === "firing") return { next: INACTIVE, transitions: ["resolved"] };
    return { next: status, transitions: [] };
  }
  if (status.state === "firing") return { next: status, transitions: [] };
  const transitions: AlertTransition[] = [];
  const activeSince = status.state === "pending" ? status.activeSince! : nowMs;
  if (status.state === "inactive") transitions.push("pending");
  if (nowMs - activeSince >= forMs) {
    transitions.push("firing");
    return { next: { state: "firing", activeSince, firedAt: nowMs }, transitions };
  }
  return { next: status.state === "pending" ? status : { state: "pending", activeSince }, transitions };
}

// ------------------------------------------------------------------------------------------- the inputs

/** Cumulative counters of a slice (one method or all), summed over its versions and the live nodes. */
export interface SliceCounters {
  latency: HistogramData;
  calls: number;
  errors: number;
}

/** What the evaluator reads: the measured values (see the file header). */
export interface AlertSeries {
  /** Undefined when nothing is known of the slice (no calls ever, or no metrics yet). */
  sliceCounters(slice: string, method: string | undefined): SliceCounters | undefined;
  /** The latest figures of every live (not stale) node. */
  nodes(): { node: string; cpuShare: number; rssBytes: number }[];
  /** ACTIVE instances of a slice and its target's count; undefined without a target. */
  instances(slice: string): { active: number; desired: number } | undefined;
}

// ---------------------------------------------------------------------------------------------- alerts

/** An alert as the evaluator, the API and the events show it. */
export interface AlertView {
  /** `rule` or `rule/node`. */
  id: string;
  rule: string;
  /** Present for per-node alerts. */
  node?: string;
  state: "pending" | "firing";
  expr: string;
  /** The measured value at the last tick (undefined without data). */
  value?: number;
  threshold: number;
  severity: AlertSeverity;
  summary?: string;
  activeSince: number;
  firedAt?: number;
  forMs: number;
}

export interface AlertChange {
  transition: AlertTransition;
  alert: AlertView;
  /** When the transition happened. */
  atMs: number;
}

/** How long a pending or firing alert keeps its state without data before that counts as "does not hold". */
export const NO_DATA_GRACE_MS = 10_000;

/** Samples of cumulative counters kept per rule window (so a window of 1 h is sampled every minute). */
export const WINDOW_SAMPLES = 60;

interface CounterSample {
  atMs: number;
  counters: SliceCounters;
}

/** A rule's counters over time, at most WINDOW_SAMPLES + 1 samples. */
class CounterWindow {
  readonly #samples: CounterSample[] = [];
  constructor(readonly windowMs: number) {}

  /** Adds the current counters and answers the change over the window (undefined until two samples). */
  delta(nowMs: number, counters: SliceCounters): SliceCounters | undefined {
    const every = this.windowMs / WINDOW_SAMPLES;
    const last = this.#samples.at(-1);
    if (!last || nowMs - last.atMs >= every) this.#samples.push({ atMs: nowMs, counters: copy(counters) });
    while (this.#samples.length > 1 && nowMs - this.#samples[1].atMs >= this.windowMs) this.#samples.shift();
    const then = this.#samples[0];
    if (then.atMs === nowMs && this.#samples.length === 1) return undefined;
    // A node restart resets its counters: then the counters now are the change since.
    if (counters.calls < then.counters.calls) return counters;
    return {
      latency: histogramDelta(counters.latency, then.counters.latency),
      calls: counters.calls - then.counters.calls,
      errors: Math.max(0, counters.errors - then.counters.errors),
    };
  }
}

function copy(counters: SliceCounters): SliceCounters {
  return {
    latency: mergeHistogramInto(emptyHistogram(), counters.latency),
    calls: counters.calls,
    errors: counters.errors,
  };
}

function compare(value: number, op: AlertRuleRecord["op"], threshold: number): boolean {
  switch (op) {
    case ">":
      return value > threshold;
    case ">=":
      return value >= threshold;
    case "<":
      return value < threshold;
    case "<=":
      return value <= threshold;
  }
}

/** One measured value of a rule: per node for node rules without a node, else one. */
interface Measured {
  id: string;
  node?: string;
  value: number | undefined;
  threshold: number;
}

/** Evaluates every rule once per tick and keeps each alert's state (see the file header). */
export class AlertEvaluator {
  readonly #status = new Map<string, AlertStatus & { view?: AlertView }>();
  /** When each pending or firing alert last had data (seeded ones: their first evaluation). */
  readonly #lastDataAt = new Map<string, number>();
  readonly #windows = new Map<string, { key: string; window: CounterWindow }>();

  /**
   * Takes over alerts another leader had (from the events every node keeps), so a change of leader neither
   * fires an alert again nor forgets one that is firing.
   */
  seed(alerts: readonly AlertView[]): void {
    for (const alert of alerts) {
      this.#lastDataAt.delete(alert.id);
      this.#status.set(alert.id, {
        state: alert.state,
        activeSince: alert.activeSince,
        ...(alert.firedAt === undefined ? {} : { firedAt: alert.firedAt }),
        view: alert,
      });
    }
  }

  /** The alerts pending or firing now. */
  alerts(): AlertView[] {
    return [...this.#status.values()].flatMap((s) => (s.view && s.state !== "inactive" ? [s.view] : []));
  }

  /** One tick: every rule measured and stepped; the transitions taken, in rule order. */
  evaluate(rules: ReadonlyMap<string, AlertRuleRecord>, series: AlertSeries, nowMs: number): AlertChange[] {
    const changes: AlertChange[] = [];
    const seen = new Set<string>();
    let count = 0;
    for (const [name, rule] of [...rules].sort(([a], [b]) => a.localeCompare(b))) {
      if (++count > MAX_ALERT_RULES) break;
      for (const measured of this.#measure(name, rule, series, nowMs)) {
        seen.add(measured.id);
        changes.push(...this.#step(name, rule, measured, nowMs));
      }
    }
    // Alerts whose rule is gone stop at once; those whose node is gone after the no-data grace: a firing one
    // resolves, a pending one clears.
    for (const [id, status] of this.#status) {
      if (seen.has(id)) continue;
      if (status.view && rules.has(status.view.rule) && this.#withinGrace(id, nowMs)) continue;
      this.#lastDataAt.delete(id);
      if (status.view && status.state !== "inactive") {
        changes.push({
          transition: status.state === "firing" ? "resolved" : "cleared",
          alert: status.view,
          atMs: nowMs,
        });
      }
      this.#status.delete(id);
    }
    for (const name of this.#windows.keys()) if (!rules.has(name)) this.#windows.delete(name);
    return changes;
  }

  /** Whether an alert without data now had data within NO_DATA_GRACE_MS (a seeded one: from now on). */
  #withinGrace(id: string, nowMs: number): boolean {
    if (!this.#lastDataAt.has(id)) this.#lastDataAt.set(id, nowMs);
    return nowMs - this.#lastDataAt.get(id)! < NO_DATA_GRACE_MS;
  }

  #step(name: string, rule: AlertRuleRecord, measured: Measured, nowMs: number): AlertChange[] {
    const status = this.#status.get(measured.id) ?? INACTIVE;
    if (
      measured.value === undefined && status.state !== "inactive" && this.#withinGrace(measured.id, nowMs)
    ) {
      return [];
    }
    if (measured.value !== undefined) this.#lastDataAt.set(measured.id, nowMs);
    const holds = measured.value !== undefined && compare(measured.value, rule.op, measured.threshold);
    const { next, transitions } = stepAlert(status, holds, nowMs, rule.forMs);
    const view = this.#view(name, rule, measured, next.state === "inactive" ? status : next);
    if (next.state === "inactive") {
      this.#status.delete(measured.id);
      this.#lastDataAt.delete(measured.id);
    } else this.#status.set(measured.id, { ...next, view });
    return transitions.map((transition) => ({ transition, alert: view, atMs: nowMs }));
  }

  #view(name: string, rule: AlertRuleRecord, measured: Measured, status: AlertStatus): AlertView {
    const view: AlertView = {
      id: measured.id,
      rule: name,
      state: status.state === "firing" ? "firing" : "pending",
      expr: expressionOf(rule),
      threshold: measured.threshold,
      severity: rule.severity,
      activeSince: status.activeSince ?? 0,
      forMs: rule.forMs,
    };
    if (measured.node !== undefined) view.node = measured.node;
    if (measured.value !== undefined) view.value = measured.value;
    if (rule.summary !== undefined) view.summary = rule.summary;
    if (status.firedAt !== undefined) view.firedAt = status.firedAt;
    return view;
  }

  #measure(name: string, rule: AlertRuleRecord, series: AlertSeries, nowMs: number): Measured[] {
    const threshold = typeof rule.threshold === "number" ? rule.threshold : 0;
    switch (rule.metric) {
      case "latency":
      case "error_rate": {
        const delta = this.#windowed(name, rule, series, nowMs);
        const value = delta === undefined || delta.calls === 0
          ? undefined
          : rule.metric === "error_rate"
          ? delta.errors / delta.calls
          : histogramQuantileMs(delta.latency, rule.quantile ?? 0.99);
        return [{ id: name, value, threshold }];
      }
      case "node_cpu":
      case "node_memory": {
        const nodes = series.nodes().filter((n) => rule.node === undefined || n.node === rule.node);
        const valueOf = (n: { cpuShare: number; rssBytes: number }) =>
          rule.metric === "node_cpu" ? n.cpuShare : n.rssBytes;
        if (rule.node !== undefined) {
          return [{ id: name, node: rule.node, value: nodes[0] && valueOf(nodes[0]), threshold }];
        }
        return nodes.map((n) => ({ id: `${name}/${n.node}`, node: n.node, value: valueOf(n), threshold }));
      }
      case "instances_active": {
        const counts = series.instances(rule.slice!);
        if (!counts) return [{ id: name, value: undefined, threshold }];
        return [{
          id: name,
          value: counts.active,
          threshold: rule.threshold === "desired" ? counts.desired : threshold,
        }];
      }
    }
  }

  /** The rule's counters' change over its window (a new window when the rule's scope or window changed). */
  #windowed(
    name: string,
    rule: AlertRuleRecord,
    series: AlertSeries,
    nowMs: number,
  ): SliceCounters | undefined {
    const windowMs = rule.windowMs ?? DEFAULT_ALERT_WINDOW_MS;
    const key = `${rule.slice}/${rule.method ?? ""}/${windowMs}`;
    let entry = this.#windows.get(name);
    if (!entry || entry.key !== key) {
      entry = { key, window: new CounterWindow(windowMs) };
      this.#windows.set(name, entry);
    }
    const counters = series.sliceCounters(rule.slice!, rule.method);
    return counters === undefined ? undefined : entry.window.delta(nowMs, counters);
  }
}
