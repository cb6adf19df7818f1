/**
 * What TLS costs: the same 3-member cluster on loopback, once plain (http:// API, ws:// mesh) and once with TLS
 * on every listener (https:// API and app port, wss:// mesh with client certificates), each driven by C workers
 * issuing KV puts back to back through the management API (round-robin over the members; followers forward to
 * the leader over the mesh). Prints puts/s and p50/p99 for both and the ratio, plus the time for one new HTTPS
 * connection (TLS handshake included) against one over plain HTTP, and the CPU the three nodes used per put.
 *
 * Both clusters run at once and are driven in alternation, `--rounds` times each.
 *
 * Flags: --concurrency 32 --duration-ms 5000 --value-bytes 256 --fsync never --rounds 3
 * Run: npx -y deno@2.9.6 run -A tests/bench/tls_bench.ts
 */

import { parseArgs } from "node:util";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { CLI_TASK_PERMISSIONS, runCli } from "../_support/cli.ts";
import { TestCluster } from "../_support/cluster.ts";
import { cpuSeconds } from "./_proc_cpu.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    concurrency: { type: "string", default: "32" },
    "duration-ms": { type: "string", default: "5000" },
    "value-bytes": { type: "string", default: "256" },
    fsync: { type: "string", default: "never" },
    rounds: { type: "string", default: "3" },
  },
});
const CONCURRENCY = Number(flags.concurrency);
const DURATION_MS = Number(flags["duration-ms"]);
const VALUE = new Uint8Array(Number(flags["value-bytes"])).fill(97);
const NEW_CONNECTIONS = 200;
const ROUNDS = Number(flags.rounds);

interface Cluster {
  test: TestCluster;
  nodes: NodeProcess[];
  token: string;
  scheme: "http" | "https";
  client?: Deno.HttpClient;
  /** The cluster CA (TLS only). */
  ca?: string;
}

const tlsArgs = (id: string, root: string) => [
  ...["--tls-cert", `${root}/certs/${id}.crt`, "--tls-key", `${root}/certs/${id}.key`],
  ...["--tls-ca", `${root}/certs/ca.crt`],
];

async function startCluster(tls: boolean): Promise<Cluster> {
  const test = await TestCluster.create(3, {
    fsync: flags.fsync as "always" | "never",
    argsFor: tls ? tlsArgs : undefined,
  });
  try {
    let ca: string | undefined;
    if (tls) {
      const ids = test.nodes.map((n) => n.id).join(",");
      const init = await runCli(["cluster", "init", "--out", `${test.root}/certs`, "--nodes", ids], {
        permissions: CLI_TASK_PERMISSIONS,
      });
      if (init.code !== 0) throw new Error(`cluster init failed: ${init.stderr}`);
      ca = await Deno.readTextFile(`${test.root}/certs/ca.crt`);
    }
    await test.startAll();
    const client = ca ? Deno.createHttpClient({ caCerts: [ca] }) : undefined;
    const cluster: Cluster = {
      test,
      nodes: test.nodes,
      token: test.token,
      scheme: tls ? "https" : "http",
      client,
      ca,
    };
    await waitHealthy(cluster);
    return cluster;
  } catch (e) {
    await test.close();
    throw e;
  }
}

function url(cluster: Cluster, node: NodeProcess, path: string): string {
  return `${cluster.scheme}://127.0.0.1:${node.ready!.apiPort}${path}`;
}

