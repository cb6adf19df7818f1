/**
 * Forge survives the failures it injects: Forge itself runs as a process (`aether forge --clean --free-ports`
 * in a directory of its own, the ecommerce example deployed), orders come at 200/s over all three application
 * ports with failover, and `aether forge kill` (a separate process, as a user types it) kills a node that is
 * not the leader, then, in a second window, the leader. Forge keeps running, reports each death and restarts
 * the node; the success rate of each window is printed and asserted with a margin below the goal.
 *
 *   deno test -A --unstable-worker-options tests/e2e/forge_chaos_test.ts
 */

import { equal, match, ok } from "node:assert/strict";
import { type LoadReport, startLoad } from "../../runtime/loadgen/mod.ts";
import { agreedLeader, evenlySpread, forgeAuth, type ForgeJson, ForgeProcess } from "./_forge_process.ts";
import { aetherBinDir } from "./_forge.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const RATE_PER_SECOND = 200;
/** Each window of load: at least 20 s (issue 14), the kill a few seconds in. */
const WINDOW_MS = 20_000;
const KILL_AFTER_MS = 4_000;
/** Goals (issue 14) and what is asserted: the margin absorbs a loaded 2-core machine. */
const GOAL_NON_LEADER = 0.999;
const MIN_NON_LEADER = 0.99;
const GOAL_LEADER = 0.995;
const MIN_LEADER = 0.98;
/** Instances per node once the example is spread (5 slices x 3 instances over 3 nodes). */
const PER_NODE = 5;

const pct = (rate: number) => `${(rate * 100).toFixed(2)}%`;

function load(urls: string[]) {
  return startLoad({
    target: "POST /api/v1/orders",
    urls,
    ratePerSecond: RATE_PER_SECOND,
    durationMs: WINDOW_MS,
    body: Deno.readTextFileSync(`${ROOT}examples/ecommerce/load-order.json.tmpl`),
    bodyLabel: "load-order.json.tmpl",
    failover: true,
    recordOutcomes: true,
    timeoutMs: 10_000,
  });
}

function summary(report: LoadReport, goal: number): string {
  const failed = (report.outcomes ?? []).filter((o) => o.kind !== "ok");
  const reasons = new Map<string, number>();
  for (const o of failed) {
    const key = `${o.kind} ${o.status ?? ""} ${o.url}: ${(o.error ?? "").replace(/\s+/g, " ").slice(0, 120)}`;
    reasons.set(key, (reasons.get(key) ?? 0) + 1);
  }
  return [
    `${report.succeeded}/${report.requests} succeeded (${pct(report.successRate)}; goal ${pct(goal)}), ` +
    `p50 ${report.latency.p50Ms.toFixed(1)} ms, p99 ${report.latency.p99Ms.toFixed(1)} ms`,
    ...[...reasons].map(([k, n]) => `    ${n} x ${k}`),
  ].join("\n");
}

/**
 * A window of load with `aether forge kill <victim>` a few seconds in; returns the report after checking that
 * Forge restarted the victim (a new pid, one more restart, running).
 */
async function killUnderLoad(forge: ForgeProcess, victim: string): Promise<LoadReport> {
  const before = await forge.state();
  const urls = before.nodes.map((n) => n.app);
  const run = load(urls);
  while (run.progress().elapsedMs < KILL_AFTER_MS) await new Promise((r) => setTimeout(r, 20));
  const killAt = Date.now();
  const killed = await forge.command("kill", victim);
  equal(killed.code, 0, `aether forge kill ${victim}: ${killed.stderr}`);
  match(killed.stdout, new RegExp(`killed ${victim} \\(pid \\d+\\) with SIGKILL`));
  const old = before.nodes.find((n) => n.id === victim)!;
  const restartedAt = await forge.waitFor(`Forge to restart ${victim}`, async () => {
    const node = (await forge.state()).nodes.find((n) => n.id === victim)!;
    return node.running && node.pid !== old.pid && node.restarts === old.restarts + 1 ? Date.now() : null;
  }, 30_000);
  console.log(`  Forge restarted ${victim}: ready again ${restartedAt - killAt} ms after aether forge kill`);
  const report = await run.finished;
  ok(!forge.exited, `Forge kept running:\n${forge.output}`);
  return report;
}

