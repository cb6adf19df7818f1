/**
 * The partitioned store (runtime/infra-host) against a local Redis, driven by the same client loop: C workers
 * issuing operations back to back for a fixed time, first puts, then gets of the keys put. The store runs on a
 * 3-member cluster on loopback (replicas 3, write quorum 2) and is reached through its HTTP API
 * (`PUT|GET /api/v1/stores/{store}/entries/{key}`, round-robin over the members, keep-alive); Redis
 * (Debian's `redis-server`) through one RESP connection per worker (SET / GET). The same loop against
 * `GET /api/v1/health` gives the floor of the HTTP API path itself.
 *
 * Prints ops/s and p50/p99 per phase, for the store with the SQLite engine and with the memory engine, Redis
 * without persistence (its default for a cache) and Redis with `appendfsync always` (durable like the SQLite
 * engine with fsync), and the ratios.
 *
 * Flags: --concurrency 32 --duration-ms 5000 --value-bytes 100 --keys 10000 --fsync always|never
 *        --only direct|api|redis (one part; the ratios need all three)
 * Run: npx -y deno@2.9.6 run -A tests/bench/store_bench.ts   (needs redis-server on PATH)
 */

import { parseArgs } from "node:util";
import { freePort, type NodeProcess } from "../../runtime/forge/mod.ts";
import { TestCluster } from "../_support/cluster.ts";
import { createLogger, type NodeId, systemClock } from "../../runtime/core/mod.ts";
import { Mesh } from "../../runtime/net/mod.ts";
import type { PartitionMapRecord, StoreConfigRecord, SyncReportRecord } from "../../runtime/model/mod.ts";
import { type Store, StoreNode } from "../../runtime/infra-host/store_node.ts";
import { type LeaderMeta, StoreBalancer } from "../../runtime/infra-host/balancer.ts";
import { MemoryEngine } from "../../runtime/infra-host/engine.ts";
import { SqliteEngine } from "../../runtime/infra-host/sqlite_engine.ts";
import { partitionOf, STORE_CHANNEL } from "../../runtime/infra-host/mod.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    concurrency: { type: "string", default: "32" },
    "duration-ms": { type: "string", default: "5000" },
    "value-bytes": { type: "string", default: "100" },
    keys: { type: "string", default: "10000" },
    fsync: { type: "string", default: "always" },
    only: { type: "string" },
  },
});
const CONCURRENCY = Number(flags.concurrency);
const DURATION_MS = Number(flags["duration-ms"]);
const VALUE = "v".repeat(Number(flags["value-bytes"]));
const KEYS = Number(flags.keys);

interface Phase {
  ops: number;
  errors: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** The client loop: `op(worker, i)` back to back on every worker for DURATION_MS. */
async function drive(op: (worker: number, i: number) => Promise<boolean>): Promise<Phase> {
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(Array.from({ length: CONCURRENCY }, async (_, worker) => {
    for (let i = 0; performance.now() < end; i++) {
      const t0 = performance.now();
      const ok = await op(worker, i).catch(() => false);
      if (ok) latencies.push(performance.now() - t0);
      else errors++;
    }
  }));
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return {
    ops: latencies.length,
    errors,
    perSecond: latencies.length / seconds,
    p50: at(0.5),
    p99: at(0.99),
  };
}

const keyOf = (worker: number, i: number) => `key-${(worker * 7919 + i) % KEYS}`;

// ------------------------------------------------------------------------------------------------ store

async function benchStore(engine: "sqlite" | "memory"): Promise<{ put: Phase; get: Phase; floor: Phase }> {
  const cluster = await TestCluster.start(3, { fsync: flags.fsync as "always" | "never" });
  try {
    await cluster.waitForLeader();
    const nodes = cluster.nodes;
    const store = `bench.${engine}`;
    const created = await nodes[0].json("/api/v1/stores", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: store, replicas: 3, writeQuorum: 2, engine }),
    });
    if (created.status !== 201) throw new Error(`create failed: ${JSON.stringify(created.body)}`);
    await cluster.waitFor("every partition served", async () => {
      const views = await Promise.all(
        nodes.map((n) => n.json<{ items: { name: string; promoted: number }[] }>("/api/v1/stores")),
      );
      return views.reduce(
        (sum, v) => sum + (v.body.items.find((s) => s.name === store)?.promoted ?? 0),
        0,
      ) === 1024;
    }, 30_000);
    const node = (worker: number, i: number): NodeProcess => nodes[(worker + i) % nodes.length];
    const body = JSON.stringify({ value: VALUE });
    const put = await drive(async (w, i) => {
      const r = await node(w, i).api(`/api/v1/stores/${store}/entries/${keyOf(w, i)}`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body,
      });
      await r.arrayBuffer();
      return r.status === 200;
    });
    const get = await drive(async (w, i) => {
      const r = await node(w, i).api(`/api/v1/stores/${store}/entries/${keyOf(w, i)}`);
      await r.arrayBuffer();
      return r.status === 200 || r.status === 404;
    });
    const floor = await drive(async (w, i) => {
      const r = await node(w, i).api(`/api/v1/health`);
      await r.arrayBuffer();
      return r.status === 200;
    });
    return { put, get, floor };
  } finally {
    await cluster.close();
  }
}

