/**
 * Invocation benchmark: what the HTTP router and slice-to-slice calls cost, against raw baselines measured in
 * the same run.
 *
 *   deno run -A --unstable-worker-options tests/bench/invoke_bench.ts [--quick] [--seconds 10] [--calls 5000]
 *
 * 1. HTTP throughput, wrk -t1 -c50 (installed from Debian when missing) against: a raw `Deno.serve` hello world
 *    in its own process; a 1-member Aether node serving a slice route (`GET /hello`, default process
 *    isolation); and the same handler + invoker + slice in worker isolation without consensus around it
 *    (tests/bench/_invoke_worker_app.ts). Goal: the node at ≥ 50% of raw (aim 70%). Rounds alternate.
 *    Then each layer alone behind one Deno.serve (tests/bench/_invoke_layers.ts), in both isolations: raw, a
 *    Worker round trip, the same batched per event loop turn, what Deno charges for the request and response
 *    parts the HTTP contract touches (alone, then with the batched hop: the ceiling of a worker-isolated
 *    design serving HTTP on the main thread), the sandbox executor, the invoker, the invoker plus those
 *    request parts, the HTTP handler, and the ceiling served by two threads sharing the port, with the
 *    server CPU of each and the main thread's share of it.
 * 2. Slice-to-slice call latency, measured inside the calling slice (a loop of awaited calls, performance.now
 *    around each): caller and callee on different nodes (3 node processes, process isolation), on one node
 *    (process isolation), and both again in worker isolation (two helper processes with a real mesh and no
 *    consensus, tests/bench/_invoke_peer.ts; one node in this process). Goals across
 *    nodes: p50 < 0.5 ms, p99 < 2 ms. Baselines in the same run: a postMessage round trip to a Worker, a JSON
 *    line round trip to a child process over stdio (what process isolation rides on), a WebSocket round trip
 *    between two processes (what the mesh rides on).
 * 3. HTTP to a slice over TLS: a 1-member node serving `GET /hello` with its ports plain, then with
 *    `--tls-cert/--tls-key/--tls-ca` from `aether cluster init` (HTTPS on the app port), wrk -t1 -c50 against
 *    each, rounds alternated (keep-alive connections: the handshakes are paid once per connection). Run it
 *    alone with `--only tls`. The token check is the management API's (tests/bench/auth_bench.ts); the app
 *    port takes no token.
 */

import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { fixture, InProcessCluster } from "../../runtime/invoke/testing.ts";
import { spawnStdioEcho } from "./_stdio_echo.ts";
import { CLI_TASK_PERMISSIONS, runCli } from "../_support/cli.ts";
import { cpuSeconds } from "./_proc_cpu.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    seconds: { type: "string" },
    calls: { type: "string" },
    only: { type: "string" },
  },
});
if (flags.only !== undefined && flags.only !== "tls") throw new Error(`--only: "${flags.only}" is not tls`);
const QUICK = flags.quick;
const WRK_SECONDS = Number(flags.seconds ?? (QUICK ? 3 : 10));
const ROUNDS = QUICK ? 1 : 2;
const CALLS = Number(flags.calls ?? (QUICK ? 1000 : 5000));
const GROUP = "org.example.invoke";
const PAYLOAD = { sku: "LAPTOP-PRO", quantity: 2 };
/** Calls made before the measured ones in every latency loop (left out of the percentiles). */
const WARMUP = Math.min(500, CALLS / 4);

const fmt = (v: number) => (v < 1 ? `${(v * 1000).toFixed(0)} µs` : `${v.toFixed(2)} ms`);
const rate = (v: number) => `${(v / 1000).toFixed(1)}k req/s`;

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  return { p50: at(0.5), p99: at(0.99), n: sorted.length };
}

/**
 * Runs a latency loop of `calls` sequential calls (warm-up included) and adds the CPU time this process and
 * every process below it (nodes, sandboxes, helpers) spent per call: a figure near the p50 means the calls
 * are bound by CPU (work on each hop), not by waiting.
 */
