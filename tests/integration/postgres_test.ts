/**
 * The PostgreSQL connector in a real node's setting, against a real PostgreSQL server (tests/_support/postgres.ts):
 *
 * - the connector runs in a process with exactly the node's permissions (node/permissions.ts): the driver
 *   needs no permission the node lacks (it reads only PGBINARY and PGREPLICATION from the environment);
 * - a 3-node cluster whose operator points the database name `pg` of a slice's group at the server (URL without
 *   password, the password in the secrets service): a slice with an instance on every node writes through all
 *   three nodes at once (each node's own pool), transactions commit and roll back, the server killed is a clear
 *   503 naming host and user on every node and every node recovers once it is back, and a rotated password
 *   takes effect when the operator sets the database again.
 *
 *   deno test -A tests/integration/postgres_test.ts
 */

import assert from "node:assert/strict";
import { nodePermissionFlags, PROJECT_ROOT } from "../../runtime/node/mod.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { TestCluster } from "../_support/cluster.ts";
import { describe, postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { postgresPresent, startPostgres } from "../_support/postgres.ts";

type Json = Record<string, unknown>;

const SQL_SLICE = new URL("./fixtures/sql_slice.ts", import.meta.url).pathname;
const GROUP = "org.example.sql";

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

/** A call to the fixture slice's HTTP routes on one node's application port. */
async function post(node: NodeProcess, path: string, body: Json): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${node.httpUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: Json;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { text };
  }
  return { status: response.status, body: parsed };
}

