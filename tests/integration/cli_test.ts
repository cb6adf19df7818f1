/**
 * The `aether` CLI against a real node: batch commands with their exit codes, and the interactive shell driven
 * through standard input. Also Forge: it starts a cluster, prints where it is, and stops every node on Ctrl-C.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { runCli } from "../_support/cli.ts";

const MAIN = new URL("../../runtime/main.ts", import.meta.url).pathname;

const cli = (args: string[], stdin?: string) => runCli(args, { stdin });

Deno.test("CLI batch mode: status, health, kv put/get/list/del, and exit codes", async () => {
  const cluster = await TestCluster.start(3);
  try {
    await cluster.waitForLeader();
    const connect = [
      "--connect",
      cluster.nodes[0].apiUrl.replace("http://", ""),
      "--token",
      cluster.nodes[0].options.token!,
    ];
    const other = [
      "--connect",
      cluster.nodes[2].apiUrl.replace("http://", ""),
      "--token",
      cluster.nodes[2].options.token!,
    ];

    const status = await cli([...connect, "status"]);
    equal(status.code, 0, status.stderr);
    match(status.stdout, /leader\s+n\d \(view \d+\)/);
    match(status.stdout, /n3\s+true/);

    equal((await cli([...connect, "health"])).code, 0);

    const put = await cli([...connect, "kv", "put", "app/cli/greeting", "hello world"]);
    equal(put.code, 0, put.stderr);
    const revision = Number(/revision (\d+)/.exec(put.stdout)![1]);
    const got = await cli([...other, "kv", "get", "app/cli/greeting", "--consistent"]);
    equal(got.stdout.trim(), "hello world");

    const piped = await cli([...connect, "kv", "put", "app/cli/stdin", "-"], "from standard input");
    equal(piped.code, 0, piped.stderr);
    equal(
      (await cli([...other, "kv", "get", "app/cli/stdin", "--consistent"])).stdout.trim(),
      "from standard input",
    );

    const cas = await cli([
      ...connect,
      "kv",
      "put",
      "app/cli/greeting",
      "x",
      "--if-revision",
      String(revision - 1),
    ]);
    equal(cas.code, 1);
    match(cas.stderr, /409 compare failed: "app\/cli\/greeting" is at revision \d+, not \d+/);

    const list = await cli([...connect, "--json", "kv", "list", "app/cli/"]);
    equal(JSON.parse(list.stdout).items.length, 2);

    const forbidden = await cli([...connect, "kv", "put", "blueprints/x", "y"]);
    equal(forbidden.code, 1);
    match(forbidden.stderr, /403 forbidden: .*only keys under "app\/"/);

    equal((await cli([...connect, "kv", "del", "app/cli/stdin"])).code, 0);
    const gone = await cli([...connect, "kv", "get", "app/cli/stdin", "--consistent"]);
    equal(gone.code, 1);
    match(gone.stderr, /404/);

    const usage = await cli([...connect, "kv", "get"]);
    equal(usage.code, 2);
    match(usage.stderr, /kv get: expected <key>/);
    equal((await cli([...connect, "frobnicate"])).code, 2);

    const unreachable = await cli(["--connect", "127.0.0.1:1", "status"]);
    equal(unreachable.code, 3);
    match(unreachable.stderr, /cannot reach http:\/\/127.0.0.1:1/);
  } finally {
    await cluster.close();
  }
});

Deno.test("CLI interactive shell reads commands from standard input", async () => {
  const cluster = await TestCluster.start(1);
  try {
    await cluster.waitForLeader();
    const connect = [
      "--connect",
      cluster.nodes[0].apiUrl.replace("http://", ""),
      "--token",
      cluster.nodes[0].options.token!,
    ];
    const session = await cli(connect, 'kv put app/repl "two words"\nkv get app/repl\nnonsense\nexit\n');
    equal(session.code, 2, "the last command's failure is the exit code"); // nonsense -> usage error
    match(session.stdout, /aether> /);
    match(session.stdout, /revision \d+/);
    match(session.stdout, /two words/);
    match(session.stderr, /unknown command "nonsense"/);
  } finally {
    await cluster.close();
  }
});

Deno.test("Forge starts a local cluster, prints its ports, and stops every node on Ctrl-C", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "aether-forge-" });
  const forge = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write=.forge",
      "--allow-run",
      "--allow-net=127.0.0.1",
      "--allow-env",
      MAIN,
      "forge",
      "--nodes",
      "3",
      "--no-example",
    ],
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let output = "";
  try {
    const reader = forge.stdout.pipeThrough(new TextDecoderStream()).getReader();
    while (!output.includes("stops every node.")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`forge ended early:\n${output}`);
      output += value;
    }
    const apis = [...output.matchAll(/api (http:\/\/127\.0\.0\.1:\d+)/g)].map((m) => m[1]);
    equal(apis.length, 3, output);
    const health = await (await fetch(`${apis[1]}/api/v1/health`)).json();
    equal(health.status, "healthy");
    // Forge made the cluster's admin token, private to the user, and the nodes took it as their first.
    equal((await Deno.stat(`${cwd}/.forge/admin-token`)).mode! & 0o777, 0o600);
    const token = (await Deno.readTextFile(`${cwd}/.forge/admin-token`)).trim();
    const status = await fetch(`${apis[2]}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    equal(status.status, 200, await status.text());
    equal(
      (await fetch(`${apis[2]}/api/v1/status`).then(async (r) => (await r.body?.cancel(), r))).status,
      401,
    );
    forge.kill("SIGINT");
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      output += value;
    }
    equal((await forge.status).code, 0);
    match(output, /All nodes stopped/);
    // Every node is gone: nothing answers on their API ports any more.
    for (const api of apis) {
      const reachable = await fetch(`${api}/api/v1/health`).then((r) => r.body?.cancel()).then(
        () => true,
        () => false,
      );
      ok(!reachable, `${api} still answers`);
    }
    const layout = JSON.parse(await Deno.readTextFile(`${cwd}/.forge/cluster.json`));
    equal(layout.nodes, 3);
  } finally {
    try {
      forge.kill("SIGKILL");
    } catch { /* exited */ }
    await forge.status;
    await forge.stdin.close().catch(() => {});
    await forge.stderr.cancel().catch(() => {});
    await Deno.remove(cwd, { recursive: true });
  }
});
