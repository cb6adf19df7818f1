/**
 * The deployment commands of the `aether` CLI against a real node (one member: the CLI's behaviour does not
 * depend on the cluster's size), including a slice that always fails to start: retried with a growing
 * backoff, reported FAILED with its reason, and `--wait` failing with a non-zero exit.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { GROUP, publishFixtures, type SliceStatus, sliceStatuses } from "../_support/deployment.ts";
import { runCli } from "../_support/cli.ts";

const cli = (args: string[]) => runCli(args);

const GOOD = `id = "${GROUP}:cli-shop:1.0.0"
[[slices]]
artifact = "${GROUP}:orders:1.0.0"
`;

const BAD = `id = "${GROUP}:cli-shop:1.0.0"
[[slices]]
artifact = "${GROUP}:orders:1.0.0"
instances = "many"
colour = "red"
`;

Deno.test("CLI: blueprint validate/apply/list/get/status/delete, slices, scale and deploy with --wait", async () => {
  const cluster = await TestCluster.start(1);
  const dir = await Deno.makeTempDir({ prefix: "aether-cli-deploy-" });
  try {
    await cluster.waitForLeader();
    const [node] = cluster.nodes;
    const connect = ["--connect", node.apiUrl.replace("http://", ""), "--token", node.options.token!];
    await publishFixtures(node, ["inventory", "pricing", "orders", "broken"]);
    await Deno.writeTextFile(`${dir}/bad.toml`, BAD);
    await Deno.writeTextFile(`${dir}/shop.toml`, GOOD);

    const invalid = await cli([...connect, "blueprint", "validate", `${dir}/bad.toml`]);
    equal(invalid.code, 1);
    match(invalid.stderr, new RegExp(`${dir}/bad\\.toml:4:13: slices\\[0\\]\\.instances: `));
    match(invalid.stderr, new RegExp(`${dir}/bad\\.toml:5:1: slices\\[0\\]\\.colour: unknown key "colour"`));

    const valid = await cli([...connect, "blueprint", "validate", `${dir}/shop.toml`]);
    equal(valid.code, 0, valid.stderr);
    match(valid.stdout, /is valid \(3 slice\(s\), in activation order\)/);
    match(valid.stdout, /inventory:1\.0\.0\s+1\s+no \(called\)[\s\S]*orders:1\.0\.0\s+1\s+yes/);

    const applied = await cli([...connect, "blueprint", "apply", `${dir}/shop.toml`, "--wait"]);
    equal(applied.code, 0, applied.stderr);
    match(applied.stdout, /blueprint org\.example\.deploy:cli-shop:1\.0\.0 created \(revision \d+\)/);
    // orders waits for the slices it calls, so --wait shows it before it is ACTIVE (its instance may not be
    // placed yet at the first look, hence the optional state).
    match(applied.stdout, /^orders 0\/1 ACTIVE( \(1 [A-Z]+\))?$/m, "progress while it deploys");
    match(applied.stdout, /^orders 1\/1 ACTIVE$/m);
    match(applied.stdout, /^inventory 1\/1 ACTIVE$/m);
    match(applied.stdout, /settled\n$/);

    const slices = await cli([...connect, "slices"]);
    equal(slices.code, 0);
    match(slices.stdout, /^SLICE\s+VERSION\s+DESIRED\s+ACTIVE\s+STATUS\s+INSTANCES$/m);
    match(slices.stdout, /org\.example\.deploy:orders\s+1\.0\.0\s+1\s+1\s+settled\s+n1\/0 ACTIVE/);
    const json = JSON.parse((await cli([...connect, "--json", "slices"])).stdout) as SliceStatus[];
    deepStrictEqual(json.map((s) => s.slice.split(":")[1]), ["inventory", "orders", "pricing"]);

    match(
      (await cli([...connect, "blueprint", "list"])).stdout,
      /cli-shop:1\.0\.0\s+orders x1 \(\+ called: inventory x1, pricing x1\)/,
    );
    equal((await cli([...connect, "blueprint", "get", `${GROUP}:cli-shop:1.0.0`])).stdout, GOOD);
    match(
      (await cli([...connect, "blueprint", "status", `${GROUP}:cli-shop:1.0.0`])).stdout,
      /: settled\n/,
    );
    const missing = await cli([...connect, "blueprint", "get", `${GROUP}:nope:1.0.0`]);
    deepStrictEqual([missing.code, /404 not found: there is no blueprint/.test(missing.stderr)], [1, true]);

    const scaled = await cli([...connect, "scale", `${GROUP}:orders`, "--instances", "2", "--wait"]);
    equal(scaled.code, 0, scaled.stderr);
    match(scaled.stdout, /org\.example\.deploy:orders: 1\.0\.0 x1 -> 1\.0\.0 x2/);
    match(scaled.stdout, /^orders 2\/2 ACTIVE$/m);
    const usage = await cli([...connect, "scale", `${GROUP}:orders`]);
    deepStrictEqual([usage.code, /--instances N is required/.test(usage.stderr)], [2, true]);

    const deleted = await cli([...connect, "blueprint", "delete", `${GROUP}:cli-shop:1.0.0`, "--wait"]);
    equal(deleted.code, 0, deleted.stderr);
    match(deleted.stdout, /^orders removed$/m);
    deepStrictEqual(await sliceStatuses(node), []);
  } finally {
    await cluster.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a slice that always fails to start is retried with a growing backoff and reported FAILED", async () => {
  const cluster = await TestCluster.start(1);
  try {
    await cluster.waitForLeader();
    const [node] = cluster.nodes;
    const connect = ["--connect", node.apiUrl.replace("http://", ""), "--token", node.options.token!];
    await publishFixtures(node, ["broken"]);
    const started = Date.now();
    const waited = await cli([
      ...connect,
      "deploy",
      `${GROUP}:broken:1.0.0`,
      "--wait",
      "--wait-timeout",
      "3",
    ]);
    equal(waited.code, 1, "--wait fails when the deployment does not settle");
    match(waited.stderr, /not settled within 3s:\n\s+broken 0\/1 ACTIVE.*broken on purpose/);
    match(waited.stdout, /^broken 0\/1 ACTIVE; \d failure\(s\).*: n1: .*broken on purpose/m);

    // Record when each failure is counted: the gaps grow (1 s, 2 s, 4 s, ... of backoff plus the attempt).
    const failedAt: number[] = [];
    let broken: SliceStatus | undefined;
    while (Date.now() - started < 12_000) {
      broken = (await sliceStatuses(node)).find((s) => s.slice === `${GROUP}:broken`);
      const failures = broken?.backoff?.failures ?? 0;
      while (failedAt.length < failures) failedAt.push(Date.now());
      await new Promise((r) => setTimeout(r, 100));
    }
    ok(failedAt.length >= 3 && failedAt.length <= 5, `${failedAt.length} failures in 12 s: not spinning`);
    const gaps = failedAt.slice(1).map((t, i) => t - failedAt[i]);
    ok(gaps.at(-1)! >= 3_000, `the last gap grew to ${gaps.at(-1)} ms (gaps ${gaps.join(", ")})`);
    equal(broken?.active, 0);

    const table = await cli([...connect, "slices"]);
    match(table.stdout, new RegExp(`${GROUP}:broken\\s+1\\.0\\.0\\s+1\\s+0\\s+FAILED x\\d`));
    match(table.stdout, /failures:\n\s+org\.example\.deploy:broken: n1: .*broken on purpose/);

    const undeployed = await cli([...connect, "--json", "undeploy", `${GROUP}:broken`, "--wait"]);
    equal(undeployed.code, 0, undeployed.stderr);
    const result = JSON.parse(undeployed.stdout);
    deepStrictEqual([result.slice, result.entry.action, result.settled], [`${GROUP}:broken`, "remove", true]);
  } finally {
    await cluster.close();
  }
});
