/**
 * Metrics benchmark: what collecting, shipping and serving the cluster metrics costs.
 *
 *   deno run -A --unstable-worker-options tests/bench/metrics_bench.ts [--quick] [--seconds 10]
 *     [--only nodes|simulation]
 *
 * 1. Recording cost per slice call and per HTTP request, in-process (the hot paths' share of the overhead).
 * 2. `/metrics` scrape: Prometheus text of one node (500 method series, their histograms) and of the cluster
 *    scope (5 nodes): time to render and size. Goal: < 20 ms.
 * 3. Mesh traffic for 50 slices × 10 methods on 5 nodes, simulated with five real MetricsServices over an
 *    in-memory mesh that encodes every message with the mesh's msgpack codec: bytes per second a node sends
 *    (its update), the leader sends (its broadcast to four), with every series changing every second (worst
 *    case), a tenth of them, and none (idle); and each node's and the leader's time per second (merge
 *    included).
 * 4. Overhead on the hot paths, in the same run: two 1-member nodes serving a slice route (`GET /hello`,
 *    process isolation), one with `--metrics on` (the default), one with `--metrics off` (no call or request
 *    recorded); wrk -t1 -c50 against each, rounds alternated; then KV puts through each node's API (32 at a
 *    time). Goal: ≤ 1% throughput difference.
 * 5. Idle: each node's own CPU over an idle stretch (both still sample and ship every second), and a real
 *    scrape of /metrics over HTTP. Goal: ≤ 0.5% of a core per node for the metrics.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { TestCluster } from "../_support/cluster.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { cpuSeconds } from "./_proc_cpu.ts";
import { createCodec } from "../../runtime/net/mod.ts";
import { MetricsRecorder, silentLogger } from "../../runtime/core/mod.ts";
import { Collector, MetricsService, prometheusText } from "../../runtime/metrics/mod.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string" },
    only: { type: "string" },
  },
});
if (flags.only !== undefined && !["nodes", "simulation"].includes(flags.only)) {
  throw new Error(`--only: "${flags.only}" is not nodes or simulation`);
}
const QUICK = flags.quick;
const WRK_SECONDS = Number(flags.seconds ?? (QUICK ? 3 : 10));
const ROUNDS = QUICK ? 2 : 3;
const GROUP = "org.example.invoke";
const SLICES = 50;
const METHODS = 10;
const NODES = 5;

function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// ------------------------------------------------------------------------------------------------ nodes

interface ServedNode {
  cluster: TestCluster;
  url: string;
  api: string;
  pid: number;
  token: string;
}

async function helloNode(metrics: "on" | "off"): Promise<ServedNode> {
  const cluster = await TestCluster.start(1, { fsync: "never", extraArgs: ["--metrics", metrics] });
  try {
    const n1 = cluster.nodes[0];
    const api = `http://127.0.0.1:${n1.ready!.apiPort}`;
    const call = async (path: string, init: RequestInit = {}) => {
      const response = await fetch(api + path, {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${cluster.token}` },
      });
      return { status: response.status, text: await response.text() };
    };
    await cluster.waitFor("a leader", async () => {
      const status = await call("/api/v1/status").catch(() => ({ text: "" }));
      return status.text.includes('"isLeader":true') || null;
    }, 30_000);
    const slice = await buildSlice(fileURLToPath(new URL("../fixtures/invoke/hello.ts", import.meta.url)));
    const form = new FormData();
    form.append("manifest", JSON.stringify(slice.manifest));
    form.append("bundle", new Blob([slice.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
    const pushed = await call("/api/v1/artifacts", { method: "POST", body: form });
    if (pushed.status >= 300) throw new Error(`push: ${pushed.status} ${pushed.text}`);
    const deployed = await call("/api/v1/deploy", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ artifact: `${GROUP}:hello:1.0.0`, instances: 1 }),
    });
    if (deployed.status >= 300) throw new Error(`deploy: ${deployed.status} ${deployed.text}`);
    const url = `http://127.0.0.1:${n1.ready!.httpPort}/hello`;
    await cluster.waitFor("GET /hello served", async () => {
      const text = await fetch(url).then((r) => r.text(), () => "");
      return text.includes("hello") || null;
    }, 90_000);
    return { cluster, url, api, pid: n1.process!.pid, token: cluster.token };
  } catch (e) {
    await cluster.close();
    throw e;
  }
}

interface WrkResult {
  requestsPerSecond: number;
  p99Ms: number;
  ownCpuUsPerRequest: number;
}

async function wrk(url: string, seconds: number, pid: number): Promise<WrkResult> {
  const own = cpuSeconds(pid, true);
  const output = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${seconds}s`, "--latency", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  if (!output.success || !rps) {
    throw new Error(`wrk failed: ${text}${new TextDecoder().decode(output.stderr)}`);
  }
  const p99 = /\s99%\s+([\d.]+)(us|ms|s)/.exec(text);
  const p99Ms = p99 ? Number(p99[1]) * (p99[2] === "us" ? 0.001 : p99[2] === "s" ? 1000 : 1) : NaN;
  return {
    requestsPerSecond: Number(rps[1]),
    p99Ms,
    ownCpuUsPerRequest: ((cpuSeconds(pid, true) - own) * 1e6) / requests,
  };
}

/** KV puts through the node's API, `concurrency` at a time, for `seconds`: puts per second. */
async function kvPuts(node: ServedNode, seconds: number, concurrency = 32): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const worker = async (w: number) => {
    let i = 0;
    while (performance.now() < until) {
      const response = await fetch(`${node.api}/api/v1/kv/app/bench/${w}-${i++ % 100}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${node.token}`, "content-type": "application/octet-stream" },
        body: "value",
      });
      await response.body?.cancel();
      if (response.status >= 300) throw new Error(`kv put: ${response.status}`);
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  return done / ((performance.now() - started) / 1000);
}