async function withCpu(calls: number, loop: () => Promise<{ p50: number; p99: number }>) {
  const before = cpuSeconds(Deno.pid);
  const result = await loop();
  return { ...result, cpuUsPerCall: ((cpuSeconds(Deno.pid) - before) * 1e6) / calls };
}

function latencyLine(
  label: string,
  v: { p50: number; p99: number; cpuUsPerCall: number },
  note = "",
): string {
  return `   ${label.padEnd(40)} p50 ${fmt(v.p50).padStart(8)}  p99 ${fmt(v.p99).padStart(8)}  CPU ${
    v.cpuUsPerCall.toFixed(0).padStart(4)
  } µs/call${note}`;
}

// ------------------------------------------------------------------------------------------------ processes

interface Child {
  port: number;
  pid: number;
  close(): Promise<void>;
}

/** Spawns a Deno child that prints `{"port": N}` once ready and exits when its standard input closes. */
async function spawnServer(args: string[]): Promise<Child> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
    env: { NO_COLOR: "1" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!buffer.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`child ${args.join(" ").slice(0, 80)} exited before it was ready`);
    buffer += value;
  }
  const port = JSON.parse(buffer.slice(0, buffer.indexOf("\n"))).port as number;
  const draining = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe empty */ }
  })();
  return {
    port,
    pid: child.pid,
    async close() {
      await child.stdin.close().catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await child.status;
      clearTimeout(timer);
      await draining.catch(() => {});
    },
  };
}

const RAW_SERVER = `
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(JSON.stringify({ port })) },
  () => Response.json({ message: "hello" }));
for await (const _ of Deno.stdin.readable) {}
Deno.exit(0);`;

/** Deno.serve answering each request through a round trip to one Worker: the floor under a sandboxed call. */
const RAW_WORKER_SERVER = `
const worker = new Worker(URL.createObjectURL(new Blob(["onmessage = (e) => postMessage(e.data);"],
  { type: "text/javascript" })), { type: "module" });
const waiting = new Map(); let next = 0;
worker.onmessage = (e) => { const done = waiting.get(e.data.id); waiting.delete(e.data.id); done(e.data.value); };
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(JSON.stringify({ port })) },
  () => new Promise((resolve) => { const id = next++;
    waiting.set(id, (value) => resolve(Response.json(value))); worker.postMessage({ id, value: { message: "hello" } }); }));
for await (const _ of Deno.stdin.readable) {}
Deno.exit(0);`;

const WS_ECHO = `
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log(JSON.stringify({ port })) },
  (req) => { const { socket, response } = Deno.upgradeWebSocket(req); socket.binaryType = "arraybuffer";
    socket.onmessage = (e) => socket.send(e.data); return response; });
for await (const _ of Deno.stdin.readable) {}
Deno.exit(0);`;

// ------------------------------------------------------------------------------------------------ wrk

async function ensureWrk(): Promise<void> {
  try {
    await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return;
  } catch {
    console.log("wrk is missing: installing it from Debian (apt-get install -y wrk)");
  }
  const install = await new Deno.Command("apt-get", {
    args: ["install", "-y", "wrk"],
    stdout: "inherit",
    stderr: "inherit",
  })
    .output();
  if (!install.success) {
    throw new Error("apt-get install -y wrk failed (run as root, or install wrk yourself)");
  }
}

interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  /** Server CPU (the process and its children, sandboxes included) per request. */
  cpuUsPerRequest: number;
  /** The part of it spent in the server process itself (HTTP, routing, invoker, sandbox hosts). */
  ownCpuUsPerRequest: number;
  p50Ms: number;
  p99Ms: number;
  errors: string;
}

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

