/**
 * The example shop with shared state (inventory and place-order keep stock, reservations and orders in the
 * cluster's kv service: `sharedState` set on live) under open-loop order load on 3 node processes, deployed as
 * Forge does:
 * for each rate of --rates, --duration-ms of orders from examples/ecommerce/load-order.json.tmpl spread over
 * the nodes' application ports; prints success (201; 409s apart: a short shelf, which concurrent orders empty
 * faster than its refill lands; before the store's atomic add also a kv `add` that lost its compare-and-set 64
 * times in a row) and p50/p99. An order's kv operations travel in `kv.batch` calls, shared by the concurrent
 * orders of an instance (examples/ecommerce/shared/kv_batcher.ts); before that (7 kv calls per order) 200
 * orders/s reached 83-95% here, with it 99.8-100%. With
 * `--shared off` both slices keep their state in memory (`sharedState=false`); `--shared both` (the default)
 * runs every rate with shared state on, then again with it off on the same cluster (set live between them): the
 * baseline measured in the same run, under the same machine load. The load average is printed before each
 * mode.
 *
 * Flags: --rates 50,100,150,200 --duration-ms 6000 --shared both|on|off --fsync always|never
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/shop_shared_bench.ts
 */

import { parseArgs } from "node:util";
import { TestCluster } from "../_support/cluster.ts";
import { sliceStatuses } from "../_support/deployment.ts";
import { deployExample } from "../../runtime/forge/mod.ts";
import { startLoad } from "../../runtime/loadgen/mod.ts";
import { PROJECT_ROOT } from "../../runtime/node/permissions.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    rates: { type: "string", default: "50,100,150,200" },
    "duration-ms": { type: "string", default: "6000" },
    shared: { type: "string", default: "both" },
    fsync: { type: "string", default: "always" },
  },
});
const RATES = flags.rates!.split(",").map(Number);
const DURATION_MS = Number(flags["duration-ms"]);
const MODES = flags.shared === "both" ? [true, false] : [flags.shared === "on"];
const FSYNC = flags.fsync as "always" | "never";
if (
  RATES.some((r) => !(r >= 1)) || !(DURATION_MS >= 1000) || !["on", "off", "both"].includes(flags.shared!)
) {
  throw new Error("--rates N,N,... (each >= 1), --duration-ms >= 1000, --shared both|on|off");
}

const loadAverage = () => Deno.loadavg().map((l) => l.toFixed(1)).join(" ");
console.log(`shop orders, --fsync ${FSYNC}, ${DURATION_MS} ms per rate, load average ${loadAverage()}`);
const distDir = await Deno.makeTempDir({ prefix: "aether-bench-dist-" });
const cluster = await TestCluster.start(3, { fsync: FSYNC });
try {
  await cluster.waitForLeader(60_000);
  const [n1] = cluster.nodes;
  await deployExample("ecommerce", n1.apiUrl.replace("http://", ""), distDir, cluster.token);
  await cluster.waitFor("15 instances ACTIVE", async () => {
    const slices = await sliceStatuses(n1);
    return slices.flatMap((s) => s.instances).filter((i) => i.state === "ACTIVE").length >= 15;
  }, 120_000);
  const urls = cluster.nodes.map((n) => n.httpUrl);
  const body = await Deno.readTextFile(`${PROJECT_ROOT}/examples/ecommerce/load-order.json.tmpl`);
  for (const shared of MODES) {
    for (const slice of ["org.example:inventory", "org.example:place-order"]) {
      const { status, body } = await n1.json(`/api/v1/config/${slice}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ values: { sharedState: shared } }),
      });
      if (status !== 200) throw new Error(`config of ${slice}: ${status} ${JSON.stringify(body)}`);
    }
    // Config changes reach every instance within a second.
    await new Promise((r) => setTimeout(r, 1_500));
    console.log(`\nshared state ${shared ? "on" : "off"}, load average ${loadAverage()}`);
    await runRates(urls, body);
  }
} finally {
  await cluster.close();
  await Deno.remove(distDir, { recursive: true }).catch(() => {});
}

async function runRates(urls: string[], body: string): Promise<void> {
  console.log(
    "| orders/s | sent | 201 | 409 (short shelf) | other failures | success | p50 ms | p99 ms |",
  );
  console.log(
    "| -------: | ---: | --: | ----------------: | -------------: | ------: | -----: | -----: |",
  );
  for (const rate of RATES) {
    const report = await startLoad({
      target: "POST /api/v1/orders",
      urls,
      ratePerSecond: rate,
      durationMs: DURATION_MS,
      body,
      bodyLabel: "load-order.json.tmpl",
      timeoutMs: 10_000,
    }).finished;
    const conflicts = report.statuses["409"] ?? 0;
    console.log(
      `| ${rate} | ${report.requests} | ${report.succeeded} | ${conflicts} | ` +
        `${report.failed - conflicts} | ${(report.successRate * 100).toFixed(1)}% | ` +
        `${report.latency.p50Ms.toFixed(0)} | ${report.latency.p99Ms.toFixed(0)} |`,
    );
    // The backlog of one rate must not leak into the next.
    await new Promise((r) => setTimeout(r, 2_000));
  }
}
