/**
 * The history window every node keeps: 2 hours of named series, full resolution (1 s) for the last 15
 * minutes, then 10 s points back to 2 hours.
 *
 * All series share one time axis (the node records every series once a second), so a series costs only its
 * values: 900 fine + 720 coarse 32-bit floats (6,480 bytes); the timestamps are kept once. A coarse
 * point is the mean of its ten seconds, except for quantile series (`p50:`, `p95:`, `p99:`), where it is the
 * highest (a mean of p99s means nothing; the worst second is what an operator looks for).
 *
 * Memory bound: at most `maxSeries` series (default MAX_HISTORY_SERIES = 5,000, so 5,000 × 6,480 bytes ≈
 * 32.4 MB); a new series beyond it is not kept and counted in `stats().refusedSeries`. A series with no
 * value for the whole window is dropped, which makes room for new ones.
 */

import { AetherError } from "../core/mod.ts";
import type { HistoryAnswer, HistoryQuery } from "./types.ts";

export const FINE_SECONDS = 15 * 60;
export const COARSE_STEP_SECONDS = 10;
export const WINDOW_SECONDS = 2 * 60 * 60;
const FINE_POINTS = FINE_SECONDS;
/** Coarse points span the whole window (the last 15 minutes are also kept at full resolution). */
const COARSE_POINTS = WINDOW_SECONDS / COARSE_STEP_SECONDS;
export const MAX_HISTORY_SERIES = 5_000;
/** Bytes one series takes: its values (the shared time axis and the accumulators are not counted). */
export const BYTES_PER_SERIES = (FINE_POINTS + COARSE_POINTS) * Float32Array.BYTES_PER_ELEMENT;
/** Series one query may name, and points it may answer per series. */
export const MAX_QUERY_SERIES = 200;
export const MAX_QUERY_POINTS = 7_200;

interface Series {
  fine: Float32Array;
  coarse: Float32Array;
  /** The open coarse slot's running sum, count and maximum. */
  sum: number;
  count: number;
  max: number;
  takesMax: boolean;
  /** Last epoch second it had a value. */
  lastSecond: number;
}

export interface HistoryStats {
  series: number;
  maxSeries: number;
  refusedSeries: number;
  /** The series' values: series × BYTES_PER_SERIES. */
  bytes: number;
}

export class MetricsHistory {
  readonly maxSeries: number;
  readonly #series = new Map<string, Series>();
  /** The epoch second the newest fine point is for (-1 before the first record). */
  #second = -1;
  /** The epoch second (multiple of COARSE_STEP_SECONDS) the open coarse slot starts at. */
  #coarseOpen = -1;
  #refused = 0;

  constructor(options: { maxSeries?: number } = {}) {
    this.maxSeries = options.maxSeries ?? MAX_HISTORY_SERIES;
  }

