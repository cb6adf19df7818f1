/**
 * The `db` infrastructure service: `ctx.infra.db("orders").query(sql, params)` and `.transaction(fn)` for
 * slices, one API over two backends chosen per database by the operator:
 *
 * - `embedded` (the default): the SQLite database replicated through consensus (sqldb_embedded.ts);
 * - `postgres`: a PostgreSQL server at an operator's URL, its password taken from the secrets service
 *   (the backend factory is given to `startSqlDatabases`; sql_backend.ts is the contract both implement).
 *
 * Databases are scoped to the caller's group (taken from its manifest by the sandbox host, never from the
 * request): `orders` of group `a` and `orders` of group `b` are different databases, in different SQLite files
 * (embedded) or behind different operator settings (postgres). The operator's setting for a database is the
 * consensus record `sqldb/config/{group}/{db}`.
 *
 * Limits: statement size, parameters and rows per query (sqldb_guard.ts), open transactions per group on a
 * node (`maxOpenTransactionsPerGroup`), a transaction's lifetime (its call's deadline, at most 60 s).
 */

import { AetherError } from "../core/mod.ts";
import type { SqlBackend, SqlQueryOptions } from "./sql_backend.ts";
import { dbKeyOf, SqlReplica, type SqlReplicaOptions } from "./sqldb_embedded.ts";
import type { InfraService, ServiceCall } from "./services.ts";
import { createPostgresBackend } from "./postgres_backend.ts";

export const SQLDB_CONFIG_PREFIX = "sqldb/config/";

export const DB_SERVICE: InfraService = {
  name: "db",
  version: "1.0.0",
  description: "SQL databases: SQLite replicated through consensus (default) or an operator's PostgreSQL",
  methods: ["query", "begin", "queryIn", "commit", "rollback", "migrate"],
};

/** The operator's setting for one database. */
export type DatabaseConfig =
  | { backend: "embedded" }
  | {
    backend: "postgres";
    /** postgres://user@host:port/db (no password: it comes from `passwordSecret`). */
    url: string;
    /** The secret holding the password (aether secret set ...). */
    passwordSecret?: string;
  };

/** Builds a PostgreSQL backend for a URL with its password (postgres_backend.ts). */
export type PostgresFactory = (config: { url: string; password?: string }) => SqlBackend;

export interface SqlDatabasesOptions extends SqlReplicaOptions {
  /** Default: the PostgreSQL connector (postgres_backend.ts), a pool per node and database. */
  postgres?: PostgresFactory;
  /** The runtime's read of a secret (the operator's PostgreSQL password). */
  readSecret?(name: string): Promise<string>;
  maxOpenTransactionsPerGroup?: number;
}

export interface DatabaseView {
  database: string;
  group: string;
  name: string;
  backend: "embedded" | "postgres";
  url?: string;
  passwordSecret?: string;
  /** Embedded: this member's copy. */
  appliedRevision?: number;
  stale?: boolean;
  /** Embedded: the statement log consensus keeps (bounded; older entries pruned). */
  log?: { entries: number; bytes: number; prunedThroughRevision: number };
}

