/**
 * The PostgreSQL connector against a real PostgreSQL 15 server (tests/_support/postgres.ts: Debian's binaries,
 * a temporary data directory, a loopback port, password authentication): the shared SQL contract, then what
 * only the connector has: the pool limit, statement timeouts and caller deadlines, clear errors for a bad URL,
 * an unreachable server and a wrong password (never showing a password), deadlocks as `conflict`, result
 * limits, and a server killed under a busy pool and restarted.
 *
 *   deno test -A runtime/infra-host/postgres_backend_process_test.ts
 */

import assert from "node:assert/strict";
import type { LogFields, Logger, LogLevel } from "../core/mod.ts";
import { postgresPresent, type PostgresServer, startPostgres } from "../../tests/_support/postgres.ts";
import {
  type PostgresBackend,
  type PostgresBackendOptions,
  startPostgresBackend,
} from "./postgres_backend.ts";
import { assertRejects, sqlBackendContract } from "./sql_contract.ts";

const opensslPresent = await new Deno.Command("openssl", {
  args: ["version"],
  stdout: "null",
  stderr: "null",
})
  .output().then((o) => o.success, () => false);
const dollar = (n: number) => `$${n}`;
/** A loopback port nothing listens on: bound to learn a free one, then released. */
const closedPort = () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
};
const soon = (ms = 10_000) => ({ deadlineMs: Date.now() + ms });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A logger that keeps every line, to check that no password is ever written. */
function capturingLogger(lines: string[]): Logger {
  const write = (level: LogLevel) => (message: string, fields?: LogFields) => {
    lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
  };
  const logger: Logger = {
    debug: write("debug"),
    info: write("info"),
    warn: write("warn"),
    error: write("error"),
    with: () => logger,
    enabled: () => true,
  } as unknown as Logger;
  return logger;
}

Deno.test({
  name: "the PostgreSQL connector against a real PostgreSQL server",
  ignore: !postgresPresent,
  async fn(t) {
    const pg = await startPostgres();
    const backends: PostgresBackend[] = [];
    const logLines: string[] = [];
    const open = async (options: Partial<PostgresBackendOptions> = {}) => {
      const backend = await startPostgresBackend({
        url: pg.url,
        logger: capturingLogger(logLines),
        ...options,
      });
      backends.push(backend);
      return backend;
    };
    try {
      const db = await open({ poolSize: 4 });
      await t.step("the shared SQL contract", async (t) => {
        await sqlBackendContract(t, db, { placeholder: dollar });
      });
      await t.step("values come back as JSON scalars", () => checkTypes(db));
      await t.step(
        "the pool is bounded: one caller too many waits, then is overloaded",
        () => checkPool(open),
      );
      await t.step("statement timeouts and caller deadlines end a statement", () => checkTimeouts(open));
      await t.step(
        "a transaction's deadline cancels its statement and rolls it back",
        () => checkTxDeadline(db),
      );
      await t.step(
        "a deadlock is a conflict; a failed statement makes COMMIT a clear error",
        () => checkConflict(db),
      );
      await t.step("results are bounded in rows", () => checkResultLimit(open));
      await t.step(
        "no statement leaves a pooled connection inside a transaction",
        () => checkSessionLeaks(pg, open),
      );
      await t.step(
        "idle connections the server ended are replaced without the caller noticing",
        () => checkTerminatedIdle(pg, open),
      );
      await t.step(
        "bad URL, unreachable server, wrong password: clear errors",
        () => checkBadTargets(pg, open),
      );
      await t.step({
        name: "sslmode=require encrypts; verify-full refuses a certificate it cannot verify",
        ignore: !opensslPresent,
        fn: () => checkTls(pg, open),
      });
      await t.step(
        "server killed under a busy pool: unavailable, then it recovers",
        () => checkCrash(pg, open),
      );
      await t.step("no password was ever logged", () => {
        assert.ok(logLines.length > 0, "the failures above were logged");
        for (const line of logLines) {
          assert.ok(!line.includes(pg.password), `a log line shows the password: ${line}`);
        }
      });
    } finally {
      await Promise.all(backends.map((b) => b.close()));
      await pg.stop();
    }
  },
});