  /**
   * Records one value per series for epoch second `second` (a second already recorded or older is ignored;
   * seconds skipped stay empty). Values not finite are left empty.
   */
  record(second: number, values: ReadonlyMap<string, number>): void {
    if (!Number.isSafeInteger(second) || second <= this.#second) return;
    // Every skipped second's fine slot, for every series, reads empty.
    const first = this.#second < 0 ? second : this.#second + 1;
    for (let s = Math.max(first, second - FINE_POINTS + 1); s <= second; s++) {
      this.#closeCoarseIfDue(s);
      const slot = s % FINE_POINTS;
      for (const series of this.#series.values()) series.fine[slot] = NaN;
    }
    this.#second = second;
    const slot = second % FINE_POINTS;
    for (const [name, value] of values) {
      if (!Number.isFinite(value)) continue;
      const series = this.#seriesFor(name);
      if (!series) continue;
      series.fine[slot] = value;
      series.sum += value;
      series.count++;
      if (value > series.max) series.max = value;
      series.lastSecond = second;
    }
    this.#dropSilent(second);
  }

  stats(): HistoryStats {
    return {
      series: this.#series.size,
      maxSeries: this.maxSeries,
      refusedSeries: this.#refused,
      bytes: this.#series.size * BYTES_PER_SERIES,
    };
  }

  names(): string[] {
    return [...this.#series.keys()].sort();
  }

  /** Points of the named series between `fromMs` and `toMs` at `stepSeconds`. */
  query(query: HistoryQuery, nowMs: number): HistoryAnswer {
    const names = query.series.length === 0 ? this.names().slice(0, MAX_QUERY_SERIES) : [...query.series];
    if (names.length > MAX_QUERY_SERIES) {
      throw new AetherError(
        "bad_request",
        `series: at most ${MAX_QUERY_SERIES} per query, got ${names.length}`,
      );
    }
    const toMs = query.toMs ?? nowMs;
    const fromMs = query.fromMs ?? toMs - FINE_SECONDS * 1000;
    if (!(Number.isFinite(fromMs) && Number.isFinite(toMs) && fromMs <= toMs)) {
      throw new AetherError("bad_request", `from must be a time before to (got from ${fromMs}, to ${toMs})`);
    }
    const fineFromMs = (this.#second - FINE_POINTS + 1) * 1000;
    const finest = fromMs >= fineFromMs ? 1 : COARSE_STEP_SECONDS;
    const step = query.stepSeconds ?? finest;
    if (!(Number.isSafeInteger(step) && step >= 1 && step <= WINDOW_SECONDS)) {
      throw new AetherError(
        "bad_request",
        `step must be a whole number of seconds from 1 to ${WINDOW_SECONDS}`,
      );
    }
    if (step < finest || step % finest !== 0) {
      throw new AetherError(
        "bad_request",
        `step ${step} s: data older than ${FINE_SECONDS / 60} minutes is kept at ${COARSE_STEP_SECONDS} s, ` +
          `so a range starting there needs a step that is a multiple of ${COARSE_STEP_SECONDS}`,
      );
    }
    const startSecond = Math.ceil(fromMs / 1000 / step) * step;
    const endSecond = Math.floor(toMs / 1000);
    const points = Math.max(0, Math.floor((endSecond - startSecond) / step) + 1);
    if (points > MAX_QUERY_POINTS) {
      throw new AetherError(
        "bad_request",
        `the range holds ${points} points of ${step} s; at most ${MAX_QUERY_POINTS}: use a larger step`,
      );
    }
    return {
      fromMs: startSecond * 1000,
      toMs: endSecond * 1000,
      stepSeconds: step,
      series: names.map((name) => ({ name, points: this.#points(name, startSecond, points, step, finest) })),
    };
  }

  #points(
    name: string,
    startSecond: number,
    count: number,
    step: number,
    finest: number,
  ): [number, number | null][] {
    const series = this.#series.get(name);
    const out: [number, number | null][] = [];
    for (let i = 0; i < count; i++) {
      const at = startSecond + i * step;
      let value: number | null = null;
      if (series) {
        let sum = 0;
        let n = 0;
        let max = -Infinity;
        for (let s = at; s < at + step; s += finest) {
          const v = this.#valueAt(series, s, finest);
          if (v === undefined) continue;
          sum += v;
          n++;
          if (v > max) max = v;
        }
        if (n > 0) value = series.takesMax ? max : sum / n;
      }
      out.push([at * 1000, value]);
    }
    return out;
  }

  /** The value of second `s` (fine) or of the coarse slot starting at `s`. */
  #valueAt(series: Series, s: number, resolution: number): number | undefined {
    if (s > this.#second) return undefined;
    if (resolution === 1 && s > this.#second - FINE_POINTS) {
      const v = series.fine[s % FINE_POINTS];
      return Number.isNaN(v) ? undefined : v;
    }
    const slot = Math.floor(s / COARSE_STEP_SECONDS);
    const newestClosed = Math.floor(this.#coarseOpen / COARSE_STEP_SECONDS) - 1;
    if (slot > newestClosed || slot <= newestClosed - COARSE_POINTS) return undefined;
    const v = series.coarse[slot % COARSE_POINTS];
    return Number.isNaN(v) ? undefined : v;
  }

  /** Closes the open coarse slot when second `s` starts a new one. */
  #closeCoarseIfDue(s: number): void {
    const start = s - (s % COARSE_STEP_SECONDS);
    if (this.#coarseOpen < 0) {
      this.#coarseOpen = start;
      return;
    }
    if (start - this.#coarseOpen > WINDOW_SECONDS) {
      // A gap longer than the window (the machine slept): nothing in the coarse ring is current any more.
      for (const series of this.#series.values()) {
        series.coarse.fill(NaN);
        series.sum = 0;
        series.count = 0;
        series.max = -Infinity;
      }
      this.#coarseOpen = start;
      return;
    }
    while (this.#coarseOpen < start) {
      const slot = Math.floor(this.#coarseOpen / COARSE_STEP_SECONDS) % COARSE_POINTS;
      for (const series of this.#series.values()) {
        series.coarse[slot] = series.count === 0
          ? NaN
          : series.takesMax
          ? series.max
          : series.sum / series.count;
        series.sum = 0;
        series.count = 0;
        series.max = -Infinity;
      }
      this.#coarseOpen += COARSE_STEP_SECONDS;
    }
  }

  #seriesFor(name: string): Series | undefined {
    let series = this.#series.get(name);
    if (series) return series;
    if (this.#series.size >= this.maxSeries) {
      this.#refused++;
      return undefined;
    }
    series = {
      fine: new Float32Array(FINE_POINTS).fill(NaN),
      coarse: new Float32Array(COARSE_POINTS).fill(NaN),
      sum: 0,
      count: 0,
      max: -Infinity,
      takesMax: /^p\d+:/.test(name),
      lastSecond: -1,
    };
    this.#series.set(name, series);
    return series;
  }

  /** Drops series without a value for the whole window (checked once a minute). */
  #dropSilent(second: number): void {
    if (second % 60 !== 0) return;
    for (const [name, series] of this.#series) {
      if (second - series.lastSecond >= WINDOW_SECONDS) this.#series.delete(name);
    }
  }
}
