/**
 * A real Prometheus (Debian's `prometheus`, installed by .ci/run when missing) scraping a 3-node cluster
 * running the example shop, every second, with a viewer token; the test asserts through Prometheus's HTTP
 * query API that what PromQL computes matches the load that was sent:
 *
 * - the place-order calls and the orders route's requests, summed over the three nodes' counters, grew by
 *   exactly the number of requests the load generator sent;
 * - `rate()` over a 10-s window inside the 20-s run is the load's rate (within 15%);
 * - `histogram_quantile(0.99, ...)` of the route's duration over the run is within one bucket of the load
 *   generator's own p99.
 *
 * Prometheus is started by the test on a free loopback port (it needs an explicit --web.listen-address) with
 * a temporary config and storage directory, and is killed at the end.
 *
 *   deno test -A --unstable-worker-options tests/integration/prometheus_test.ts
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { runLoad } from "../../runtime/loadgen/mod.ts";
import { bucketIndex } from "../../runtime/core/mod.ts";
import { deployShop, ORDER_BODY } from "./_metrics_shop.ts";

const PROMETHEUS = "/usr/bin/prometheus";
const present = await Deno.stat(PROMETHEUS).then(() => true, () => false);

/** A free loopback port: bind port 0, read it, release it. */
function freeLoopbackPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

interface PromAnswer {
  status: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
  error?: string;
}

Deno.test({
  name: "a real Prometheus scraping 3 nodes: PromQL's counts, rate and p99 match the load sent",
  ignore: !present,
  async fn(t) {
    const cluster = await TestCluster.start(3, { fsync: "never" });
    const dir = await Deno.makeTempDir({ prefix: "aether-prometheus-" });
    let prometheus: Deno.ChildProcess | undefined;
    let promLog = "";
    try {
      await cluster.waitForLeader();
      await deployShop(cluster);
      const port = freeLoopbackPort();
      const targets = cluster.nodes.map((n) => `'127.0.0.1:${n.ready!.apiPort}'`).join(", ");
      await Deno.writeTextFile(
        `${dir}/prometheus.yml`,
        `global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: aether
    scrape_interval: 1s
    scrape_timeout: 900ms
    metrics_path: /metrics
    authorization:
      credentials: '${cluster.token}'
    static_configs:
      - targets: [${targets}]
`,
      );
      prometheus = new Deno.Command(PROMETHEUS, {
        args: [
          `--config.file=${dir}/prometheus.yml`,
          `--storage.tsdb.path=${dir}/data`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=warn",
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const decoder = new TextDecoder();
      const collect = async (stream: ReadableStream<Uint8Array>) => {
        for await (const chunk of stream) promLog = (promLog + decoder.decode(chunk)).slice(-20_000);
      };
      collect(prometheus.stdout);
      collect(prometheus.stderr);
      const base = `http://127.0.0.1:${port}`;
      const query = async (promql: string, atSeconds?: number): Promise<PromAnswer["data"]["result"]> => {
        const params = new URLSearchParams({ query: promql });
        if (atSeconds !== undefined) params.set("time", atSeconds.toFixed(3));
        const response = await fetch(`${base}/api/v1/query?${params}`);
        const body = await response.json() as PromAnswer;
        equal(body.status, "success", `${promql}: ${body.error}`);
        return body.data.result;
      };
      const scalar = async (promql: string, atSeconds?: number): Promise<number> => {
        const result = await query(promql, atSeconds);
        equal(result.length, 1, `${promql}: one series, got ${JSON.stringify(result)}`);
        return Number(result[0].value[1]);
      };
      await cluster.waitFor("Prometheus scraping all three nodes", async () => {
        const up = await query("up").catch(() => []);
        return up.length === 3 && up.every((r) => r.value[1] === "1");
      }, 30_000);

      const calls = 'sum(aether_slice_calls_total{slice="org.example:place-order",method="placeOrder"})';
      const requests = 'sum(aether_http_requests_total{method="POST",route=~".*orders.*"})';
      // Quiet and scraped: the warm-up orders are in the counters Prometheus holds.
      const steady = async () => {
        const a = await scalar(calls);
        await new Promise((r) => setTimeout(r, 2_500));
        return (await scalar(calls)) === a ? a : null;
      };
      const callsBefore = await cluster.waitFor("a steady count in Prometheus", steady, 30_000);
      const requestsBefore = await scalar(requests);

      const rate = 40;
      const durationMs = 20_000;
      const startedAt = Date.now() / 1000;
      const report = await runLoad({
        target: "POST /api/v1/orders",
        urls: cluster.nodes.map((n) => n.httpUrl),
        ratePerSecond: rate,
        durationMs,
        body: ORDER_BODY,
        timeoutMs: 10_000,
      });
      const endedAt = Date.now() / 1000;
      equal(report.failed, 0, JSON.stringify(report.statuses));

      await t.step("counters summed over the nodes grew by exactly the requests sent", async () => {
        const want = callsBefore + report.sent;
        const got = await cluster.waitFor("Prometheus holding the whole load", async () => {
          const value = await scalar(calls);
          return value === want ? value : null;
        }, 15_000).catch(async (e) => {
          throw new Error(
            `${e.message}: Prometheus says ${await scalar(calls)}, sent ${report.sent} on ${callsBefore}`,
          );
        });
        equal(got, want);
        equal(await scalar(requests), requestsBefore + report.sent, "the orders route's requests");
      });

      await t.step("rate() over the middle of the run is the load's rate", async () => {
        // A 10-s window well inside the run (from 5 s to 15 s of its 20 s): Prometheus's extrapolation at the
        // window's edges and the 1-s scrape jitter of a busy machine stay small against it.
        const mid = startedAt + 15;
        const measured = await scalar(
          'sum(rate(aether_slice_calls_total{slice="org.example:place-order",method="placeOrder"}[10s]))',
          mid,
        );
        console.log(
          `PromQL rate at mid-run: ${measured.toFixed(2)}/s (sent ${report.sendRatePerSecond.toFixed(2)}/s)`,
        );
        ok(Math.abs(measured - rate) <= rate * 0.15, `rate ${measured} vs ${rate}/s`);
      });

      await t.step(
        "histogram_quantile(0.99) of the route over the run is within one bucket of the load's p99",
        async () => {
          // Settle one more scrape, then the increase over exactly the run's span.
          await new Promise((r) => setTimeout(r, 2_000));
          const span = Math.ceil(Date.now() / 1000 - startedAt) + 1;
          const p99Seconds = await scalar(
            `histogram_quantile(0.99, sum by (le) (increase(aether_http_request_duration_seconds_bucket{method="POST",route=~".*orders.*"}[${span}s])))`,
          );
          const promBucket = bucketIndex(p99Seconds * 1000);
          const loadBucket = bucketIndex(report.latency.p99Ms);
          console.log(
            `p99: PromQL ${(p99Seconds * 1000).toFixed(2)} ms (bucket ${promBucket}), load generator ` +
              `${report.latency.p99Ms.toFixed(2)} ms (bucket ${loadBucket}); run ${
                (endedAt - startedAt).toFixed(1)
              } s`,
          );
          ok(Math.abs(promBucket - loadBucket) <= 1, "within one bucket");
        },
      );
    } catch (e) {
      console.error(promLog.slice(-4_000));
      console.error(cluster.logs().slice(-6_000));
      throw e;
    } finally {
      if (prometheus) {
        try {
          prometheus.kill("SIGKILL");
        } catch {
          // Already gone.
        }
        await prometheus.status;
      }
      await cluster.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
