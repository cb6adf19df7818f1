/**
 * The embedded SQL database (`ctx.infra.db`, SQLite replicated through consensus) on a 3-member cluster on
 * loopback, against PostgreSQL on loopback (tests/_support/postgres.ts, Debian's server) in the same run:
 *
 * - `embedded insert|read`: POST /sql/run to the nodes in turn; the slice (tests/integration/fixtures/
 *   sql_slice.ts, one instance per node) runs ctx.infra.db("bench").query(...): an INSERT is one consensus
 *   entry applied on every member before it answers; a read is `linearizable` (a consensus barrier, then the
 *   local copy) or `local` (the local copy only);
 * - `postgres insert|read (slice)`: the same requests for a database the operator set to the PostgreSQL
 *   server (`PUT /api/v1/databases/...`): the same slice API over the node's connection pool;
 * - `postgres insert|read (direct)`: the same statements from this process through the connector
 *   (createPostgresBackend: the `pg` driver, no HTTP hop, no slice call) — what the server itself costs.
 *
 * Each row: --ops statements with --concurrency callers; p50/p99 in ms and statements per second; the last
 * lines print embedded ÷ postgres (slice) ratios.
 *
 * Flags: --ops 2000 --concurrency 1,16 --fsync always|never
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/sql_bench.ts
 */

import { parseArgs } from "node:util";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { startPostgres } from "../_support/postgres.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { newMasterKeyText } from "../../runtime/infra-host/mod.ts";
import { createPostgresBackend } from "../../runtime/infra-host/postgres_backend.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const { values: flags } = parseArgs({
  options: {
    ops: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "1,16" },
    fsync: { type: "string", default: "always" },
  },
});
const OPS = Number(flags.ops);
const CONCURRENCY = flags.concurrency!.split(",").map(Number);
const SLICE = new URL("../integration/fixtures/sql_slice.ts", import.meta.url).pathname;

interface Row {
  name: string;
  concurrency: number;
  p50: number;
  p99: number;
  perSec: number;
}

async function loop(concurrency: number, one: (i: number) => Promise<void>): Promise<Omit<Row, "name">> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < OPS) {
      const i = next++;
      const t0 = performance.now();
      await one(i);
      times.push(performance.now() - t0);
    }
  }));
  const elapsedMs = performance.now() - started;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { concurrency, p50: at(0.5), p99: at(0.99), perSec: (OPS * 1000) / elapsedMs };
}