async function overhead(): Promise<void> {
  console.log(
    `\n4. Overhead: GET /hello on a 1-member node, --metrics on vs off (wrk -t1 -c50, ${WRK_SECONDS} s)`,
  );
  const nodes = { on: await helloNode("on"), off: await helloNode("off") };
  try {
    for (const n of Object.values(nodes)) await wrk(n.url, 1, n.pid); // warm-up
    const results: Record<"on" | "off", WrkResult[]> = { on: [], off: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? (["on", "off"] as const) : (["off", "on"] as const);
      for (const key of order) {
        const v = await wrk(nodes[key].url, WRK_SECONDS, nodes[key].pid);
        results[key].push(v);
        console.log(
          `   round ${round}  metrics ${key.padEnd(3)}  ${
            fmt(v.requestsPerSecond, 0).padStart(8)
          } req/s  p99 ${fmt(v.p99Ms, 2)} ms  node CPU ${fmt(v.ownCpuUsPerRequest, 0)} µs/req`,
        );
      }
    }
    const mean = (xs: WrkResult[]) => xs.reduce((s, x) => s + x.requestsPerSecond, 0) / xs.length;
    const ratio = mean(results.on) / mean(results.off);
    console.log(
      `   mean: on ${fmt(mean(results.on), 0)} req/s, off ${fmt(mean(results.off), 0)} req/s: on/off ${
        fmt(ratio * 100, 1)
      }% (goal ≥ 99%)`,
    );

    console.log(`\n   KV puts through the API (32 at a time, ${WRK_SECONDS} s per round, fsync never)`);
    const puts: Record<"on" | "off", number[]> = { on: [], off: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? (["on", "off"] as const) : (["off", "on"] as const);
      for (const key of order) {
        const v = await kvPuts(nodes[key], WRK_SECONDS);
        puts[key].push(v);
        console.log(`   round ${round}  metrics ${key.padEnd(3)}  ${fmt(v, 0).padStart(8)} puts/s`);
      }
    }
    const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(
      `   mean: on ${fmt(avg(puts.on), 0)} puts/s, off ${fmt(avg(puts.off), 0)} puts/s: on/off ${
        fmt((avg(puts.on) / avg(puts.off)) * 100, 1)
      }%`,
    );

    const idleSeconds = QUICK ? 5 : 15;
    console.log(`\n5. Idle: each node's own CPU over ${idleSeconds} s with nothing to do`);
    await new Promise((r) => setTimeout(r, 2_000));
    const before = { on: cpuSeconds(nodes.on.pid, true), off: cpuSeconds(nodes.off.pid, true) };
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    for (const key of ["on", "off"] as const) {
      const share = (cpuSeconds(nodes[key].pid, true) - before[key]) / idleSeconds;
      console.log(`   metrics ${key.padEnd(3)}  ${fmt(share * 100, 2)}% of a core (the whole node at idle)`);
    }
    const scrape = await timedScrape(nodes.on);
    console.log(
      `   a real scrape of the 'on' node's /metrics over HTTP: ${fmt(scrape.ms, 2)} ms, ${
        fmt(scrape.bytes / 1024, 1)
      } KiB (mean of 20)`,
    );
  } finally {
    await Promise.all(Object.values(nodes).map((n) => n.cluster.close()));
  }
}

async function timedScrape(node: ServedNode): Promise<{ ms: number; bytes: number }> {
  let bytes = 0;
  const started = performance.now();
  for (let i = 0; i < 20; i++) {
    const response = await fetch(`${node.api}/metrics`, {
      headers: { authorization: `Bearer ${node.token}` },
    });
    bytes = (await response.arrayBuffer()).byteLength;
  }
  return { ms: (performance.now() - started) / 20, bytes };
}