async function checkTypes(db: PostgresBackend): Promise<void> {
  const { rows } = await db.query(
    `SELECT $1::int AS i, $2::text AS s, $3::boolean AS b, $4::float8 AS f, NULL AS n,
            9007199254740993::int8 AS big, 42::int8 AS small, 12.50::numeric AS price,
            123456789012345678.5::numeric AS huge, '\\x0001ff'::bytea AS blob, '{"a":[1,2]}'::jsonb AS doc,
            '2026-12-07 10:00:00+00'::timestamptz AS at, 'a1b2c3d4-0000-4000-8000-000000000000'::uuid AS id`,
    [7, "text", true, 2.5],
    soon(),
  );
  assert.deepEqual(rows[0], {
    i: 7,
    s: "text",
    b: true,
    f: 2.5,
    n: null,
    big: "9007199254740993",
    small: 42,
    price: 12.5,
    huge: "123456789012345678.5",
    blob: "AAH/",
    doc: '{"a": [1, 2]}',
    at: "2026-12-07 10:00:00+00",
    id: "a1b2c3d4-0000-4000-8000-000000000000",
  });
  await assertRejects(
    () => db.query("SELECT $1::text AS x", [{ a: 1 } as never], soon()),
    "bad_request",
    /params\[0\]/,
  );
  await assertRejects(() => db.query("SELECT $1::float8 AS x", [NaN], soon()), "bad_request", /params\[0\]/);
}

type Open = (options?: Partial<PostgresBackendOptions>) => Promise<PostgresBackend>;

async function checkPool(open: Open): Promise<void> {
  const db = await open({ poolSize: 2 });
  const first = await db.begin(soon());
  const second = await db.begin(soon());
  assert.equal(db.stats().open, 2);
  // A third caller finds both connections held by transactions: it waits until its deadline.
  const started = Date.now();
  const error = await assertRejects(
    () => db.query("SELECT 1 AS one", [], soon(300)),
    "overloaded",
    /all 2 pooled connections stayed busy/,
  );
  const waited = Date.now() - started;
  assert.ok(waited >= 250 && waited < 5_000, `waited ${waited} ms for a 300-ms deadline: ${error.message}`);
  assert.equal(db.stats().waitTimeoutsTotal, 1);
  // A caller with a longer deadline gets the connection the first transaction releases.
  const waiting = db.query("SELECT 2 AS two", [], soon(5_000));
  await sleep(100);
  assert.equal(db.stats().waiting, 1);
  await db.commit(first);
  assert.deepEqual((await waiting).rows, [{ two: 2 }]);
  await db.rollback(second);
  assert.equal(db.stats().open, 2, "no connection beyond the pool size was opened");
  assert.equal(db.stats().transactions, 0);
  // Many concurrent callers share the two connections.
  const results = await Promise.all(
    Array.from({ length: 40 }, (_, i) => db.query("SELECT $1::int AS i", [i], soon(10_000))),
  );
  assert.deepEqual(results.map((r) => r.rows[0].i), Array.from({ length: 40 }, (_, i) => i));
  assert.ok(db.stats().open <= 2);
}

