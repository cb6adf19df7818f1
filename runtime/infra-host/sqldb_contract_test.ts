/**
 * The embedded database in one process: the shared SqlBackend contract (sql_contract.ts), and the bounded
 * statement log — the leader prunes it, a member whose copy ends below the pruned mark copies the database
 * from another member and then applies the rest of the log.
 *
 * The members here share one KvState (the real KV state machine; what consensus would give every member) and
 * a loopback mesh between them; tests/integration/sqldb_test.ts runs the same code on real node processes.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { KvState } from "../kv/mod.ts";
import type { KvCommand, KvEvent } from "../kv/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import type { Mesh } from "../net/mod.ts";
import type { Logger } from "../core/mod.ts";
import { AetherError } from "../core/mod.ts";
import { SqlReplica, type SqlReplicaOptions } from "./sqldb_embedded.ts";
import { sqlBackendContract } from "./sql_contract.ts";
import { startSqlDatabases } from "./sqldb_service.ts";
import type { ServiceCall } from "./services.ts";

const quiet: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  with() {
    return quiet;
  },
} as unknown as Logger;

/** One shared state, listeners per member, a loopback mesh: the members of a cluster in one process. */
class Cluster {
  readonly state = new KvState();
  readonly #listeners = new Map<string, Set<(events: readonly KvEvent[]) => void>>();
  readonly #handlers = new Map<string, (from: string, message: unknown) => void>();
  readonly down = new Set<string>();
  leader = "m1";

  kv(): KvAccess {
    return {
      maxValueBytes: 1024 * 1024,
      write: (command: KvCommand) => {
        const events: KvEvent[] = [];
        const result = this.state.apply(command, events);
        if (!result.ok) return Promise.reject(new AetherError("compare_failed", result.message));
        for (const [member, set] of this.#listeners) {
          if (!this.down.has(member)) { for (const l of set) l(events); }
        }
        return Promise.resolve({ revision: result.revision });
      },
    } as unknown as KvAccess;
  }

  member(self: string, dataDir: string, settings: SqlReplicaOptions["settings"] = {}): SqlReplica {
    return new SqlReplica(this.options(self, dataDir, settings));
  }