// ------------------------------------------------------------------------------------------------ simulation

/** The mesh between five in-process services; every message is encoded with the real msgpack codec. */
class CountingMesh {
  static readonly all = new Map<string, CountingMesh>();
  static readonly codec = createCodec("msgpack");
  readonly handlers: ((from: string, message: unknown) => void)[] = [];
  bytesSent = 0;
  messagesSent = 0;
  /** Time spent handling messages received (decode and apply), and in other nodes' handlers of our sends. */
  receiveMs = 0;
  outsourcedMs = 0;
  constructor(readonly self: string) {
    CountingMesh.all.set(self, this);
  }
  onMessage(_channel: string, handler: (from: string, message: unknown) => void) {
    this.handlers.push(handler);
    return () => {};
  }
  onPeerDown() {
    return () => {};
  }
  onPeerUp() {
    return () => {};
  }
  send(to: string, _channel: string, message: unknown): boolean {
    const bytes = CountingMesh.codec.encodeShared(message).slice();
    this.bytesSent += bytes.byteLength;
    this.messagesSent++;
    const receiver = CountingMesh.all.get(to)!;
    const started = performance.now();
    const decoded = CountingMesh.codec.decode(bytes);
    for (const h of receiver.handlers) h(this.self, decoded);
    const ms = performance.now() - started;
    receiver.receiveMs += ms;
    this.outsourcedMs += ms;
    return true;
  }
  broadcast(channel: string, message: unknown): string[] {
    const peers = [...CountingMesh.all.keys()].filter((id) => id !== this.self);
    for (const id of peers) this.send(id, channel, message);
    return peers;
  }
}

function meshSimulation(): void {
  console.log(
    `\n3. Mesh traffic: ${SLICES} slices × ${METHODS} methods on ${NODES} nodes (simulated: 5 MetricsServices, ` +
      `msgpack as on the mesh)`,
  );
  for (const activeShare of [1, 0.1, 0]) {
    CountingMesh.all.clear();
    let now = 1_800_000_000_000;
    const ids = Array.from({ length: NODES }, (_, i) => `n${i + 1}`);
    const recorders = ids.map(() => new MetricsRecorder());
    const services = ids.map((id, i) =>
      new MetricsService({
        self: id,
        log: silentLogger,
        mesh: new CountingMesh(id),
        leader: () => ({ nodeId: "n1" }),
        collector: new Collector({ self: id, recorder: recorders[i], now: () => now }),
        now: () => now,
      })
    );
    // Driven by hand (no timers): the mesh hands each node's messages to its service.
    for (const [i, service] of services.entries()) {
      CountingMesh.all.get(ids[i])!.handlers.push((from, message) => service.receive(from, message));
    }
    const series = recorders.map((r) =>
      Array.from(
        { length: SLICES * METHODS },
        (_, k) => r.begin(`org.example:slice-${Math.floor(k / METHODS)}:1.0.0`, `method${k % METHODS}`),
      )
    );
    for (const s of series.flat()) s.end(1); // every series exists
    const seconds = QUICK ? 10 : 30;
    const tickMs = new Map(ids.map((id) => [id, 0]));
    let sampleMs = 0;
    const warm = 5;
    for (let second = 0; second < seconds + warm; second++) {
      if (second === warm) {
        for (const id of ids) {
          const mesh = CountingMesh.all.get(id)!;
          mesh.bytesSent =
            mesh.messagesSent =
            mesh.receiveMs =
            mesh.outsourcedMs =
              0;
          tickMs.set(id, 0);
        }
        sampleMs = 0;
      }
      for (const [n, list] of series.entries()) {
        for (const [k, s] of list.entries()) {
          if (activeShare === 0 || (k + second) % Math.round(1 / activeShare) !== 0) continue;
          // A few calls a second of a few latencies: changes counts and a couple of buckets.
          s.inFlight += 3;
          s.end(2 + n);
          s.end(8);
          s.end(40 + k % 7);
        }
      }
      // Followers first (their updates reach the leader), then the leader merges and broadcasts.
      for (const [i, service] of [...services.slice(1), services[0]].entries()) {
        const id = i === NODES - 1 ? "n1" : ids[i + 1];
        const started = performance.now();
        service.tick();
        tickMs.set(id, tickMs.get(id)! + performance.now() - started);
      }
      const t3 = performance.now();
      new Collector({ self: "x", recorder: recorders[0] }).sample();
      sampleMs += performance.now() - t3;
      now += 1_000;
    }
    const follower = CountingMesh.all.get("n2")!;
    const leader = CountingMesh.all.get("n1")!;
    // A node's own time: its tick, less the time its sends spent in other nodes' handlers, plus its own.
    const own = (id: string) => {
      const mesh = CountingMesh.all.get(id)!;
      return (tickMs.get(id)! - mesh.outsourcedMs + mesh.receiveMs) / seconds;
    };
    const followerMs = own("n2");
    const leaderMs = own("n1");
    const check = services[4].snapshot()!;
    const calls = check.slices.reduce((sum, s) => sum + s.methods.reduce((a, m) => a + m.calls, 0), 0);
    console.log(
      `   ${fmt(activeShare * 100, 0)}% of series changing each second: a node sends ${
        fmt(follower.bytesSent / seconds / 1024, 1)
      } KiB/s (its update); the leader sends ${fmt(leader.bytesSent / seconds / 1024, 1)} KiB/s (${
        fmt(leader.bytesSent / seconds / (NODES - 1) / 1024, 1)
      } KiB/s to each of ${NODES - 1}); a full message every 30 s included`,
    );
    console.log(
      `      time per second: a node (sample, diff, encode; decode and apply the broadcast, history) ${
        fmt(followerMs, 2)
      } ms, the leader (+ decode and merge ${NODES - 1} updates, encode the broadcast) ${
        fmt(leaderMs, 2)
      } ms, ` +
        `a sample alone ${fmt(sampleMs / seconds, 2)} ms: ≈ ${
          fmt(followerMs / 10, 2)
        }% of a core per node, ` +
        `${fmt(leaderMs / 10, 2)}% on the leader (merged calls seen on n5: ${calls})`,
    );
  }
}

