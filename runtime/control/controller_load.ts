/**
 * The adapter from the metrics feature's cluster picture to the controller's per-slice load: calls in flight
 * summed over every version, method and node of a slice; its request rate and p95 over the last few seconds
 * (the highest p95 of its methods: the slowest method is the one that misses its objective); and the mean CPU
 * share of its instances where the sandbox reports one.
 */

import type { MetricsView } from "../metrics/mod.ts";

export interface SliceLoad {
  inFlight: number;
  requestsPerSecond: number;
  p95Ms?: number;
  cpu?: number;
}

/** The window the rate and p95 are read over (s): short, so the panic window sees a burst within seconds. */
export const LOAD_WINDOW_S = 2;

export function loadBySlice(
  metrics: Pick<MetricsView, "snapshot" | "invocations">,
  slices: Iterable<string>,
): Map<string, SliceLoad> {
  const wanted = new Set(slices);
  const out = new Map<string, SliceLoad>();
  const at = (slice: string) => {
    let load = out.get(slice);
    if (!load) out.set(slice, load = { inFlight: 0, requestsPerSecond: 0 });
    return load;
  };
  const snapshot = metrics.snapshot();
  for (const slice of snapshot?.slices ?? []) {
    if (!wanted.has(slice.artifact)) continue;
    const load = at(slice.artifact);
    for (const method of slice.methods) load.inFlight += method.inFlight;
  }
  for (const summary of metrics.invocations(LOAD_WINDOW_S)) {
    if (!wanted.has(summary.artifact)) continue;
    const load = at(summary.artifact);
    load.requestsPerSecond += summary.rate;
    if (summary.p95Ms !== undefined) load.p95Ms = Math.max(load.p95Ms ?? 0, summary.p95Ms);
  }
  const cpu = new Map<string, { sum: number; count: number }>();
  for (const node of snapshot?.nodes ?? []) {
    if (node.stale) continue;
    for (const instance of node.instances) {
      if (instance.cpuShare === undefined) continue;
      const base = instance.coordinates.split(":").slice(0, 2).join(":");
      if (!wanted.has(base)) continue;
      const c = cpu.get(base) ?? { sum: 0, count: 0 };
      c.sum += instance.cpuShare;
      c.count++;
      cpu.set(base, c);
    }
  }
  for (const [slice, c] of cpu) at(slice).cpu = Math.min(1, c.sum / c.count);
  return out;
}
