/**
 * Metric recording primitives, low enough in the layers that the invoker, the HTTP router and the node can
 * record into them on their hot paths (runtime/metrics collects, ships and serves what they hold).
 *
 * - Latency histograms have FIXED bucket bounds (`LATENCY_BOUNDS_MS`), the same on every node and instance,
 *   so histograms from many instances and nodes merge exactly by adding bucket counts (never by averaging
 *   percentiles). Quantiles are read the way Prometheus's `histogram_quantile` reads them (linear within the
 *   bucket), so the JSON API and PromQL agree.
 * - Counters only grow while a node lives (a consumer computes rates from two readings).
 * - Every table callers can grow (slice methods, HTTP routes) has a named bound; series beyond it are
 *   counted in one overflow series, so a flood of distinct names cannot grow a node's memory.
 */

/**
 * Upper bounds of the latency buckets in milliseconds; a last bucket (+Inf) follows. Roughly 1-2-3-5 steps
 * from 0.25 ms to 60 s: a p99 read from them is within one bucket (at most ~50% of its value) of the truth.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = Object.freeze([
  0.25,
  0.5,
  1,
  2,
  3,
  5,
  7.5,
  10,
  15,
  20,
  30,
  50,
  75,
  100,
  150,
  200,
  300,
  500,
  750,
  1_000,
  1_500,
  2_500,
  5_000,
  10_000,
  30_000,
  60_000,
]);

/** Buckets of a histogram: one per bound plus the +Inf bucket. */
export const LATENCY_BUCKETS = LATENCY_BOUNDS_MS.length + 1;

/** A histogram as data: per-bucket (not cumulative) counts, their sum in ms and total count. */
export interface HistogramData {
  /** `LATENCY_BUCKETS` counts; `counts[i]` holds values in (bound[i-1], bound[i]], the last one > 60 s. */
  counts: number[];
  sumMs: number;
  count: number;
}

/** The bucket a latency falls in (binary search over the fixed bounds). */
export function bucketIndex(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BOUNDS_MS.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ms <= LATENCY_BOUNDS_MS[mid]) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function emptyHistogram(): HistogramData {
  return { counts: new Array(LATENCY_BUCKETS).fill(0), sumMs: 0, count: 0 };
}

/** A live latency histogram (fixed buckets). */
export class LatencyHistogram {
  readonly counts: number[] = new Array(LATENCY_BUCKETS).fill(0);
  sumMs = 0;
  count = 0;

  observe(ms: number): void {
    const value = ms > 0 ? ms : 0;
    this.counts[bucketIndex(value)]++;
    this.sumMs += value;
    this.count++;
  }

  data(): HistogramData {
    return { counts: this.counts.slice(), sumMs: this.sumMs, count: this.count };
  }
}

/** Adds `source` into `target` (exact: bucket counts add). */
export function mergeHistogramInto(target: HistogramData, source: HistogramData): HistogramData {
  for (let i = 0; i < LATENCY_BUCKETS; i++) target.counts[i] += source.counts[i] ?? 0;
  target.sumMs += source.sumMs;
  target.count += source.count;
  return target;
}

/** What was observed between two readings of one histogram (`then` older); negative counts clamp to 0. */
export function histogramDelta(now: HistogramData, then: HistogramData | undefined): HistogramData {
  if (!then) return { counts: now.counts.slice(), sumMs: now.sumMs, count: now.count };
  const counts = now.counts.map((c, i) => Math.max(0, c - (then.counts[i] ?? 0)));
  return { counts, sumMs: Math.max(0, now.sumMs - then.sumMs), count: Math.max(0, now.count - then.count) };
}

/**
 * The q-quantile (0..1) in ms, as Prometheus's `histogram_quantile` computes it: find the bucket where the
 * cumulative count reaches q × count and interpolate linearly inside it (from 0 for the first bucket); a
 * quantile in the +Inf bucket answers the highest finite bound. Undefined for an empty histogram.
 */
export function histogramQuantileMs(h: HistogramData, q: number): number | undefined {
  if (h.count <= 0) return undefined;
  const rank = Math.min(1, Math.max(0, q)) * h.count;
  let cumulative = 0;
  for (let i = 0; i < LATENCY_BUCKETS; i++) {
    const inBucket = h.counts[i];
    if (cumulative + inBucket >= rank && inBucket > 0) {
      if (i === LATENCY_BOUNDS_MS.length) return LATENCY_BOUNDS_MS[i - 1];
      const lower = i === 0 ? 0 : LATENCY_BOUNDS_MS[i - 1];
      const upper = LATENCY_BOUNDS_MS[i];
      return lower + (upper - lower) * ((rank - cumulative) / inBucket);
    }
    cumulative += inBucket;
  }
  return LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.length - 1];
}

