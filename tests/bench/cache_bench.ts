/**
 * Cache get/put latency through a slice call on a 3-member cluster on loopback, against a local Redis
 * (Debian's `redis-server`, started here on a free port with its defaults but no snapshots), driven by the
 * same client loop in the same run:
 *
 * - `aether cache get|put`: POST /cache/get|put to the nodes in turn; the slice (tests/integration/fixtures/
 *   cache_slice.ts, one instance per node) calls ctx.infra.cache("bench").get|put: the node's cache service,
 *   the partitioned store (a read from the key's primary; a put replicated to 2 of 3 owners before its answer);
 * - `aether slice call, no cache`: POST /cache/noop: the same HTTP request and slice call without the cache,
 *   so the cache's own share is the difference;
 * - `redis GET|SET`: the same loop sending RESP commands straight to Redis over TCP (one connection per
 *   concurrent caller), what a client that reached for Redis instead would see.
 *
 * Each row: --ops operations over --keys keys with --concurrency callers, 64-byte values, after a warm-up of
 * the keys; p50/p99 in ms and operations per second. Redis's own client loop has no HTTP hop: compare the
 * cache rows with both the Redis rows and the no-cache slice row.
 *
 * Flags: --ops 3000 --keys 1000 --concurrency 1,16 --fsync always|never
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/cache_bench.ts
 */

import { parseArgs } from "node:util";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";

const { values: flags } = parseArgs({
  options: {
    ops: { type: "string", default: "3000" },
    keys: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "1,16" },
    fsync: { type: "string", default: "always" },
  },
});
const OPS = Number(flags.ops);
const KEYS = Number(flags.keys);
const CONCURRENCY = flags.concurrency!.split(",").map(Number);
const VALUE = "v".repeat(62); // 64 bytes as JSON
const SLICE = new URL("../integration/fixtures/cache_slice.ts", import.meta.url).pathname;

/** The client loop: `ops` calls of `one(i)` by `concurrency` callers; latencies in ms. */
async function loop(
  concurrency: number,
  one: (caller: number, i: number) => Promise<void>,
): Promise<{ p50: number; p99: number; perSec: number }> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, caller) => {
    while (next < OPS) {
      const i = next++;
      const t0 = performance.now();
      await one(caller, i);
      times.push(performance.now() - t0);
    }
  }));
  const elapsedMs = performance.now() - started;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
  return { p50: at(0.5), p99: at(0.99), perSec: (OPS * 1000) / elapsedMs };
}

// ---------------------------------------------------------------------------------------------------------
// A minimal RESP client (this bench's own): one command at a time per connection.