async function wrk(url: string, seconds: number, serverPid: number): Promise<WrkResult> {
  const cpuBefore = cpuSeconds(serverPid);
  const ownBefore = cpuSeconds(serverPid, true);
  const output = await new Deno.Command("wrk", {
    args: ["-t1", "-c50", `-d${seconds}s`, "--latency", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const cpu = cpuSeconds(serverPid) - cpuBefore;
  const own = cpuSeconds(serverPid, true) - ownBefore;
  const text = new TextDecoder().decode(output.stdout);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const requests = Number(/(\d+) requests in/.exec(text)?.[1] ?? NaN);
  if (!output.success || !rps) {
    throw new Error(`wrk failed: ${text}${new TextDecoder().decode(output.stderr)}`);
  }
  const p50 = /\s50%\s+(\S+)/.exec(text)?.[1] ?? "";
  const p99 = /\s99%\s+(\S+)/.exec(text)?.[1] ?? "";
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1];
  const socket = /Socket errors: (.*)/.exec(text)?.[1];
  return {
    requestsPerSecond: Number(rps[1]),
    requests,
    cpuUsPerRequest: (cpu * 1e6) / requests,
    ownCpuUsPerRequest: (own * 1e6) / requests,
    p50Ms: toMs(p50),
    p99Ms: toMs(p99),
    errors: [non2xx ? `${non2xx} non-2xx` : "", socket ? `socket errors ${socket}` : ""].filter(Boolean).join(
      ", ",
    ),
  };
}

// ------------------------------------------------------------------------------------------------ baselines

type RoundTrips = { samples: number[]; cpuUsPerCall: number };

/** `n` timed round trips after the warm-up, and the CPU this process and its children spent per trip. */
async function roundTrips(
  n: number,
  once: () => Promise<unknown>,
): Promise<RoundTrips> {
  for (let i = 0; i < WARMUP; i++) await once();
  const samples: number[] = [];
  const cpuBefore = cpuSeconds(Deno.pid);
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await once();
    samples.push(performance.now() - t0);
  }
  return { samples, cpuUsPerCall: ((cpuSeconds(Deno.pid) - cpuBefore) * 1e6) / n };
}

async function postMessageBaseline(n: number): Promise<RoundTrips> {
  const source = "onmessage = (e) => postMessage(e.data);";
  const worker = new Worker(URL.createObjectURL(new Blob([source], { type: "text/javascript" })), {
    type: "module",
  });
  let wake: () => void = () => {};
  worker.onmessage = () => wake();
  const trips = await roundTrips(n, () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      worker.postMessage({ t: "call", id: 1, payload: PAYLOAD });
    }));
  worker.terminate();
  return trips;
}

async function stdioBaseline(n: number): Promise<RoundTrips> {
  const child = spawnStdioEcho();
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let wake: () => void = () => {};
  const reading = (async () => {
    for await (const _ of child.stdout) wake();
  })();
  const line = encoder.encode(JSON.stringify({ t: "call", id: 1, payload: PAYLOAD }) + "\n");
  const trips = await roundTrips(n, () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      writer.write(line);
    }));
  await writer.close();
  await child.status;
  await reading;
  return trips;
}

async function webSocketBaseline(n: number): Promise<RoundTrips> {
  const server = await spawnServer(["eval", "--no-config", WS_ECHO]);
  const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve) => ws.addEventListener("open", resolve, { once: true }));
  let wake: () => void = () => {};
  ws.onmessage = () => wake();
  const bytes = new TextEncoder().encode(JSON.stringify({ t: "q", c: 1, p: PAYLOAD }));
  const trips = await roundTrips(n, () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      ws.send(bytes);
    }));
  ws.close();
  await server.close();
  return trips;
}

// ------------------------------------------------------------------------------------------------ Aether

async function publishBench(node: NodeProcess): Promise<void> {
  for (const name of ["hello", "caller"]) {
    const path = fileURLToPath(new URL(`../fixtures/invoke/${name}.ts`, import.meta.url));
    await pushArtifact(node, await buildSlice(path));
  }
}

async function deploy(node: NodeProcess, name: string): Promise<void> {
  const { status, body } = await node.json("/api/v1/deploy", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ artifact: `${GROUP}:${name}:1.0.0`, instances: 1 }),
  });
  if (status >= 300) throw new Error(`deploy ${name}: ${status} ${JSON.stringify(body)}`);
}

