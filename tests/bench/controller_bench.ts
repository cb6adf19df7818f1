/**
 * The controller on real node processes (3 members on loopback, process-isolated slices):
 *
 *   deno run -A --unstable-worker-options tests/bench/controller_bench.ts [rounds=3]
 *
 * 1. Reaction to a load step: a slice one instance carries at ~50 req/s (tests/integration/fixtures/
 *    controller_hold.ts), `min 1 max 6`, steps from 5 to 150 req/s; the time until 3 instances are ACTIVE (what
 *    150 req/s needs), with the default panic window (6 s). Split into the decision (the step to the target
 *    raised) and the start (target raised to 3 ACTIVE). Baseline, same run: an operator's `POST /scale` from 1
 *    to 3 on the idle slice to 3 ACTIVE (the start alone). Anchors: Kubernetes HPA syncs every 15 s, Knative's
 *    panic window is 6 s.
 * 2. Cold start from zero: a `min 0` slice scaled to zero (idle window shortened to 2 s), then one request: its
 *    latency. Baseline, same run: a request to the same slice while it runs.
 */

import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { ShapedLoad } from "../_support/shaped_load.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const ROUNDS = Number(Deno.args[0] ?? 3);
const STEP = "org.example.autoscale:work";
const LAZY = "org.example.autoscale:pinned";

async function api(node: NodeProcess, method: string, path: string, body?: unknown) {
  const { status, body: answer } = await node.json(path, {
    method,
    headers: { "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (status >= 300) throw new Error(`${method} ${path}: ${status} ${JSON.stringify(answer)}`);
  return answer;
}

async function counts(node: NodeProcess, slice: string) {
  const s = (await sliceStatuses(node)).find((x) => x.slice === slice);
  return { desired: s?.desired ?? 0, active: s?.active ?? 0 };
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const cluster = await TestCluster.start(3, { fsync: "never" });
try {
  await cluster.waitForLeader();
  const [n1] = cluster.nodes;
  for (const name of ["work", "pinned"]) {
    const path = new URL(`../integration/fixtures/controller_${name}_slice.ts`, import.meta.url).pathname;
    await pushArtifact(n1, await buildSlice(path));
  }
  const blueprint = [
    'id = "org.example.autoscale:bench:1.0.0"',
    "[[slices]]",
    `artifact = "${STEP}:1.0.0"`,
    "min = 1",
    "max = 6",
    "[[slices]]",
    `artifact = "${LAZY}:1.0.0"`,
    "min = 0",
    "max = 3",
  ].join("\n");
  const published = await postBlueprint(n1, blueprint);
  if (published.status >= 300) throw new Error(JSON.stringify(published.body));
  await until(
    "both ACTIVE",
    async () => (await counts(n1, STEP)).active === 1 && (await counts(n1, LAZY)).active === 1,
  );
  // Default windows; only the way back down and the idle window are shortened so rounds follow each other.
  await api(n1, "PUT", "/api/v1/controller/rules", {
    stableWindowMs: 10_000,
    downCooldownMs: 2_000,
    maxStepDown: 5,
    idleToZeroMs: 2_000,
    forecast: false,
  });

  const manual: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await api(n1, "PUT", `/api/v1/controller/pins/${STEP}`, { instances: 1 });
    await until("one instance", async () => (await counts(n1, STEP)).active === 1);
    const started = performance.now();
    await api(n1, "PUT", `/api/v1/controller/pins/${STEP}`, { instances: 3 });
    await until("3 ACTIVE", async () => (await counts(n1, STEP)).active >= 3);
    manual.push(performance.now() - started);
    await api(n1, "PUT", `/api/v1/controller/pins/${STEP}`, { instances: 1 });
    await until("back to one", async () => (await counts(n1, STEP)).active === 1);
    await api(n1, "DELETE", `/api/v1/controller/pins/${STEP}`);
  }

  const decided: number[] = [], reaction: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await until("at one, settled", async () => {
      const c = await counts(n1, STEP);
      return c.desired === 1 && c.active === 1;
    });
    const load = new ShapedLoad(cluster.nodes, "/work/work", "5/s for 1s, 150/s for 10m");
    load.start();
    let raisedAt: number | undefined;
    await until("3 ACTIVE under the step", async () => {
      const c = await counts(n1, STEP);
      if (raisedAt === undefined && c.desired > 1) raisedAt = load.elapsedMs();
      return c.active >= 3;
    });
    reaction.push(load.elapsedMs() - 1_000);
    decided.push((raisedAt ?? load.elapsedMs()) - 1_000);
    await load.stop();
    console.log(`round ${round}: step to 3 ACTIVE ${reaction.at(-1)!.toFixed(0)} ms`);
  }

  const cold: number[] = [], warm: number[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    let started = performance.now();
    await fetch(`${n1.httpUrl}/pinned/work`).then((r) => r.body?.cancel());
    warm.push(performance.now() - started);
    await until("scaled to zero", async () => {
      const c = await counts(n1, LAZY);
      return c.desired === 0 && c.active === 0;
    });
    started = performance.now();
    const response = await fetch(`${cluster.nodes[round % 3].httpUrl}/pinned/work`);
    await response.body?.cancel();
    if (response.status !== 200) throw new Error(`cold request answered ${response.status}`);
    cold.push(performance.now() - started);
  }

  const ms = (values: number[]) => values.map((v) => v.toFixed(0)).join(", ");
  console.log(`\ncontroller bench, 3 nodes, ${ROUNDS} rounds (ms):`);
  console.log(
    `  load step 5 -> 150 req/s to 3 ACTIVE: median ${median(reaction).toFixed(0)} (${ms(reaction)}); ` +
      `of which to the first target change: median ${median(decided).toFixed(0)} (${ms(decided)})`,
  );
  console.log(
    `  baseline, operator scale 1 -> 3 to 3 ACTIVE: median ${median(manual).toFixed(0)} (${ms(manual)})`,
  );
  console.log(
    `  cold start from zero, first request: median ${median(cold).toFixed(0)} (${ms(cold)}); ` +
      `warm request: median ${median(warm).toFixed(0)} (${ms(warm)})`,
  );
} finally {
  await cluster.close();
}
