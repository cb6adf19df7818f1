/**
 * Deployment end to end on real node processes (3 members on loopback, process-isolated slices):
 *
 *   deno run -A --unstable-worker-options tests/bench/deployment_e2e_bench.ts [rounds=3] [process|worker]
 *
 * Without a mode it measures both: nodes started with `--sandbox process` (the default) and `--sandbox worker`.
 *
 * 1. Publishing a blueprint of 5 slices x 3 instances (inventory, pricing <- orders <- checkout, and audit) to
 *    all 15 instances ACTIVE, seen by polling GET /api/v1/slices; where the time goes, from the `updatedAt` of
 *    every instance record in the KV history (LOAD written by the leader, LOADING..ACTIVE by the nodes).
 *    Baseline, same run: the same 15 instances loaded and activated directly on one SliceExecutor in this
 *    process (the sandbox's own cost, no consensus, no leader).
 * 2. kill -9 of a node that is not the leader, to every slice back at its desired ACTIVE count on the others:
 *    split into detection (until the survivors see the node gone) and replacement (after detection).
 * Baseline for the per-step cost: one replicated KV write through the management API.
 */

import { TestCluster } from "../_support/cluster.ts";
import {
  type DeployFixture,
  deployFixture,
  GROUP,
  instanceHistory,
  postBlueprint,
  publishFixtures,
  sliceStatuses,
} from "../_support/deployment.ts";
import { DEFAULT_POLICY, type IsolationMode, SliceExecutor } from "../../runtime/sandbox/mod.ts";

const ROUNDS = Number(Deno.args[0] ?? 3);
const SLICES: DeployFixture[] = ["inventory", "pricing", "orders", "checkout", "audit"];
const BLUEPRINT = `id = "${GROUP}:bench:1.0.0"\n` +
  SLICES.map((s) => `[[slices]]\nartifact = "${GROUP}:${s}:1.0.0"\ninstances = 3\n`).join("");

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fmt = (ms: number) => `${ms.toFixed(0)} ms`;

const STATES = ["LOAD", "LOADING", "LOADED", "ACTIVATE", "ACTIVATING", "ACTIVE"] as const;
const PHASES: [string, typeof STATES[number], typeof STATES[number]][] = [
  ["node takes up LOAD (LOAD -> LOADING)", "LOAD", "LOADING"],
  ["sandbox load: child process + bundle (LOADING -> LOADED)", "LOADING", "LOADED"],
  ["leader's ACTIVATE, waiting for dependencies (LOADED -> ACTIVATE)", "LOADED", "ACTIVATE"],
  ["node takes up ACTIVATE (ACTIVATE -> ACTIVATING)", "ACTIVATE", "ACTIVATING"],
  ["start hook + endpoints published (ACTIVATING -> ACTIVE)", "ACTIVATING", "ACTIVE"],
];

/** Direct baseline: 15 instances loaded and activated on one executor in this process, concurrently. */
async function directMs(mode: IsolationMode): Promise<number> {
  const built = await Promise.all(SLICES.map((s) => deployFixture(s)));
  const executor = new SliceExecutor({
    onLog: () => {},
    policy: { ...DEFAULT_POLICY, mode },
    trustAllSlices: true,
  });
  try {
    const started = performance.now();
    await Promise.all(built.flatMap((slice) =>
      [0, 1, 2].map(async (n) => {
        const instanceId = `${slice.manifest.coordinates}/${n}`;
        await executor.run({ type: "LOAD", instanceId, artifact: slice });
        await executor.run({ type: "ACTIVATE", instanceId });
      })
    ));
    return performance.now() - started;
  } finally {
    await executor.close();
  }
}