async function checkTimeouts(open: Open): Promise<void> {
  const db = await open({ poolSize: 1, statementTimeoutMs: 200 });
  let started = Date.now();
  await assertRejects(() => db.query("SELECT pg_sleep(10)", [], soon()), "timeout", /statement timeout/);
  let took = Date.now() - started;
  assert.ok(took < 5_000, `the 200-ms statement timeout took ${took} ms`);
  assert.deepEqual(
    (await db.query("SELECT 1 AS one", [], soon())).rows,
    [{ one: 1 }],
    "the connection is reusable",
  );

  // A caller's deadline sooner than the statement timeout cancels the statement at the deadline.
  const patient = await open({ poolSize: 1, statementTimeoutMs: 30_000 });
  started = Date.now();
  await assertRejects(() => patient.query("SELECT pg_sleep(10)", [], soon(300)), "timeout", /deadline/);
  took = Date.now() - started;
  assert.ok(took >= 250 && took < 5_000, `a 300-ms deadline took ${took} ms`);
  // A statement cannot lift its session's limit past the caller's deadline.
  await patient.query("SET statement_timeout = 0", [], soon());
  started = Date.now();
  await assertRejects(() => patient.query("SELECT pg_sleep(10)", [], soon(300)), "timeout");
  took = Date.now() - started;
  assert.ok(took < 5_000, `with statement_timeout = 0, a 300-ms deadline took ${took} ms`);
  assert.deepEqual((await patient.query("SELECT 1 AS one", [], soon())).rows, [{ one: 1 }]);
  assert.equal(patient.stats().open, 1, "cancelling kept the connection");
}

async function checkTxDeadline(db: PostgresBackend): Promise<void> {
  await db.query("CREATE TABLE tx_deadline (id int PRIMARY KEY)", [], soon());
  const tx = await db.begin(soon(500));
  await db.queryIn(tx, "INSERT INTO tx_deadline VALUES ($1)", [1]);
  const started = Date.now();
  await assertRejects(() => db.queryIn(tx, "SELECT pg_sleep(10)", []), "timeout", /deadline/);
  const took = Date.now() - started;
  assert.ok(took < 5_000, `the statement ran ${took} ms past a 500-ms transaction`);
  await sleep(100);
  await assertRejects(() => db.queryIn(tx, "SELECT 1 AS one", []), "timeout", /passed its deadline/);
  assert.deepEqual((await db.query("SELECT count(*) AS n FROM tx_deadline", [], soon())).rows, [{ n: 0 }]);
  assert.equal(db.stats().transactions, 0);
}

async function checkConflict(db: PostgresBackend): Promise<void> {
  await db.query("CREATE TABLE accounts (id int PRIMARY KEY, balance int)", [], soon());
  await db.query("INSERT INTO accounts VALUES (1, 100), (2, 100)", [], soon());
  const a = await db.begin(soon());
  const b = await db.begin(soon());
  await db.queryIn(a, "UPDATE accounts SET balance = balance - 1 WHERE id = 1", []);
  await db.queryIn(b, "UPDATE accounts SET balance = balance - 1 WHERE id = 2", []);
  // Each now waits for the other's row: the server detects the deadlock (after deadlock_timeout, 1 s).
  const outcomes = await Promise.allSettled([
    db.queryIn(a, "UPDATE accounts SET balance = balance + 1 WHERE id = 2", []),
    db.queryIn(b, "UPDATE accounts SET balance = balance + 1 WHERE id = 1", []),
  ]);
  const failed = outcomes.filter((o) => o.status === "rejected") as PromiseRejectedResult[];
  assert.equal(failed.length, 1, "exactly one of the two is chosen as the deadlock victim");
  assert.equal(failed[0].reason.code, "conflict", failed[0].reason.message);
  assert.match(failed[0].reason.message, /deadlock/);
  const [victim, winner] = outcomes[0].status === "rejected" ? [a, b] : [b, a];
  await db.commit(winner);
  await assertRejects(() => db.commit(victim), "bad_request", /rolled back, not committed/);
  assert.equal(db.stats().transactions, 0);
}

