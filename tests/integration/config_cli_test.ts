/**
 * `aether config|secret|ratelimit` against a real node: values read from stdin and never printed, live node
 * settings with their source, rate limits with their share, and clear errors with a non-zero exit.
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { runCli } from "../_support/cli.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";

Deno.test("CLI: secret set|list|rotate|delete, config setting|list, ratelimit set|list|delete", async () => {
  const cluster = await TestCluster.create(1, {
    argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
  });
  try {
    await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
    await cluster.startAll();
    await cluster.waitForLeader();
    const node = cluster.nodes[0];
    const connect = ["--connect", node.apiUrl.replace("http://", ""), "--token", node.options.token!];
    const cli = (args: string[], stdin?: string) => runCli([...connect, ...args], { stdin });
    const value = `top-${crypto.randomUUID()}`;

    const set = await cli(["secret", "set", "db-password"], `${value}\n`);
    equal(set.code, 0, set.stderr);
    ok(set.stdout.includes("stored db-password: version 1"), set.stdout);
    const rotate = await cli(["secret", "rotate", "db-password"], "next");
    ok(rotate.stdout.includes("version 2"), rotate.stdout);
    const list = await cli(["secret", "list"]);
    ok(list.stdout.includes("db-password") && !list.stdout.includes(value), list.stdout);
    const empty = await cli(["secret", "set", "x"], "");
    equal(empty.code === 0, false);
    ok(empty.stderr.includes("empty"), empty.stderr);
    const missing = await cli(["secret", "rotate", "nope"], "v");
    ok(missing.code !== 0 && missing.stderr.includes("no secret"), missing.stderr);
    equal((await cli(["secret", "delete", "db-password"])).code, 0);

    const debug = await cli(["config", "setting", "log.level", "debug"]);
    equal(debug.code, 0, debug.stderr);
    ok(/log\.level\s+"debug"\s+cluster/.test(debug.stdout), debug.stdout);
    const back = await cli(["config", "setting", "log.level", "--unset"]);
    ok(/log\.level\s+"info"\s+--log-level/.test(back.stdout), back.stdout);
    const bad = await cli(["config", "setting", "log.level", "loud"]);
    ok(bad.code !== 0 && bad.stderr.includes("debug"), bad.stderr);
    const unknownSlice = await cli(["config", "set", "org.example:none", "a=1"]);
    ok(unknownSlice.code !== 0 && unknownSlice.stderr.includes("no published artifact"), unknownSlice.stderr);
    ok((await cli(["config", "list"])).stdout.includes("log.level"));

    const limit = await cli(["ratelimit", "set", "api", "--rate", "6000/m", "--burst", "7"]);
    equal(limit.code, 0, limit.stderr);
    ok(limit.stdout.includes("api: 100/s, burst 7"), limit.stdout);
    const limits = await cli(["ratelimit", "list"]);
    ok(limits.stdout.includes("100/s") && limits.stdout.includes("100.0%"), limits.stdout);
    const badRate = await cli(["ratelimit", "set", "api", "--rate", "fast"]);
    ok(badRate.code !== 0 && badRate.stderr.includes("N/s"), badRate.stderr);
    equal((await cli(["ratelimit", "delete", "api"])).code, 0);
    ok(!cluster.logs().includes(value), "the secret is absent from the node's output");
  } finally {
    await cluster.close();
  }
});
