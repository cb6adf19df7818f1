/**
 * `ctx.infra.db` against a real PostgreSQL server (tests/_support/postgres.ts, loopback) on a 1-node cluster:
 * the operator points a database name at a URL with `PUT /api/v1/databases/...` (password from the secrets
 * service), then the same slice API works: statements with bound parameters, transactions commit and roll
 * back, migrations applied once; a wrong password is a clear error, a password in the URL is refused, and
 * the embedded database of another name is unaffected.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { postgresPresent, startPostgres } from "../_support/postgres.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Json = Record<string, unknown>;

const ORDERS = new URL("./fixtures/sql_slice.ts", import.meta.url).pathname;

async function post(node: NodeProcess, path: string, body: Json): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${node.httpUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as Json };
}

async function api(node: NodeProcess, method: string, path: string, body?: unknown) {
  return await node.json<Json>(path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
}

Deno.test({
  name: "ctx.infra.db on PostgreSQL: operator setting, password secret, statements, transactions, migrations",
  ignore: !postgresPresent,
  async fn(t) {
    await using pg = await startPostgres();
    const cluster = await TestCluster.create(1, {
      argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
    });
    try {
      await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
      await cluster.startAll();
      await cluster.waitForLeader();
      const [n1] = cluster.nodes;
      const bare = pg.url.replace(`:${encodeURIComponent(pg.password)}@`, "@");
      ok(!bare.includes(pg.password), "the URL without its password");

      await t.step("the operator's setting is checked, naming the field", async () => {
        const withPassword = await api(n1, "PUT", "/api/v1/databases/org.example.sql/pg", {
          backend: "postgres",
          url: pg.url,
        });
        equal(withPassword.status, 400, JSON.stringify(withPassword.body));
        match(String(withPassword.body.detail), /must not carry a password/);
        const backend = await api(n1, "PUT", "/api/v1/databases/org.example.sql/pg", { backend: "mysql" });
        equal(backend.status, 400);
        match(String(backend.body.detail), /backend must be "embedded" or "postgres"/);
        for (const [name, value] of [["pg-password", pg.password], ["pg-wrong", "not-the-password"]]) {
          const secret = await api(n1, "PUT", `/api/v1/secrets/${name}`, { value });
          ok(secret.status === 200 || secret.status === 201, JSON.stringify(secret.body));
        }
        const set = await api(n1, "PUT", "/api/v1/databases/org.example.sql/pg", {
          backend: "postgres",
          url: bare,
          passwordSecret: "pg-password",
        });
        equal(set.status, 200, JSON.stringify(set.body));
        equal(set.body.backend, "postgres");
        const wrong = await api(n1, "PUT", "/api/v1/databases/org.example.sql/pgwrong", {
          backend: "postgres",
          url: bare,
          passwordSecret: "pg-wrong",
        });
        equal(wrong.status, 200);
        const list = await api(n1, "GET", "/api/v1/databases");
        const names = (list.body.items as Json[]).map((d) => `${d.database}:${d.backend}`);
        ok(names.includes("org.example.sql/pg:postgres"), names.join(", "));
      });

      await pushArtifact(n1, await buildSlice(ORDERS));
      const r = await postBlueprint(
        n1,
        `id = "org.example.sql:app:1.0.0"\n[[slices]]\nartifact = "org.example.sql:orders:1.0.0"\ninstances = 1\n`,
      );
      equal(r.status, 201, JSON.stringify(r.body));
      await cluster.waitFor("orders ACTIVE", async () => {
        const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.sql:orders");
        return s !== undefined && s.instances.some((i) => i.state === "ACTIVE" && i.connected);
      }, 90_000);
      await cluster.waitFor("routes /sql/run", async () => {
        const { body } = await n1.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
        return body.routes.some((x) => x.path === "/sql/run");
      }, 30_000);

      await t.step("migrations once, statements with bound parameters, through the slice", async () => {
        const migrations = ["CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL UNIQUE)"];
        const first = await post(n1, "/sql/migrate", { db: "pg", migrations });
        equal(first.status, 200, JSON.stringify(first.body));
        deepEqual(first.body, { applied: 1, total: 1 });
        deepEqual((await post(n1, "/sql/migrate", { db: "pg", migrations })).body, { applied: 0, total: 1 });
        const inserted = await post(n1, "/sql/run", {
          db: "pg",
          sql: "INSERT INTO items (name) VALUES ($1), ($2)",
          params: ["apple", "x'); DROP TABLE items; --"],
        });
        equal(inserted.status, 200, JSON.stringify(inserted.body));
        equal(inserted.body.rowsAffected, 2);
        const rows = await post(n1, "/sql/run", { db: "pg", sql: "SELECT name FROM items ORDER BY id" });
        deepEqual((rows.body.rows as Json[]).map((x) => x.name), ["apple", "x'); DROP TABLE items; --"]);
        // The server has them: the same rows through psql.
        match(await pg.psql("SELECT count(*) FROM items"), /\b2\b/);
      });

      await t.step("transactions commit and roll back on the server", async () => {
        const committed = await post(n1, "/sql/tx", {
          db: "pg",
          statements: [{ sql: "INSERT INTO items (name) VALUES ($1)", params: ["pear"] }],
        });
        equal(committed.status, 200, JSON.stringify(committed.body));
        const failed = await post(n1, "/sql/tx", {
          db: "pg",
          statements: [{ sql: "INSERT INTO items (name) VALUES ($1)", params: ["plum"] }],
          fail: true,
        });
        equal(failed.status, 500);
        const rows = await post(n1, "/sql/run", {
          db: "pg",
          sql: "SELECT name FROM items WHERE name IN ($1, $2)",
          params: ["pear", "plum"],
        });
        deepEqual((rows.body.rows as Json[]).map((x) => x.name), ["pear"]);
      });

      await t.step("a wrong password is a clear error; the embedded default is unaffected", async () => {
        const wrong = await post(n1, "/sql/run", { db: "pgwrong", sql: "SELECT 1 AS one" });
        ok(wrong.status >= 400, JSON.stringify(wrong.body));
        match(String(wrong.body.detail), /password|authentication/i);
        ok(!String(wrong.body.detail).includes("not-the-password"), "the password is never shown");
        const embedded = await post(n1, "/sql/run", { sql: "SELECT count(*) AS n FROM items" });
        equal(embedded.status, 200, JSON.stringify(embedded.body));
        equal((embedded.body.rows as Json[])[0].n, 0, "orders (embedded) has its own, empty items");
      });
    } finally {
      await cluster.close();
    }
  },
});