async function measure(mode: IsolationMode): Promise<void> {
  const trust = mode === "worker" ? ["--trust-all-slices"] : [];
  const cluster = await TestCluster.start(3, { extraArgs: ["--sandbox", mode, ...trust] });
  try {
    const leader = await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    await publishFixtures(n1, SLICES);

    const writeMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const started = performance.now();
      const response = await n1.api(`/api/v1/kv/app/bench`, { method: "PUT", body: String(i) });
      await response.body?.cancel();
      writeMs.push(performance.now() - started);
    }

    const deployRuns: number[] = [];
    const phaseRuns = new Map<string, number[]>();
    const firstLoadRuns: number[] = [];
    const detectRuns: number[] = [];
    const replaceRuns: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const postedAt = Date.now();
      const posted = await postBlueprint(n1, BLUEPRINT);
      if (posted.status !== 201) {
        throw new Error(`apply answered ${posted.status}: ${JSON.stringify(posted.body)}`);
      }
      while (true) {
        const slices = await sliceStatuses(n1);
        if (slices.length === 5 && slices.every((s) => s.active === 3 && s.instances.length === 3)) break;
        if (Date.now() - postedAt > 60_000) throw new Error("the blueprint did not settle in 60 s");
        await sleep(5);
      }
      deployRuns.push(Date.now() - postedAt);

      // Where the time went, per instance, from the records' own timestamps.
      const history = await instanceHistory(n1);
      // Every round ends with its instance records deleted, so a key's times start again after its delete.
      // (Not `updatedAt >= postedAt`: with LOAD written a few milliseconds after the POST, runs saw LOAD
      // records stamped before postedAt by the leader's clock, and the whole round was dropped.)
      const times = new Map<string, Partial<Record<string, number>>>();
      for (const e of history) {
        if (e.type === "delete") times.delete(e.key);
        if (e.type !== "put" || e.updatedAt === undefined || !e.state) continue;
        const t = times.get(e.key) ?? {};
        t[e.state] ??= e.updatedAt;
        times.set(e.key, t);
      }
      const fresh = [...times.values()].filter((t) => STATES.every((s) => t[s] !== undefined));
      if (fresh.length === 0) {
        // The watch history before this round can have been compacted away (the API answers "gone").
        console.log(`   (round ${round + 1}: no instance history from ${n1.id}; no phase breakdown)`);
      } else {
        firstLoadRuns.push(Math.min(...fresh.map((t) => t.LOAD!)) - postedAt);
        for (const [name, from, to] of PHASES) {
          const list = phaseRuns.get(name) ?? [];
          list.push(median(fresh.map((t) => t[to]! - t[from]!)));
          phaseRuns.set(name, list);
        }
      }

      // kill -9 a node that is not the leader.
      const victim = cluster.nodes.find((n) => n.id !== leader && n.running)!;
      const observer = cluster.nodes.find((n) => n !== victim)!;
      const killedAt = Date.now();
      await victim.kill();
      let detectedAt: number | undefined;
      while (true) {
        const slices = await sliceStatuses(observer);
        const all = slices.flatMap((s) => s.instances);
        if (detectedAt === undefined && all.some((i) => i.node === victim.id && !i.connected)) {
          detectedAt = Date.now();
        }
        if (detectedAt !== undefined && slices.every((s) => s.active === s.desired)) break;
        if (Date.now() - killedAt > 60_000) throw new Error("the killed node's instances were not replaced");
        await sleep(5);
      }
      detectRuns.push(detectedAt - killedAt);
      replaceRuns.push(Date.now() - detectedAt);

      await victim.start();
      await cluster.waitForLeader();
      const gone = await n1.json(`/api/v1/blueprints/${GROUP}:bench:1.0.0`, { method: "DELETE" });
      if (gone.status !== 200) {
        throw new Error(`delete answered ${gone.status}: ${JSON.stringify(gone.body)}`);
      }
      while ((await sliceStatuses(n1)).length > 0) await sleep(50);
      await cluster.waitForLeader();
    }
    await cluster.close();

    const direct: number[] = [];
    for (let i = 0; i < ROUNDS; i++) direct.push(await directMs(mode));

    const deploy = median(deployRuns);
    console.log(`--sandbox ${mode}: ${ROUNDS} rounds; medians (every run in brackets)`);
    console.log(
      `  blueprint 5 slices x 3 instances on 3 nodes -> 15 ACTIVE: ${fmt(deploy)} [${
        deployRuns.join(", ")
      }] ` +
        `(goal < 1000 ms)`,
    );
    console.log(
      `    baseline, the same 15 instances loaded + activated directly on one executor: ${
        fmt(median(direct))
      } ` +
        `[${direct.map((d) => d.toFixed(0)).join(", ")}]; ratio ${(deploy / median(direct)).toFixed(1)}x`,
    );
    console.log(`    baseline, one replicated KV write through the API: ${median(writeMs).toFixed(1)} ms`);
    console.log(`    where the time goes (median over instances, then over rounds):`);
    console.log(`      POST -> leader's first LOAD written: ${fmt(median(firstLoadRuns))}`);
    for (const [name] of PHASES) console.log(`      ${name}: ${fmt(median(phaseRuns.get(name) ?? []))}`);
    console.log(
      `  kill -9 of a node -> its instances ACTIVE elsewhere: detection ${fmt(median(detectRuns))} ` +
        `[${detectRuns.join(", ")}], then replacement ${fmt(median(replaceRuns))} [${
          replaceRuns.join(", ")
        }] ` +
        `(goal < 2000 ms after detection)`,
    );
  } finally {
    await cluster.close();
  }
}

const modes: IsolationMode[] = Deno.args[1] ? [Deno.args[1] as IsolationMode] : ["process", "worker"];
for (const mode of modes) await measure(mode);
