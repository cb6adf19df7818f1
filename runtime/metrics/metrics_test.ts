/**
 * Unit tests of the metrics parts: histogram merge exactness, the cluster table with a stale node, windowed
 * invocations, the wire format, and the service's leader/follower exchange over an in-memory mesh.
 */

import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import {
  bucketIndex,
  emptyHistogram,
  histogramDelta,
  histogramQuantileMs,
  LATENCY_BOUNDS_MS,
  LATENCY_BUCKETS,
  LatencyHistogram,
  MAX_METHOD_SERIES,
  mergeHistogramInto,
  MetricsRecorder,
  OVERFLOW_SERIES,
} from "../core/mod.ts";
import { ClusterTable, STALE_AFTER_MS } from "./aggregate.ts";
import { checkpointOf, RecentWindow } from "./window.ts";
import { decodeMessage, encodeSnapshot, encodeUpdate } from "./_wire.ts";
import { Collector } from "./collector.ts";
import { MetricsService } from "./service.ts";
import type { MethodMetrics, NodeMetrics } from "./types.ts";
import { silentLogger } from "../core/mod.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

Deno.test("histogram: merging per-instance histograms equals one histogram of every observation, exactly", () => {
  const random = rng(7);
  const all = new LatencyHistogram();
  const parts = Array.from({ length: 7 }, () => new LatencyHistogram());
  for (let i = 0; i < 50_000; i++) {
    // Log-uniform from 0.05 ms to 120 s: every bucket, the +Inf one included, gets values.
    const ms = Math.exp(Math.log(0.05) + random() * (Math.log(120_000) - Math.log(0.05)));
    all.observe(ms);
    parts[i % parts.length].observe(ms);
  }
  const merged = emptyHistogram();
  for (const p of parts) mergeHistogramInto(merged, p.data());
  deepStrictEqual(merged.counts, all.data().counts);
  equal(merged.count, all.count);
  ok(Math.abs(merged.sumMs - all.sumMs) < 1e-6 * all.sumMs);
  ok(merged.counts.every((c) => c > 0), "every bucket used");
  for (const q of [0.5, 0.9, 0.95, 0.99, 0.999]) {
    equal(histogramQuantileMs(merged, q), histogramQuantileMs(all.data(), q));
  }
});

Deno.test("histogram: bucket bounds are inclusive upper bounds; the quantile interpolates inside its bucket", () => {
  equal(bucketIndex(0), 0);
  equal(bucketIndex(0.25), 0);
  equal(bucketIndex(0.2501), 1);
  equal(bucketIndex(60_000), LATENCY_BOUNDS_MS.length - 1);
  equal(bucketIndex(60_001), LATENCY_BUCKETS - 1);
  const h = new LatencyHistogram();
  for (let i = 0; i < 100; i++) h.observe(12); // all in (10, 15]
  const p50 = histogramQuantileMs(h.data(), 0.5)!;
  ok(p50 > 10 && p50 <= 15, `p50 ${p50} in its bucket`);
  equal(histogramQuantileMs(emptyHistogram(), 0.99), undefined);
  const d = histogramDelta(h.data(), {
    ...h.data(),
    counts: h.counts.map((c) => c / 2),
    count: 50,
    sumMs: 600,
  });
  equal(d.count, 50);
  equal(d.sumMs, 600);
});

Deno.test("recorder: series beyond the bound go to one overflow series (memory stays bounded)", () => {
  const r = new MetricsRecorder({ maxMethodSeries: 3, maxRouteSeries: 2 });
  for (let i = 0; i < 10; i++) r.begin(`g:a:1.0.${i}`, "m").end(1);
  const series = [...r.methods()];
  equal(series.length, 4);
  const overflow = series.find((s) => s.coordinates === OVERFLOW_SERIES)!;
  equal(overflow.calls, 7);
  equal(overflow.inFlight, 0);
  for (let i = 0; i < 5; i++) r.route("GET", `/r${i}`).record(200, 1);
  equal([...r.routes()].length, 3);
  ok(MAX_METHOD_SERIES >= 1000);
});

function method(
  artifact: string,
  version: string,
  name: string,
  calls: number,
  latencyMs = 5,
): MethodMetrics {
  const h = new LatencyHistogram();
  for (let i = 0; i < calls; i++) h.observe(latencyMs);
  return {
    artifact,
    version,
    method: name,
    calls,
    errors: calls > 10 ? { slice_error: 1 } : {},
    inFlight: 0,
    latency: h.data(),
  };
}