/** What recording costs per call and per request, in-process (the hot-path share of the overhead). */
function recordingCost(): void {
  console.log(
    "\n1. Recording cost in-process (the hot path's share; compare with the node's CPU per request below)",
  );
  const recorder = new MetricsRecorder();
  const coordinates = Array.from({ length: 50 }, (_, i) => `org.example:slice-${i}:1.0.0`);
  const n = 2_000_000;
  for (let i = 0; i < 100_000; i++) recorder.begin(coordinates[i % 50], "placeOrder").end(i % 100);
  let started = performance.now();
  for (let i = 0; i < n; i++) {
    const series = recorder.begin(coordinates[i % 50], "placeOrder");
    series.end((i % 1000) / 10, i % 100 === 0 ? "slice_error" : undefined);
  }
  const callNs = ((performance.now() - started) * 1e6) / n;
  started = performance.now();
  for (let i = 0; i < n; i++) {
    recorder.route("POST", "/api/v1/orders/").record(i % 100 === 0 ? 500 : 201, i % 50);
  }
  const routeNs = ((performance.now() - started) * 1e6) / n;
  started = performance.now();
  let t = 0;
  for (let i = 0; i < n; i++) t += performance.now();
  const clockNs = ((performance.now() - started) * 1e6) / n + (t < 0 ? 1 : 0);
  console.log(
    `   a slice call: ${
      fmt(callNs, 0)
    } ns (series lookup, in-flight, counter, histogram bucket); an HTTP request: ` +
      `${fmt(routeNs, 0)} ns; each adds two performance.now() reads of ${fmt(clockNs, 0)} ns`,
  );
}

function scrapeSimulation(): void {
  console.log(
    `\n2. /metrics: Prometheus text for ${SLICES} slices × ${METHODS} methods (rendered in-process)`,
  );
  const recorders = Array.from({ length: NODES }, () => new MetricsRecorder());
  for (const r of recorders) {
    for (let k = 0; k < SLICES * METHODS; k++) {
      const s = r.begin(`org.example:slice-${Math.floor(k / METHODS)}:1.0.0`, `method${k % METHODS}`);
      for (const ms of [1, 3, 12, 80]) {
        s.end(ms, ms === 80 ? "slice_error" : undefined);
        s.inFlight++;
      }
      s.inFlight--;
    }
    for (let r2 = 0; r2 < SLICES; r2++) r.route("POST", `/api/slice-${r2}/{id}`).record(200, 4);
  }
  const samples = recorders.map((r, i) => new Collector({ self: `n${i + 1}`, recorder: r }).sample());
  for (
    const [label, list] of [["one node", samples.slice(0, 1)], ["cluster scope, 5 nodes", samples]] as const
  ) {
    let text = "";
    const runs = 20;
    prometheusText(list); // warm-up
    const started = performance.now();
    for (let i = 0; i < runs; i++) text = prometheusText(list);
    const ms = (performance.now() - started) / runs;
    console.log(
      `   ${label.padEnd(24)} ${fmt(ms, 2).padStart(7)} ms  ${
        fmt(new TextEncoder().encode(text).byteLength / 1024, 0)
      } KiB  ${text.split("\n").length - 1} lines (goal < 20 ms)`,
    );
  }
}

if (flags.only !== "nodes") {
  recordingCost();
  scrapeSimulation();
  meshSimulation();
}
if (flags.only !== "simulation") await overhead();
