/**
 * The shared contract suite of SqlBackend (sql_backend.ts): the same checks, registered as test steps, run
 * against every implementation (the embedded replicated database and the PostgreSQL connector), so a slice
 * that moves from one to the other sees the same behaviour.
 *
 *   Deno.test("the embedded database keeps the SQL contract", async (t) => {
 *     await sqlBackendContract(t, backend, { placeholder: () => "?" });
 *   });
 *   await sqlBackendContract(t, postgres, { placeholder: (n) => `$${n}` });
 *
 * Only SQL both dialects accept is used (INTEGER/TEXT/REAL columns, INSERT/UPDATE/DELETE/SELECT, COUNT),
 * every table name is new per run, and every value is bound through the backend's own placeholder.
 */

import assert from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import type { SqlBackend, SqlValue } from "./sql_backend.ts";

export interface SqlContractOptions {
  /** The n-th (1-based) parameter's placeholder: `?` for the embedded database, `$n` for PostgreSQL. */
  placeholder: (n: number) => string;
  /** The time one call may take (its deadline); default 10 s. */
  callTimeoutMs?: number;
  /** The short deadline of the transaction that must be rolled back when it passes; default 400 ms. */
  shortTransactionMs?: number;
}

/** Registers the contract's checks as steps of `t`, in order; each one stands alone (its own table). */
export async function sqlBackendContract(
  t: Deno.TestContext,
  backend: SqlBackend,
  options: SqlContractOptions,
): Promise<void> {
  const run = new ContractRun(backend, options);
  await t.step("create, insert, select: rows round-trip with their types", () => run.roundTrip());
  await t.step(
    "rowsAffected counts inserted, updated and deleted rows; 0 for a query",
    () => run.rowsAffected(),
  );
  await t.step("parameters are bound: an injection attempt is stored as data", () => run.boundParams());
  await t.step("a committed transaction's writes appear together", () => run.commit());
  await t.step("a rolled-back transaction leaves nothing", () => run.rollback());
  await t.step("a transaction past its deadline is rolled back", () => run.deadline());
  await t.step("bad SQL is a bad_request naming the problem", () => run.badSql());
  await t.step("an unknown transaction id is not_found", () => run.unknownTransaction());
}

class ContractRun {
  readonly #prefix = `contract_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  #tables = 0;

  constructor(readonly db: SqlBackend, readonly options: SqlContractOptions) {}