function sample(node: string, seq: number, methods: MethodMetrics[], startedAtMs = 1): NodeMetrics {
  return {
    node,
    atMs: 1_000 * seq,
    seq,
    startedAtMs,
    process: {
      cpuShare: 0.1,
      cpuSecondsTotal: 1,
      rssBytes: 1e8,
      heapUsedBytes: 1e7,
      heapTotalBytes: 2e7,
      eventLoopLagMs: 1,
    },
    instances: [],
    methods,
    routes: [],
    consensus: {
      phases: 1,
      batches: 1,
      commands: 1,
      commitLatency: emptyHistogram(),
      forwardedWrites: 0,
      servedForwardedWrites: 0,
      pendingBatches: 0,
    },
    mesh: [],
  };
}

Deno.test("cluster table: merges live nodes by slice version; a node silent for 2 s is stale and left out", () => {
  const table = new ClusterTable();
  table.apply(
    sample("n1", 1, [method("g:shop", "1.0.0", "buy", 10), method("g:shop", "2.0.0", "buy", 3)]),
    true,
    0,
  );
  table.apply(sample("n2", 1, [method("g:shop", "1.0.0", "buy", 20)]), true, 0);
  table.apply(sample("n3", 1, [method("g:shop", "1.0.0", "buy", 40)]), true, 0);
  let snap = table.snapshot("n1", 1, 0);
  const v1 = snap.slices.find((s) => s.version === "1.0.0")!.methods[0];
  equal(v1.calls, 70);
  equal(v1.latency.count, 70);
  deepStrictEqual(Object.keys(v1.nodes).sort(), ["n1", "n2", "n3"]);
  equal(
    snap.slices.find((s) => s.version === "2.0.0")!.methods[0].calls,
    3,
    "versions apart (canary analysis)",
  );
  // n1 and n2 keep sending; n3 stops.
  table.apply(sample("n1", 2, [method("g:shop", "1.0.0", "buy", 11)]), false, 1_000);
  table.apply(sample("n2", 2, [method("g:shop", "1.0.0", "buy", 21)]), false, 1_000);
  deepStrictEqual(table.markStale(STALE_AFTER_MS - 1), []);
  table.apply(sample("n1", 3, []), false, 2_000);
  table.apply(sample("n2", 3, []), false, 2_000);
  deepStrictEqual(table.markStale(STALE_AFTER_MS), ["n3"]);
  snap = table.snapshot("n1", 2, STALE_AFTER_MS);
  equal(snap.nodes.find((n) => n.node === "n3")!.stale, true);
  const merged = snap.slices.find((s) => s.version === "1.0.0")!.methods[0];
  equal(merged.calls, 11 + 21, "the stale node's calls are out; n1's 2.0.0 series kept from its full update");
  equal(snap.slices.find((s) => s.version === "2.0.0")!.methods[0].calls, 3);
  // A node the mesh reports down is stale at once; its next update brings it back.
  deepStrictEqual(table.markStale(2_100, new Set(["n2"])), ["n2"]);
  table.apply(sample("n2", 4, [method("g:shop", "1.0.0", "buy", 25)]), false, 2_200);
  equal(table.snapshot("n1", 3, 2_200).slices[0].methods[0].calls, 11 + 25);
  // An older update is ignored; a restarted node (new startedAtMs) starts afresh.
  equal(table.apply(sample("n2", 3, [method("g:shop", "1.0.0", "buy", 99)]), false, 2_300), false);
  table.apply(sample("n2", 1, [method("g:shop", "1.0.0", "buy", 2)], 5), false, 2_400);
  equal(table.snapshot("n1", 4, 2_400).slices[0].methods[0].calls, 11 + 2);
});

