import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  BYTES_PER_SERIES,
  COARSE_STEP_SECONDS,
  FINE_SECONDS,
  MAX_HISTORY_SERIES,
  MetricsHistory,
  WINDOW_SECONDS,
} from "./history.ts";

const T0 = 1_800_000_000; // an epoch second

Deno.test("history: 1 s points for 15 minutes, then 10 s means (quantile series keep the max) back to 2 h", () => {
  const h = new MetricsHistory();
  // Two hours and a bit: rate = the second's offset, p99 = 100 except a spike of 900 every 10th second.
  const end = T0 + WINDOW_SECONDS + 300;
  for (let s = T0; s <= end; s++) {
    h.record(s, new Map([["calls:x", s - T0], ["p99:x", (s - T0) % 10 === 3 ? 900 : 100]]));
  }
  const nowMs = end * 1000 + 500;
  const fine = h.query({ series: ["calls:x"], fromMs: nowMs - 60_000 }, nowMs);
  equal(fine.stepSeconds, 1);
  equal(fine.series[0].points.length, 60, "the seconds from 59.5 s ago to now");
  deepStrictEqual(fine.series[0].points.at(-1), [end * 1000, end - T0]);
  // An hour ago: only 10 s points exist, each the mean of its ten seconds (offsets k..k+9: mean k+4.5).
  const from = (end - 3600) * 1000;
  const coarse = h.query({ series: ["calls:x", "p99:x"], fromMs: from, toMs: from + 60_000 }, nowMs);
  equal(coarse.stepSeconds, COARSE_STEP_SECONDS);
  for (const [at, value] of coarse.series[0].points) equal(value, at / 1000 - T0 + 4.5);
  for (const [, value] of coarse.series[1].points) equal(value, 900, "the worst second of each ten");
  // A step of 60 s over the whole window: 121 points, the oldest ones beyond 2 h empty.
  const all = h.query({ series: ["calls:x"], fromMs: nowMs - WINDOW_SECONDS * 1000, stepSeconds: 60 }, nowMs);
  ok(all.series[0].points.length >= 120);
  const filled = all.series[0].points.filter(([, v]) => v !== null).length;
  ok(filled >= 118, `${filled} of ${all.series[0].points.length} points within the window`);
  // Older than the window: nothing.
  const gone = h.query({
    series: ["calls:x"],
    fromMs: (T0 + 10) * 1000,
    toMs: (T0 + 100) * 1000,
    stepSeconds: 10,
  }, nowMs);
  ok(gone.series[0].points.every(([, v]) => v === null), "data older than 2 h is gone");
});

Deno.test("history: a bad query is a 400 naming what is wrong", () => {
  const h = new MetricsHistory();
  h.record(T0, new Map([["a", 1]]));
  const nowMs = T0 * 1000;
  throws(
    () => h.query({ series: ["a"], fromMs: nowMs, toMs: nowMs - 1 }, nowMs),
    /from must be a time before to/,
  );
  throws(() => h.query({ series: ["a"], stepSeconds: 0 }, nowMs), /step must be/);
  throws(
    () => h.query({ series: ["a"], fromMs: nowMs - 3_600_000, stepSeconds: 15 }, nowMs),
    /multiple of 10/,
  );
  throws(() => h.query({ series: Array.from({ length: 201 }, (_, i) => `s${i}`) }, nowMs), /at most 200/);
  throws(
    () => h.query({ series: ["a"], fromMs: nowMs - 7_000_000, stepSeconds: 1 }, nowMs),
    /multiple of 10|points/,
  );
});

Deno.test("history: the memory bound: series beyond maxSeries are refused and counted, bytes = series × 6,480", () => {
  equal(BYTES_PER_SERIES, (FINE_SECONDS + WINDOW_SECONDS / COARSE_STEP_SECONDS) * 4);
  equal(BYTES_PER_SERIES, 6_480);
  equal(MAX_HISTORY_SERIES * BYTES_PER_SERIES, 32_400_000, "the default bound: 32.4 MB");
  const h = new MetricsHistory({ maxSeries: 50 });
  for (let s = 0; s < 30; s++) {
    h.record(T0 + s, new Map(Array.from({ length: 80 }, (_, i) => [`series-${s}-${i}`, i])));
  }
  const stats = h.stats();
  equal(stats.series, 50);
  equal(stats.refusedSeries, 30 * 80 - 50);
  equal(stats.bytes, 50 * BYTES_PER_SERIES);
  // Measured: the heap grows by about the stated bytes per series (typed arrays are the bulk of it).
  const big = new MetricsHistory({ maxSeries: 2_000 });
  const before = Deno.memoryUsage();
  big.record(T0, new Map(Array.from({ length: 2_000 }, (_, i) => [`calls:g:a:1.0.0/method${i}`, i])));
  const after = Deno.memoryUsage();
  const grew = after.rss + after.external - before.rss - before.external;
  ok(
    grew < 2_000 * BYTES_PER_SERIES * 3,
    `2,000 series took ${grew} bytes (bound ${2_000 * BYTES_PER_SERIES})`,
  );
  // A series silent for the whole window is dropped, making room again.
  h.record(T0 + WINDOW_SECONDS + 60 - ((T0 + WINDOW_SECONDS + 60) % 60), new Map([["fresh", 1]]));
  ok(h.stats().series <= 1, `silent series dropped: ${h.stats().series} left`);
});