  #p(n: number): string {
    return this.options.placeholder(n);
  }

  #deadline(): { deadlineMs: number } {
    return { deadlineMs: Date.now() + (this.options.callTimeoutMs ?? 10_000) };
  }

  query(sql: string, params: SqlValue[] = []) {
    return this.db.query(sql, params, this.#deadline());
  }

  /** A new table `(id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER, ratio REAL)`. */
  async table(): Promise<string> {
    const name = `${this.#prefix}_${++this.#tables}`;
    await this.query(
      `CREATE TABLE ${name} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score INTEGER, ratio REAL)`,
    );
    return name;
  }

  async insert(table: string, id: number, name: string, score: number | null, ratio: number | null = null) {
    const p = (n: number) => this.#p(n);
    return await this.query(
      `INSERT INTO ${table} (id, name, score, ratio) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`,
      [id, name, score, ratio],
    );
  }

  async names(table: string): Promise<string[]> {
    const result = await this.query(`SELECT name FROM ${table} ORDER BY id`);
    return result.rows.map((row) => row.name as string);
  }

  async roundTrip(): Promise<void> {
    const table = await this.table();
    await this.insert(table, 1, "apple", 3, 0.5);
    await this.insert(table, 2, "ünïcødé ✓ 🍐", null, null);
    await this.insert(table, 3, "", -7, 1e-3);
    const result = await this.query(`SELECT id, name, score, ratio FROM ${table} ORDER BY id`);
    assert.deepEqual(result.rows, [
      { id: 1, name: "apple", score: 3, ratio: 0.5 },
      { id: 2, name: "ünïcødé ✓ 🍐", score: null, ratio: null },
      { id: 3, name: "", score: -7, ratio: 0.001 },
    ]);
    const filtered = await this.query(`SELECT name FROM ${table} WHERE score > ${this.#p(1)} ORDER BY id`, [
      0,
    ]);
    assert.deepEqual(filtered.rows, [{ name: "apple" }]);
    const count = await this.query(`SELECT COUNT(*) AS n FROM ${table}`);
    assert.deepEqual(count.rows, [{ n: 3 }], "COUNT(*) is a number");
  }

  async rowsAffected(): Promise<void> {
    const table = await this.table();
    assert.equal((await this.insert(table, 1, "a", 1)).rowsAffected, 1);
    assert.equal((await this.insert(table, 2, "b", 2)).rowsAffected, 1);
    assert.equal((await this.insert(table, 3, "c", 3)).rowsAffected, 1);
    const updated = await this.query(`UPDATE ${table} SET score = score + 10 WHERE score >= ${this.#p(1)}`, [
      2,
    ]);
    assert.equal(updated.rowsAffected, 2);
    const none = await this.query(`UPDATE ${table} SET score = 0 WHERE id = ${this.#p(1)}`, [99]);
    assert.equal(none.rowsAffected, 0);
    const deleted = await this.query(`DELETE FROM ${table} WHERE id <> ${this.#p(1)}`, [1]);
    assert.equal(deleted.rowsAffected, 2);
    const selected = await this.query(`SELECT * FROM ${table}`);
    assert.equal(selected.rows.length, 1);
    assert.equal(selected.rowsAffected, 0, "a query affects no rows");
  }

  async boundParams(): Promise<void> {
    const table = await this.table();
    const attacks = [
      `x'); DROP TABLE ${table}; --`,
      `' OR '1'='1`,
      `"; DELETE FROM ${table}; --`,
      `\\'; SELECT 1; --`,
    ];
    for (const [i, name] of attacks.entries()) await this.insert(table, i + 1, name, i);
    assert.deepEqual(await this.names(table), attacks, "every attempt came back as the text it was");
    const match = await this.query(`SELECT id FROM ${table} WHERE name = ${this.#p(1)}`, [`' OR '1'='1`]);
    assert.deepEqual(match.rows, [{ id: 2 }], "a quote in a parameter does not widen the WHERE");
    // A parameter in place of a table name is a value, never SQL: it cannot name a table.
    await assertRejects(
      () => this.query(`SELECT * FROM ${this.#p(1)}`, [table]),
      "bad_request",
      undefined,
      "a placeholder where SQL needs an identifier",
    );
  }

  async commit(): Promise<void> {
    const table = await this.table();
    const tx = await this.db.begin(this.#deadline());
    const p = (n: number) => this.#p(n);
    const insert = `INSERT INTO ${table} (id, name, score) VALUES (${p(1)}, ${p(2)}, ${p(3)})`;
    assert.equal((await this.db.queryIn(tx, insert, [1, "one", 1])).rowsAffected, 1);
    assert.equal((await this.db.queryIn(tx, insert, [2, "two", 2])).rowsAffected, 1);
    const inside = await this.db.queryIn(tx, `SELECT name FROM ${table} ORDER BY id`, []);
    assert.deepEqual(inside.rows, [{ name: "one" }, { name: "two" }], "a transaction reads its own writes");
    assert.deepEqual(await this.names(table), [], "nothing is visible outside before commit");
    await this.db.commit(tx);
    assert.deepEqual(await this.names(table), ["one", "two"]);
    await assertRejects(() => this.db.commit(tx), "not_found", undefined, "a committed transaction is over");
  }

  async rollback(): Promise<void> {
    const table = await this.table();
    await this.insert(table, 1, "kept", 1);
    const tx = await this.db.begin(this.#deadline());
    await this.db.queryIn(tx, `INSERT INTO ${table} (id, name) VALUES (${this.#p(1)}, ${this.#p(2)})`, [
      2,
      "gone",
    ]);
    await this.db.queryIn(tx, `UPDATE ${table} SET name = ${this.#p(1)} WHERE id = 1`, ["changed"]);
    await this.db.rollback(tx);
    assert.deepEqual(await this.names(table), ["kept"]);
    await assertRejects(
      () => this.db.queryIn(tx, `SELECT 1 AS one`, []),
      "not_found",
      undefined,
      "a rolled-back transaction is over",
    );
  }

  async deadline(): Promise<void> {
    const table = await this.table();
    const shortMs = this.options.shortTransactionMs ?? 400;
    const tx = await this.db.begin({ deadlineMs: Date.now() + shortMs });
    await this.db.queryIn(tx, `INSERT INTO ${table} (id, name) VALUES (${this.#p(1)}, ${this.#p(2)})`, [
      1,
      "late",
    ]);
    await new Promise((resolve) => setTimeout(resolve, shortMs + 300));
    await assertRejects(
      () => this.db.commit(tx),
      ["timeout", "not_found"],
      undefined,
      "a commit after the deadline",
    );
    assert.deepEqual(await this.names(table), [], "the transaction's write was rolled back");
    // The backend is still usable (the transaction's resources were released).
    await this.insert(table, 2, "after", 2);
    assert.deepEqual(await this.names(table), ["after"]);
  }

  async badSql(): Promise<void> {
    await assertRejects(() => this.query("SELEC 1"), "bad_request", /SELEC/, "a syntax error");
    const missing = `${this.#prefix}_missing`;
    await assertRejects(
      () => this.query(`SELECT * FROM ${missing}`),
      "bad_request",
      new RegExp(missing),
      "an unknown table",
    );
    const table = await this.table();
    await assertRejects(
      () => this.query(`SELECT * FROM ${table} WHERE id = ${this.#p(1)}`, [1, 2]),
      "bad_request",
      undefined,
      "more params than placeholders",
    );
    await this.insert(table, 1, "a", 1);
    await assertRejects(() => this.insert(table, 1, "b", 2), "bad_request", undefined, "a duplicate key");
    assert.deepEqual(await this.names(table), ["a"], "the failed insert changed nothing");
  }

  async unknownTransaction(): Promise<void> {
    await assertRejects(() => this.db.queryIn("no-such-tx", "SELECT 1 AS one", []), "not_found");
    await assertRejects(() => this.db.commit("no-such-tx"), "not_found");
    await assertRejects(() => this.db.rollback("no-such-tx"), "not_found");
  }
}

/** Awaits a call that must fail with an AetherError of `code` (one of `code`), whose message matches. */
export async function assertRejects(
  call: () => Promise<unknown>,
  code: string | string[],
  message?: RegExp,
  what = "the call",
): Promise<AetherError> {
  let result: unknown;
  try {
    result = await call();
  } catch (e) {
    const codes = Array.isArray(code) ? code : [code];
    assert.ok(e instanceof AetherError, `${what}: expected an AetherError, got ${e}`);
    assert.ok(codes.includes(e.code), `${what}: expected ${codes.join(" or ")}, got ${e.code}: ${e.message}`);
    if (message) assert.match(e.message, message, `${what}: the message`);
    return e;
  }
  throw new assert.AssertionError({
    message: `${what}: expected ${code}, but it succeeded: ${JSON.stringify(result)}`,
  });
}