/** Wall time of one command in `cwd`, which must exit 0. */
async function wallMs(file: string, args: string[], cwd: string): Promise<number> {
  const started = performance.now();
  const out = await new Deno.Command(file, { args, cwd, stdin: "null", stdout: "piped", stderr: "piped" })
    .output();
  const ms = performance.now() - started;
  equal(out.code, 0, `${file} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return ms;
}

/** The best and the median of `runs` wall times, after one run that is not counted (it fills caches). */
async function timed(
  runs: number,
  once: () => Promise<number>,
): Promise<{ bestMs: number; medianMs: number }> {
  await once();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push(await once());
  times.sort((a, b) => a - b);
  return { bestMs: times[0], medianMs: times[Math.floor(runs / 2)] };
}

/**
 * `aether status` as a user runs it in Forge's directory (the installed launcher; the CLI finds the nodes and
 * the admin token through .forge/), against curl of the same endpoint in the same run (issue 14: < 300 ms).
 */
async function statusFigure(forge: ForgeProcess, state: ForgeJson): Promise<string> {
  const bin = await aetherBinDir();
  try {
    const aether = await timed(5, () => wallMs(`${bin}/aether`, ["status"], forge.cwd));
    const token = forgeAuth(forge.cwd).authorization;
    const url = `http://${state.nodes[0].api}/api/v1/status`;
    const curl = await timed(
      5,
      () => wallMs("curl", ["-sf", "-H", `authorization: ${token}`, url], forge.cwd),
    );
    const ms = (t: { bestMs: number; medianMs: number }) =>
      `best ${t.bestMs.toFixed(0)} ms, median ${t.medianMs.toFixed(0)} ms`;
    // The goal is 300 ms; the margin is for a loaded 2-core machine.
    ok(aether.medianMs < 1500, `aether status took ${aether.medianMs.toFixed(0)} ms (median of 5)`);
    return `aether status against this Forge: ${ms(aether)}; curl of GET /api/v1/status: ${ms(curl)} ` +
      "(5 runs each after one that is not counted)";
  } finally {
    await Deno.remove(bin, { recursive: true });
  }
}

async function settledAgain(forge: ForgeProcess): Promise<ForgeJson> {
  return await forge.waitFor("one leader and the even spread on all three nodes", async () => {
    const state = await forge.state();
    return state.nodes.every((n) => n.running) && await agreedLeader(state) &&
        await evenlySpread(state, PER_NODE, forgeAuth(forge.cwd))
      ? state
      : null;
  }, 60_000);
}

Deno.test("Forge restarts the nodes aether forge kill kills, and orders keep succeeding meanwhile", async () => {
  const { forge, startMs } = await ForgeProcess.start(["--clean", "--free-ports"]);
  const figures: string[] = [`Forge start to "example deployed": ${(startMs / 1000).toFixed(1)} s`];
  try {
    console.log(figures[0]);
    let state = await settledAgain(forge);
    figures.push(await statusFigure(forge, state));
    console.log(figures.at(-1));
    const leader = (await agreedLeader(state))!;
    const nonLeader = state.nodes.find((n) => n.id !== leader)!.id;

    const first = await killUnderLoad(forge, nonLeader);
    figures.push(
      `kill ${nonLeader} (not the leader) under ${RATE_PER_SECOND}/s for ${WINDOW_MS / 1000} s: ${
        summary(first, GOAL_NON_LEADER)
      }`,
    );
    console.log(figures.at(-1));
    match(
      forge.output,
      new RegExp(`forge: ${nonLeader} was killed \\(signal SIGKILL\\) by aether forge kill`),
    );

    state = await settledAgain(forge);
    const currentLeader = (await agreedLeader(state))!;
    const second = await killUnderLoad(forge, currentLeader);
    figures.push(
      `kill ${currentLeader} (the leader) under ${RATE_PER_SECOND}/s for ${WINDOW_MS / 1000} s: ${
        summary(second, GOAL_LEADER)
      }`,
    );
    console.log(figures.at(-1));

    ok(first.dropped === 0 && second.dropped === 0, "the load ran in full");
    ok(
      first.successRate >= MIN_NON_LEADER,
      `non-leader kill: ${pct(first.successRate)} < ${pct(MIN_NON_LEADER)}`,
    );
    ok(second.successRate >= MIN_LEADER, `leader kill: ${pct(second.successRate)} < ${pct(MIN_LEADER)}`);

    // Forge is still the one running, every node is back, and `status` shows the restarts.
    state = await settledAgain(forge);
    const status = await forge.command("status");
    equal(status.code, 0, status.stderr);
    match(
      status.stdout,
      new RegExp(`${nonLeader}\\s+\\d+\\s+127\\.0\\.0\\.1:\\d+\\s+\\S+\\s+\\d+\\s+yes\\s+1`),
    );
    match(status.stdout, /faults: none/);

    // `aether forge stop` ends Forge cleanly: exit 0, forge.json gone, no node left.
    const pids = state.nodes.map((n) => n.pid!);
    const stopped = await forge.command("stop");
    equal(stopped.code, 0, stopped.stderr);
    equal((await forge.status).code, 0, forge.output);
    match(forge.output, /Stopping \(aether forge stop\)/);
    equal(await Deno.stat(`${forge.cwd}/.forge/forge.json`).then(() => true, () => false), false);
    for (const pid of pids) equal(ForgeProcess.alive(pid), false, `node pid ${pid} is gone`);
    const none = await forge.command("status");
    equal(none.code, 1);
    match(none.stderr, /no Forge runs in .* start one here with: aether forge/);
  } finally {
    console.log(`\nFigures:\n${figures.map((f) => `  ${f}`).join("\n")}`);
    await forge.close();
  }
});
