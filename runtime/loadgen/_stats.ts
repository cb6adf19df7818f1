/** Latency samples and percentiles for the load generator. */

export interface LatencySummary {
  /** How many samples the figures are over. */
  count: number;
  minMs: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * The nearest-rank percentile of sorted samples: the smallest sample with at least `p` % of the samples at or
 * below it. Every reported figure is a latency that was actually measured.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

/** A growable array of latencies in milliseconds. */
export class Samples {
  #values = new Float64Array(1024);
  #count = 0;
  #sum = 0;

  get count(): number {
    return this.#count;
  }

  add(valueMs: number): void {
    if (this.#count === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#count++] = valueMs;
    this.#sum += valueMs;
  }

  summary(): LatencySummary {
    const sorted = this.#values.slice(0, this.#count).sort();
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    return {
      count: this.#count,
      minMs: round(sorted[0] ?? 0),
      meanMs: round(this.#count === 0 ? 0 : this.#sum / this.#count),
      p50Ms: round(percentile(sorted, 50)),
      p90Ms: round(percentile(sorted, 90)),
      p95Ms: round(percentile(sorted, 95)),
      p99Ms: round(percentile(sorted, 99)),
      maxMs: round(sorted[this.#count - 1] ?? 0),
    };
  }
}