export interface SqlDatabases {
  readonly replica: SqlReplica;
  serve(call: ServiceCall): Promise<unknown>;
  list(): DatabaseView[];
  show(group: string, name: string): DatabaseView;
  set(group: string, name: string, config: unknown): Promise<DatabaseView>;
  status(): unknown;
  stop(): Promise<void>;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
const GROUP = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/;
const MAX_TRANSACTION_MS = 60_000;

interface OpenTx {
  group: string;
  key: string;
  backend: SqlBackend;
  backendId: string;
  timer: ReturnType<typeof setTimeout>;
}

export function startSqlDatabases(options: SqlDatabasesOptions): SqlDatabases {
  const replica = new SqlReplica(options);
  const log = options.log.with({ component: "sqldb" });
  const postgresFactory: PostgresFactory = options.postgres ??
    ((c) =>
      createPostgresBackend({
        url: c.url,
        ...(c.password === undefined ? {} : { password: c.password }),
        logger: log,
      }));
  const maxOpen = options.maxOpenTransactionsPerGroup ?? 32;
  const postgres = new Map<string, { revision: number; backend: SqlBackend }>();
  const open = new Map<string, OpenTx>();

  const configOf = (key: string): { config: DatabaseConfig; revision: number } => {
    const entry = options.state().get(`${SQLDB_CONFIG_PREFIX}${key}`);
    if (!entry) return { config: { backend: "embedded" }, revision: 0 };
    return {
      config: JSON.parse(new TextDecoder().decode(entry.value)) as DatabaseConfig,
      revision: entry.modRevision,
    };
  };

  const backendOf = async (key: string): Promise<SqlBackend> => {
    const { config, revision } = configOf(key);
    if (config.backend === "embedded") return replica.backend(key);
    const cached = postgres.get(key);
    if (cached && cached.revision === revision) return cached.backend;
    const password = config.passwordSecret ? await readSecret(config.passwordSecret, key) : undefined;
    const backend = postgresFactory({ url: config.url, ...(password === undefined ? {} : { password }) });
    if (cached) void cached.backend.close().catch(() => {});
    postgres.set(key, { revision, backend });
    return backend;
  };

  const readSecret = async (name: string, key: string): Promise<string> => {
    if (!options.readSecret) {
      throw new AetherError(
        "unavailable",
        `db(${key}): the password secret ${name} cannot be read on this node`,
      );
    }
    return await options.readSecret(name);
  };

  const serve = async (call: ServiceCall): Promise<unknown> => {
    const name = call.payload.db;
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new AetherError(
        "bad_request",
        `db.${call.method}: db must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
        { field: "db" },
      );
    }
    const key = dbKeyOf(call.group, name);
    const deadlineMs = call.deadlineMs;
    switch (call.method) {
      case "query": {
        const consistency = call.payload.consistency ?? "linearizable";
        if (consistency !== "linearizable" && consistency !== "local") {
          throw new AetherError("bad_request", `db.query: consistency must be "linearizable" or "local"`, {
            field: "consistency",
          });
        }
        const queryOptions: SqlQueryOptions = { deadlineMs, consistency };
        return await (await backendOf(key)).query(
          call.payload.sql as string,
          call.payload.params as never,
          queryOptions,
        );
      }
      case "begin": {
        const count = [...open.values()].filter((t) => t.group === call.group).length;
        if (count >= maxOpen) {
          throw new AetherError(
            "overloaded",
            `db.begin: the group ${call.group} has ${count} open transactions on this node; the limit is ${maxOpen}`,
          );
        }
        const backend = await backendOf(key);
        const backendId = await backend.begin({
          deadlineMs: Math.min(deadlineMs, Date.now() + MAX_TRANSACTION_MS),
        });
        const id = crypto.randomUUID();
        // The backend rolls back at the deadline; the service forgets the id a little later.
        const timer = setTimeout(() => open.delete(id), Math.max(0, deadlineMs - Date.now()) + 1_000);
        open.set(id, { group: call.group, key, backend, backendId, timer });
        return { tx: id };
      }
      case "queryIn": {
        const tx = txOf(call, key);
        return await tx.backend.queryIn(
          tx.backendId,
          call.payload.sql as string,
          call.payload.params as never,
        );
      }
      case "commit": {
        const tx = txOf(call, key);
        clearTimeout(tx.timer);
        open.delete(String(call.payload.tx));
        await tx.backend.commit(tx.backendId);
        return null;
      }
      case "rollback": {
        const tx = txOf(call, key);
        clearTimeout(tx.timer);
        open.delete(String(call.payload.tx));
        await tx.backend.rollback(tx.backendId);
        return null;
      }
      case "migrate": {
        const { config } = configOf(key);
        if (config.backend === "embedded") {
          return await replica.migrate(key, call.payload.migrations, deadlineMs);
        }
        return await migratePostgres(await backendOf(key), key, call.payload.migrations, deadlineMs);
      }
      default:
        throw new AetherError("not_found", `db has no method ${call.method}`);
    }
  };

  const txOf = (call: ServiceCall, key: string): OpenTx => {
    const id = call.payload.tx;
    const tx = typeof id === "string" ? open.get(id) : undefined;
    // Another group's transaction id is as unknown as an ended one.
    if (!tx || tx.group !== call.group || tx.key !== key) {
      throw new AetherError(
        "not_found",
        `db.${call.method}: no open transaction ${JSON.stringify(id)} (ended or expired)`,
        {
          field: "tx",
        },
      );
    }
    return tx;
  };

  const view = (key: string): DatabaseView => {
    const slash = key.lastIndexOf("/");
    const { config } = configOf(key);
    const local = replica.status().find((s) => s.database === key);
    return {
      database: key,
      group: key.slice(0, slash),
      name: key.slice(slash + 1),
      ...config,
      ...(config.backend === "embedded" && local
        ? { appliedRevision: local.appliedRevision, stale: local.stale }
        : {}),
      ...(config.backend === "embedded" ? { log: replica.logStats(key) } : {}),
    };
  };

  return {
    replica,
    serve,
    list: () => {
      const keys = new Set(replica.databases());
      for (const entry of options.state().range(SQLDB_CONFIG_PREFIX)) {
        keys.add(entry.key.slice(SQLDB_CONFIG_PREFIX.length));
      }
      return [...keys].sort().map(view);
    },
    show: (group, name) => {
      checkNames(group, name);
      return view(dbKeyOf(group, name));
    },
    async set(group, name, config) {
      checkNames(group, name);
      const checked = checkConfig(config);
      const key = dbKeyOf(group, name);
      await options.kv.write({
        type: "put",
        key: `${SQLDB_CONFIG_PREFIX}${key}`,
        value: new TextEncoder().encode(JSON.stringify(checked)),
      });
      return view(key);
    },
    status: () => ({ databases: replica.status(), openTransactions: open.size }),
    async stop() {
      for (const tx of open.values()) clearTimeout(tx.timer);
      replica.stop();
      for (const { backend } of postgres.values()) await backend.close().catch(() => {});
    },
  };
}

function checkNames(group: string, name: string): void {
  if (!GROUP.test(group)) {
    throw new AetherError(
      "bad_request",
      `group must be letters, digits, '.', '_' or '-', got ${JSON.stringify(group)}`,
      {
        field: "group",
      },
    );
  }
  if (!NAME.test(name)) {
    throw new AetherError(
      "bad_request",
      `name must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
      {
        field: "name",
      },
    );
  }
}

/** Checks an operator's setting; errors name the field. */
export function checkConfig(config: unknown): DatabaseConfig {
  if (config === null || typeof config !== "object" || Array.isArray(config)) {
    throw new AetherError("bad_request", "the database setting must be an object with backend", {
      field: "backend",
    });
  }
  const c = config as Record<string, unknown>;
  if (c.backend === "embedded") return { backend: "embedded" };
  if (c.backend !== "postgres") {
    throw new AetherError(
      "bad_request",
      `backend must be "embedded" or "postgres", got ${JSON.stringify(c.backend)}`,
      {
        field: "backend",
      },
    );
  }
  let url: URL;
  try {
    url = new URL(String(c.url));
  } catch {
    throw new AetherError("bad_request", `url must be a postgres:// URL, got ${JSON.stringify(c.url)}`, {
      field: "url",
    });
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new AetherError("bad_request", `url must be a postgres:// URL, got ${url.protocol}`, {
      field: "url",
    });
  }
  if (url.password) {
    throw new AetherError(
      "bad_request",
      "url must not carry a password: store it with `aether secret set NAME` and pass --password-secret NAME",
      { field: "url" },
    );
  }
  const out: DatabaseConfig = { backend: "postgres", url: url.toString() };
  if (c.passwordSecret !== undefined && c.passwordSecret !== null) {
    if (typeof c.passwordSecret !== "string" || !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(c.passwordSecret)) {
      throw new AetherError(
        "bad_request",
        `passwordSecret must be a secret's name, got ${JSON.stringify(c.passwordSecret)}`,
        {
          field: "passwordSecret",
        },
      );
    }
    out.passwordSecret = c.passwordSecret;
  }
  return out;
}

/** Migrations on PostgreSQL: recorded in `aether_migrations`, applied in one transaction each call. */
async function migratePostgres(
  backend: SqlBackend,
  key: string,
  migrations: unknown,
  deadlineMs: number,
): Promise<{ applied: number; total: number }> {
  if (!Array.isArray(migrations) || migrations.some((m) => typeof m !== "string" || m.trim() === "")) {
    throw new AetherError(
      "bad_request",
      `db.migrate(${key}): migrations must be an array of SQL statements`,
      {
        field: "migrations",
      },
    );
  }
  await backend.query(
    "CREATE TABLE IF NOT EXISTS aether_migrations (idx integer PRIMARY KEY, sql text NOT NULL)",
    [],
    { deadlineMs },
  );
  const tx = await backend.begin({ deadlineMs });
  try {
    await backend.queryIn(tx, "LOCK TABLE aether_migrations IN EXCLUSIVE MODE", []);
    const done = await backend.queryIn(tx, "SELECT idx, sql FROM aether_migrations", []);
    const recorded = new Map(done.rows.map((r) => [Number(r.idx), String(r.sql)]));
    let applied = 0;
    for (let i = 0; i < migrations.length; i++) {
      const known = recorded.get(i);
      if (known !== undefined) {
        if (known !== migrations[i]) {
          throw new AetherError("conflict", `db(${key}): migration ${i} differs from the one applied`);
        }
        continue;
      }
      await backend.queryIn(tx, migrations[i], []);
      await backend.queryIn(tx, "INSERT INTO aether_migrations (idx, sql) VALUES ($1, $2)", [
        i,
        migrations[i],
      ]);
      applied++;
    }
    await backend.commit(tx);
    return { applied, total: migrations.length };
  } catch (e) {
    await backend.rollback(tx).catch(() => {});
    throw e;
  }
}
