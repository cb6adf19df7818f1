/**
 * The autoscaling controller on real node processes (3 members on loopback): a slice with `min 1 max 6` whose
 * instance carries ~50 calls a second (tests/integration/fixtures/controller_hold.ts) gets a load ramp from 10
 * to 100 requests a second, spread over the three nodes' app ports:
 *
 * - its target grows and the new instances become ACTIVE, and the p95 the clients see recovers;
 * - when the load stops it returns to `min` after the (shortened) scale-down window;
 * - a second slice under load but pinned with `aether scale ... --pin` is left at its count;
 * - the decisions are listed with their inputs (`aether controller log`) and published on the event stream.
 *
 * The windows are shortened through the rules API (`aether controller rules set`), as an operator would.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";
import { ShapedLoad } from "../_support/shaped_load.ts";

const WORK = "org.example.autoscale:work";
const PINNED = "org.example.autoscale:pinned";

const cli = (node: NodeProcess, ...args: string[]) =>
  runCli(["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", node.options.token!, ...args]);

async function target(node: NodeProcess, slice: string): Promise<{ instances: number; active: number }> {
  const s = (await sliceStatuses(node)).find((x) => x.slice === slice);
  return {
    instances: s?.desired ?? 0,
    active: s?.active ?? 0,
  };
}

Deno.test("controller on 3 nodes: a load ramp scales a slice up, p95 recovers, back to min after; a pinned slice is left alone", async () => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  const loads: ShapedLoad[] = [];
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    for (const name of ["work", "pinned"]) {
      const path = new URL(`./fixtures/controller_${name}_slice.ts`, import.meta.url).pathname;
      await pushArtifact(n1, await buildSlice(path));
    }
    const blueprint = [
      'id = "org.example.autoscale:app:1.0.0"',
      ...[WORK, PINNED].flatMap((slice) => [
        "[[slices]]",
        `artifact = "${slice}:1.0.0"`,
        "instances = 1",
        "min = 1",
        "max = 6",
      ]),
    ].join("\n");
    const published = await postBlueprint(n1, blueprint);
    ok(published.status < 300, JSON.stringify(published.body));
    await cluster.waitFor("both slices ACTIVE", async () => {
      const [w, p] = [await target(n1, WORK), await target(n1, PINNED)];
      return w.active === 1 && p.active === 1;
    }, 60_000);

    // Shortened windows for the test: a 10 s stable window, 3 s panic window, short cooldowns.
    const rules = await cli(
      n2,
      "controller",
      "rules",
      "set",
      "targetInFlightPerInstance=0.7",
      "stableWindowMs=10000",
      "panicWindowMs=3000",
      "upCooldownMs=2000",
      "downCooldownMs=3000",
      "maxStepDown=5",
      "forecast=false",
    );
    equal(rules.code, 0, rules.stderr);
    match(rules.stdout, /stableWindowMs\s+10000\s+set/);
    const pin = await cli(n3, "scale", PINNED, "--instances", "1", "--pin");
    equal(pin.code, 0, pin.stderr);

    const rampMs = 10_000, holdMs = 25_000;
    const work = new ShapedLoad(
      cluster.nodes,
      "/work/work",
      `ramp 10..100/s over ${rampMs}ms, 100/s for ${holdMs}ms`,
    );
    // 40 a second: within one instance's capacity, but above the in-flight target (unpinned, it would scale).
    const pinned = new ShapedLoad(cluster.nodes, "/pinned/work", `40/s for ${rampMs + holdMs}ms`);
    loads.push(work, pinned);
    work.start();
    pinned.start();

    let peak = { instances: 0, active: 0 };
    let reactionMs: number | undefined;
    while (work.elapsedMs() < rampMs + holdMs) {
      const now = await target(n1, WORK);
      if (now.active > peak.active) peak = now;
      if (reactionMs === undefined && now.instances >= 3 && now.active >= 3) reactionMs = work.elapsedMs();
      equal((await target(n1, PINNED)).instances, 1, "the pinned slice keeps its count");
      await new Promise((r) => setTimeout(r, 250));
    }
    const stoppedAt = Date.now();
    await work.stop();
    await pinned.stop();
    const congested = work.p95(rampMs - 2_000, rampMs + 3_000);
    const recovered = work.p95(rampMs + holdMs - 8_000, rampMs + holdMs);
    // Per 2 s over the last 10 s of the hold: a loaded 2-core machine stalls a node's event loop now and then
    // (other test runs), so the check asks most windows, not every one, to meet the objective.
    const tail = [10, 8, 6, 4, 2].map((back) =>
      work.p95(rampMs + holdMs - back * 1_000, rampMs + holdMs - (back - 2) * 1_000)
    );
    const failed = work.samples.filter((s) => s.status !== 200).length;
    console.log(
      `ramp 10..100/s over 10 s: 3 instances ACTIVE after ${
        reactionMs?.toFixed(0)
      } ms from the start of the ` +
        `ramp, peak ${peak.active} ACTIVE; client p95 ${congested.toFixed(0)} ms at the end of the ramp, ` +
        `${recovered.toFixed(0)} ms over the last 8 s of the hold; ${failed} of ${work.samples.length} ` +
        `requests failed (client bound refused ${work.refused})`,
    );
    ok(reactionMs !== undefined, `never reached 3 ACTIVE instances (peak ${JSON.stringify(peak)})`);
    ok(peak.active <= 6, "never above max");
    const objectiveMs = 500;
    ok(
      tail.filter((p95) => p95 < objectiveMs).length >= 3,
      `p95 did not recover under ${objectiveMs} ms: per 2 s ${tail.map((p) => p.toFixed(0)).join(", ")}`,
    );

    await cluster.waitFor("back to min after the scale-down window", async () => {
      const now = await target(n1, WORK);
      return now.instances === 1 && now.active === 1;
    }, 60_000);
    console.log(`load stopped: back to 1 instance after ${Date.now() - stoppedAt} ms (stable window 10 s)`);
    equal((await target(n1, PINNED)).instances, 1);

    const log = await cli(n2, "controller", "log", "--wide");
    equal(log.code, 0, log.stderr);
    match(log.stdout, new RegExp(`${WORK}\\s+1 -> \\d`));
    match(log.stdout, /inFlight=/);
    ok(!log.stdout.includes(PINNED), `the pinned slice has no decision:\n${log.stdout}`);
    const events = await n3.json<{ events: { type: string; subject: string }[] }>(
      "/api/v1/events?follow=false&type=controller",
    );
    ok(
      events.body.events.some((e) => e.type === "controller.decision" && e.subject === WORK),
      `controller.decision events on a follower: ${JSON.stringify(events.body).slice(0, 500)}`,
    );
    const leaderId = await cluster.waitForLeader();
    const leader = cluster.nodes.find((n) => n.options.id === leaderId)!;
    const status = await cli(leader, "controller", "status");
    equal(status.code, 0, status.stderr);
    match(status.stdout, new RegExp(`pinned: ${PINNED}=1`));
    // The leader loaded onnxruntime-web under the node's own (narrow) permissions.
    match(status.stdout, /forecaster: onnx \(onnxruntime-web, wasm, 1 thread\)/);
    console.log(status.stdout);
  } catch (e) {
    const warnings = cluster.logs().split("\n").filter((l) =>
      /WARN|ERROR|leader|decision/.test(l) && !l.includes("call attempt failed")
    );
    const timelines = loads.map((l) => l.timeline()).join("\n");
    throw new Error(
      `${(e as Error).message}\np95 per 2 s:\n${timelines}\n${warnings.slice(-150).join("\n")}`,
    );
  } finally {
    for (const load of loads) await load.stop();
    await cluster.close();
  }
});

Deno.test("scale to zero: an idle min 0 slice goes to zero with its route kept; the next requests start it and succeed", async () => {
  const cluster = await TestCluster.start(1, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [node] = cluster.nodes;
    const path = new URL("./fixtures/controller_work_slice.ts", import.meta.url).pathname;
    await pushArtifact(node, await buildSlice(path));
    const blueprint = [
      'id = "org.example.autoscale:lazy:1.0.0"',
      "[[slices]]",
      `artifact = "${WORK}:1.0.0"`,
      "instances = 1",
      "min = 0",
      "max = 3",
    ].join("\n");
    const published = await postBlueprint(node, blueprint);
    ok(published.status < 300, JSON.stringify(published.body));
    await cluster.waitFor("ACTIVE", async () => (await target(node, WORK)).active === 1, 60_000);
    const rules = await cli(
      node,
      "controller",
      "rules",
      "set",
      "idleToZeroMs=2000",
      "panicWindowMs=1000",
      "stableWindowMs=2000",
      "downCooldownMs=1000",
    );
    equal(rules.code, 0, rules.stderr);

    const coldStartsMs: number[] = [];
    for (let round = 1; round <= 3; round++) {
      await cluster.waitFor(`round ${round}: scaled to zero`, async () => {
        const now = await target(node, WORK);
        return now.instances === 0 && now.active === 0;
      }, 30_000);
      const routes = await node.json<{ routes: { path: string; nodes: string[] }[] }>("/api/v1/routes");
      const route = routes.body.routes.find((r) => r.path === "/work/work");
      ok(route, `the route stays registered at zero: ${JSON.stringify(routes.body)}`);
      equal(route.nodes.length, 0, "served by no node");
      // A burst of calls at zero: all held while one instance starts, then served.
      const started = performance.now();
      const answers = await Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`${node.httpUrl}/work/work`).then(async (r) => ({
            status: r.status,
            ms: performance.now() - started,
            body: await r.text(),
          }))),
      );
      for (const a of answers) equal(a.status, 200, a.body);
      coldStartsMs.push(Math.min(...answers.map((a) => a.ms)));
      equal((await target(node, WORK)).instances, 1, "activated to one instance");
    }
    const sorted = [...coldStartsMs].sort((a, b) => a - b);
    const status = await node.json<{ controller: { scaleToZero: { coldStarts: unknown } } }>(
      "/api/v1/status",
    );
    console.log(
      `scale to zero, first answer after zero (client, ${coldStartsMs.length} rounds of 10 concurrent ` +
        `requests): ${coldStartsMs.map((ms) => ms.toFixed(0)).join(", ")} ms (p50 ${
          sorted[Math.floor(sorted.length / 2)].toFixed(0)
        } ms); node's cold-start metric: ${JSON.stringify(status.body.controller.scaleToZero.coldStarts)}`,
    );
    const log = await cli(node, "controller", "log", WORK);
    match(log.stdout, /1 -> 0\s+idle/);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${cluster.logs().slice(-8_000)}`);
  } finally {
    await cluster.close();
  }
});