  options(self: string, dataDir: string, settings: SqlReplicaOptions["settings"] = {}): SqlReplicaOptions {
    const listeners = new Set<(events: readonly KvEvent[]) => void>();
    this.#listeners.set(self, listeners);
    const mesh = {
      onMessage: (_channel: string, handler: (from: string, message: unknown) => void) => {
        this.#handlers.set(self, handler);
        return () => this.#handlers.delete(self);
      },
      send: (to: string, _channel: string, message: unknown) => {
        if (this.down.has(to)) return false;
        queueMicrotask(() => this.#handlers.get(to)?.(self, message));
        return true;
      },
    } as unknown as Mesh;
    return {
      self,
      members: ["m1", "m2"],
      dataDir,
      log: quiet,
      kv: this.kv(),
      state: () => this.state,
      mesh,
      isConnected: (peer) => !this.down.has(peer),
      isLeader: () => this.leader === self,
      onEvents: (l) => {
        listeners.add(l);
        return () => listeners.delete(l);
      },
      onReset: () => () => {},
      settings,
    };
  }
}

Deno.test("the embedded database keeps the SQL contract", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sqldb-contract-" });
  const cluster = new Cluster();
  const replica = cluster.member("m1", dir);
  try {
    await sqlBackendContract(t, replica.backend("org.example.contract/main"), { placeholder: () => "?" });
  } finally {
    replica.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a member behind the pruned log copies the database from another member, then catches up", async () => {
  const dir1 = await Deno.makeTempDir({ prefix: "sqldb-m1-" });
  const dir2 = await Deno.makeTempDir({ prefix: "sqldb-m2-" });
  const cluster = new Cluster();
  const settings = { maxLogEntries: 10, pruneIntervalMs: 20 };
  const m1 = cluster.member("m1", dir1, settings);
  let m2 = cluster.member("m2", dir2, settings);
  const key = "org.example.copy/orders";
  const deadline = () => ({ deadlineMs: Date.now() + 5_000 });
  try {
    await m1.query(key, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", [], deadline());
    await m1.query(key, "INSERT INTO t (v) VALUES (?)", ["before"], deadline());
    equal((await m2.query(key, "SELECT count(*) AS n FROM t", [], deadline())).rows[0].n, 1);
    // m2 goes down; 50 writes later the log keeps only the last 10.
    m2.stop();
    cluster.down.add("m2");
    for (let i = 0; i < 50; i++) await m1.query(key, "INSERT INTO t (v) VALUES (?)", [`w${i}`], deadline());
    await new Promise((r) => setTimeout(r, 100));
    const kept = cluster.state.range(`sqldb/log/${key}/`).length;
    ok(kept <= 10, `log entries kept: ${kept}`);
    // m2 comes back: its copy ends below the pruned mark, so it copies m1's database, then applies the log.
    cluster.down.delete("m2");
    m2 = cluster.member("m2", dir2, settings);
    const rows = await m2.query(key, "SELECT v FROM t ORDER BY id", [], {
      ...deadline(),
      consistency: "local",
    });
    equal(rows.rows.length, 51);
    deepEqual(rows.rows[50], { v: "w49" });
    await m1.query(key, "INSERT INTO t (v) VALUES (?)", ["after"], deadline());
    equal((await m2.query(key, "SELECT count(*) AS n FROM t", [], deadline())).rows[0].n, 52);
    deepEqual(m2.status().map((s) => s.stale), [false]);
  } finally {
    m1.stop();
    m2.stop();
    await Deno.remove(dir1, { recursive: true });
    await Deno.remove(dir2, { recursive: true });
  }
});

Deno.test("the db service: groups are separate, transaction ids are the caller's, limits, clear errors", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sqldb-service-" });
  const cluster = new Cluster();
  const service = startSqlDatabases({ ...cluster.options("m1", dir), maxOpenTransactionsPerGroup: 2 });
  const call = (group: string, method: string, payload: Record<string, unknown>) => {
    const c: ServiceCall = { group, method, payload, deadlineMs: Date.now() + 5_000, requestId: "r" };
    return service.serve(c) as Promise<Record<string, unknown>>;
  };
  const code = async (p: Promise<unknown>) => {
    try {
      await p;
      return "ok";
    } catch (e) {
      return (e as AetherError).code;
    }
  };
  try {
    await call("a", "query", { db: "orders", sql: "CREATE TABLE t (v TEXT)" });
    await call("a", "query", { db: "orders", sql: "INSERT INTO t (v) VALUES (?)", params: ["secret"] });
    // Group b's "orders" is another database: no table t there.
    equal(await code(call("b", "query", { db: "orders", sql: "SELECT * FROM t" })), "bad_request");
    const { tx } = await call("a", "begin", { db: "orders" });
    // b cannot use a's transaction id, even naming the same database.
    equal(await code(call("b", "queryIn", { db: "orders", tx, sql: "SELECT * FROM t" })), "not_found");
    equal(await code(call("b", "commit", { db: "orders", tx })), "not_found");
    const read = await call("a", "queryIn", { db: "orders", tx, sql: "SELECT v FROM t" });
    deepEqual(read.rows, [{ v: "secret" }]);
    // At most 2 open transactions per group on a node.
    await call("a", "begin", { db: "orders" });
    equal(await code(call("a", "begin", { db: "orders" })), "overloaded");
    equal(await code(call("b", "begin", { db: "orders" })), "ok");
    await call("a", "rollback", { db: "orders", tx });
    equal(await code(call("a", "queryIn", { db: "orders", tx, sql: "SELECT 1" })), "not_found");
    equal(await code(call("a", "query", { db: "../x", sql: "SELECT 1" })), "bad_request");
    equal(
      await code(call("a", "query", { db: "orders", sql: "SELECT 1", consistency: "eventual" })),
      "bad_request",
    );
    equal(await code(call("a", "query", { db: "orders", sql: "SELECT ?", params: "x" })), "bad_request");
    const view = service.show("a", "orders");
    equal(view.backend, "embedded");
    ok((view.appliedRevision ?? 0) > 0);
    equal(
      await code(service.set("a", "orders", { backend: "postgres", url: "postgres://u:pw@h/db" })),
      "bad_request",
    );
  } finally {
    await service.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("databases per group are bounded; reads of a new name count too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sqldb-count-" });
  const replica = new Cluster().member("m1", dir, { maxDatabasesPerGroup: 2 });
  const deadline = () => ({ deadlineMs: Date.now() + 5_000 });
  try {
    await replica.query("g/one", "CREATE TABLE t (v TEXT)", [], deadline());
    await replica.query("g/two", "SELECT 1 AS one", [], deadline());
    await assertRejects(() => replica.query("g/three", "SELECT 1 AS one", [], deadline()), /the limit is 2/);
    await replica.query("g/one", "INSERT INTO t (v) VALUES (?)", ["still fine"], deadline());
    await replica.query("h/one", "SELECT 1 AS one", [], deadline()); // another group has its own count
  } finally {
    replica.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

async function assertRejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (e) {
    ok(pattern.test(String((e as Error).message)), String(e));
    return;
  }
  throw new Error(`expected a rejection matching ${pattern}`);
}