async function waitHealthy(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const ok = await Promise.all(cluster.nodes.map(async (n) => {
      try {
        const r = await fetch(url(cluster, n, "/api/v1/health"), { client: cluster.client });
        await r.body?.cancel();
        return r.status === 200;
      } catch {
        return false;
      }
    }));
    if (ok.every(Boolean)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("cluster not healthy");
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** CPU seconds the cluster's node processes (sandboxes included) have used so far. */
function clusterCpuSeconds(cluster: Cluster): number {
  return cluster.nodes.reduce((sum, n) => sum + (n.process ? cpuSeconds(n.process.pid) : 0), 0);
}

async function drive(
  cluster: Cluster,
): Promise<{ putsPerSecond: number; p50Ms: number; p99Ms: number; cpuUsPerPut: number }> {
  const latencies: number[] = [];
  const cpuBefore = clusterCpuSeconds(cluster);
  const stopAt = performance.now() + DURATION_MS;
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, w) => {
    const node = cluster.nodes[w % cluster.nodes.length];
    for (let i = 0; performance.now() < stopAt; i++) {
      const t = performance.now();
      const r = await fetch(url(cluster, node, `/api/v1/kv/app/bench/${w}/${i}`), {
        method: "PUT",
        body: VALUE,
        headers: { authorization: `Bearer ${cluster.token}` },
        client: cluster.client,
      });
      await r.body?.cancel();
      if (r.ok) latencies.push(performance.now() - t);
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  const cpuUsPerPut = ((clusterCpuSeconds(cluster) - cpuBefore) * 1e6) / latencies.length;
  latencies.sort((a, b) => a - b);
  return {
    cpuUsPerPut,
    putsPerSecond: latencies.length / seconds,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

/** Mean time of a health request on a fresh connection each time (a new client per request). */
async function newConnectionMs(cluster: Cluster, caPem?: string): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < NEW_CONNECTIONS; i++) {
    const client = Deno.createHttpClient(caPem ? { caCerts: [caPem] } : {});
    const r = await fetch(url(cluster, cluster.nodes[0], "/api/v1/health"), { client });
    await r.body?.cancel();
    client.close();
  }
  return (performance.now() - started) / NEW_CONNECTIONS;
}

type Load = Awaited<ReturnType<typeof drive>>;

/** Both clusters up at once, driven in alternation for ROUNDS rounds (a busy machine skews one long run). */
async function runAlternating(): Promise<Record<"plain" | "tls", Load[] & { newConnectionMs?: number }>> {
  const clusters = { plain: await startCluster(false), tls: await startCluster(true) };
  try {
    const loads: Record<"plain" | "tls", Load[] & { newConnectionMs?: number }> = { plain: [], tls: [] };
    for (let round = 1; round <= ROUNDS; round++) {
      const order = round % 2 === 1 ? (["plain", "tls"] as const) : (["tls", "plain"] as const);
      for (const key of order) {
        const load = await drive(clusters[key]);
        loads[key].push(load);
        console.log(
          `round ${round} ${key.padEnd(5)} ${load.putsPerSecond.toFixed(1)} puts/s  p50 ${
            load.p50Ms.toFixed(1)
          } ms  p99 ${load.p99Ms.toFixed(1)} ms  nodes' CPU ${load.cpuUsPerPut.toFixed(0)} µs/put`,
        );
      }
    }
    for (const key of ["plain", "tls"] as const) {
      loads[key].newConnectionMs = await newConnectionMs(clusters[key], clusters[key].ca);
    }
    return loads;
  } finally {
    for (const cluster of Object.values(clusters)) {
      cluster.client?.close();
      await cluster.test.close();
    }
  }
}

console.log(
  `concurrency ${CONCURRENCY}, ${DURATION_MS} ms, ${VALUE.byteLength}-byte values, --fsync ${flags.fsync}, ` +
    `${ROUNDS} rounds alternated`,
);
const loads = await runAlternating();
const f = (n: number) => n.toFixed(1);
const best = (key: "plain" | "tls") =>
  loads[key].reduce((a, b) => (b.putsPerSecond > a.putsPerSecond ? b : a));
const plain = { ...best("plain"), newConnectionMs: loads.plain.newConnectionMs! };
const tls = { ...best("tls"), newConnectionMs: loads.tls.newConnectionMs! };
console.log(
  `plain  ${f(plain.putsPerSecond)} puts/s  p50 ${f(plain.p50Ms)} ms  p99 ${f(plain.p99Ms)} ms  ` +
    `new connection + request ${f(plain.newConnectionMs)} ms  (best round)`,
);
console.log(
  `tls    ${f(tls.putsPerSecond)} puts/s  p50 ${f(tls.p50Ms)} ms  p99 ${f(tls.p99Ms)} ms  ` +
    `new connection + request ${f(tls.newConnectionMs)} ms  (best round)`,
);
console.log(`tls/plain throughput ${(tls.putsPerSecond / plain.putsPerSecond).toFixed(2)}x (best rounds)`);