class Resp {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #encoder = new TextEncoder();
  #decoder = new TextDecoder();

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    conn.setNoDelay(true);
  }

  static async connect(port: number): Promise<Resp> {
    return new Resp(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async command(...args: string[]): Promise<string | null> {
    let text = `*${args.length}\r\n`;
    for (const a of args) text += `$${this.#encoder.encode(a).byteLength}\r\n${a}\r\n`;
    const bytes = this.#encoder.encode(text);
    for (let written = 0; written < bytes.length;) written += await this.#conn.write(bytes.subarray(written));
    return await this.#reply();
  }

  async #line(): Promise<string> {
    for (;;) {
      const end = this.#buffer.indexOf(10);
      if (end >= 0) {
        const line = this.#decoder.decode(this.#buffer.subarray(0, end - 1));
        this.#buffer = this.#buffer.subarray(end + 1);
        return line;
      }
      await this.#fill();
    }
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("redis closed the connection");
    const joined = new Uint8Array(this.#buffer.length + n);
    joined.set(this.#buffer);
    joined.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = joined;
  }

  async #reply(): Promise<string | null> {
    const line = await this.#line();
    if (line[0] === "+" || line[0] === ":") return line.slice(1);
    if (line[0] === "-") throw new Error(`redis: ${line.slice(1)}`);
    if (line[0] === "$") {
      const length = Number(line.slice(1));
      if (length < 0) return null;
      while (this.#buffer.length < length + 2) await this.#fill();
      const value = this.#decoder.decode(this.#buffer.subarray(0, length));
      this.#buffer = this.#buffer.subarray(length + 2);
      return value;
    }
    throw new Error(`redis: unexpected reply ${JSON.stringify(line)}`);
  }

  close(): void {
    this.#conn.close();
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startRedis(): Promise<{ port: number; process: Deno.ChildProcess }> {
  const port = freePort();
  const process = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      const client = await Resp.connect(port);
      await client.command("PING");
      client.close();
      return { port, process };
    } catch (e) {
      if (Date.now() > until) throw new Error(`redis-server did not answer on ${port}: ${e}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function row(name: string, concurrency: number, r: { p50: number; p99: number; perSec: number }) {
  console.log(
    `  ${name.padEnd(34)} c=${String(concurrency).padStart(2)}  p50 ${r.p50.toFixed(2).padStart(6)} ms  ` +
      `p99 ${r.p99.toFixed(2).padStart(6)} ms  ${Math.round(r.perSec).toString().padStart(6)}/s`,
  );
}

const redis = await startRedis();
const cluster = await TestCluster.start(3, { fsync: flags.fsync as "always" | "never" });
try {
  await cluster.waitForLeader();
  const [n1] = cluster.nodes;
  await pushArtifact(n1, await buildSlice(SLICE));
  const r = await postBlueprint(
    n1,
    `id = "org.example.cachebench:bench:1.0.0"\n[[slices]]\n` +
      `artifact = "org.example.cachebench:cache-slice:1.0.0"\ninstances = 3\n`,
  );
  if (r.status !== 201) throw new Error(`blueprint: ${r.status} ${JSON.stringify(r.body)}`);
  await cluster.waitFor("3 instances on 3 nodes", async () => {
    const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.cachebench:cache-slice");
    const active = s?.instances.filter((i) => i.state === "ACTIVE" && i.connected) ?? [];
    return active.length === 3 && new Set(active.map((i) => i.node)).size === 3;
  }, 120_000);
  for (const node of cluster.nodes) {
    await cluster.waitFor(`${node.id} route`, async () => {
      const response = await fetch(`${node.httpUrl}/cache/noop`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: '{"name":"bench","key":"k"}',
      });
      await response.body?.cancel();
      return response.ok;
    }, 30_000);
  }
  const urls = cluster.nodes.map((n) => n.httpUrl);
  const post = async (i: number, path: string, body: string) => {
    const response = await fetch(`${urls[i % urls.length]}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${path}: ${response.status} ${text}`);
  };
  const key = (i: number) => `key-${i % KEYS}`;
  const keyBody = (i: number) => `{"name":"bench","key":"${key(i)}"}`;
  const putBody = (i: number) => `{"name":"bench","key":"${key(i)}","value":"${VALUE}"}`;
  // Warm-up: every key written once (so gets hit), and the HTTP connections and the slice paths warm.
  for (let i = 0; i < KEYS; i += 16) {
    await Promise.all(
      Array.from({ length: Math.min(16, KEYS - i) }, (_, j) => post(i + j, "/cache/put", putBody(i + j))),
    );
  }
  const warm = await Resp.connect(redis.port);
  for (let i = 0; i < KEYS; i++) await warm.command("SET", key(i), JSON.stringify(VALUE));
  warm.close();

  console.log(
    `cache get/put, 3 nodes (fsync ${flags.fsync}), ${OPS} ops over ${KEYS} keys, 64-byte values; ` +
      `Redis ${
        new TextDecoder().decode(
          (await new Deno.Command("redis-server", { args: ["--version"] }).output()).stdout,
        ).match(/v=(\S+)/)?.[1]
      } on loopback TCP`,
  );
  for (const concurrency of CONCURRENCY) {
    row(
      "aether slice call, no cache",
      concurrency,
      await loop(concurrency, (_c, i) => post(i, "/cache/noop", keyBody(i))),
    );
    row(
      "aether cache get (slice call)",
      concurrency,
      await loop(concurrency, (_c, i) => post(i, "/cache/get", keyBody(i))),
    );
    row(
      "aether cache put (slice call)",
      concurrency,
      await loop(concurrency, (_c, i) => post(i, "/cache/put", putBody(i))),
    );
    const clients = await Promise.all(Array.from({ length: concurrency }, () => Resp.connect(redis.port)));
    try {
      row(
        "redis GET (direct)",
        concurrency,
        await loop(concurrency, async (c, i) => {
          if ((await clients[c].command("GET", key(i))) === null) throw new Error(`redis: ${key(i)} missing`);
        }),
      );
      row(
        "redis SET (direct)",
        concurrency,
        await loop(concurrency, async (c, i) => {
          await clients[c].command("SET", key(i), JSON.stringify(VALUE));
        }),
      );
    } finally {
      for (const client of clients) client.close();
    }
  }
} finally {
  await cluster.close();
  redis.process.kill("SIGTERM");
  await redis.process.status;
}
