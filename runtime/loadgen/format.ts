/** The load generator's output as text: one live progress line, and the final summary. */

import type { LoadProgress, LoadReport } from "./load.ts";

const ms = (value: number) =>
  `${value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : Math.round(value)}ms`;
const pct = (rate: number) => `${(rate * 100).toFixed(rate === 1 ? 1 : 2)}%`;
/** A rate a second: whole above 10, one decimal below. */
const rate = (perSecond: number) =>
  `${perSecond >= 10 || Number.isInteger(perSecond) ? Math.round(perSecond) : perSecond.toFixed(1)}/s`;
const counts = (c: Record<string, number>) =>
  Object.entries(c).map(([k, v]) => `${k}: ${v}`).join("  ") || "-";

/** One live line: `[  5s] target  200/s  sent 1000  dropped 0  late 0  in-flight 2 | last 1s: 199/s  ok 100.0%  p50 ... */
export function formatProgress(p: LoadProgress): string {
  const w = p.window;
  const okRate = w.completed === 0 ? "-" : pct(w.succeeded / w.completed);
  return `[${String(Math.round(p.elapsedMs / 1000)).padStart(4)}s] target ${
    rate(p.targetPerSecond).padStart(6)
  }  sent ${String(p.sent).padStart(7)}  dropped ` +
    `${p.dropped}  late ${p.late}  in-flight ${p.inFlight} | last ${
      w.perSecond.toFixed(0)
    }/s  ok ${okRate}  ` +
    `p50 ${ms(w.p50Ms)}  p99 ${ms(w.p99Ms)}  ${counts(w.statuses)}`;
}

/** The final summary as text. */
export function formatReport(r: LoadReport): string {
  const l = r.latency;
  const lines = [
    `${r.target} ${
      r.shape === undefined
        ? `at ${r.ratePerSecond}/s`
        : `shaped "${r.shape}" (mean ${rate(r.ratePerSecond)})`
    } for ${r.durationMs / 1000}s over ${r.urls.length} URL(s)` +
    ` (concurrency ${r.concurrency}, timeout ${r.timeoutMs}ms, seed ${r.seed})${
      r.stoppedEarly ? "  STOPPED EARLY" : ""
    }`,
    `requests    ${r.requests} of ${r.planned} planned: ${r.sent} sent, ${r.dropped} dropped, ${r.late} late ` +
    `(max send lag ${ms(r.maxSendLagMs)})`,
    `success     ${r.succeeded}/${r.requests} = ${r.requests === 0 ? "-" : pct(r.successRate)}`,
    `throughput  ${r.throughputPerSecond.toFixed(1)} completed/s ` +
    `(${r.elapsedMs > 0 ? ((r.succeeded * 1000) / r.elapsedMs).toFixed(1) : "0.0"} ok/s), ` +
    `sent ${r.sendRatePerSecond.toFixed(1)}/s`,
    `latency     p50 ${ms(l.p50Ms)}  p90 ${ms(l.p90Ms)}  p99 ${ms(l.p99Ms)}  max ${ms(l.maxMs)}  ` +
    `(min ${ms(l.minMs)}, mean ${ms(l.meanMs)}, over ${l.count} answers)`,
    `status      ${counts(r.statuses)}`,
  ];
  if (Object.keys(r.errors).length > 0) lines.push(`errors      ${counts(r.errors)}`);
  if (r.failovers > 0) {
    lines.push(`failovers   ${r.failovers} requests went to the next URL after a refused connection`);
  }
  if (r.perSegment) {
    const width = Math.max(...r.perSegment.map((s) => s.segment.length));
    r.perSegment.forEach((s, i) =>
      lines.push(
        `${i === 0 ? "per segment " : "            "}${s.segment.padEnd(width)}  ${s.requests} requests` +
          (s.requests === 0
            ? ""
            : `  ${pct(s.successRate)} ok  first ${
              s.firstLatencyMs === null ? "-" : ms(s.firstLatencyMs)
            }  p50 ${ms(s.latency.p50Ms)}  p95 ${ms(s.latency.p95Ms)}  p99 ${ms(s.latency.p99Ms)}`),
      )
    );
  }
  if (r.perUrl.length > 1) {
    const width = Math.max(...r.perUrl.map((u) => u.url.length));
    r.perUrl.forEach((u, i) =>
      lines.push(
        `${i === 0 ? "per URL     " : "            "}${u.url.padEnd(width)}  ${u.requests} requests  ` +
          `${u.requests === 0 ? "-" : pct(u.succeeded / u.requests)} ok` +
          (u.refused > 0 ? `  ${u.refused} connections refused` : ""),
      )
    );
  }
  return lines.join("\n");
}
