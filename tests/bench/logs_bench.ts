/**
 * Logs on real node processes (3 members on loopback, `--log-level debug --log-format json`):
 *
 *   npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/logs_bench.ts [seconds=60]
 *
 * 1. Volume: the example shop deployed as Forge deploys it, 200 orders/s for `seconds` over the three app
 *    ports; the bytes each node wrote on standard error, by level: what the default `--log-level info` writes
 *    now, what it wrote with the example's per-order lines at INFO (the levels before issue 14: the same
 *    lines, counted as if INFO), and everything at DEBUG.
 * 2. GET /api/v1/logs with one node's ring full (10,000 records), asked through another node (so the records
 *    cross the mesh): a needle by request id, the newest 200, a slice's 1000, the whole ring.
 *    Baseline, same run: GET /api/v1/health of the same node (the API's own cost).
 */

import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { deployExample, type NodeProcess } from "../../runtime/forge/mod.ts";
import { startLoad } from "../../runtime/loadgen/mod.ts";

const SECONDS = Number(Deno.args[0] ?? 60);
const ROOT = new URL("../../", import.meta.url).pathname;
/** The example shop's per-order lines that issue 14 moved from INFO to DEBUG. */
const LOWERED = [
  "placing order",
  "order placed",
  "shipment created",
  "payment captured",
  "stock reserved",
  "stock released",
  "discount applied",
  "restocked",
];

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;

async function volume(): Promise<void> {
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--log-level", "debug", "--log-format", "json"],
  });
  try {
    await cluster.waitForLeader();
    const dist = await Deno.makeTempDir({ prefix: "aether-logs-bench-" });
    await deployExample("ecommerce", cluster.nodes[0].apiUrl.replace("http://", ""), dist, cluster.token);
    await cluster.waitFor("15 instances ACTIVE", async () => {
      const slices = await sliceStatuses(cluster.nodes[0]);
      return slices.flatMap((s) => s.instances).filter((i) => i.state === "ACTIVE").length === 15;
    }, 120_000);
    const before = cluster.nodes.map((n) => n.log.length);
    const report = await startLoad({
      target: "POST /api/v1/orders",
      urls: cluster.nodes.map((n) => n.httpUrl),
      ratePerSecond: 200,
      durationMs: SECONDS * 1000,
      body: Deno.readTextFileSync(`${ROOT}examples/ecommerce/load-order.json.tmpl`),
      bodyLabel: "load-order.json.tmpl",
    }).finished;
    console.log(`1. volume: 200 orders/s for ${SECONDS} s, ${report.succeeded}/${report.requests} succeeded`);
    for (const [i, node] of cluster.nodes.entries()) {
      let now = 0, old = 0, all = 0;
      for (const line of node.log.slice(before[i]).split("\n")) {
        if (!line.startsWith("{")) continue;
        const r = JSON.parse(line);
        const bytes = line.length + 1;
        all += bytes;
        if (r.level !== "debug") now += bytes;
        if (r.level !== "debug" || (r.component === "slice" && LOWERED.includes(r.msg))) old += bytes;
      }
      const per10 = (b: number) => mb((b * 600) / SECONDS);
      console.log(
        `   ${node.id}: INFO+ now ${mb(now)} (${per10(now)}/10 min); INFO+ with the old example levels ` +
          `${mb(old)} (${per10(old)}/10 min); all DEBUG ${mb(all)} (${per10(all)}/10 min)`,
      );
    }
    await Deno.remove(dist, { recursive: true });
  } finally {
    await cluster.close();
  }
}

async function timed(node: NodeProcess, path: string, runs = 20) {
  const times: number[] = [];
  let body = "";
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    body = await (await node.api(`${path}`)).text();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(runs / 2)], max: times[runs - 1], body };
}

async function queries(): Promise<void> {
  const cluster = await TestCluster.start(3, { fsync: "never", extraArgs: ["--log-level", "debug"] });
  try {
    await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    await pushArtifact(n1, await buildSlice(`${ROOT}tests/fixtures/logs/echo.ts`));
    await n1.json("/api/v1/deploy", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ artifact: "org.example.logs:echo:1.0.0", instances: 1 }),
    });
    const holder = await cluster.waitFor("the echo slice ACTIVE", async () => {
      const slice = (await sliceStatuses(n1)).find((s) => s.slice === "org.example.logs:echo");
      return slice?.instances.find((i) => i.state === "ACTIVE")?.node;
    }, 90_000);
    const entry = cluster.node(holder);
    const reader = cluster.nodes.find((n) => n.id !== holder)!;
    await cluster.waitFor("the route", async () => {
      const { body } = await entry.json<{ routes: { path: string }[] }>("/api/v1/routes");
      return body.routes.some((r) => r.path === "/echo/say");
    }, 30_000);
    const say = (id: string) =>
      fetch(`${entry.httpUrl}/echo/say`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": id },
        body: '{"word":"hi"}',
      }).then((r) => r.text());
    let sent = 0;
    for (;;) {
      const { body } = await entry.json<{ limits: { logRing: { dropped: number } } }>("/api/v1/status");
      if (body.limits.logRing.dropped > 0) break;
      await Promise.all(Array.from({ length: 200 }, (_, i) => say(`fill-${sent + i}`)));
      sent += 200;
    }
    await say("needle-1");
    const { body: status } = await entry.json<{ limits: { logRing: unknown } }>("/api/v1/status");
    console.log(
      `2. queries: ${holder}'s ring full after ${sent} requests: ${JSON.stringify(status.limits.logRing)}`,
    );
    const health = await timed(reader, "/api/v1/health");
    console.log(
      `   baseline GET /api/v1/health: median ${health.median.toFixed(1)} ms, max ${
        health.max.toFixed(1)
      } ms`,
    );
    for (
      const q of [
        "?requestId=needle-1",
        "?limit=200",
        "?slice=org.example.logs:echo&limit=1000",
        "?limit=10000",
      ]
    ) {
      const r = await timed(reader, `/api/v1/logs${q}`);
      const records = JSON.parse(r.body).records.length;
      console.log(
        `   GET /api/v1/logs${q} through ${reader.id}: ${records} records, ${mb(r.body.length)}; ` +
          `median ${r.median.toFixed(1)} ms, max ${r.max.toFixed(1)} ms (20 runs)`,
      );
    }
  } finally {
    await cluster.close();
  }
}

await volume();
await queries();
