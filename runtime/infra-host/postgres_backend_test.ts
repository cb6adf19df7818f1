/**
 * The PostgreSQL connector's pure parts: URL checks (errors that never repeat a password), and how server and
 * network errors map to the SqlBackend's codes. The connector against a real server:
 * postgres_backend_process_test.ts.
 */

import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { createPostgresBackend, describeTarget, parsePostgresUrl, redactUrl } from "./postgres_backend.ts";
import { connectError, statementError } from "./postgres_backend_errors.ts";

const TARGET = parsePostgresUrl("postgres://app:s3cret@db.internal:6543/orders");

Deno.test("a postgres URL is parsed, and described without its password", () => {
  assert.deepEqual(TARGET, {
    host: "db.internal",
    port: 6543,
    user: "app",
    password: "s3cret",
    database: "orders",
    sslMode: "disable",
  });
  assert.equal(describeTarget(TARGET), "postgres://app@db.internal:6543/orders");
  assert.equal(parsePostgresUrl("postgresql://a%40b:p%2Fw@h/d%20b?sslmode=require").user, "a@b");
  assert.equal(parsePostgresUrl("postgresql://a%40b:p%2Fw@h/d%20b?sslmode=require").password, "p/w");
  assert.equal(parsePostgresUrl("postgresql://a%40b:p%2Fw@h/d%20b?sslmode=require").database, "d b");
  assert.equal(parsePostgresUrl("postgres://u@h/d").port, 5432);
  assert.equal(parsePostgresUrl("postgres://u@[::1]:5433/d").host, "::1");
  assert.equal(redactUrl("postgres://u:secret@h/d"), "postgres://u:***@h/d");
});

Deno.test("a bad postgres URL is a bad_request naming the part, never showing the password", () => {
  const cases: [string, RegExp][] = [
    ["mysql://u:topsecret@h/d", /scheme must be postgres/],
    ["postgres://u:topsecret@/d", /names no host|not a URL/],
    ["postgres://:topsecret@h/d", /names no user/],
    ["postgres://u:topsecret@h:0/d", /port 0/],
    ["postgres://u:topsecret@h", /one database name/],
    ["postgres://u:topsecret@h/a/b", /one database name/],
    ["postgres://u:topsecret@h/d?sslmode=maybe", /sslmode=maybe is not one of/],
    ["postgres://u:topsecret@h/d?application_name=x", /unknown parameter application_name/],
    ["topsecret", /not a URL/],
    ["", /non-empty/],
  ];
  for (const [url, pattern] of cases) {
    assert.throws(() => parsePostgresUrl(url), (e: unknown) => {
      assert.ok(e instanceof AetherError && e.code === "bad_request", `${url}: ${e}`);
      assert.match(e.message, pattern, url);
      assert.ok(!e.message.includes("topsecret"), `the password shows: ${e.message}`);
      return true;
    });
  }
  assert.throws(
    () => createPostgresBackend({ url: "postgres://u@h/d", poolSize: 0 }),
    /poolSize must be a positive/,
  );
});

Deno.test("connect errors are unavailable and say where, as whom, and what to check", () => {
  const refused = connectError(
    TARGET,
    Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
  );
  assert.equal(refused.code, "unavailable");
  assert.match(refused.message, /db\.internal:6543 as user "app" \(database "orders"\): connection refused/);
  const auth = connectError(TARGET, {
    code: "28P01",
    message: 'password authentication failed for user "app"',
  });
  assert.match(auth.message, /password authentication failed.*check the URL's user and the password/);
  assert.ok(!auth.message.includes("s3cret"));
  const dns = connectError(TARGET, { code: "ENOTFOUND", message: "getaddrinfo ENOTFOUND db.internal" });
  assert.match(dns.message, /unknown host name db\.internal/);
});

Deno.test("statement errors map to the contract's codes", () => {
  const sql = "SELECT *\nFROM orders WHER id = $1";
  const syntax = statementError(TARGET, sql, {
    code: "42601",
    message: 'syntax error at or near "id"',
    position: "27",
    hint: "check it",
  });
  assert.equal(syntax.code, "bad_request");
  assert.match(syntax.message, /syntax error at or near "id" at line 2, column 18 .*hint: check it/);
  assert.equal(syntax.extra.line, 2);
  assert.equal(
    statementError(TARGET, sql, { code: "40001", message: "could not serialize" }).code,
    "conflict",
  );
  assert.equal(statementError(TARGET, sql, { code: "40P01", message: "deadlock detected" }).code, "conflict");
  const timeout = statementError(TARGET, sql, {
    code: "57014",
    message: "canceling statement due to user request",
  }, "x");
  assert.equal(timeout.code, "timeout");
  assert.equal(statementError(TARGET, sql, { code: "55P03", message: "lock timeout" }).code, "timeout");
  const lost = statementError(TARGET, sql, new Error("Connection terminated unexpectedly"));
  assert.equal(lost.code, "unavailable");
  assert.match(lost.message, /postgres:\/\/app@db\.internal:6543\/orders/);
  const bind = statementError(TARGET, sql, {
    code: "08P01",
    message: 'bind message supplies 2 parameters, but prepared statement "" requires 1',
  });
  assert.equal(bind.code, "bad_request");
  assert.equal(statementError(TARGET, sql, { code: "23505", message: "duplicate key" }).code, "bad_request");
});
