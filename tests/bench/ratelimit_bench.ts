/**
 * Rate-limit accuracy and config propagation on a 3-member cluster on loopback (process isolation, the slice
 * tests/integration/fixtures/config_slice.ts, one instance per node):
 *
 * - for each rate, every node's instance asks for permits (about one a millisecond) for --duration-ms; prints
 *   the permits granted across the cluster against rate × T, the error, and the stated bound rate × T + burst;
 *   then one node alone (the leader moves the shares to it);
 * - config propagation: --changes PUTs of the slice's config, each timed from just before the PUT until the
 *   slowest instance's onConfigChange listener ran (p50, max).
 *
 * Flags: --rates 50,200,500 --duration-ms 5000 --changes 20
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/ratelimit_bench.ts
 */

import { parseArgs } from "node:util";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";

const { values: flags } = parseArgs({
  options: {
    rates: { type: "string", default: "50,200,500" },
    "duration-ms": { type: "string", default: "5000" },
    changes: { type: "string", default: "20" },
  },
});
const rates = flags.rates!.split(",").map(Number);
const durationMs = Number(flags["duration-ms"]);
const changes = Number(flags.changes);

type Json = Record<string, unknown>;

async function post(node: NodeProcess, path: string, body: unknown): Promise<Json> {
  const response = await fetch(node.httpUrl + path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return await response.json();
}

async function api(node: NodeProcess, method: string, path: string, body?: unknown) {
  const { status, body: answer } = await node.json<Json>(path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  if (status >= 300) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(answer)}`);
  return answer;
}

const cluster = await TestCluster.create(3, {
  argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
});
try {
  await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
  await cluster.startAll();
  await cluster.waitForLeader();
  const [n1, n2] = cluster.nodes;
  await pushArtifact(
    n1,
    await buildSlice(new URL("../integration/fixtures/config_slice.ts", import.meta.url).pathname),
  );
  await api(n1, "POST", "/api/v1/deploy", { artifact: "org.example.cfg:settings:1.0.0", instances: 3 });
  await cluster.waitFor("3 instances on 3 nodes", async () => {
    const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.cfg:settings")?.instances ?? [];
    return s.filter((i) => i.state === "ACTIVE").length === 3 && new Set(s.map((i) => i.node)).size === 3;
  }, 90_000);
  for (const node of cluster.nodes) {
    await cluster.waitFor(`${node.id} route`, async () => (await fetch(`${node.httpUrl}/cfg/show`)).ok);
  }

  console.log(`rate-limit accuracy, 3 nodes, ${durationMs} ms windows (bound: granted <= rate x T + burst)`);
  for (const rate of rates) {
    const name = `bench-${rate}`;
    const burst = Math.max(1, Math.ceil(rate / 10));
    await api(n1, "PUT", `/api/v1/ratelimits/${name}`, { ratePerSec: rate, burst });
    await cluster.waitFor("limit known everywhere", async () => {
      const all = await Promise.all(cluster.nodes.map((n) => api(n, "GET", "/api/v1/ratelimits")));
      return all.every((a) => (a.ratelimits as Json[]).some((l) => l.name === name));
    });
    const expected = (rate * durationMs) / 1000;
    const all = await Promise.all(
      cluster.nodes.map((n) => post(n, "/cfg/acquire", { name, ms: durationMs })),
    );
    const granted = all.reduce((sum, r) => sum + (r.granted as number), 0);
    await new Promise((r) => setTimeout(r, 2_000));
    const aloneAnswer = await post(n2, "/cfg/acquire", { name, ms: durationMs });
    const alone = aloneAnswer.granted as number;
    const share = ((await api(n2, "GET", "/api/v1/ratelimits")).ratelimits as Json[]).find((l) =>
      l.name === name
    )!;
    const asked = all.map((r) => Math.round((r.asked as number) * 1000 / durationMs));
    const pct = (x: number) => `${(((x - expected) / expected) * 100).toFixed(1)}%`;
    console.log(
      `  ${String(rate).padStart(5)}/s burst ${
        String(burst).padStart(3)
      }: 3 nodes ${granted} of ${expected} ` +
        `(${pct(granted)}, bound ${expected + burst}; asked ${
          asked.join("+")
        }/s)   one node alone ${alone} ` +
        `(${pct(alone)}; asked ${
          Math.round((aloneAnswer.asked as number) * 1000 / durationMs)
        }/s, its share at ` +
        `the end ${share.share})`,
    );
  }

  const times: number[] = [];
  for (let i = 0; i < changes; i++) {
    const greeting = `g${i}`;
    const before = Date.now();
    await api(n1, "PUT", "/api/v1/config/org.example.cfg:settings", { values: { greeting } });
    const seen = await Promise.all(cluster.nodes.map((node) =>
      cluster.waitFor("change seen", async () => {
        const body = await (await fetch(`${node.httpUrl}/cfg/show`)).json() as Json;
        const change = (body.changes as Array<{ atMs: number; greeting: string }>).find((c) =>
          c.greeting === greeting
        );
        return change ? change.atMs - before : null;
      }, 10_000)
    ));
    times.push(Math.max(...seen));
  }
  times.sort((a, b) => a - b);
  console.log(
    `config propagation, PUT to the slowest of 3 instances' listeners, ${changes} changes: ` +
      `p50 ${times[Math.floor(times.length / 2)]} ms, max ${times[times.length - 1]} ms`,
  );
} finally {
  await cluster.close();
}