async function sql(node: NodeProcess, body: Record<string, unknown>): Promise<Record<string, unknown>> {
  const response = await fetch(`${node.httpUrl}/sql/run`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json() as Record<string, unknown>;
  if (response.status !== 200) {
    throw new Error(`${JSON.stringify(body).slice(0, 120)}: ${JSON.stringify(answer)}`);
  }
  return answer;
}

const rows: Row[] = [];
const print = (row: Row) => {
  rows.push(row);
  console.log(
    `${row.name.padEnd(34)} c=${String(row.concurrency).padEnd(3)} p50 ${
      row.p50.toFixed(2).padStart(7)
    } ms  ` +
      `p99 ${row.p99.toFixed(2).padStart(7)} ms  ${row.perSec.toFixed(0).padStart(6)}/s`,
  );
};

await using pg = await startPostgres();
const cluster = await TestCluster.create(3, {
  fsync: flags.fsync as "always" | "never",
  argsFor: (_id, root) => ["--secrets-key-file", `${root}/secrets.key`],
});
try {
  await Deno.writeTextFile(`${cluster.root}/secrets.key`, newMasterKeyText(), { mode: 0o600 });
  await cluster.startAll();
  await cluster.waitForLeader();
  const nodes = cluster.nodes;
  const [n1] = nodes;
  const api = (method: string, path: string, body: unknown) =>
    n1.json(path, { method, headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  await api("PUT", "/api/v1/secrets/bench-pg", { value: pg.password });
  const bare = pg.url.replace(`:${encodeURIComponent(pg.password)}@`, "@");
  const set = await api("PUT", "/api/v1/databases/org.example.sql/pgbench", {
    backend: "postgres",
    url: bare,
    passwordSecret: "bench-pg",
  });
  if (set.status !== 200) throw new Error(`db set: ${JSON.stringify(set.body)}`);
  await pushArtifact(n1, await buildSlice(SLICE));
  const r = await postBlueprint(
    n1,
    `id = "org.example.sql:bench:1.0.0"\n[[slices]]\nartifact = "org.example.sql:orders:1.0.0"\ninstances = 3\n`,
  );
  if (r.status !== 201) throw new Error(JSON.stringify(r.body));
  await cluster.waitFor("3 instances ACTIVE", async () => {
    const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.sql:orders");
    return (s?.instances.filter((i) => i.state === "ACTIVE" && i.connected).length ?? 0) >= 3;
  }, 120_000);
  for (const node of nodes) {
    await cluster.waitFor(`${node.id} routes`, async () => {
      const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
      return body.routes.some((x) => x.path === "/sql/run");
    }, 30_000);
  }
  await sql(n1, { db: "bench", sql: "CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT NOT NULL)" });
  await sql(n1, { db: "pgbench", sql: "CREATE TABLE kv (id integer PRIMARY KEY, v text NOT NULL)" });
  const direct = createPostgresBackend({ url: pg.url, poolSize: 16 });
  await direct.query("CREATE TABLE direct_kv (id integer PRIMARY KEY, v text NOT NULL)", [], {
    deadlineMs: Date.now() + 10_000,
  });
  const value = "v".repeat(64);
  let base = 0;
  for (const c of CONCURRENCY) {
    const start = base;
    base += OPS;
    const node = (i: number) => nodes[i % nodes.length];
    const id = (i: number) => start + i;
    print({
      name: "embedded insert",
      ...await loop(
        c,
        (i) =>
          sql(node(i), { db: "bench", sql: "INSERT INTO kv (id, v) VALUES (?, ?)", params: [id(i), value] })
            .then(() => {}),
      ),
    });
    print({
      name: "postgres insert (slice)",
      ...await loop(
        c,
        (i) =>
          sql(node(i), {
            db: "pgbench",
            sql: "INSERT INTO kv (id, v) VALUES ($1, $2)",
            params: [id(i), value],
          }).then(() => {}),
      ),
    });
    print({
      name: "postgres insert (direct)",
      ...await loop(
        c,
        (i) =>
          direct.query("INSERT INTO direct_kv (id, v) VALUES ($1, $2)", [id(i), value], {
            deadlineMs: Date.now() + 10_000,
          }).then(() => {}),
      ),
    });
    print({
      name: "embedded read (linearizable)",
      ...await loop(
        c,
        (i) =>
          sql(node(i), { db: "bench", sql: "SELECT v FROM kv WHERE id = ?", params: [id(i)] }).then(() => {}),
      ),
    });
    print({
      name: "embedded read (local)",
      ...await loop(
        c,
        (i) =>
          sql(node(i), {
            db: "bench",
            sql: "SELECT v FROM kv WHERE id = ?",
            params: [id(i)],
            consistency: "local",
          }).then(() => {}),
      ),
    });
    print({
      name: "postgres read (slice)",
      ...await loop(
        c,
        (i) =>
          sql(node(i), { db: "pgbench", sql: "SELECT v FROM kv WHERE id = $1", params: [id(i)] }).then(
            () => {},
          ),
      ),
    });
    print({
      name: "postgres read (direct)",
      ...await loop(
        c,
        (i) =>
          direct.query("SELECT v FROM direct_kv WHERE id = $1", [id(i)], { deadlineMs: Date.now() + 10_000 })
            .then(() => {}),
      ),
    });
  }
  await direct.close();
  console.log("\nratios, embedded ÷ postgres through the same slice API:");
  for (const c of CONCURRENCY) {
    const find = (name: string) => rows.find((r) => r.name === name && r.concurrency === c)!;
    const ins = find("embedded insert").perSec / find("postgres insert (slice)").perSec;
    const readP50 = find("embedded read (linearizable)").p50 / find("postgres read (slice)").p50;
    const localP50 = find("embedded read (local)").p50 / find("postgres read (slice)").p50;
    console.log(
      `c=${c}: inserts/s ×${ins.toFixed(2)}, read p50 linearizable ×${readP50.toFixed(2)}, read p50 local ×${
        localP50.toFixed(2)
      }`,
    );
  }
} finally {
  await cluster.close();
}