Deno.test("window: rates, error rates and p99 over a window come from two exact readings", () => {
  const window = new RecentWindow();
  const table = new ClusterTable();
  for (let s = 0; s <= 70; s++) {
    // n1: 10 calls/s of 4 ms; n2: 30 calls/s of 40 ms, one error in every 30 calls.
    table.apply(sample("n1", s + 1, [method("g:a", "1", "m", 10 * s, 4)]), true, s * 1000);
    const m2 = method("g:a", "1", "m", 30 * s, 40);
    m2.errors = { slice_error: s };
    table.apply(sample("n2", s + 1, [m2]), true, s * 1000);
    window.add(checkpointOf(table.snapshot("n1", s, s * 1000), s * 1000));
  }
  const [inv] = window.invocations(60);
  equal(inv.rate, 40);
  equal(inv.errorRate, 60 / 2400);
  equal(inv.nodes.n1.rate, 10);
  equal(inv.nodes.n2.rate, 30);
  ok(inv.p99Ms! > 30 && inv.p99Ms! <= 50, `p99 ${inv.p99Ms} in the 40 ms bucket`);
  ok(inv.p50Ms! > 30, "three quarters of the calls are 40 ms ones");
  ok(inv.nodes.n1.p99Ms! > 3 && inv.nodes.n1.p99Ms! <= 5);
  throws(() => window.invocations(0), /window must be/);
  throws(() => window.invocations(100_000), /window must be/);
  ok(window.size <= 60 + 30 + 2, `checkpoints bounded: ${window.size}`);
});

Deno.test("wire: updates and snapshots round-trip; histograms travel sparse; malformed ones are refused by field", () => {
  const s = sample("n1", 3, [method("g:a", "1.0.0", "m", 12)]);
  const update = decodeMessage(JSON.parse(JSON.stringify(encodeUpdate(s, true))));
  deepStrictEqual(update, { t: "u", full: true, sample: s });
  const snap = decodeMessage(JSON.parse(JSON.stringify(encodeSnapshot({
    leader: "n1",
    seq: 9,
    atMs: 5,
    full: false,
    nodes: [{ sample: s, stale: true }],
  }))));
  deepStrictEqual(snap, {
    t: "s",
    leader: "n1",
    seq: 9,
    atMs: 5,
    full: false,
    nodes: [{ sample: s, stale: true }],
  });
  const wire = encodeUpdate(s, true) as { s: { m: unknown[][] } };
  deepStrictEqual((wire.s.m[0][6] as unknown[])[2], [bucketIndex(5), 12], "only non-zero buckets");
  throws(() => decodeMessage({ t: "x" }), /message.t/);
  const bad = JSON.parse(JSON.stringify(encodeUpdate(s, true)));
  bad.s.m[0][6][2] = [99, 1];
  throws(() => decodeMessage(bad), /bucket index 99/);
  const bad2 = JSON.parse(JSON.stringify(encodeUpdate(s, true)));
  bad2.s.p.rssBytes = "lots";
  throws(() => decodeMessage(bad2), /update.p.rssBytes: expected a finite number/);
});

/** An in-memory mesh between services: messages pass through JSON, like the real codec would copy them. */
class TestMesh {
  static readonly all = new Map<string, TestMesh>();
  handlers: ((from: string, message: unknown) => void)[] = [];
  down: ((id: string, reason: string) => void)[] = [];
  bytesSent = 0;
  cut = false;
  constructor(readonly self: string) {
    TestMesh.all.set(self, this);
  }
  onMessage(_channel: string, handler: (from: string, message: unknown) => void) {
    this.handlers.push(handler);
    return () => {};
  }
  onPeerUp() {
    return () => {};
  }
  onPeerDown(handler: (id: string, reason: string) => void) {
    this.down.push(handler);
    return () => {};
  }
  send(to: string, _channel: string, message: unknown): boolean {
    if (this.cut) return false;
    const text = JSON.stringify(message);
    this.bytesSent += text.length;
    const peer = TestMesh.all.get(to);
    if (!peer || peer.cut) return false;
    for (const h of peer.handlers) h(this.self, JSON.parse(text));
    return true;
  }
  broadcast(channel: string, message: unknown): string[] {
    const reached: string[] = [];
    for (const id of TestMesh.all.keys()) {
      if (id !== this.self && this.send(id, channel, message)) reached.push(id);
    }
    return reached;
  }
}

