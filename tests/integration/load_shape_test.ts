/**
 * `aether load --shape ...` as its own process against a 1-node cluster serving a small slice: it sends
 * within 5% of the shape's total requests, over about the shape's duration, its live lines follow the
 * shape's target rate (up the ramp, the spike at the end), and the node answers them. A shape file gives
 * the same schedule; a bad shape is refused before anything is sent, naming the segment and the column.
 * And with `idle for ...` a `min = 0` slice scales to zero mid-shape: the next segment's first answer is its
 * cold start as a client sees it (the report's per-segment `firstLatencyMs`), and every held request succeeds.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { runCli } from "../_support/cli.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { type LoadReport, parseShape } from "../../runtime/loadgen/mod.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/repo_greeter.ts", import.meta.url));
const SHAPE = "20/s for 3s, ramp 20..80/s over 4s, sine 30..90/s period 4s for 4s; spike 150/s for 1s";

Deno.test("aether load --shape on a 1-node cluster: sends within 5% of the shape's total, its target rate live", async () => {
  const cluster = await TestCluster.start(1, { fsync: "never" });
  const dir = await Deno.makeTempDir({ prefix: "aether-shape-" });
  try {
    const [node] = cluster.nodes;
    await cluster.waitForLeader();
    await pushArtifact(node, await buildSlice(FIXTURE));
    const blueprint = 'id = "org.example.repo:shape:1.0.0"\n[[slices]]\n' +
      'artifact = "org.example.repo:greeter:1.0.0"\ninstances = 1\n';
    const published = await postBlueprint(node, blueprint);
    ok(published.status < 300, JSON.stringify(published.body));
    await cluster.waitFor("the greeter ACTIVE and answering", async () => {
      const active = (await sliceStatuses(node)).some((s) => s.slice.endsWith(":greeter") && s.active === 1);
      if (!active) return false;
      const probe = await fetch(`${node.httpUrl}/greeter/greet`, { method: "POST", body: '{"name":"x"}' });
      await probe.body?.cancel();
      return probe.status === 200;
    }, 60_000);
    const body = `${dir}/greet.json`;
    await Deno.writeTextFile(body, '{"name": "n${seq}"}');

    const expected = parseShape(SHAPE).expectedRequests; // 60 + 200 + 240 + 150
    const load = await runCli([
      "--json",
      "load",
      "--shape",
      SHAPE,
      "--target",
      "POST /greeter/greet",
      "--body",
      body,
      "--url",
      node.httpUrl,
      "--min-success",
      "95",
    ]);
    equal(load.code, 0, `${load.stderr}\n${load.stdout.slice(0, 2000)}`);
    const report = JSON.parse(load.stdout) as LoadReport;
    console.log(
      `shape "${report.shape}": ${report.sent} sent of ${expected} the shape asks, ${report.succeeded} ` +
        `answered 2xx, over ${(report.elapsedMs / 1000).toFixed(1)} s (shape ${
          report.durationMs / 1000
        } s), ` +
        `late ${report.late}, max send lag ${report.maxSendLagMs} ms, p50 ${
          report.latency.p50Ms.toFixed(1)
        } ms`,
    );
    ok(
      Math.abs(report.sent - expected) <= expected * 0.05,
      `sent ${report.sent}, the shape's total is ${expected}`,
    );
    ok(report.succeeded >= report.sent * 0.95, `only ${report.succeeded} of ${report.sent} answered 2xx`);
    equal(report.durationMs, 12_000);
    ok(report.elapsedMs >= 11_000 && report.elapsedMs < 20_000, `ran ${report.elapsedMs} ms`);

    // The live lines (stderr with --json) show the target rate the shape asks for at each second.
    const targets = [...load.stderr.matchAll(/\]\s+target\s+(\d+(?:\.\d+)?)\/s/g)].map((m) => Number(m[1]));
    ok(targets.length >= 9, `progress lines:\n${load.stderr}`);
    ok(targets.slice(0, 2).every((t) => t === 20), `the first seconds at 20/s: ${targets.join(", ")}`);
    ok(targets.some((t) => t > 40 && t < 80), `a rate on the way up the ramp: ${targets.join(", ")}`);
    // By segment: every request is in one, each segment has about its integral.
    const segments = report.perSegment!;
    equal(segments.length, 4);
    equal(segments.reduce((sum, s) => sum + s.requests, 0), report.sent);
    for (const [i, want] of [60, 200, 240, 150].entries()) {
      ok(Math.abs(segments[i].requests - want) <= 1, `${segments[i].segment}: ${segments[i].requests}`);
    }

    // A shape file (one segment a line, comments) plays the same way; a mistake names the line and column.
    const file = `${dir}/shape.txt`;
    await Deno.writeTextFile(file, "# a short burst\n10/s for 1s\nspike 60/s for 1s  # the burst\n");
    const fromFile = await runCli([
      "--json",
      "load",
      "--shape-file",
      file,
      "--target",
      "POST /greeter/greet",
      "--body",
      body,
      "--url",
      node.httpUrl,
    ]);
    equal(fromFile.code, 0, fromFile.stderr);
    const fileReport = JSON.parse(fromFile.stdout) as LoadReport;
    equal(fileReport.shape, "10/s for 1s, spike 60/s for 1s");
    equal(fileReport.sent, 70);

    await Deno.writeTextFile(file, "10/s for 1s\nramp 10..50 over 2s\nsine 10..20/s every 5s for 10s\n");
    const bad = await runCli(["load", "--shape-file", file, "--target", "GET /", "--url", node.httpUrl]);
    equal(bad.code, 2, bad.stderr);
    ok(
      bad.stderr.includes(
        `--shape-file ${file} line 3, column 15 ("sine 10..20/s every 5s for 10s"): ` +
          `expected "period" but found "every"`,
      ),
      bad.stderr,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
    await cluster.close();
  }
});

Deno.test("aether load --shape with an idle segment: a min 0 slice goes to zero, the next segment's first answer is the cold start", async () => {
  const cluster = await TestCluster.start(1, { fsync: "never" });
  const dir = await Deno.makeTempDir({ prefix: "aether-shape-" });
  try {
    const [node] = cluster.nodes;
    await cluster.waitForLeader();
    await pushArtifact(node, await buildSlice(FIXTURE));
    const blueprint = 'id = "org.example.repo:lazy:1.0.0"\n[[slices]]\n' +
      'artifact = "org.example.repo:greeter:1.0.0"\ninstances = 1\nmin = 0\nmax = 2\n';
    const published = await postBlueprint(node, blueprint);
    ok(published.status < 300, JSON.stringify(published.body));
    await cluster.waitFor("the greeter ACTIVE", async () => {
      return (await sliceStatuses(node)).some((s) => s.slice.endsWith(":greeter") && s.active === 1);
    }, 60_000);
    const admin = ["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", node.options.token!];
    const rules = await runCli([
      ...admin,
      "controller",
      "rules",
      "set",
      "idleToZeroMs=2000",
      "stableWindowMs=2000",
      "downCooldownMs=1000",
    ]);
    equal(rules.code, 0, rules.stderr);
    const body = `${dir}/greet.json`;
    await Deno.writeTextFile(body, '{"name": "n${seq}"}');

    const load = await runCli([
      "--json",
      "load",
      "--shape",
      "5/s for 2s, idle for 10s, 20/s for 3s",
      "--target",
      "POST /greeter/greet",
      "--body",
      body,
      "--url",
      node.httpUrl,
      "--timeout",
      "30s",
      "--min-success",
      "100",
    ]);
    equal(load.code, 0, `${load.stderr}\n${load.stdout.slice(0, 2000)}`);
    const report = JSON.parse(load.stdout) as LoadReport;
    const [warm, idle, after] = report.perSegment!;
    const status = await node.json<
      { controller: { scaleToZero: { activations: number; coldStarts: unknown } } }
    >(
      "/api/v1/status",
    );
    const scaleToZero = status.body.controller.scaleToZero;
    console.log(
      `warm segment p50 ${warm.latency.p50Ms} ms; after ${idle.segment}: first answer ${after.firstLatencyMs} ms ` +
        `(cold start as the client sees it), p50 ${after.latency.p50Ms} ms, p99 ${after.latency.p99Ms} ms, ` +
        `${after.succeeded}/${after.requests} ok; node: activations ${scaleToZero.activations}, cold starts ` +
        JSON.stringify(scaleToZero.coldStarts),
    );
    equal(idle.requests, 0);
    deepEqual([after.requests, after.succeeded], [60, 60]);
    ok(
      scaleToZero.activations >= 1,
      `the slice went to zero and was activated: ${JSON.stringify(scaleToZero)}`,
    );
    ok(after.firstLatencyMs !== null && after.firstLatencyMs > 0);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${cluster.logs().slice(-6_000)}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await cluster.close();
  }
});