// ------------------------------------------------------------------------------------- store, direct

/** The consensus records of the direct run: one shared copy (every node sees a change at once). */
class SharedMeta implements LeaderMeta {
  config_: StoreConfigRecord | undefined;
  map_: PartitionMapRecord | undefined;
  readonly reports_ = new Map<NodeId, SyncReportRecord>();
  readonly #listeners = new Set<(store: string) => void>();
  constructor(readonly name: string, readonly self: NodeId, readonly shared?: SharedMeta) {}
  get root(): SharedMeta {
    return this.shared ?? this;
  }
  stores = () => (this.root.config_ ? [this.name] : []);
  config = () => this.root.config_;
  map = () => this.root.map_;
  reports = () => this.root.reports_;
  createConfig(_: string, config: StoreConfigRecord) {
    this.root.config_ ??= config;
    this.root.emit();
    return Promise.resolve();
  }
  writeSyncReport(_: string, report: SyncReportRecord) {
    this.root.reports_.set(this.self, report);
    this.root.emit();
    return Promise.resolve();
  }
  writeMap(_: string, map: PartitionMapRecord) {
    this.root.map_ = map;
    this.root.emit();
    return Promise.resolve();
  }
  onChange(listener: (store: string) => void) {
    this.root.#listeners.add(listener);
    return () => this.root.#listeners.delete(listener);
  }
  emit() {
    for (const l of this.#listeners) l(this.name);
  }
}

/**
 * The store's own path without the HTTP API: three StoreNodes in this process, each on its own mesh (real
 * loopback WebSockets, authenticated) and its own SQLite or memory engine; metadata shared in memory (it
 * changes only when the map does). Calls go through node (worker mod 3), so two in three are forwarded.
 */
async function benchStoreDirect(engine: "sqlite" | "memory"): Promise<{ put: Phase; get: Phase }> {
  const ids = ["n1", "n2", "n3"];
  const ports = ids.map(() => freePort());
  const secret = new TextEncoder().encode("store-bench-secret-0123456789");
  const log = createLogger({ level: "error" });
  const dir = await Deno.makeTempDir({ prefix: "store-bench-direct-" });
  const root = new SharedMeta("direct", "n1");
  const meshes = ids.map((id) =>
    new Mesh({
      self: id,
      peers: ids.map((p, i) => ({ id: p, host: "127.0.0.1", port: ports[i] })),
      secret,
      logger: log,
    })
  );
  await Promise.all(meshes.map((m) => m.start()));
  const nodes: StoreNode[] = [];
  const engines: { close(): void }[] = [];
  ids.forEach((id, i) => {
    const durable = new SqliteEngine({ dataDir: `${dir}/${id}`, fsync: flags.fsync !== "never" });
    const memory = new MemoryEngine((k) => partitionOf(k));
    engines.push(durable, memory);
    nodes.push(
      new StoreNode({
        self: id,
        transport: {
          send: (to, m) => meshes[i].send(to, STORE_CHANNEL, m),
          onMessage: (h) => meshes[i].onMessage(STORE_CHANNEL, (from, m) => h(from, m)),
          isConnected: (n) => n === id || meshes[i].isConnected(n),
          writable: (n) => meshes[i].writable(n),
        },
        meta: i === 0 ? root : new SharedMeta("direct", id, root),
        timers: systemClock,
        durable,
        memory,
        log,
      }),
    );
  });
  const balancer = new StoreBalancer({
    self: "n1",
    members: ids,
    meta: root,
    timers: systemClock,
    log,
    isConnected: (n) => n === "n1" || meshes[0].isConnected(n),
  });
  try {
    while (!ids.every((id, i) => i === 0 || meshes[0].isConnected(id))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    balancer.setLeading(true);
    const opened = await nodes[0].open("direct", { engine });
    await new Promise((r) => setTimeout(r, 200));
    const stores: Store[] = nodes.map((n) => n.handle(opened.name)!);
    // Wait until every partition has a serving primary.
    await stores[0].put("warmup", "x", { timeoutMs: 30_000 });
    for (;;) {
      const promoted = nodes.reduce(
        (sum, n) => sum + (n.local("direct")?.promoted.reduce((a, b) => a + b, 0) ?? 0),
        0,
      );
      if (promoted === 1024) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const put = await drive(async (w, i) => {
      await stores[w % 3].put(keyOf(w, i), VALUE);
      return true;
    });
    const get = await drive(async (w, i) => {
      await stores[w % 3].get(keyOf(w, i));
      return true;
    });
    return { put, get };
  } finally {
    balancer.stop();
    for (const n of nodes) n.stop();
    await Promise.all(meshes.map((m) => m.stop()));
    for (const e of engines) e.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// ------------------------------------------------------------------------------------------------ redis

/** A minimal RESP2 client: one command at a time on one connection (what the store's loop does too). */
class Resp {
  #buffer = new Uint8Array(0);
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();
  private constructor(readonly conn: Deno.TcpConn) {}

  static async connect(port: number): Promise<Resp> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new Resp(conn);
  }

  async command(...args: string[]): Promise<string | null> {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) parts.push(`$${this.#encoder.encode(a).length}\r\n${a}\r\n`);
    await this.conn.write(this.#encoder.encode(parts.join("")));
    return await this.#reply();
  }

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(10);
      if (end > 0 && this.#buffer[end - 1] === 13) {
        const line = this.#decoder.decode(this.#buffer.subarray(0, end - 1));
        this.#buffer = this.#buffer.subarray(end + 1);
        return line;
      }
      await this.#fill();
    }
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) throw new Error("redis closed the connection");
    const next = new Uint8Array(this.#buffer.length + n);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = next;
  }

  async #reply(): Promise<string | null> {
    const line = await this.#line();
    const kind = line[0];
    if (kind === "+" || kind === ":") return line.slice(1);
    if (kind === "-") throw new Error(`redis: ${line.slice(1)}`);
    if (kind === "$") {
      const length = Number(line.slice(1));
      if (length < 0) return null;
      while (this.#buffer.length < length + 2) await this.#fill();
      const value = this.#decoder.decode(this.#buffer.subarray(0, length));
      this.#buffer = this.#buffer.subarray(length + 2);
      return value;
    }
    throw new Error(`redis: unexpected reply ${line}`);
  }
}

async function benchRedis(durable: boolean): Promise<{ put: Phase; get: Phase }> {
  const dir = await Deno.makeTempDir({ prefix: "store-bench-redis-" });
  const port = freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", ""];
  args.push(...(durable ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]));
  const child = new Deno.Command("redis-server", { args, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  try {
    let clients: Resp[] = [];
    for (let attempt = 0; clients.length === 0; attempt++) {
      try {
        clients = await Promise.all(Array.from({ length: CONCURRENCY }, () => Resp.connect(port)));
      } catch (e) {
        if (attempt > 100) throw e;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const put = await drive(async (w, i) => (await clients[w].command("SET", keyOf(w, i), VALUE)) === "OK");
    const get = await drive(async (w, i) => {
      await clients[w].command("GET", keyOf(w, i));
      return true;
    });
    for (const c of clients) c.conn.close();
    return { put, get };
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel().catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

// --------------------------------------------------------------------------------------------------- run

const row = (name: string, p: Phase) =>
  `${name.padEnd(44)} ${p.perSecond.toFixed(0).padStart(8)} ops/s   p50 ${
    p.p50.toFixed(2).padStart(7)
  } ms   p99 ${p.p99.toFixed(2).padStart(7)} ms   (${p.ops} ok, ${p.errors} errors)`;

console.log(
  `store bench: ${CONCURRENCY} workers, ${DURATION_MS} ms per phase, ${VALUE.length}-byte values, ${KEYS} keys, ` +
    `node --fsync ${flags.fsync}, ${navigator.hardwareConcurrency} cores`,
);
const only = flags.only;
if (only === "direct") {
  const d = await benchStoreDirect("sqlite");
  const m = await benchStoreDirect("memory");
  console.log(row("store put (sqlite, 3 nodes in-process, direct)", d.put));
  console.log(row("store get (sqlite, 3 nodes in-process, direct)", d.get));
  console.log(row("store put (memory, 3 nodes in-process, direct)", m.put));
  console.log(row("store get (memory, 3 nodes in-process, direct)", m.get));
  Deno.exit(0);
}
const direct = await benchStoreDirect("sqlite");
const directMemory = await benchStoreDirect("memory");
const sqlite = await benchStore("sqlite");
const memory = await benchStore("memory");
const redis = await benchRedis(false);
const redisDurable = await benchRedis(true);
console.log(row("store put (sqlite, 3 nodes in-process, direct)", direct.put));
console.log(row("store get (sqlite, 3 nodes in-process, direct)", direct.get));
console.log(row("store put (memory, 3 nodes in-process, direct)", directMemory.put));
console.log(row("store get (memory, 3 nodes in-process, direct)", directMemory.get));
console.log(row("store put (sqlite, 3 nodes, HTTP API)", sqlite.put));
console.log(row("store get (sqlite, 3 nodes, HTTP API)", sqlite.get));
console.log(row("store put (memory, 3 nodes, HTTP API)", memory.put));
console.log(row("store get (memory, 3 nodes, HTTP API)", memory.get));
console.log(row("HTTP API floor (GET /api/v1/health)", sqlite.floor));
console.log(row("redis SET (no persistence)", redis.put));
console.log(row("redis GET (no persistence)", redis.get));
console.log(row("redis SET (appendfsync always)", redisDurable.put));
console.log(row("redis GET (appendfsync always)", redisDurable.get));
const ratio = (a: Phase, b: Phase) =>
  `${(a.perSecond / b.perSecond).toFixed(2)}x ops/s, p50 ${(a.p50 / b.p50).toFixed(1)}x`;
console.log(
  `ratio direct store/redis put, sqlite vs appendfsync always: ${ratio(direct.put, redisDurable.put)}`,
);
console.log(`ratio direct store/redis get, sqlite vs no persistence:      ${ratio(direct.get, redis.get)}`);
console.log(`ratio store/redis put, sqlite vs appendfsync always: ${ratio(sqlite.put, redisDurable.put)}`);
console.log(`ratio store/redis get, sqlite vs no persistence:      ${ratio(sqlite.get, redis.get)}`);
console.log(`ratio store/redis put, memory vs no persistence:      ${ratio(memory.put, redis.put)}`);