async function checkResultLimit(open: Open): Promise<void> {
  const db = await open({ poolSize: 1, limits: { maxRows: 100 } });
  assert.equal((await db.query("SELECT generate_series(1, 100) AS n", [], soon())).rows.length, 100);
  await assertRejects(
    () => db.query("SELECT generate_series(1, 10000000) AS n", [], soon()),
    "too_large",
    /more than 100 rows/,
  );
  assert.deepEqual(
    (await db.query("SELECT 1 AS one", [], soon())).rows,
    [{ one: 1 }],
    "the connection survived",
  );
}

async function checkBadTargets(pg: PostgresServer, open: Open): Promise<void> {
  for (
    const [url, pattern] of [
      ["mysql://u:secret-pw@h/db", /scheme must be postgres/],
      ["postgres://u:secret-pw@h:99999/db", /port/],
      ["postgres://u:secret-pw@h:5432/", /database name/],
      ["postgres://u:secret-pw@h/db?sslmode=sometimes", /sslmode=sometimes/],
      ["not a url secret-pw", /not a URL/],
    ] as const
  ) {
    const error = await assertRejects(
      () => open({ url }),
      "bad_request",
      pattern,
      url.replace("secret-pw", "***"),
    );
    assert.ok(!error.message.includes("secret-pw"), `the password shows in: ${error.message}`);
  }

  const unusedPort = closedPort();
  const nowhere = await open({ url: `postgres://aether:secret-pw@127.0.0.1:${unusedPort}/orders` });
  let error = await assertRejects(
    () => nowhere.query("SELECT 1", [], soon()),
    "unavailable",
    new RegExp(`127\\.0\\.0\\.1:${unusedPort} as user "aether".*connection refused`),
  );
  assert.ok(!error.message.includes("secret-pw"), error.message);

  const wrongPassword = await open({ url: pg.urlFor({ password: "wrong-pw" }) });
  error = await assertRejects(
    () => wrongPassword.query("SELECT 1", [], soon()),
    "unavailable",
    /as user "aether".*password authentication failed/,
  );
  assert.ok(!error.message.includes("wrong-pw") && !error.message.includes(pg.password), error.message);
  // The password kept apart from the URL (as it comes from the secrets service).
  const apart = await open({
    url: `postgres://${pg.user}@${pg.host}:${pg.port}/${pg.database}`,
    password: pg.password,
  });
  assert.deepEqual((await apart.query("SELECT 1 AS one", [], soon())).rows, [{ one: 1 }]);
  const noDatabase = await open({ url: pg.urlFor({ database: "nonesuch" }) });
  await assertRejects(
    () => noDatabase.query("SELECT 1", [], soon()),
    "unavailable",
    /"nonesuch" does not exist/,
  );
  assert.equal(wrongPassword.stats().open, 0, "failed connections are not counted as open");
}

async function checkCrash(pg: PostgresServer, open: Open): Promise<void> {
  const db = await open({ poolSize: 3, connectTimeoutMs: 1_000 });
  await db.query("CREATE TABLE survivors (id int PRIMARY KEY)", [], soon());
  await db.query("INSERT INTO survivors VALUES (1)", [], soon());
  // Three connections busy at once, and a transaction open on one of them.
  await Promise.all([1, 2, 3].map(() => db.query("SELECT pg_sleep(0.1)", [], soon())));
  assert.equal(db.stats().open, 3);
  const tx = await db.begin(soon(20_000));
  await db.queryIn(tx, "INSERT INTO survivors VALUES (2)", []);
  const running = db.query("SELECT pg_sleep(5)", [], soon());
  running.catch(() => {}); // checked below, after the crash

  await pg.crash();
  await assertRejects(
    () => running,
    "unavailable",
    /connection/,
    "the statement running when the server died",
  );
  await assertRejects(
    () => db.queryIn(tx, "SELECT 1", []),
    ["unavailable", "not_found"],
    undefined,
    "the open tx",
  );
  await assertRejects(
    () => db.query("SELECT 1", [], soon()),
    "unavailable",
    /127\.0\.0\.1/,
    "a call while down",
  );
  assert.equal(db.stats().transactions, 0, "the lost transaction released its connection");

  await pg.start();
  const deadline = Date.now() + 10_000;
  let rows: unknown;
  while (Date.now() < deadline) {
    try {
      rows = (await db.query("SELECT id FROM survivors ORDER BY id", [], soon())).rows;
      break;
    } catch (e) {
      if ((e as { code?: string }).code !== "unavailable") throw e;
      await sleep(100);
    }
  }
  assert.deepEqual(rows, [{ id: 1 }], "after the restart: the committed row, not the uncommitted one");
  assert.ok(db.stats().open <= 3, `open ${db.stats().open}`);
}