/** Calls, errors by kind, in-flight and latency of one slice method on one node (one artifact version). */
export class MethodSeries {
  calls = 0;
  inFlight = 0;
  readonly errors = new Map<string, number>();
  readonly latency = new LatencyHistogram();

  constructor(readonly coordinates: string, readonly method: string) {}

  /** One call ended after `ms`; `errorKind` when it failed (the slice's error, or the runtime's kind). */
  end(ms: number, errorKind?: string): void {
    this.inFlight--;
    this.calls++;
    this.latency.observe(ms);
    if (errorKind !== undefined) this.errors.set(errorKind, (this.errors.get(errorKind) ?? 0) + 1);
  }
}

/** Requests of one HTTP route by status class and their latency. */
export class RouteSeries {
  /** Requests by status class: index 1 = 1xx ... 5 = 5xx (0 unused). */
  readonly byClass = [0, 0, 0, 0, 0, 0];
  readonly latency = new LatencyHistogram();

  constructor(readonly httpMethod: string, readonly route: string) {}

  record(status: number, ms: number): void {
    const cls = Math.floor(status / 100);
    this.byClass[cls >= 1 && cls <= 5 ? cls : 5]++;
    this.latency.observe(ms);
  }
}

/** Series kept per node at most (slice version × method); beyond, calls count in the overflow series. */
export const MAX_METHOD_SERIES = 5_000;
/** HTTP route series kept per node at most; beyond, requests count in the overflow series. */
export const MAX_ROUTE_SERIES = 2_000;
/** The series that takes what exceeds a bound (its coordinates, method or route read `_other`). */
export const OVERFLOW_SERIES = "_other";
/** The route label of requests no route matched (never the raw path: labels stay bounded). */
export const UNMATCHED_ROUTE = "_unmatched";

/**
 * The node's recording tables: slice method calls (recorded where a call runs: the node hosting the
 * instance) and HTTP routes (recorded by the application router). One per node, shared by the recorders.
 */
export class MetricsRecorder {
  readonly #methods = new Map<string, Map<string, MethodSeries>>();
  #methodCount = 0;
  #overflow?: MethodSeries;
  readonly #routes = new Map<string, RouteSeries>();

  constructor(
    readonly limits: { maxMethodSeries: number; maxRouteSeries: number } = {
      maxMethodSeries: MAX_METHOD_SERIES,
      maxRouteSeries: MAX_ROUTE_SERIES,
    },
  ) {}

  /** A call of `method` on an instance of `coordinates` (`group:artifact:version`) starts: in-flight + 1. */
  begin(coordinates: string, method: string): MethodSeries {
    // Two levels of maps: no key string is built per call.
    let byMethod = this.#methods.get(coordinates);
    if (byMethod === undefined) {
      if (this.#methodCount >= this.limits.maxMethodSeries) return this.#overflowMethod();
      byMethod = new Map();
      this.#methods.set(coordinates, byMethod);
    }
    let series = byMethod.get(method);
    if (series === undefined) {
      if (this.#methodCount >= this.limits.maxMethodSeries) return this.#overflowMethod();
      series = new MethodSeries(coordinates, method);
      byMethod.set(method, series);
      this.#methodCount++;
    }
    series.inFlight++;
    return series;
  }

  /** The series of an HTTP route template (`UNMATCHED_ROUTE` when none matched). */
  route(httpMethod: string, route: string): RouteSeries {
    const key = `${httpMethod} ${route}`;
    let series = this.#routes.get(key);
    if (series === undefined) {
      if (this.#routes.size >= this.limits.maxRouteSeries) {
        const overflow = `${OVERFLOW_SERIES} ${OVERFLOW_SERIES}`;
        series = this.#routes.get(overflow) ?? new RouteSeries(OVERFLOW_SERIES, OVERFLOW_SERIES);
        this.#routes.set(overflow, series);
        return series;
      }
      series = new RouteSeries(httpMethod, route);
      this.#routes.set(key, series);
    }
    return series;
  }

  *methods(): IterableIterator<MethodSeries> {
    for (const byMethod of this.#methods.values()) yield* byMethod.values();
    if (this.#overflow) yield this.#overflow;
  }

  routes(): IterableIterator<RouteSeries> {
    return this.#routes.values();
  }

  #overflowMethod(): MethodSeries {
    this.#overflow ??= new MethodSeries(OVERFLOW_SERIES, OVERFLOW_SERIES);
    this.#overflow.inFlight++;
    return this.#overflow;
  }
}