/** Node ids hosting each slice once every named slice has one ACTIVE instance. */
async function waitActive(
  cluster: TestCluster,
  node: NodeProcess,
  names: string[],
): Promise<Record<string, string>> {
  return await cluster.waitFor(`${names.join(", ")} ACTIVE`, async () => {
    const slices = await sliceStatuses(node);
    const out: Record<string, string> = {};
    for (const name of names) {
      const s = slices.find((x) => x.slice === `${GROUP}:${name}`);
      const active = s?.instances.find((i) => i.state === "ACTIVE");
      if (!active) return null;
      out[name] = active.node;
    }
    return out;
  }, 90_000);
}

async function callerLoop(node: NodeProcess, n: number): Promise<{ p50: number; p99: number; n: number }> {
  const { status, body } = await node.json<{ ok: boolean; value: { p50: number; p99: number; n: number } }>(
    `/api/v1/invoke/${GROUP}:caller/loop`,
    {
      method: "POST",
      headers: { "x-aether-timeout-ms": "600000" },
      body: JSON.stringify({ n, warmup: WARMUP, payload: PAYLOAD }),
    },
  );
  if (status !== 200 || !body.ok) throw new Error(`caller loop: ${status} ${JSON.stringify(body)}`);
  return body.value;
}

// ------------------------------------------------------------------------------------------------ TLS

interface ServedNode {
  cluster: TestCluster;
  url: string;
  pid: number;
  client?: Deno.HttpClient;
}

/** A 1-member node serving `GET /hello`, its ports plain or HTTPS (certificates from `aether cluster init`). */
async function helloNode(tls: boolean): Promise<ServedNode> {
  const cluster = await TestCluster.create(1, {
    fsync: "never",
    argsFor: tls
      ? (id, root) => [
        ...["--tls-cert", `${root}/certs/${id}.crt`, "--tls-key", `${root}/certs/${id}.key`],
        ...["--tls-ca", `${root}/certs/ca.crt`],
      ]
      : undefined,
  });
  try {
    let client: Deno.HttpClient | undefined;
    if (tls) {
      const ids = cluster.nodes.map((n) => n.id).join(",");
      const init = await runCli(["cluster", "init", "--out", `${cluster.root}/certs`, "--nodes", ids], {
        permissions: CLI_TASK_PERMISSIONS,
      });
      if (init.code !== 0) throw new Error(`cluster init failed: ${init.stderr}`);
      client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(`${cluster.root}/certs/ca.crt`)] });
    }
    await cluster.startAll();
    const n1 = cluster.nodes[0];
    const scheme = tls ? "https" : "http";
    const api = async (path: string, init: RequestInit = {}) => {
      const response = await fetch(`${scheme}://127.0.0.1:${n1.ready!.apiPort}${path}`, {
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${cluster.token}` },
        client,
      });
      return { status: response.status, text: await response.text() };
    };
    await cluster.waitFor("a leader", async () => {
      const status = await api("/api/v1/status").catch(() => ({ text: "" }));
      return status.text.includes('"isLeader":true') || null;
    }, 30_000);
    const path = fileURLToPath(new URL("../fixtures/invoke/hello.ts", import.meta.url));
    const slice = await buildSlice(path);
    const form = new FormData();
    form.append("manifest", JSON.stringify(slice.manifest));
    form.append("bundle", new Blob([slice.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
    const pushed = await api("/api/v1/artifacts", { method: "POST", body: form });
    if (pushed.status >= 300) throw new Error(`push: ${pushed.status} ${pushed.text}`);
    const deployed = await api("/api/v1/deploy", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ artifact: `${GROUP}:hello:1.0.0`, instances: 1 }),
    });
    if (deployed.status >= 300) throw new Error(`deploy: ${deployed.status} ${deployed.text}`);
    const url = `${scheme}://127.0.0.1:${n1.ready!.httpPort}/hello`;
    await cluster.waitFor("GET /hello served", async () => {
      const text = await fetch(url, { client }).then((r) => r.text(), () => "");
      return text.includes("hello") || null;
    }, 90_000);
    return { cluster, url, pid: n1.process!.pid, client };
  } catch (e) {
    await cluster.close();
    throw e;
  }
}

async function tlsSection(): Promise<void> {
  console.log(
    `\n3. HTTP GET /hello over TLS: a 1-member node, plain and HTTPS (wrk -t1 -c50, ${WRK_SECONDS} s)`,
  );
  const nodes = { plain: await helloNode(false), tls: await helloNode(true) };
  try {
    for (const n of Object.values(nodes)) await wrk(n.url, 1, n.pid); // warm-up
    const results: Record<"plain" | "tls", WrkResult[]> = { plain: [], tls: [] };
    const rounds = Math.max(2, ROUNDS);
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? (["plain", "tls"] as const) : (["tls", "plain"] as const);
      for (const key of order) {
        const v = await wrk(nodes[key].url, WRK_SECONDS, nodes[key].pid);
        results[key].push(v);
        console.log(
          `   round ${round}  ${key.padEnd(6)} ${rate(v.requestsPerSecond).padStart(14)}  p50 ${
            fmt(v.p50Ms).padStart(8)
          }  p99 ${fmt(v.p99Ms).padStart(8)}  CPU ${v.cpuUsPerRequest.toFixed(0).padStart(4)} µs/req${
            v.errors ? `  (${v.errors})` : ""
          }`,
        );
      }
    }
    const best = (key: "plain" | "tls") => Math.max(...results[key].map((v) => v.requestsPerSecond));
    const cpu = (key: "plain" | "tls") => Math.min(...results[key].map((v) => v.cpuUsPerRequest));
    console.log(
      `   best of ${rounds}: plain ${rate(best("plain"))}, TLS ${rate(best("tls"))} (${
        ((best("tls") / best("plain")) * 100).toFixed(0)
      }% of plain); server CPU ${cpu("plain").toFixed(0)} vs ${cpu("tls").toFixed(0)} µs/req`,
    );
  } finally {
    for (const n of Object.values(nodes)) {
      n.client?.close();
      await n.cluster.close();
    }
  }
}