async function checkSessionLeaks(pg: PostgresServer, open: Open): Promise<void> {
  const db = await open({ poolSize: 1 });
  await db.query("CREATE TABLE leaks (id int PRIMARY KEY)", [], soon());
  // A plain BEGIN would hand the next caller (maybe another slice of the group) an open transaction.
  await assertRejects(() => db.query("BEGIN", [], soon()), "bad_request", /left one open.*rolled back/);
  await db.query("INSERT INTO leaks VALUES (1)", [], soon());
  assert.match(
    await pg.psql("SELECT count(*) FROM leaks"),
    /\b1\b/,
    "the next caller's insert was committed",
  );
  // A COMMIT inside a transaction ends it on the server; the connector says so and frees the connection.
  const tx = await db.begin(soon());
  await db.queryIn(tx, "INSERT INTO leaks VALUES (2)", []);
  await assertRejects(() => db.queryIn(tx, "COMMIT", []), "bad_request", /ended transaction/);
  await assertRejects(() => db.queryIn(tx, "SELECT 1", []), "not_found", /COMMIT or ROLLBACK/);
  assert.equal(db.stats().transactions, 0);
  assert.deepEqual((await db.query("SELECT count(*) AS n FROM leaks", [], soon())).rows, [{ n: 2 }]);
}

/** Turns TLS on in the running server (a self-signed certificate for 127.0.0.1) and connects through it. */
async function checkTls(pg: PostgresServer, open: Open): Promise<void> {
  const owner = await Deno.stat(pg.dataDir);
  const generated = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      `${pg.dataDir}/server.key`,
      "-out",
      `${pg.dataDir}/server.crt`,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(generated.success, new TextDecoder().decode(generated.stderr));
  for (const file of ["server.key", "server.crt"]) {
    await Deno.chown(`${pg.dataDir}/${file}`, owner.uid, owner.gid);
    await Deno.chmod(`${pg.dataDir}/${file}`, 0o600);
  }
  await pg.psql("ALTER SYSTEM SET ssl = on");
  await pg.psql("SELECT pg_reload_conf()");
  await sleep(300);
  const encrypted = await open({ url: `${pg.url}?sslmode=require`, poolSize: 1 });
  const { rows } = await encrypted.query(
    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    [],
    soon(),
  );
  assert.deepEqual(rows, [{ ssl: true }], "the connection is encrypted");
  const verified = await open({ url: `${pg.url}?sslmode=verify-full`, poolSize: 1 });
  await assertRejects(() => verified.query("SELECT 1", [], soon()), "unavailable", /certificate/i);
}

async function checkTerminatedIdle(pg: PostgresServer, open: Open): Promise<void> {
  const db = await open({ poolSize: 3 });
  await Promise.all([1, 2, 3].map(() => db.query("SELECT pg_sleep(0.05)", [], soon())));
  assert.equal(db.stats().idle, 3);
  // An administrator (or a server restart) ends every session; the very next calls must not see it.
  await pg.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'aether'");
  assert.deepEqual((await db.query("SELECT 1 AS one", [], soon())).rows, [{ one: 1 }]);
  const tx = await db.begin(soon());
  await db.rollback(tx);
  assert.ok(db.stats().open <= 3, `open ${db.stats().open}`);
}
