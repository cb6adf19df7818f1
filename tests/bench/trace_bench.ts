/**
 * Tracing benchmark: what recording a span per hop costs on the request path, tracing on against off in the
 * same run, rounds alternating (off, on, off, on) so the machine's drift hits both alike.
 *
 *   deno run -A --unstable-worker-options tests/bench/trace_bench.ts [--quick] [--seconds 3] [--rounds 3]
 *
 * 1. SpanRing.record alone: nanoseconds per span (the ring store), and a span's full making as the hooks do it
 *    (two clock reads, a random span id, the object).
 * 2. Invoker: SliceInvoker.invoke of the `hello` slice (worker isolation, a local instance) by 50 concurrent
 *    callers in this process: calls/s and this process's CPU per call (the sandbox worker included). One
 *    span per call (a local first attempt is folded into the call's span).
 * 3. HTTP: the application handler behind Deno.serve, wrk -t1 -c50 (Debian's wrk; installed when missing):
 *    `GET /hello` (2 spans per request: http, call) and `POST /front/chain`, a chain of three slices on the
 *    node (4 spans: http and a call per slice); requests/s and server CPU per request.
 *
 * The goal is the for metrics: at most 1% throughput lost with tracing on. Each line prints the
 * medians of the rounds off and on, and the differences; read them against the spread between rounds of
 * the same setting (printed too): on a 2-core machine shared with other work a round moves by several
 * percent, and CPU per call is the steadier figure.
 */

import { parseArgs } from "node:util";
import { silentLogger } from "../../runtime/core/mod.ts";
import { createAppHandler, RouteDirectory } from "../../runtime/http/mod.ts";
import { randomHexId } from "../../runtime/core/mod.ts";
import { spanClockMs, type SpanRecord, type SpanSink, withSpanId } from "../../runtime/invoke/mod.ts";
import { fixture, InProcessCluster } from "../../runtime/invoke/testing.ts";
import { SpanRing } from "../../runtime/metrics/mod.ts";
import { cpuSeconds } from "./_proc_cpu.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string" },
    rounds: { type: "string" },
  },
});
const QUICK = flags.quick;
const SECONDS = Number(flags.seconds ?? (QUICK ? 2 : 3));
const ROUNDS = Number(flags.rounds ?? (QUICK ? 1 : 3));
const CONCURRENCY = 50;

interface Round {
  perSecond: number;
  cpuUsPer: number;
}

/** The median of the rounds (the machine's noise moves single rounds a lot; the median less). */
function median(rounds: Round[], key: keyof Round): number {
  const values = rounds.map((r) => r[key]).sort((a, b) => a - b);
  const mid = Math.floor(values.length / 2);
  return values.length % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

function summary(label: string, off: Round[], on: Round[], unit: string): string {
  const spread = (rs: Round[]) => {
    const values = rs.map((r) => r.perSecond);
    return rs.length < 2 ? 0 : ((Math.max(...values) - Math.min(...values)) / median(rs, "perSecond")) * 100;
  };
  const offRate = median(off, "perSecond");
  const onRate = median(on, "perSecond");
  const diff = ((onRate - offRate) / offRate) * 100;
  const cpuDiff = median(on, "cpuUsPer") - median(off, "cpuUsPer");
  const per = unit === "calls" ? "call" : "request";
  return `  ${label.padEnd(30)} off ${(offRate / 1000).toFixed(2)}k ${unit}/s, ${
    median(off, "cpuUsPer").toFixed(1)
  } µs ` +
    `CPU/${per}; on ${(onRate / 1000).toFixed(2)}k ${unit}/s, ${
      median(on, "cpuUsPer").toFixed(1)
    } µs CPU/${per}; ` +
    `throughput ${diff >= 0 ? "+" : ""}${diff.toFixed(1)}%, CPU ${cpuDiff >= 0 ? "+" : ""}${
      cpuDiff.toFixed(1)
    } µs ` +
    `(medians of ${off.length} rounds; spread of rounds off ${spread(off).toFixed(0)}%, on ${
      spread(on).toFixed(0)
    }%)`;
}

// ------------------------------------------------------------------------------------------------ 1. ring

function ringCost(): string[] {
  const n = 1_000_000;
  const ring = new SpanRing();
  const call = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const template: SpanRecord = {
    kind: "attempt",
    traceparent: call,
    parent: call,
    requestId: "5f0c6a1e2b3d4c5f",
    node: "n1",
    slice: "org.example:inventory",
    method: "checkStock",
    instance: "org.example:inventory:1.0.0/0",
    peer: "n1",
    attempt: 1,
    startMs: 0,
    durationMs: 0,
    outcome: "ok",
  };
  const records = Array.from({ length: 1024 }, (_, i) => ({ ...template, startMs: i }));
  for (let i = 0; i < n; i++) ring.record(records[i & 1023]); // warm-up
  let t0 = performance.now();
  for (let i = 0; i < n; i++) ring.record(records[i & 1023]);
  const storeNs = ((performance.now() - t0) * 1e6) / n;
  const sink: SpanSink = ring;
  t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const startMs = spanClockMs();
    sink.record({
      kind: "attempt",
      traceparent: withSpanId(call, randomHexId(8)),
      parent: call,
      requestId: template.requestId,
      node: "n1",
      slice: template.slice,
      method: template.method,
      instance: template.instance,
      peer: "n1",
      attempt: 1,
      startMs,
      durationMs: spanClockMs() - startMs,
      outcome: "ok",
    });
  }
  const makeNs = ((performance.now() - t0) * 1e6) / n;
  t0 = performance.now();
  for (let i = 0; i < n; i++) spanClockMs();
  const clockNs = ((performance.now() - t0) * 1e6) / n;
  return [
    `  SpanRing.record (the store)        ${storeNs.toFixed(0)} ns per span`,
    `  a span made and recorded as hooks  ${
      makeNs.toFixed(0)
    } ns per span (2 clock reads, a span id, the record)`,
    `  one clock read (performance.now)   ${clockNs.toFixed(0)} ns`,
  ];
}

