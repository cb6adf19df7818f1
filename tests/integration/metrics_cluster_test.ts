/**
 * Cluster metrics on 3 real node processes with the example shop (every slice on every node):
 *
 * - a load of known size through all three app ports: place-order's calls summed over the cluster snapshot
 *   (GET /api/v1/metrics, asked of each node) grow by exactly what the load generator sent, and so do the
 *   orders route's requests; the p99 of /api/v1/invocations is within one bucket of the load generator's own;
 * - every node serves the same picture (the leader's broadcast), Prometheus text at /metrics (node and
 *   cluster scope), the history and bad-input answers;
 * - a frozen node (SIGSTOP: alive, its socket open, silent) is marked stale within 3 s on the others, and
 *   comes back when it resumes; a killed node is marked stale, and its series left out of the merged figures,
 *   within 3 s on the survivors;
 * - `aether metrics`, `aether invocations` and `aether top --once` print the figures.
 *
 *   deno test -A --unstable-worker-options tests/integration/metrics_cluster_test.ts
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { runCli } from "../_support/cli.ts";
import { runLoad } from "../../runtime/loadgen/mod.ts";
import { bucketIndex } from "../../runtime/core/mod.ts";
import type { InvocationSummary } from "../../runtime/metrics/mod.ts";
import {
  deployShop,
  ORDER_BODY,
  orderRequests,
  PLACE_ORDER,
  placeOrderCalls,
  snapshotOf,
} from "./_metrics_shop.ts";

Deno.test("metrics on 3 nodes: exact counts under load, p99, the same picture everywhere, stale within 3 s", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    await deployShop(cluster);
    const [n1, n2, n3] = cluster.nodes;
    // Quiet: the warm-up orders are counted and every node's picture has settled.
    const settled = async () => {
      const before = await Promise.all(cluster.running().map(snapshotOf));
      await new Promise((r) => setTimeout(r, 2_500));
      const after = await Promise.all(cluster.running().map(snapshotOf));
      return after.every((s, i) => placeOrderCalls(s) === placeOrderCalls(before[i])) ? after : null;
    };
    const baseline = await cluster.waitFor("a settled picture", settled, 30_000);
    const callsBefore = placeOrderCalls(baseline[0]);
    const requestsBefore = orderRequests(baseline[0]);
    for (const s of baseline) equal(placeOrderCalls(s), callsBefore, "every node holds the same counts");

    const report = await runLoad({
      target: "POST /api/v1/orders",
      urls: cluster.nodes.map((n) => n.httpUrl),
      ratePerSecond: 60,
      durationMs: 8_000,
      body: ORDER_BODY,
      timeoutMs: 10_000,
    });
    equal(report.failed, 0, JSON.stringify(report.statuses));
    ok(report.sent >= 400, `sent ${report.sent}`);

    await t.step(
      "the cluster's counts equal what the load generator sent, exactly, on every node",
      async () => {
        const want = callsBefore + report.sent;
        const snapshots = await cluster.waitFor("every node counting the load", async () => {
          const all = await Promise.all(cluster.nodes.map(snapshotOf));
          return all.every((s) => placeOrderCalls(s) === want) ? all : null;
        }, 10_000).catch(async (e) => {
          const all = await Promise.all(cluster.nodes.map(snapshotOf));
          throw new Error(`${e.message}; counts ${all.map(placeOrderCalls).join(", ")}, want ${want}`);
        });
        for (const s of snapshots) {
          equal(orderRequests(s), requestsBefore + report.sent, "the orders route's requests");
          equal(s.nodes.filter((n) => !n.stale).length, 3);
          const method = s.slices.find((x) => x.artifact === PLACE_ORDER)!.methods.find((m) =>
            m.method === "placeOrder"
          )!;
          equal(Object.keys(method.nodes).length, 3, "every node ran orders (local instances first)");
          equal(method.latency.count, method.calls, "one latency observation per call");
          for (const node of s.nodes) {
            // The shop's five, beside the kv service's instance (aether.infra:kv) its slices require.
            const shop = node.instances.filter((i) => !i.instanceId.startsWith("aether.infra:"));
            equal(shop.length, 5, `${node.node}: the shop's five instances`);
            for (const i of node.instances) {
              // Process isolation: each sandbox reports its CPU time and memory on its liveness pongs.
              ok(
                i.pid! > 0 && i.rssBytes! > 10e6 && i.cpuSecondsTotal! > 0,
                `${i.instanceId}: ${JSON.stringify(i)}`,
              );
            }
          }
        }
      },
    );

    await t.step(
      "p99 from /api/v1/invocations is within one bucket of the load generator's p99",
      async () => {
        const { status, body } = await n2.json<{ invocations: InvocationSummary[] }>(
          "/api/v1/invocations?window=30&slice=org.example:place-order&method=placeOrder",
        );
        equal(status, 200, JSON.stringify(body));
        const [inv] = body.invocations;
        ok(inv, "placeOrder over the last 30 s");
        const apiBucket = bucketIndex(inv.p99Ms!);
        const loadBucket = bucketIndex(report.latency.p99Ms);
        ok(
          Math.abs(apiBucket - loadBucket) <= 1,
          `p99: API ${
            inv.p99Ms?.toFixed(2)
          } ms (bucket ${apiBucket}), load generator ${report.latency.p99Ms} ms ` +
            `(bucket ${loadBucket})`,
        );
        ok(inv.rate > 0 && inv.errorRate === 0, JSON.stringify(inv));
      },
    );

    await t.step("Prometheus text on every node; ?scope=cluster from any node covers all three", async () => {
      const node = await n3.api("/metrics");
      equal(node.status, 200);
      match(node.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const text = await node.text();
      match(
        text,
        /aether_slice_calls_total\{node="n3",slice="org.example:place-order",version="1.0.0",method="placeOrder"\} \d+/,
      );
      const cluster3 = await (await n3.api("/metrics?scope=cluster")).text();
      for (const id of ["n1", "n2", "n3"]) match(cluster3, new RegExp(`aether_node_up\\{node="${id}"\\} 1`));
      const bad = await n1.api("/metrics?scope=galaxy");
      equal(bad.status, 400);
      match((await bad.json()).detail, /scope/);
      const unauthenticated = await fetch(`${n1.apiUrl}/metrics`);
      equal(unauthenticated.status, 401, "a viewer token is needed");
      await unauthenticated.body?.cancel();
    });

    await t.step("history and bad input", async () => {
      const { status, body } = await n1.json<
        { series: { name: string; points: [number, number | null][] }[] }
      >(
        `/api/v1/metrics/history?series=calls:${PLACE_ORDER}:1.0.0/placeOrder,node.cpu:n2&from=2m`,
      );
      equal(status, 200, JSON.stringify(body));
      const calls = body.series[0].points.map(([, v]) => v ?? 0);
      ok(Math.max(...calls) >= 30, `calls/s under load: ${calls.join(",")}`);
      ok(body.series[1].points.some(([, v]) => v !== null), "node.cpu:n2");
      for (
        const [query, word] of [
          ["/api/v1/metrics/history?from=yesterday", "from"],
          ["/api/v1/metrics/history?step=0", "step"],
          ["/api/v1/metrics/history?colour=red", "colour"],
          ["/api/v1/invocations?window=100000", "window"],
          ["/api/v1/metrics?scope=x", "scope"],
        ]
      ) {
        const answer = await n1.json<{ detail: string }>(query);
        equal(answer.status, 400, query);
        match(answer.body.detail, new RegExp(word), query);
      }
    });

    await t.step("aether metrics, aether invocations and aether top --once", async () => {
      const connect = (
        n: typeof n1,
      ) => ["--connect", `127.0.0.1:${n.ready!.apiPort}`, "--token", cluster.token];
      const metrics = await runCli([...connect(n1), "metrics"]);
      equal(metrics.code, 0, metrics.stderr);
      console.log(metrics.stdout);
      match(metrics.stdout, /n1/);
      match(metrics.stdout, /place-order/);
      const invocations = await runCli([...connect(n2), "invocations", "--window", "60"]);
      equal(invocations.code, 0, invocations.stderr);
      console.log(invocations.stdout);
      match(invocations.stdout, /placeOrder/);
      match(invocations.stdout, /p99/);
      const top = await runCli([...connect(n3), "top", "--once"]);
      equal(top.code, 0, top.stderr);
      console.log(top.stdout);
      match(top.stdout, /placeOrder/);
      match(top.stdout, /NODE/);
      const bad = await runCli([...connect(n2), "invocations", "--window", "0"]);
      ok(bad.code !== 0);
      match(bad.stderr, /window/);
    });

    await t.step(
      "a frozen node (alive, silent: SIGSTOP) is stale within 3 s, and back once it resumes",
      async () => {
        const leader = await cluster.waitForLeader();
        const frozen = cluster.nodes.find((n) => n.id !== leader)!;
        const others = cluster.nodes.filter((n) => n !== frozen);
        frozen.freeze(true);
        const frozenAt = performance.now();
        try {
          const seen = await Promise.all(
            others.map((node) =>
              cluster.waitFor(`${node.id} marking ${frozen.id} stale`, async () => {
                const entry = (await snapshotOf(node)).nodes.find((n) => n.node === frozen.id);
                return entry?.stale ? performance.now() - frozenAt : null;
              }, 10_000)
            ),
          );
          console.log(
            `frozen node stale after: ${
              seen.map((ms, i) => `${others[i].id} ${Math.round(ms)} ms`).join(", ")
            }`,
          );
          for (const ms of seen) {
            ok(ms <= 3_000, `stale after ${Math.round(ms)} ms`);
          }
        } finally {
          frozen.freeze(false);
        }
        await cluster.waitFor(`${frozen.id} back in the picture`, async () => {
          const all = await Promise.all(others.map(snapshotOf));
          return all.every((s) => s.nodes.find((n) => n.node === frozen.id)?.stale === false);
        }, 15_000);
      },
    );

    await t.step("a killed node is stale on the survivors within 3 s, its series left out", async () => {
      const leader = await cluster.waitForLeader();
      const victim = cluster.nodes.find((n) => n.id !== leader)!;
      console.log(`leader ${leader}, killing ${victim.id}`);
      const survivors = cluster.nodes.filter((n) => n !== victim);
      // Every survivor's picture holds the victim's place-order series before the kill (its own calls)...
      const ranOn = (snapshot: Awaited<ReturnType<typeof snapshotOf>>) =>
        snapshot.slices.find((x) => x.artifact === PLACE_ORDER)?.methods.find((m) =>
          m.method === "placeOrder"
        )
          ?.nodes ?? {};
      const totalsBefore: number[] = [];
      for (const node of survivors) {
        const snapshot = await snapshotOf(node);
        const calls = ranOn(snapshot)[victim.id]?.calls ?? 0;
        ok(
          calls > 0,
          `${node.id} holds ${victim.id}'s place-order calls before the kill: ${
            JSON.stringify(ranOn(snapshot))
          }`,
        );
        totalsBefore.push(placeOrderCalls(snapshot));
      }
      const killedAt = performance.now();
      await victim.kill();
      const seenAfterMs = await Promise.all(
        survivors.map((node) =>
          cluster.waitFor(`${node.id} marking ${victim.id} stale`, async () => {
            const s = await snapshotOf(node);
            const entry = s.nodes.find((n) => n.node === victim.id);
            return entry?.stale ? { ms: performance.now() - killedAt, snapshot: s } : null;
          }, 10_000)
        ),
      );
      // ... and none of it once the victim is stale.
      for (const [i, seen] of seenAfterMs.entries()) {
        ok(seen.ms <= 3_000, `${survivors[i].id} saw ${victim.id} stale after ${Math.round(seen.ms)} ms`);
        equal(
          ranOn(seen.snapshot)[victim.id],
          undefined,
          "the stale node's calls are left out of the merged figures",
        );
        ok(placeOrderCalls(seen.snapshot) < totalsBefore[i], "fewer calls in the merged figure");
      }
      console.log(
        `stale after: ${seenAfterMs.map((s, i) => `${survivors[i].id} ${Math.round(s.ms)} ms`).join(", ")}`,
      );
      const text = await (await survivors[0].api("/metrics?scope=cluster")).text();
      match(text, new RegExp(`aether_node_up\\{node="${victim.id}"\\} 0`));
      ok(!text.includes(`aether_slice_calls_total{node="${victim.id}"`), "no series of the stale node");
    });
  } catch (e) {
    console.error(cluster.logs().slice(-8_000));
    throw e;
  } finally {
    await cluster.close();
  }
});
