/**
 * The PostgreSQL connector in a real node's setting, against a real PostgreSQL server (tests/_support/postgres.ts):
 *
 * - the connector runs in a process with exactly the node's permissions (node/permissions.ts): the driver
 *   needs no permission the node lacks (it reads only PGBINARY and PGREPLICATION from the environment).
 *
 *   deno test -A tests/integration/postgres_test.ts
 */

import assert from "node:assert/strict";
import { nodePermissionFlags, PROJECT_ROOT } from "../../runtime/node/mod.ts";
import { postgresPresent, startPostgres } from "../_support/postgres.ts";

Deno.test({
  name: "the PostgreSQL connector works with the node's own permissions",
  ignore: !postgresPresent,
  async fn() {
    await using pg = await startPostgres();
    const dir = await Deno.makeTempDir({ prefix: "aether-pg-perm-" });
    try {
      await Deno.writeTextFile(`${dir}/secret`, "x");
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--config",
          `${PROJECT_ROOT}/deno.json`,
          ...nodePermissionFlags({ dataDir: `${dir}/data`, secretFile: `${dir}/secret` }),
          `${PROJECT_ROOT}/runtime/infra-host/testdata/postgres_probe.ts`,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(pg.url));
      await writer.close();
      const output = await child.output();
      const stdout = new TextDecoder().decode(output.stdout);
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 0, stderr);
      const line = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(line, { ok: true, rows: [{ id: 1, note: "from a node's permissions" }] }, stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
