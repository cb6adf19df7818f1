import { equal, throws } from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { checkStatement, installDeterministicFunctions } from "./sqldb_guard.ts";

Deno.test("checkStatement: one statement, sizes, parameter types", () => {
  equal(checkStatement("db.query", "SELECT 1; ", []).sql, "SELECT 1; ");
  equal(checkStatement("db.query", "SELECT ';' AS x -- ; DROP\n", []).params.length, 0);
  equal(checkStatement("db.query", "SELECT 'it''s; fine'", []).sql.length > 0, true);
  throws(() => checkStatement("db.query", "SELECT 1; DROP TABLE t", []), /one statement per call/);
  throws(() => checkStatement("db.query", "SELECT 1;/* c */ SELECT 2", []), /one statement per call/);
  throws(() => checkStatement("db.query", "", []), /sql must be a non-empty string/);
  throws(() => checkStatement("db.query", "SELECT ?", "x"), /params must be an array/);
  throws(() => checkStatement("db.query", "SELECT ?", [undefined]), /params\[0\] must be/);
  throws(() => checkStatement("db.query", "SELECT ?", [Infinity]), /params\[0\] must be/);
  equal(checkStatement("db.query", "SELECT ?", [true]).params[0], 1);
  throws(() => checkStatement("db.query", "x".repeat(70_000), []), /the limit is 65536/);
});

Deno.test("checkStatement: non-deterministic keywords refused, also inside identifiers' neighbours only", () => {
  throws(
    () => checkStatement("db.query", "INSERT INTO t VALUES (CURRENT_TIMESTAMP)", []),
    /not deterministic/,
  );
  throws(() => checkStatement("db.query", "select current_date", []), /not deterministic/);
  // In a string or a quoted identifier it is only text.
  equal(checkStatement("db.query", "SELECT 'CURRENT_TIME' AS \"current_date\"", []).params.length, 0);
});

Deno.test("deterministic functions: random refused, 'now' refused, fixed times computed", () => {
  const db = new DatabaseSync(":memory:");
  const plain = new DatabaseSync(":memory:");
  installDeterministicFunctions(db, plain);
  throws(() => db.prepare("SELECT random()").get(), /random\(\) is not deterministic/);
  throws(() => db.prepare("SELECT datetime(?)").get("now"), /depends on the member's clock/);
  throws(() => db.prepare("SELECT date('2020-01-01', 'localtime')").get(), /time zone/);
  const row = db.prepare("SELECT datetime(0, 'unixepoch') AS t").get() as { t: string };
  equal(row.t, "1970-01-01 00:00:00");
  const fmt = db.prepare("SELECT strftime('%Y', '2021-05-01') AS y").get() as { y: string };
  equal(fmt.y, "2021");
});