// ------------------------------------------------------------------------------------------------ 2. invoker

async function invokerRound(cluster: InProcessCluster): Promise<Round> {
  const invoker = cluster.node("n1").invoker;
  const endAt = performance.now() + SECONDS * 1000;
  let calls = 0;
  const cpuBefore = cpuSeconds(Deno.pid);
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < endAt) {
      const outcome = await invoker.invoke("org.example.invoke:hello", "hello", {});
      if (!outcome.ok) throw new Error("hello failed");
      calls++;
    }
  }));
  const cpu = cpuSeconds(Deno.pid) - cpuBefore;
  return { perSecond: calls / SECONDS, cpuUsPer: (cpu * 1e6) / calls };
}

// ------------------------------------------------------------------------------------------------ 3. HTTP

async function ensureWrk(): Promise<void> {
  try {
    await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return;
  } catch {
    console.log("wrk is missing: installing it from Debian (apt-get install -y wrk)");
  }
  const install = await new Deno.Command("apt-get", { args: ["install", "-y", "wrk"] }).output();
  if (!install.success) {
    throw new Error("apt-get install -y wrk failed (run as root, or install wrk yourself)");
  }
}

async function wrkRound(url: string, script?: string): Promise<Round> {
  const cpuBefore = cpuSeconds(Deno.pid);
  const output = await new Deno.Command("wrk", {
    args: ["-t1", `-c${CONCURRENCY}`, `-d${SECONDS}s`, ...(script ? ["-s", script] : []), url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const cpu = cpuSeconds(Deno.pid) - cpuBefore;
  const text = new TextDecoder().decode(output.stdout);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  if (!output.success || !rps || /Non-2xx/.test(text)) {
    throw new Error(`wrk failed: ${text}${new TextDecoder().decode(output.stderr)}`);
  }
  return { perSecond: Number(rps[1]), cpuUsPer: (cpu * 1e6) / requests };
}

/** One node in this process with hello and the front → middle → back chain, served over HTTP. */
async function serveNode(spans: SpanSink | undefined) {
  const cluster = await InProcessCluster.start(["n1"], { spans });
  for (const name of ["hello", "front", "middle", "back"] as const) {
    await cluster.deploy("n1", await fixture(name));
  }
  const directory = new RouteDirectory(() => cluster.state);
  const handler = createAppHandler({
    routes: () => directory.table(),
    invoker: cluster.node("n1").invoker,
    log: silentLogger,
    spans,
    node: "n1",
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return { cluster, server, url: `http://127.0.0.1:${server.addr.port}` };
}

// ------------------------------------------------------------------------------------------------ run

console.log(
  `Tracing benchmark (${QUICK ? "quick" : "full"} run: ${ROUNDS} round(s) of ${SECONDS} s per setting, ` +
    `alternating; ${CONCURRENCY} concurrent)`,
);
console.log("1. the ring");
for (const line of ringCost()) console.log(line);

await ensureWrk();
const ring = new SpanRing();
const off = await serveNode(undefined);
const on = await serveNode(ring);
const script = await Deno.makeTempFile({ suffix: ".lua" });
await Deno.writeTextFile(
  script,
  `wrk.method = "POST"\nwrk.body = "{}"\nwrk.headers["Content-Type"] = "application/json"\n`,
);
try {
  // Warm-up: JIT, connections, the workers.
  for (const n of [off, on]) {
    await invokerRound(n.cluster);
    await wrkRound(`${n.url}/hello`);
  }
  const results = {
    invoker: { off: [] as Round[], on: [] as Round[] },
    hello: { off: [] as Round[], on: [] as Round[] },
    chain: { off: [] as Round[], on: [] as Round[] },
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const [setting, node] of [["off", off], ["on", on]] as const) {
      results.invoker[setting].push(await invokerRound(node.cluster));
      results.hello[setting].push(await wrkRound(`${node.url}/hello`));
      results.chain[setting].push(await wrkRound(`${node.url}/front/chain`, script));
    }
  }
  console.log(
    "2. invoker (in process, worker isolation, local instance; 1 span per call: the call, its local first attempt folded in)",
  );
  console.log(summary("invoke hello", results.invoker.off, results.invoker.on, "calls"));
  console.log("3. HTTP, wrk -t1 -c50 (wrk shares the 2 cores); CPU = this process's (server and workers)");
  console.log(summary("GET /hello (2 spans)", results.hello.off, results.hello.on, "req"));
  console.log(summary("POST /front/chain (4 spans)", results.chain.off, results.chain.on, "req"));
  const stats = ring.stats;
  console.log(
    `  the ring: ${stats.recorded} spans recorded, ${stats.held} held (capacity ${stats.capacity}), ` +
      `${stats.overwritten} overwritten`,
  );
} finally {
  await Deno.remove(script);
  for (const n of [off, on]) {
    await n.server.shutdown();
    await n.cluster.close();
  }
}
