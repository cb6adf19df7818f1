/**
 * The rollout's analysis input: cumulative call counters of one slice version over the cluster, and the window
 * a step measures (what happened since the first reading taken in that step).
 *
 * `RolloutMetrics` is deliberately small so the reducer and its tests do not depend on the metrics feature;
 * `snapshotMetrics` adapts the metrics feature's cluster snapshot (runtime/metrics, `MetricsView`).
 */

import { emptyHistogram, histogramDelta, mergeHistogramInto } from "../core/mod.ts";
import type { ClusterSnapshot } from "../metrics/mod.ts";
import type { WindowStats } from "./rollout.ts";

/** Cumulative (since each node started) calls, errors and latency of one slice version over the cluster. */
export interface RolloutMetrics {
  counters(slice: string, version: string): WindowStats | undefined;
}

/** Sums every method of `slice:version` in the leader's latest cluster snapshot. */
export function snapshotMetrics(snapshot: () => ClusterSnapshot | undefined): RolloutMetrics {
  return {
    counters(slice, version) {
      const merged = snapshot()?.slices.find((s) => s.artifact === slice && s.version === version);
      if (!merged) return snapshot() ? { calls: 0, errors: 0, latency: emptyHistogram() } : undefined;
      const total: WindowStats = { calls: 0, errors: 0, latency: emptyHistogram() };
      for (const m of merged.methods) {
        total.calls += m.calls;
        total.errors += Object.values(m.errors).reduce((a, b) => a + b, 0);
        mergeHistogramInto(total.latency, m.latency);
      }
      return total;
    },
  };
}

/**
 * Windows per slice: the baseline is the first reading taken in a step (keyed by the step's start), so a
 * window covers what happened since then. A new leader starts its windows from its own first reading.
 */
export class RolloutWindows {
  readonly #baselines = new Map<string, { stepKey: string; byVersion: Map<string, WindowStats> }>();

  constructor(private readonly metrics: RolloutMetrics | undefined) {}

  /** What `version` did since the first reading of step `stepKey` (undefined without metrics). */
  window(slice: string, stepKey: string, version: string): WindowStats | undefined {
    const now = this.metrics?.counters(slice, version);
    if (!now) return undefined;
    let entry = this.#baselines.get(slice);
    if (!entry || entry.stepKey !== stepKey) {
      entry = { stepKey, byVersion: new Map() };
      this.#baselines.set(slice, entry);
    }
    const base = entry.byVersion.get(version);
    if (!base) {
      entry.byVersion.set(version, structuredClone(now));
      return { calls: 0, errors: 0, latency: emptyHistogram() };
    }
    return {
      calls: Math.max(0, now.calls - base.calls),
      errors: Math.max(0, now.errors - base.errors),
      latency: histogramDelta(now.latency, base.latency),
    };
  }

  /** Forgets slices without an unfinished rollout (bounded by the number of slices). */
  retain(slices: ReadonlySet<string>): void {
    for (const slice of this.#baselines.keys()) if (!slices.has(slice)) this.#baselines.delete(slice);
  }
}