// ------------------------------------------------------------------------------------------------ run

console.log(
  `invoke benchmark (Deno ${Deno.version.deno}, ${
    QUICK ? "quick" : "full"
  } run; wrk ${WRK_SECONDS}s, ${CALLS} calls)`,
);
const load = () => Deno.loadavg().map((v) => v.toFixed(2)).join(" ");
console.log(`load average at start: ${load()}\n`);
await ensureWrk();
if (flags.only === "tls") {
  await tlsSection();
  console.log(`load average at end: ${load()}`);
  Deno.exit(0);
}

// 1. HTTP --------------------------------------------------------------------------------------------------
const single = await TestCluster.start(1, { fsync: "never" });
const rows: Array<
  { round: number; raw: WrkResult; rawWorker: WrkResult; node: WrkResult; worker: WrkResult }
> = [];
try {
  await single.waitForLeader();
  const n1 = single.nodes[0];
  await publishBench(n1);
  await deploy(n1, "hello");
  await deploy(n1, "caller");
  await waitActive(single, n1, ["hello", "caller"]);
  await single.waitFor(
    "GET /hello routed",
    async () => (await fetch(`${n1.httpUrl}/hello`).then((r) => r.text(), () => "")).includes("hello"),
  );

  const raw = await spawnServer(["eval", "--no-config", RAW_SERVER]);
  const rawWorker = await spawnServer(["eval", "--no-config", RAW_WORKER_SERVER]);
  const workerApp = await spawnServer([
    "run",
    "-A",
    "--unstable-worker-options",
    fileURLToPath(new URL("./_invoke_worker_app.ts", import.meta.url)),
  ]);
  try {
    const targets = {
      raw: { url: `http://127.0.0.1:${raw.port}/hello`, pid: raw.pid },
      rawWorker: { url: `http://127.0.0.1:${rawWorker.port}/hello`, pid: rawWorker.pid },
      node: { url: `${n1.httpUrl}/hello`, pid: n1.process!.pid },
      worker: { url: `http://127.0.0.1:${workerApp.port}/hello`, pid: workerApp.pid },
    };
    for (const t of Object.values(targets)) await wrk(t.url, 1, t.pid); // warm-up: JIT, connections, pools
    console.log(
      "1. HTTP GET /hello, wrk -t1 -c50 (wrk shares the 2 cores); CPU = the server's, sandboxes included",
    );
    for (let round = 1; round <= ROUNDS; round++) {
      const r = {
        round,
        raw: await wrk(targets.raw.url, WRK_SECONDS, targets.raw.pid),
        rawWorker: await wrk(targets.rawWorker.url, WRK_SECONDS, targets.rawWorker.pid),
        node: await wrk(targets.node.url, WRK_SECONDS, targets.node.pid),
        worker: await wrk(targets.worker.url, WRK_SECONDS, targets.worker.pid),
      };
      rows.push(r);
      const labelled = [
        ["raw Deno.serve", r.raw],
        ["raw Deno.serve + one Worker hop", r.rawWorker],
        ["Aether node, process isolation", r.node],
        ["handler+invoker, worker isolation", r.worker],
      ] as const;
      for (const [label, v] of labelled) {
        const ratio = label === "raw Deno.serve"
          ? ""
          : `  ${((v.requestsPerSecond / r.raw.requestsPerSecond) * 100).toFixed(0)}% of raw`;
        console.log(
          `   round ${round}  ${label.padEnd(34)} ${rate(v.requestsPerSecond).padStart(14)}  p50 ${
            fmt(v.p50Ms).padStart(8)
          }  p99 ${fmt(v.p99Ms).padStart(8)}  CPU ${v.cpuUsPerRequest.toFixed(0).padStart(4)} µs/req (${
            v.ownCpuUsPerRequest.toFixed(0)
          } in-process)${ratio}${v.errors ? `  (${v.errors})` : ""}`,
        );
      }
    }
  } finally {
    await raw.close();
    await rawWorker.close();
    await workerApp.close();
  }

  // 1b. Where the time goes --------------------------------------------------------------------------------
  console.log(
    "\n   where an HTTP request's time goes: one Deno.serve, each layer alone, server CPU per request",
  );
  console.log(
    "   (the process and its sandbox child, and the main thread alone, where Deno.serve and the handler run;",
  );
  console.log(
    "   tests/bench/_invoke_layers.ts; `threads`: the ceiling served by two Workers sharing the port)",
  );
  for (const mode of ["process", "worker"] as const) {
    const layers = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-worker-options",
        "--unstable-net",
        fileURLToPath(new URL("./_invoke_layers.ts", import.meta.url)),
        String(Math.max(2, Math.round(WRK_SECONDS / 2))),
        mode,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).output();
    console.log(`   ${mode} isolation:`);
    let previous = 0;
    let raw = 0;
    for (const line of new TextDecoder().decode(layers.stdout).trim().split("\n")) {
      const v = JSON.parse(line) as {
        layer: string;
        requestsPerSecond: number;
        cpuUsPerRequest: number;
        mainThreadCpuUsPerRequest: number;
      };
      const added = previous === 0
        ? ""
        : `  (${v.cpuUsPerRequest - previous >= 0 ? "+" : ""}${
          (v.cpuUsPerRequest - previous).toFixed(0)
        } µs)`;
      raw ||= v.requestsPerSecond;
      const share = `${Math.round((100 * v.requestsPerSecond) / raw)}%`.padStart(5);
      console.log(
        `     ${v.layer.padEnd(10)} ${rate(v.requestsPerSecond).padStart(14)} ${share} of raw  CPU ${
          v.cpuUsPerRequest.toFixed(0).padStart(4)
        } µs/req${added.padEnd(10)} main thread ${v.mainThreadCpuUsPerRequest.toFixed(0).padStart(3)} µs/req`,
      );
      previous = v.cpuUsPerRequest;
    }
  }

  // 2. Calls ------------------------------------------------------------------------------------------------
  console.log(
    `\n2. slice-to-slice call latency (${CALLS} sequential calls, measured inside the calling slice)`,
  );
  const sameNodeProcess = await withCpu(CALLS + WARMUP, () => callerLoop(n1, CALLS));
  console.log(latencyLine("one node, process isolation", sameNodeProcess, "   (the whole node)"));
} finally {
  await single.close();
}