async function api(node: NodeProcess, method: string, path: string, body: unknown) {
  return await node.json<Json>(path, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** An operator write, retried while the cluster answers 503 (a member still joining on a loaded machine). */
async function apiWrite(node: NodeProcess, method: string, path: string, body: unknown) {
  const until = Date.now() + 30_000;
  for (;;) {
    const answer = await api(node, method, path, body);
    if (answer.status !== 503 || Date.now() > until) return answer;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function expectOk(call: Promise<{ status: number; body: Json }>, what: string): Promise<Json> {
  const { status, body } = await call;
  assert.equal(status, 200, `${what}: ${JSON.stringify(body)}`);
  return body;
}

Deno.test({
  name:
    "ctx.infra.db on PostgreSQL across 3 nodes: every node's pool, transactions, server loss, password rotation",
  ignore: !postgresPresent,
  async fn(t) {
    await using pg = await startPostgres();
    const cluster = await TestCluster.create(3, {
      fsync: "never",
      argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
    });
    try {
      await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
      await cluster.startAll();
      await cluster.waitForLeader();
      const [n1, n2, n3] = cluster.nodes;
      // The slices' own role (not the superuser the test administers the server with), owning the database.
      const appPassword = `app-${crypto.randomUUID()}`;
      await pg.psql(`CREATE ROLE app LOGIN PASSWORD '${appPassword}'`);
      await pg.psql(`ALTER DATABASE "${pg.database}" OWNER TO app`);
      await pg.psql("ALTER SCHEMA public OWNER TO app");
      const bareUrl = `postgres://app@${pg.host}:${pg.port}/${pg.database}`;

      await t.step(
        "the operator points `pg` at the server, the password in the secrets service",
        async () => {
          const secret = await apiWrite(n1, "PUT", "/api/v1/secrets/pg-password", { value: appPassword });
          assert.ok(secret.status === 200 || secret.status === 201, JSON.stringify(secret.body));
          const set = await apiWrite(n2, "PUT", `/api/v1/databases/${GROUP}/pg`, {
            backend: "postgres",
            url: bareUrl,
            passwordSecret: "pg-password",
          });
          assert.equal(set.status, 200, JSON.stringify(set.body));
          assert.ok(!JSON.stringify(set.body).includes(appPassword));
        },
      );

      await pushArtifact(n1, await buildSlice(SQL_SLICE));
      const deployed = await postBlueprint(
        n1,
        `id = "${GROUP}:pgapp:1.0.0"\n[[slices]]\nartifact = "${GROUP}:orders:1.0.0"\ninstances = 3\n`,
      );
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
      await cluster.waitFor("an ACTIVE orders instance on every node", async () => {
        const s = (await sliceStatuses(n1)).find((x) => x.slice === `${GROUP}:orders`);
        const nodes = new Set(
          s?.instances.filter((i) => i.state === "ACTIVE" && i.connected).map((i) => i.node),
        );
        return nodes.size === 3;
      }, 90_000).catch(async (e) => {
        throw new Error(`${e}\n${describe(await sliceStatuses(n1))}`);
      });
      for (const node of cluster.nodes) {
        await cluster.waitFor(`routes on ${node.id}`, async () => {
          const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
          return body.routes.some((x) => x.path === "/sql/run");
        }, 30_000);
      }

      await t.step("writes through all three nodes at once land on the server", async () => {
        await expectOk(
          post(n1, "/sql/migrate", {
            db: "pg",
            migrations: ["CREATE TABLE notes (id serial PRIMARY KEY, via text)"],
          }),
          "migrate",
        );
        const writes = cluster.nodes.flatMap((node) =>
          Array.from({ length: 20 }, (_, i) =>
            expectOk(
              post(node, "/sql/run", {
                db: "pg",
                sql: "INSERT INTO notes (via) VALUES ($1)",
                params: [`${node.id}-${i}`],
              }),
              `insert through ${node.id}`,
            ))
        );
        await Promise.all(writes);
        assert.match(await pg.psql("SELECT count(*) FROM notes"), /\b60\b/);
        for (const node of cluster.nodes) {
          const body = await expectOk(
            post(node, "/sql/run", {
              db: "pg",
              sql: "SELECT count(*) AS n FROM notes WHERE via LIKE $1",
              params: [`${node.id}-%`],
            }),
            `count through ${node.id}`,
          );
          assert.deepEqual(body.rows, [{ n: 20 }]);
        }
      });

      await t.step("transactions commit and roll back through any node", async () => {
        await expectOk(
          post(n2, "/sql/tx", {
            db: "pg",
            statements: [{ sql: "INSERT INTO notes (via) VALUES ($1)", params: ["tx-commit"] }],
          }),
          "commit through n2",
        );
        const failed = await post(n3, "/sql/tx", {
          db: "pg",
          statements: [{ sql: "INSERT INTO notes (via) VALUES ($1)", params: ["tx-rollback"] }],
          fail: true,
        });
        assert.ok(failed.status >= 400, JSON.stringify(failed.body));
        assert.match(await pg.psql("SELECT via FROM notes WHERE via LIKE 'tx-%'"), /tx-commit/);
        assert.doesNotMatch(await pg.psql("SELECT via FROM notes WHERE via LIKE 'tx-%'"), /tx-rollback/);
      });

      await t.step(
        "the server killed: a clear 503 on every node; every node recovers once it is back",
        async () => {
          await pg.crash();
          for (const node of cluster.nodes) {
            const down = await post(node, "/sql/run", { db: "pg", sql: "SELECT count(*) AS n FROM notes" });
            assert.equal(down.status, 503, `${node.id}: ${JSON.stringify(down.body)}`);
            const detail = JSON.stringify(down.body);
            assert.match(detail, /127\.0\.0\.1/, `${node.id} names the server: ${detail}`);
            assert.ok(!detail.includes(appPassword), `${node.id} shows the password`);
          }
          await pg.start();
          for (const node of cluster.nodes) {
            await cluster.waitFor(`${node.id} reaches the restarted server`, async () => {
              const up = await post(node, "/sql/run", { db: "pg", sql: "SELECT count(*) AS n FROM notes" });
              return up.status === 200 && JSON.stringify(up.body.rows) === JSON.stringify([{ n: 61 }]);
            }, 15_000);
          }
        },
      );

      await t.step("a rotated password takes effect when the operator sets the database again", async () => {
        const rotated = `rotated-${crypto.randomUUID()}`;
        await pg.psql(`ALTER ROLE app PASSWORD '${rotated}'`);
        // Open connections stay authenticated; new ones with the old password are refused from now on.
        await pg.psql(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'aether'",
        );
        const stale = await post(n2, "/sql/run", { db: "pg", sql: "SELECT 1 AS one" });
        assert.equal(stale.status, 503, JSON.stringify(stale.body));
        assert.match(JSON.stringify(stale.body), /password authentication failed/);
        assert.ok(
          !JSON.stringify(stale.body).includes(rotated) && !JSON.stringify(stale.body).includes(appPassword),
        );
        const secret = await apiWrite(n3, "PUT", "/api/v1/secrets/pg-password", { value: rotated });
        assert.ok(secret.status === 200 || secret.status === 201, JSON.stringify(secret.body));
        const set = await apiWrite(n1, "PUT", `/api/v1/databases/${GROUP}/pg`, {
          backend: "postgres",
          url: bareUrl,
          passwordSecret: "pg-password",
        });
        assert.equal(set.status, 200, JSON.stringify(set.body));
        for (const node of [n1, n2, n3]) {
          await cluster.waitFor(`${node.id} connects with the rotated password`, async () => {
            const r = await post(node, "/sql/run", { db: "pg", sql: "SELECT count(*) AS n FROM notes" });
            return r.status === 200;
          }, 15_000);
        }
      });
    } finally {
      await cluster.close();
    }
  },
});
