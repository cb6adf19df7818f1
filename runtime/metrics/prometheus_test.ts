/**
 * The Prometheus text against the format's rules (text exposition 0.0.4 and the naming conventions), checked
 * line by line here and, when Debian's `promtool` is installed (.ci/run installs it), by `promtool check
 * metrics` too.
 */

import { equal, ok } from "node:assert/strict";
import { emptyHistogram, LatencyHistogram } from "../core/mod.ts";
import { prometheusText } from "./prometheus.ts";
import type { NodeMetrics } from "./types.ts";

function node(id: string): NodeMetrics {
  const h = new LatencyHistogram();
  for (const ms of [0.1, 3, 3, 12, 400, 70_000]) h.observe(ms);
  return {
    node: id,
    atMs: 1,
    seq: 1,
    startedAtMs: 1,
    process: {
      cpuShare: 0.2,
      cpuSecondsTotal: 12.5,
      rssBytes: 1e8,
      heapUsedBytes: 1e7,
      heapTotalBytes: 2e7,
      eventLoopLagMs: 3,
    },
    instances: [
      {
        instanceId: "org.example:orders:1.0.0/0",
        coordinates: "org.example:orders:1.0.0",
        state: "ACTIVE",
        pid: 4,
        cpuSecondsTotal: 1.5,
        rssBytes: 4e7,
        cpuShare: 0.1,
      },
      { instanceId: "org.example:w:1.0.0/1", coordinates: "org.example:w:1.0.0", state: "ACTIVE" },
    ],
    methods: [{
      artifact: "org.example:orders",
      version: "1.0.0",
      method: 'odd"name\\x',
      calls: 6,
      errors: { slice_error: 1, deadline: 1 },
      inFlight: 2,
      latency: h.data(),
    }],
    routes: [
      { httpMethod: "POST", route: "/api/orders/{id}", requests: { "2xx": 5, "5xx": 1 }, latency: h.data() },
      { httpMethod: "GET", route: "_unmatched", requests: { "4xx": 2 }, latency: emptyHistogram() },
    ],
    consensus: {
      phases: 10,
      batches: 4,
      commands: 9,
      commitLatency: h.data(),
      forwardedWrites: 1,
      servedForwardedWrites: 0,
      pendingBatches: 0,
    },
    mesh: [
      {
        peer: "n2",
        connected: true,
        rttMs: 0.4,
        bytesIn: 10,
        bytesOut: 20,
        messagesIn: 1,
        messagesOut: 2,
        queuedBytes: 0,
      },
      {
        peer: "n3",
        connected: false,
        bytesIn: 0,
        bytesOut: 0,
        messagesIn: 0,
        messagesOut: 0,
        queuedBytes: 0,
      },
    ],
  };
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Checks the exposition's rules; answers the parsed samples by family. */
function checkFormat(
  text: string,
): Map<string, { type: string; samples: { name: string; labels: Record<string, string>; value: number }[] }> {
  ok(text.endsWith("\n"), "ends with a newline");
  const families = new Map<
    string,
    { type: string; samples: { name: string; labels: Record<string, string>; value: number }[] }
  >();
  let current: string | undefined;
  const closed = new Set<string>();
  for (const line of text.trimEnd().split("\n")) {
    if (line.startsWith("# HELP ")) continue;
    if (line.startsWith("# TYPE ")) {
      const [, , name, type] = line.split(" ");
      ok(NAME.test(name), name);
      ok(name.startsWith("aether_"), `${name}: prefixed aether_`);
      ok(["counter", "gauge", "histogram"].includes(type), type);
      ok(!families.has(name), `${name}: one TYPE line`);
      if (type === "counter") ok(name.endsWith("_total"), `${name}: a counter ends in _total`);
      else ok(!name.endsWith("_total"), `${name}: only counters end in _total`);
      if (/seconds|bytes/.test(name)) ok(!/millis|_ms|kilo|mega/.test(name), `${name}: base units`);
      if (current) closed.add(current);
      current = name;
      families.set(name, { type, samples: [] });
      continue;
    }
    const m = SAMPLE.exec(line);
    ok(m, `a sample line: ${line}`);
    const [, name, , labelText, valueText] = m!;
    const family = families.get(current!)!;
    const base = family.type === "histogram" ? name.replace(/_(bucket|sum|count)$/, "") : name;
    equal(
      base,
      current,
      `${name} belongs to the family declared last (${current}); samples of a family are together`,
    );
    ok(!closed.has(base));
    const labels: Record<string, string> = {};
    for (const l of (labelText ?? "").matchAll(LABEL)) labels[l[1]] = l[2];
    for (const key of Object.keys(labels)) {
      ok(!["requestId", "request_id", "path", "traceparent"].includes(key), `bounded label ${key}`);
    }
    const value = valueText === "+Inf" ? Infinity : Number(valueText);
    ok(!Number.isNaN(value), line);
    family.samples.push({ name, labels, value });
  }
  // Histograms: cumulative buckets ending le="+Inf" equal to _count, then _sum and _count.
  for (const [name, family] of families) {
    if (family.type !== "histogram") continue;
    const series = new Map<string, { buckets: [string, number][]; count?: number; sum?: number }>();
    for (const s of family.samples) {
      const { le, ...rest } = s.labels;
      const key = JSON.stringify(rest);
      const entry = series.get(key) ?? { buckets: [] };
      series.set(key, entry);
      if (s.name === `${name}_bucket`) entry.buckets.push([le, s.value]);
      else if (s.name === `${name}_count`) entry.count = s.value;
      else entry.sum = s.value;
    }
    for (const [key, s] of series) {
      equal(s.buckets.at(-1)![0], "+Inf", `${name}${key}: last bucket +Inf`);
      equal(s.buckets.at(-1)![1], s.count, `${name}${key}: +Inf bucket = _count`);
      for (let i = 1; i < s.buckets.length; i++) {
        ok(Number(s.buckets[i][0]) > Number(s.buckets[i - 1][0]) || s.buckets[i][0] === "+Inf", "le grows");
        ok(s.buckets[i][1] >= s.buckets[i - 1][1], `${name}${key}: cumulative`);
      }
      ok(s.sum !== undefined, `${name}${key}: _sum`);
    }
  }
  return families;
}

Deno.test("prometheus: the text follows the exposition format and Prometheus's naming rules", async () => {
  const text = prometheusText([node("n1"), node("n2")], [{ node: "n1", up: true }, { node: "n2", up: true }, {
    node: "n3",
    up: false,
  }]);
  const families = checkFormat(text);
  const calls = families.get("aether_slice_calls_total")!.samples;
  equal(calls.length, 2);
  equal(calls[0].labels.method, 'odd\\"name\\\\x', "label values escaped");
  const duration = families.get("aether_slice_call_duration_seconds")!.samples;
  const inf = duration.find((s) => s.labels.le === "+Inf" && s.labels.node === "n1")!;
  equal(inf.value, 6);
  const sum = duration.find((s) => s.name.endsWith("_sum") && s.labels.node === "n1")!;
  ok(Math.abs(sum.value - (0.1 + 3 + 3 + 12 + 400 + 70_000) / 1000) < 1e-9, "seconds");
  equal(families.get("aether_instance_cpu_seconds_total")!.samples.length, 2, "worker instances have no CPU");
  equal(families.get("aether_node_up")!.samples.find((s) => s.labels.node === "n3")!.value, 0);
  const routes = families.get("aether_http_requests_total")!.samples.map((s) => s.labels.route);
  ok(routes.includes("/api/orders/{id}") && routes.includes("_unmatched"));
  equal(families.get("aether_mesh_peer_rtt_seconds")!.samples.length, 2, "no rtt before the first pong");

  const promtool = "/usr/bin/promtool";
  const present = await Deno.stat(promtool).then(() => true, () => false);
  if (!present) {
    console.warn("promtool not installed: the format was checked by this test's own rules only");
    return;
  }
  const child = new Deno.Command(promtool, {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const said = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  equal(out.code, 0, `promtool check metrics: ${said}`);
  equal(said.trim(), "", `promtool has no complaint: ${said}`);
});
