/**
 * Runs the PostgreSQL connector once in a process started with the node's own permissions (see
 * tests/integration/postgres_test.ts): reads the URL from stdin (never from the command line, where `ps` would
 * show its password), runs a query and a transaction, and prints one JSON line with what came back.
 */

import { startPostgresBackend } from "../postgres_backend.ts";

const url = (await new Response(Deno.stdin.readable).text()).trim();
const db = await startPostgresBackend({ url, poolSize: 2 });
const deadline = () => ({ deadlineMs: Date.now() + 10_000 });
try {
  await db.query("CREATE TABLE IF NOT EXISTS probe (id int PRIMARY KEY, note text)", [], deadline());
  const tx = await db.begin(deadline());
  await db.queryIn(tx, "INSERT INTO probe VALUES ($1, $2)", [1, "from a node's permissions"]);
  await db.commit(tx);
  const { rows } = await db.query("SELECT id, note FROM probe WHERE id = $1", [1], deadline());
  console.log(JSON.stringify({ ok: true, rows }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e) }));
} finally {
  await db.close();
}
