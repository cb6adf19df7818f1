/**
 * The CLI's side of access control against a real node: `--token`, `AETHER_TOKEN`, `aether login` (a
 * credentials file of mode 0600 keyed by node address), `aether whoami`, `aether token create|list|revoke`,
 * `aether audit`, and the hint after a 401.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { CLI_TASK_PERMISSIONS, runCli } from "../_support/cli.ts";

Deno.test("CLI: login saves a token (0600), token create/list/revoke, whoami, audit, and a 401 says what to do", async () => {
  const cluster = await TestCluster.start(1);
  const config = await Deno.makeTempDir({ prefix: "aether-cli-config-" });
  const env = { XDG_CONFIG_HOME: config, AETHER_TOKEN: "" };
  try {
    await cluster.waitForLeader();
    const address = cluster.nodes[0].apiUrl.replace("http://", "");
    const cli = (args: string[], extra: Record<string, string> = {}, stdin?: string) =>
      runCli(["--connect", address, ...args], {
        env: { ...env, ...extra },
        stdin,
        permissions: CLI_TASK_PERMISSIONS,
      });

    const anonymous = await cli(["status"]);
    equal(anonymous.code, 1);
    match(anonymous.stderr, /401 unauthorized: GET \/api\/v1\/status needs a token/);
    match(anonymous.stderr, /no token was sent; pass --token TOKEN, set AETHER_TOKEN, or run "aether login"/);

    const created = await cli([
      "--token",
      cluster.token,
      "token",
      "create",
      "ci",
      "--role",
      "operator",
      "--ttl",
      "1d",
    ]);
    equal(created.code, 0, created.stderr);
    const [token, about] = created.stdout.trim().split("\n");
    match(token, /^aether_[a-z0-9]+_[A-Za-z0-9_-]{43}$/);
    match(about, /role operator, expires 20\d\d-.*shown only now/);

    // The token given after the command works like the global flag.
    const whoami = await cli(["whoami", "--token", token]);
    equal(whoami.code, 0, whoami.stderr);
    match(whoami.stdout, /\("ci"\), role operator/);

    const login = await cli(["login"], { AETHER_TOKEN: token });
    equal(login.code, 0, login.stderr);
    const path = `${config}/aether/credentials`;
    match(
      login.stdout,
      new RegExp(`logged in as token [a-z0-9]+ \\("ci", role operator\\); saved in ${path}`),
    );
    equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    // From now on the saved token is sent without --token.
    const status = await cli(["status"]);
    equal(status.code, 0, status.stderr);
    const put = await cli(["kv", "put", "app/by-ci", "yes"]);
    equal(put.code, 0, put.stderr);
    // An operator may not manage tokens: 403 naming the role needed.
    const denied = await cli(["token", "list"]);
    equal(denied.code, 1);
    match(
      denied.stderr,
      /403 forbidden: GET \/api\/v1\/tokens needs role admin or above; token [a-z0-9]+ \("ci"\) has role operator/,
    );
    // A bad login is refused before anything is saved.
    const wrong = await cli(
      ["login"],
      {},
      "aether_nosuchtoken_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
    );
    equal(wrong.code, 1);
    match(await Deno.readTextFile(path), new RegExp(token));

    const list = await cli(["--token", cluster.token, "token", "list"]);
    equal(list.code, 0, list.stderr);
    match(list.stdout, /^ID\s+NAME\s+ROLE\s+STATE\s+CREATED\s+EXPIRES/);
    match(list.stdout, /bootstrap admin\s+admin\s+active/);
    match(list.stdout, /ci\s+operator\s+active/);
    ok(!list.stdout.includes(token.slice(-20)), "no secret in the list");

    const audit = await cli(["audit", "--since", "10m"]);
    equal(audit.code, 0, audit.stderr);
    match(audit.stdout, /PUT \/api\/v1\/kv\/app\/by-ci\s+app\/by-ci\s+200/);
    match(audit.stdout, /POST \/api\/v1\/tokens\s+-\s+201/);

    const id = /^aether_([a-z0-9]+)_/.exec(token)![1];
    const revoked = await cli(["--token", cluster.token, "token", "revoke", id]);
    equal(revoked.code, 0, revoked.stderr);
    match(revoked.stdout, new RegExp(`token ${id} revoked at 20`));
    const after = await cli(["status"]);
    equal(after.code, 1);
    match(after.stderr, /was revoked/);
    match(after.stderr, /the token saved in .*credentials was refused/);
  } finally {
    await cluster.close();
    await Deno.remove(config, { recursive: true }).catch(() => {});
  }
});
