/**
 * The lock service (leases in the consensus KV) on a 3-member cluster on loopback, through a slice: the probe
 * fixture (tests/fixtures/infra/probe.ts, one instance per node) calls `ctx.infra.lock(name)` for each HTTP
 * request, so every figure includes the HTTP hop into the slice and its call-out to the node.
 *
 * - uncontended: C workers, each on its own lock, acquire then release back to back, round-robin over the
 *   nodes; p50/p99 of acquire and of release, and acquire+release pairs per second across the workers;
 * - contended: C workers on one lock (acquire with a wait, release at once): hand-overs per second, and p50/p99
 *   of acquire (which includes the wait for the lock).
 *
 * Flags: --concurrency 8 --duration-ms 5000 --fsync always|never
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/lock_bench.ts
 */

import { parseArgs } from "node:util";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    concurrency: { type: "string", default: "8" },
    "duration-ms": { type: "string", default: "5000" },
    fsync: { type: "string", default: "always" },
  },
});
const concurrency = Number(flags.concurrency);
const durationMs = Number(flags["duration-ms"]);
const fsync = flags.fsync as "always" | "never";
if (!(concurrency >= 1) || !(durationMs >= 100) || !["always", "never"].includes(fsync)) {
  throw new Error("--concurrency must be >= 1, --duration-ms >= 100, --fsync always or never");
}

const PROBE = new URL("../fixtures/infra/probe.ts", import.meta.url).pathname;

async function post(node: NodeProcess, path: string, body: unknown) {
  const response = await fetch(node.httpUrl + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${path} on ${node.id}: ${response.status} ${text}`);
  return JSON.parse(text);
}

interface Summary {
  count: number;
  p50: number;
  p99: number;
}

function summary(samplesMs: number[]): Summary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99) };
}

/** Workers looping acquire → release for `durationMs`; lockOf(worker) names each worker's lock. */
async function run(nodes: NodeProcess[], lockOf: (worker: number) => string, waitMs: number) {
  const acquireMs: number[] = [];
  const releaseMs: number[] = [];
  const endAtMs = performance.now() + durationMs;
  const startMs = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    for (let i = worker; performance.now() < endAtMs; i++) {
      const node = nodes[i % nodes.length];
      const name = lockOf(worker);
      const t0 = performance.now();
      const { token } = await post(node, "/probe/acquire", { name, ttlMs: 10_000, waitMs });
      const t1 = performance.now();
      const released = await post(node, "/probe/release", { name, token });
      if (released !== true) {
        throw new Error(`release of ${name} ${token}: ${JSON.stringify(released)}`);
      }
      acquireMs.push(t1 - t0);
      releaseMs.push(performance.now() - t1);
    }
  }));
  const seconds = (performance.now() - startMs) / 1000;
  return {
    acquire: summary(acquireMs),
    release: summary(releaseMs),
    pairsPerSec: acquireMs.length / seconds,
  };
}

const cluster = await TestCluster.start(3, { fsync });
try {
  await cluster.waitForLeader();
  const [n1] = cluster.nodes;
  await pushArtifact(n1, await buildSlice(PROBE));
  const r = await postBlueprint(
    n1,
    `id = "org.example.probe:probe:1.0.0"\n[[slices]]\nartifact = "org.example.probe:probe:1.0.0"\n` +
      `instances = 3\nrequires = ["kv", "lock"]\n`,
  );
  if (r.status !== 201) throw new Error(`blueprint: ${r.status} ${JSON.stringify(r.body)}`);
  await cluster.waitFor("probe ACTIVE on 3 nodes", async () => {
    const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.probe:probe");
    return s !== undefined && s.instances.filter((i) => i.state === "ACTIVE").length === 3;
  }, 90_000);
  for (const node of cluster.nodes) {
    await cluster.waitFor(`${node.id} routes`, async () => {
      const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
      return body.routes.some((r) => r.path === "/probe/acquire");
    }, 30_000);
  }
  // Warm-up: every node's instance and the consensus path.
  for (const node of cluster.nodes) {
    const { token } = await post(node, "/probe/acquire", { name: "warm" });
    await post(node, "/probe/release", { name: "warm", token });
  }

  const own = await run(cluster.nodes, (worker) => `bench-${worker}`, 0);
  const hot = await run(cluster.nodes, () => "hot", 10_000);
  const ms = (s: Summary) => `p50 ${s.p50.toFixed(2).padStart(6)} ms  p99 ${s.p99.toFixed(2).padStart(7)} ms`;
  console.log(`lock bench: 3 nodes, fsync ${fsync}, ${concurrency} workers, ${durationMs} ms per phase`);
  console.log(`uncontended acquire  ${ms(own.acquire)}  (${own.acquire.count} ops)`);
  console.log(`uncontended release  ${ms(own.release)}`);
  console.log(`uncontended          ${own.pairsPerSec.toFixed(0).padStart(6)} acquire+release pairs/s`);
  console.log(`contended acquire    ${ms(hot.acquire)}  (wait included; ${hot.acquire.count} ops)`);
  console.log(`contended release    ${ms(hot.release)}`);
  console.log(`contended            ${hot.pairsPerSec.toFixed(0).padStart(6)} hand-overs/s (one lock)`);
} finally {
  await cluster.close();
}
