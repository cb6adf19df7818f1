/**
 * Figures of the PostgreSQL connector alone (no node, no slice call) against a real PostgreSQL on loopback
 * (tests/_support/postgres.ts): point-read latency, single-row insert throughput at a given concurrency, a
 * transaction of 3 statements, and what a caller beyond the pool waits for.
 *
 *   deno run -A tests/bench/postgres_backend_bench.ts [--seconds 5] [--concurrency 16] [--pool 10]
 *
 * Prints one JSON object; the operator docs quote it with the machine it ran on.
 */

import { parseArgs } from "node:util";
import { startPostgres } from "../_support/postgres.ts";
import { startPostgresBackend } from "../../runtime/infra-host/postgres_backend.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "5" },
    concurrency: { type: "string", default: "16" },
    pool: { type: "string", default: "10" },
  },
});
const seconds = Number(values.seconds);
const concurrency = Number(values.concurrency);
const poolSize = Number(values.pool);

function quantiles(samples: number[]): { p50: number; p99: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    Number(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(3));
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}

/** Runs `op` from `concurrency` loops for `seconds`; returns operations per second and latency quantiles. */
async function measure(op: (i: number) => Promise<unknown>) {
  const latencies: number[] = [];
  const until = performance.now() + seconds * 1000;
  let next = 0;
  const loop = async () => {
    while (performance.now() < until) {
      const started = performance.now();
      await op(next++);
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsedS = (performance.now() - started) / 1000;
  return { opsPerSecond: Math.round(latencies.length / elapsedS), latencyMs: quantiles(latencies) };
}

await using pg = await startPostgres();
const db = await startPostgresBackend({ url: pg.url, poolSize });
const deadline = () => ({ deadlineMs: Date.now() + 30_000 });
try {
  await db.query(
    "CREATE TABLE bench (id bigserial PRIMARY KEY, k int NOT NULL, v text NOT NULL)",
    [],
    deadline(),
  );
  await db.query(
    "INSERT INTO bench (k, v) SELECT g, 'value-' || g FROM generate_series(1, 10000) g",
    [],
    deadline(),
  );
  await db.query("CREATE INDEX bench_k ON bench (k)", [], deadline());
  const insert = await measure((i) =>
    db.query("INSERT INTO bench (k, v) VALUES ($1, $2)", [i, `inserted-${i}`], deadline())
  );
  const read = await measure((i) =>
    db.query("SELECT v FROM bench WHERE k = $1", [1 + i % 10_000], deadline())
  );
  const transaction = await measure(async (i) => {
    const tx = await db.begin(deadline());
    await db.queryIn(tx, "SELECT v FROM bench WHERE k = $1", [1 + i % 10_000]);
    await db.queryIn(tx, "UPDATE bench SET v = $2 WHERE k = $1", [1 + i % 10_000, `tx-${i}`]);
    await db.commit(tx);
  });
  // A caller beyond the pool: every connection held by a transaction, the caller's deadline 200 ms away.
  const held = await Promise.all(Array.from({ length: poolSize }, () => db.begin(deadline())));
  const waitStarted = performance.now();
  const overloaded = await db.query("SELECT 1", [], { deadlineMs: Date.now() + 200 }).then(
    () => "answered",
    (e) => `${e.code} after ${Math.round(performance.now() - waitStarted)} ms`,
  );
  for (const tx of held) await db.rollback(tx);
  console.log(JSON.stringify(
    {
      server: (await db.query("SHOW server_version", [], deadline())).rows[0].server_version,
      seconds,
      concurrency,
      poolSize,
      insert,
      pointRead: read,
      transaction3Statements: transaction,
      callerBeyondPool200ms: overloaded,
      stats: db.stats(),
    },
    null,
    2,
  ));
} finally {
  await db.close();
}