const three = await TestCluster.start(3, { fsync: "never" });
try {
  await three.waitForLeader();
  const [a] = three.nodes;
  await publishBench(a);
  await deploy(a, "hello");
  await waitActive(three, a, ["hello"]);
  await deploy(a, "caller");
  const placed = await waitActive(three, a, ["hello", "caller"]);
  const where = placed.hello === placed.caller
    ? "SAME node (placement put both together)"
    : "different nodes";
  const cross = await withCpu(CALLS + WARMUP, () => callerLoop(a, CALLS));
  console.log(
    latencyLine(
      "two nodes, process isolation",
      cross,
      `   (3 nodes; caller on ${placed.caller}, hello on ${placed.hello}: ${where})`,
    ),
  );
} finally {
  await three.close();
}

{
  // Two processes, worker isolation: tests/bench/_invoke_peer.ts (mesh + executor + invoker, no consensus).
  const peer = fileURLToPath(new URL("./_invoke_peer.ts", import.meta.url));
  const callee = await spawnServer(["run", "-A", "--unstable-worker-options", peer, "n2"]);
  try {
    // The caller process measures the CPU of both processes around its loop (its own start-up left out).
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--unstable-worker-options",
        peer,
        "n1",
        String(callee.port),
        String(CALLS),
        String(callee.pid),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).output();
    const line = new TextDecoder().decode(output.stdout).trim().split("\n").pop()!;
    const v = JSON.parse(line).result as { p50: number; p99: number; cpuUsPerCall: number };
    console.log(
      latencyLine(
        "two nodes, worker isolation",
        v,
        "   (two processes: mesh + sandbox + invoker, no consensus)",
      ),
    );
  } finally {
    await callee.close();
  }
  const cluster = await InProcessCluster.start(["n1"]);
  try {
    await cluster.deploy("n1", await fixture("hello"));
    await cluster.deploy("n1", await fixture("caller"));
    const v = await withCpu(CALLS + WARMUP, async () => {
      const outcome = await cluster.node("n1").invoker.invoke(`${GROUP}:caller`, "loop", {
        n: CALLS,
        warmup: WARMUP,
        payload: PAYLOAD,
      }, { timeoutMs: 600_000 });
      if (!outcome.ok) throw new Error(JSON.stringify(outcome));
      return outcome.value as { p50: number; p99: number };
    });
    console.log(
      latencyLine("one node, worker isolation", v, "   (in this process: sandbox + invoker, no consensus)"),
    );
  } finally {
    await cluster.close();
  }
}

