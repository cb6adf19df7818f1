/**
 * The embedded SQL database (`ctx.infra.db`) on 3 real node processes, through slices: migrations applied once,
 * writes through every node read back linearizably, bad SQL and parameters refused with clear errors,
 * non-deterministic SQL and escapes (ATTACH, pragmas, the runtime's tables) refused, another group cannot see
 * the tables, transactions commit / roll back / conflict (and are retried), a member killed with -9 catches up,
 * and everything survives a kill -9 of the whole cluster.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";

type Json = Record<string, unknown>;

const ORDERS = new URL("./fixtures/sql_slice.ts", import.meta.url).pathname;
const OTHER = new URL("./fixtures/sql_other.ts", import.meta.url).pathname;

async function post(node: NodeProcess, path: string, body: Json): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${node.httpUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: Json;
  try {
    parsed = JSON.parse(text) as Json;
  } catch {
    parsed = { text };
  }
  return { status: response.status, body: parsed };
}

async function run(node: NodeProcess, sql: string, params: unknown[] = [], extra: Json = {}) {
  return await post(node, "/sql/run", { sql, params, ...extra });
}

async function ok200(
  node: NodeProcess,
  sql: string,
  params: unknown[] = [],
  extra: Json = {},
): Promise<Json> {
  const r = await run(node, sql, params, extra);
  equal(r.status, 200, `${sql}: ${JSON.stringify(r.body)}`);
  return r.body;
}

async function count(node: NodeProcess, extra: Json = {}): Promise<number> {
  const body = await ok200(node, "SELECT count(*) AS n FROM items", [], extra);
  return Number((body.rows as Json[])[0].n);
}

Deno.test("embedded SQL on 3 nodes: migrations, linearizable reads, errors, escapes, transactions, kill -9", async (t) => {
  const cluster = await TestCluster.start(3);
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    // A push needs every member connected: retry while the mesh forms on a busy machine.
    for (const path of [ORDERS, OTHER]) {
      const built = await buildSlice(path);
      await cluster.waitFor(`push ${path}`, async () => {
        try {
          await pushArtifact(n1, built);
          return true;
        } catch {
          return false;
        }
      }, 30_000);
    }
    const r = await postBlueprint(
      n1,
      `id = "org.example.sql:app:1.0.0"\n` +
        `[[slices]]\nartifact = "org.example.sql:orders:1.0.0"\ninstances = 3\n` +
        `[[slices]]\nartifact = "org.example.intruder:reader:1.0.0"\ninstances = 1\n`,
    );
    equal(r.status, 201, JSON.stringify(r.body));
    const waitActive = async (what: string, slice: string, n: number) =>
      await cluster.waitFor(what, async () => {
        const s = (await sliceStatuses(cluster.running()[0])).find((x) => x.slice === slice);
        return s !== undefined && s.instances.filter((i) => i.state === "ACTIVE" && i.connected).length >= n;
      }, 90_000);
    await waitActive("orders ACTIVE", "org.example.sql:orders", 3);
    await waitActive("intruder ACTIVE", "org.example.intruder:reader", 1);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} routes /sql/run`, async () => {
        const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
        return body.routes.some((x) => x.path === "/sql/run") &&
          body.routes.some((x) => x.path === "/intruder/run");
      }, 30_000);
    }
    const inserted: string[] = [];

    await t.step("the slice's migrations are applied once, in order, and recorded", async () => {
      // The first statement of every instance runs the declared migrations; only one applies them.
      const first = await Promise.all([n1, n2, n3].map((n) => count(n)));
      deepEqual(first, [0, 0, 0]);
      const again = await post(n2, "/sql/migrate", {
        migrations: [
          "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, node TEXT)",
          "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        ],
      });
      equal(again.status, 200, JSON.stringify(again.body));
      deepEqual(again.body, { applied: 0, total: 2 });
      const more = await post(n3, "/sql/migrate", {
        migrations: [
          "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, node TEXT)",
          "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
          "CREATE INDEX items_node ON items (node)",
        ],
      });
      deepEqual(more.body, { applied: 1, total: 3 });
      const changed = await post(n1, "/sql/migrate", { migrations: ["CREATE TABLE items (id INTEGER)"] });
      equal(changed.status, 409, JSON.stringify(changed.body));
      match(String(changed.body.detail ?? changed.body.message), /migration 0 differs/);
    });

    await t.step("writes through every node read back linearizably through every other node", async () => {
      const nodes = [n1, n2, n3];
      for (let i = 0; i < 30; i++) {
        const name = `item-${i}`;
        const body = await ok200(nodes[i % 3], "INSERT INTO items (name, node) VALUES (?, ?)", [
          name,
          nodes[i % 3].id,
        ]);
        equal(body.rowsAffected, 1);
        ok(typeof body.lastInsertId === "number", JSON.stringify(body));
        inserted.push(name);
        equal(await count(nodes[(i + 1) % 3]), inserted.length, `read after insert ${i}`);
      }
      const rows = (await ok200(n2, "SELECT name FROM items ORDER BY id")).rows as Json[];
      deepEqual(rows.map((r) => r.name), inserted);
      // RETURNING answers the written row; an UPDATE counts its rows.
      const returned = await ok200(n3, "INSERT INTO items (name) VALUES (?) RETURNING id, name", [
        "returned",
      ]);
      equal((returned.rows as Json[])[0].name, "returned");
      inserted.push("returned");
      const updated = await ok200(n1, "UPDATE items SET node = ? WHERE name LIKE ?", ["x", "item-1%"]);
      equal(updated.rowsAffected, 11);
      const local = await ok200(n1, "SELECT count(*) AS n FROM items", [], { consistency: "local" });
      ok(Number((local.rows as Json[])[0].n) <= inserted.length);
    });

    await t.step("bad SQL and bad parameters are refused with clear errors", async () => {
      const syntax = await run(n1, "SELEC * FROM items");
      equal(syntax.status, 400, JSON.stringify(syntax.body));
      match(String(syntax.body.detail), /syntax error/);
      const missing = await run(n2, "SELECT * FROM nowhere");
      equal(missing.status, 400);
      match(String(missing.body.detail), /no such table: nowhere/);
      const unique = await run(n3, "INSERT INTO items (name) VALUES (?)", ["item-0"]);
      equal(unique.status, 400, JSON.stringify(unique.body));
      match(String(unique.body.detail), /UNIQUE constraint failed: items.name/);
      const object = await run(n1, "SELECT ?", [{ a: 1 }]);
      equal(object.status, 400);
      match(String(object.body.detail), /params\[0\] must be a string, a finite number, a boolean or null/);
      const two = await run(n1, "SELECT 1; DELETE FROM items");
      equal(two.status, 400);
      match(String(two.body.detail), /one statement per call/);
      equal(await count(n2), inserted.length, "nothing was deleted");
      const big = await run(n1, `SELECT '${"x".repeat(70_000)}'`);
      equal(big.status, 413, JSON.stringify(big.body).slice(0, 300));
    });

    await t.step("non-deterministic SQL is refused (every member must store the same)", async () => {
      const random = await run(n1, "INSERT INTO items (name) VALUES (random())");
      ok(random.status === 400 || random.status === 403, JSON.stringify(random.body));
      match(String(random.body.detail), /random\(\)/);
      const now = await run(n2, "INSERT INTO items (name) VALUES (CURRENT_TIMESTAMP)");
      equal(now.status, 400);
      match(String(now.body.detail), /CURRENT_TIMESTAMP is not deterministic/);
      const viaParam = await run(n3, "INSERT INTO items (name) VALUES (datetime(?))", ["now"]);
      equal(viaParam.status, 400, JSON.stringify(viaParam.body));
      match(String(viaParam.body.detail), /datetime\('now'\) depends on the member's clock/);
      const fixed = await ok200(n3, "SELECT datetime(?) AS t", [1_700_000_000]);
      ok(fixed.rows !== undefined);
      equal(await count(n1), inserted.length);
    });

    await t.step("hostile: escapes refused, another group cannot reach the tables", async () => {
      const attach = await run(n1, "ATTACH DATABASE '/tmp/escape.sqlite' AS x");
      equal(attach.status, 403, JSON.stringify(attach.body));
      match(String(attach.body.detail), /ATTACH DATABASE/);
      const pragma = await run(n2, "PRAGMA journal_mode = DELETE");
      equal(pragma.status, 403);
      const meta = await run(n3, "UPDATE _aether_meta SET value = 0");
      equal(meta.status, 403);
      const master = await run(n1, "DELETE FROM sqlite_master");
      equal(master.status, 400, JSON.stringify(master.body));
      match(String(master.body.detail), /may not be modified/);
      const begin = await run(n1, "BEGIN");
      equal(begin.status, 403);
      // A statement without end would hang every member's apply: recursive CTEs are refused.
      const forever = await run(
        n2,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
      );
      equal(forever.status, 403, JSON.stringify(forever.body));
      match(String(forever.body.detail), /WITH RECURSIVE/);
      const huge = await run(n3, "SELECT length(zeroblob(?)) AS n", [100_000_000]);
      equal(huge.status, 400, JSON.stringify(huge.body));
      match(String(huge.body.detail), /too big/);
      const info = await ok200(n2, "PRAGMA table_info(items)");
      ok((info.rows as Json[]).some((r) => r.name === "name"));
      // The intruder's "orders" is its own (empty) database: the table does not exist there.
      const intruder = await post(n1, "/intruder/run", { sql: "SELECT * FROM items" });
      equal(intruder.status, 400, JSON.stringify(intruder.body));
      match(String(intruder.body.detail), /no such table: items/);
      const files = await post(n2, "/intruder/run", {
        sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_aether%'",
      });
      equal(files.status, 200);
      deepEqual(files.body.rows, []);
    });

    await t.step("transactions commit, roll back, see their own writes, conflict and retry", async () => {
      const committed = await post(n1, "/sql/tx", {
        statements: [
          { sql: "INSERT INTO items (name) VALUES (?)", params: ["tx-a"] },
          { sql: "INSERT INTO items (name) VALUES (?)", params: ["tx-b"] },
          { sql: "SELECT count(*) AS n FROM items WHERE name LIKE 'tx-%'" },
        ],
      });
      equal(committed.status, 200, JSON.stringify(committed.body));
      equal(((committed.body as unknown as Json[])[2].rows as Json[])[0].n, 2, "reads its own writes");
      inserted.push("tx-a", "tx-b");
      equal(await count(n2), inserted.length);
      const failed = await post(n2, "/sql/tx", {
        statements: [{ sql: "INSERT INTO items (name) VALUES (?)", params: ["tx-c"] }],
        fail: true,
      });
      equal(failed.status, 500, JSON.stringify(failed.body));
      equal(await count(n3), inserted.length, "rolled back");
      const bad = await post(n3, "/sql/tx", {
        statements: [
          { sql: "INSERT INTO items (name) VALUES (?)", params: ["tx-d"] },
          { sql: "INSERT INTO items (name) VALUES (?)", params: ["tx-d"] },
        ],
      });
      equal(bad.status, 400, JSON.stringify(bad.body));
      match(String(bad.body.detail), /UNIQUE constraint/);
      equal(await count(n1), inserted.length, "a failed statement rolls the transaction back");
      // A write between the transaction's read and its commit: conflict (409) without retries ...
      const conflict = await post(n1, "/sql/bump", { name: "c1", interfere: true, retries: 0 });
      equal(conflict.status, 409, JSON.stringify(conflict.body));
      match(String(conflict.body.detail), /conflicts: the table counters changed/);
      // ... and with the default retries, the second attempt commits on top of the interfering write.
      const retried = await post(n2, "/sql/bump", { name: "c2", interfere: true });
      equal(retried.status, 200, JSON.stringify(retried.body));
      equal(retried.body.attempts, 2);
      equal(retried.body.value, 1001);
      // Concurrent read-modify-write through every node: no lost update.
      const bumps = await Promise.all(
        Array.from(
          { length: 12 },
          (_, i) => post([n1, n2, n3][i % 3], "/sql/bump", { name: "c3", retries: 20 }),
        ),
      );
      for (const b of bumps) equal(b.status, 200, JSON.stringify(b.body));
      const c3 = await ok200(n3, "SELECT value FROM counters WHERE name = 'c3'");
      equal((c3.rows as Json[])[0].value, 12);
    });

    await t.step(
      "a member killed with -9 catches up from the log; /api/v1/databases shows its copy",
      async () => {
        await n3.kill();
        for (let i = 0; i < 20; i++) {
          await ok200([n1, n2][i % 2], "INSERT INTO items (name) VALUES (?)", [`while-down-${i}`]);
          inserted.push(`while-down-${i}`);
        }
        await n3.start();
        await cluster.waitFor("n3 applied every write", async () => {
          const views = await Promise.all(
            [n1, n3].map((n) => n.json<Json>("/api/v1/databases/org.example.sql/orders")),
          );
          return views[1].status === 200 && views[1].body.appliedRevision === views[0].body.appliedRevision;
        }, 30_000);
        const list = await n1.json<{ items: Json[] }>("/api/v1/databases");
        const orders = list.body.items.find((d) => d.database === "org.example.sql/orders");
        equal(orders?.backend, "embedded");
        await waitActive("orders ACTIVE again", "org.example.sql:orders", 3);
        await cluster.waitFor(
          "n3 answers",
          async () => (await run(n3, "SELECT 1 AS one")).status === 200,
          60_000,
        );
        equal(await count(n3), inserted.length);
      },
    );

    await t.step(
      "a member whose SQLite copy is gone, behind the pruned log, copies the database from a member",
      async () => {
        await ok200(n1, "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data TEXT NOT NULL)", [], {
          db: "blobs",
        });
        // 40 writes of 60 KB: over the 1 MiB the log keeps per database, so the leader prunes the oldest.
        const blob = "b".repeat(60_000);
        for (let i = 0; i < 40; i++) {
          await ok200([n1, n2][i % 2], "INSERT INTO blobs (data) VALUES (?)", [blob], { db: "blobs" });
        }
        const path = "/api/v1/databases/org.example.sql/blobs";
        await cluster.waitFor("the leader pruned the log, and n3 applied the prune", async () => {
          const { body } = await n3.json<{ log: { prunedThroughRevision: number; bytes: number } }>(path);
          return body.log.prunedThroughRevision > 0 && body.log.bytes <= 1024 * 1024;
        }, 15_000);
        // A member catching up through consensus replays pruned entries from the consensus log; one that lost
        // its SQLite files (a new disk), or installs a KV snapshot taken after the prune, cannot: its copy ends
        // below the pruned mark, and it copies the database from a member.
        await n3.kill();
        await Deno.remove(`${n3.options.dataDir}/sqldb`, { recursive: true });
        await n3.start();
        await cluster.waitFor("n3 copied the database and caught up", async () => {
          const [a, b] = await Promise.all([n1, n3].map((n) => n.json<Json>(path)));
          return b.status === 200 && b.body.stale === false &&
            b.body.appliedRevision === a.body.appliedRevision;
        }, 30_000);
        match(n3.log, /installed a copy from another member/);
        const rows = await ok200(n3, "SELECT count(*) AS n, sum(length(data)) AS bytes FROM blobs", [], {
          db: "blobs",
        });
        deepEqual(rows.rows, [{ n: 40, bytes: 40 * 60_000 }]);
      },
    );

    await t.step("operators: aether db list|show|set, bad settings refused", async () => {
      const cli = (...args: string[]) =>
        runCli(["--connect", `127.0.0.1:${n2.ready!.apiPort}`, "--token", n2.options.token!, ...args]);
      const list = await cli("db", "list");
      equal(list.code, 0, list.stderr);
      match(list.stdout, /org\.example\.sql\/orders +embedded +replicated SQLite +\d+/);
      const show = await cli("db", "show", "org.example.sql/orders");
      equal(show.code, 0, show.stderr);
      match(show.stdout, /backend {2}embedded/);
      const withPassword = await cli(
        "db",
        "set",
        "org.example.sql/other",
        "--postgres",
        "postgres://u:pw@127.0.0.1/x",
      );
      equal(withPassword.code === 0, false);
      match(withPassword.stderr, /must not carry a password/);
      const both = await cli(
        "db",
        "set",
        "org.example.sql/other",
        "--embedded",
        "--postgres",
        "postgres://u@h/x",
      );
      equal(both.code === 0, false);
      match(both.stderr, /exactly one of --embedded or --postgres/);
      const set = await cli(
        "db",
        "set",
        "org.example.sql/other",
        "--postgres",
        "postgres://app@127.0.0.1:5999/other",
        "--password-secret",
        "other-pw",
      );
      equal(set.code, 0, set.stderr);
      match(
        set.stdout,
        /org\.example\.sql\/other: postgres \(postgres:\/\/app@127\.0\.0\.1:5999\/other \(password: secret other-pw\)\)/,
      );
      const back = await cli("db", "set", "org.example.sql/other", "--embedded");
      equal(back.code, 0, back.stderr);
      const bad = await n1.json<Json>("/api/v1/databases/org.example.sql/other", {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ backend: "postgres", url: "mysql://x" }),
      });
      equal(bad.status, 400);
      match(String(bad.body.detail), /url must be a postgres:\/\/ URL/);
    });

    await t.step("everything survives kill -9 of the whole cluster", async () => {
      await Promise.all(cluster.nodes.map((n) => n.kill()));
      await Promise.all(cluster.nodes.map((n) => n.start()));
      await cluster.waitForLeader(30_000);
      await waitActive("orders ACTIVE after the restart", "org.example.sql:orders", 1);
      await cluster.waitFor(
        "a node answers",
        async () => (await run(n1, "SELECT 1 AS one")).status === 200,
        90_000,
      );
      const rows = (await ok200(n1, "SELECT name FROM items ORDER BY id")).rows as Json[];
      deepEqual(rows.map((r) => r.name), inserted);
      const after = await ok200(n2, "INSERT INTO items (name) VALUES (?)", ["after-restart"]);
      equal(after.rowsAffected, 1);
    });
  } finally {
    await cluster.close();
  }
});