Deno.test("service: nodes push to the leader, every node holds the merged picture; a silent node goes stale", () => {
  TestMesh.all.clear();
  let now = 1_000_000;
  const recorders = new Map<string, MetricsRecorder>();
  const services = ["n1", "n2", "n3"].map((id) => {
    const recorder = new MetricsRecorder();
    recorders.set(id, recorder);
    return new MetricsService({
      self: id,
      log: silentLogger,
      mesh: new TestMesh(id),
      leader: () => ({ nodeId: "n1" }),
      collector: new Collector({ self: id, recorder, now: () => now }),
      now: () => now,
    });
  });
  for (const s of services) s.start = () => {}; // Driven by hand: no timers.
  for (const [i, service] of services.entries()) {
    TestMesh.all.get(`n${i + 1}`)!.handlers.push((from, message) => service.receive(from, message));
  }
  const tick = () => {
    // Followers first, so the leader's broadcast carries this second's updates.
    services[1].tick();
    services[2].tick();
    services[0].tick();
    now += 1_000;
  };
  for (let second = 0; second < 8; second++) {
    for (const [id, recorder] of recorders) {
      const n = Number(id.slice(1));
      for (let k = 0; k < n * 5; k++) recorder.begin("g:shop:1.0.0", "buy").end(3);
    }
    tick();
  }
  for (const service of services) {
    const snap = service.snapshot()!;
    equal(snap.leader, "n1");
    const buy = snap.slices[0].methods[0];
    equal(buy.calls, 8 * (5 + 10 + 15), `${service.local()?.node}: exact sum over the cluster`);
    deepStrictEqual(buy.nodes.n2.calls, 8 * 10);
  }
  const [inv] = services[2].invocations(5);
  equal(inv.rate, 30);
  // n3 falls silent: within 3 s every node sees it stale and its calls left out.
  TestMesh.all.get("n3")!.cut = true;
  for (let second = 0; second < 3; second++) tick();
  for (const service of services.slice(0, 2)) {
    const snap = service.snapshot()!;
    equal(snap.nodes.find((n) => n.node === "n3")!.stale, true);
    equal(snap.slices[0].methods[0].calls, 8 * (5 + 10));
  }
  // History: one point a second on every node.
  const history = services[1].history({
    series: ["calls:g:shop:1.0.0/buy"],
    fromMs: now - 12_000,
    toMs: now,
  });
  const values = history.series[0].points.map(([, v]) => v).filter((v) => v !== null);
  ok(values.includes(30), `30 calls/s recorded: ${values.join(",")}`);
  ok(services[1].seriesNames().includes("node.cpu:n2"));
});

Deno.test("service: a new leader carries the picture on; the old one goes stale; counts stay exact", () => {
  TestMesh.all.clear();
  let now = 2_000_000;
  let leader = "n1";
  const ids = ["n1", "n2", "n3"];
  const recorders = ids.map(() => new MetricsRecorder());
  const services = ids.map((id, i) =>
    new MetricsService({
      self: id,
      log: silentLogger,
      mesh: new TestMesh(id),
      leader: () => ({ nodeId: leader }),
      collector: new Collector({ self: id, recorder: recorders[i], now: () => now }),
      now: () => now,
    })
  );
  for (const [i, service] of services.entries()) {
    TestMesh.all.get(ids[i])!.handlers.push((from, message) => service.receive(from, message));
  }
  const tick = () => {
    const order = services.filter((_, i) => ids[i] !== leader).concat(services[ids.indexOf(leader)]);
    for (const s of order) if (!TestMesh.all.get(s.local()?.node ?? "")?.cut) s.tick();
    now += 1_000;
  };
  for (let second = 0; second < 4; second++) {
    recorders.forEach((r, i) => r.begin("g:a:1", "m").end(1 + i));
    tick();
  }
  equal(services[2].snapshot()!.slices[0].methods[0].calls, 12);
  // n1 (the leader) dies; n2 is elected.
  TestMesh.all.get("n1")!.cut = true;
  leader = "n2";
  for (let second = 0; second < 3; second++) {
    recorders.slice(1).forEach((r, i) => r.begin("g:a:1", "m").end(2 + i));
    tick();
  }
  for (const service of services.slice(1)) {
    const snap = service.snapshot()!;
    equal(snap.leader, "n2");
    equal(snap.nodes.find((n) => n.node === "n1")!.stale, true, "the old leader is stale");
    const m = snap.slices[0].methods[0];
    equal(m.calls, 2 * 4 + 2 * 3, "n2 and n3: every call, none of n1's");
    deepStrictEqual(Object.keys(m.nodes).sort(), ["n2", "n3"]);
  }
});