console.log("\n   baselines, same run:");
for (
  const [label, measure] of [
    ["postMessage round trip to a Worker", postMessageBaseline],
    ["JSON line round trip to a child (stdio)", stdioBaseline],
    ["WebSocket round trip between processes", webSocketBaseline],
  ] as const
) {
  const { samples, cpuUsPerCall } = await measure(CALLS);
  console.log(latencyLine(label, { ...percentiles(samples), cpuUsPerCall }));
}

if (rows.length > 0) {
  const pct = (values: number[]) => values.map((r) => `${(r * 100).toFixed(0)}%`).join(", ");
  console.log(
    `\nHTTP to a slice on the same node / raw Deno.serve, throughput: ` +
      `${pct(rows.map((r) => r.node.requestsPerSecond / r.raw.requestsPerSecond))} (process isolation), ` +
      `${pct(rows.map((r) => r.worker.requestsPerSecond / r.raw.requestsPerSecond))} (worker isolation)`,
  );
  console.log(
    `server CPU per request, raw / Aether (the ratio when CPU is the bound, whatever else runs): ` +
      `${pct(rows.map((r) => r.raw.cpuUsPerRequest / r.node.cpuUsPerRequest))} (process isolation), ` +
      `${pct(rows.map((r) => r.raw.cpuUsPerRequest / r.worker.cpuUsPerRequest))} (worker isolation)`,
  );
}
await tlsSection();
console.log(`load average at end: ${load()}`);
