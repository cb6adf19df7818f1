/**
 * Pub/sub on a 3-member cluster on loopback against NATS (Debian's `nats-server`) in the same run:
 *
 * - `aether publish`: POST /bench/publish to the nodes in turn; the slice (tests/bench/_pubsub_bench_slice.ts,
 *   one instance per node) calls ctx.infra.topic("bench").publish(value, {key}): one consensus transaction,
 *   acknowledged once a majority has it durably (`--fsync always`, the default) and the node applied it;
 * - `aether slice call, no publish`: the same HTTP request and slice call without the publish;
 * - `aether end-to-end`: from the client's send time to the subscriber slice's receipt (one consumer group,
 *   delivered by the leader through the invoker), measured while the publish row runs;
 * - `consensus KV put (API)` and `partitioned store put (API)`: the two places messages could be kept, written
 *   alone through the management API (PUT /api/v1/kv/app/..., PUT /api/v1/stores/bench.pubsub/entries/...):
 *   what chose the consensus KV;
 * - `nats core publish`: PUB + PING/PONG (the server has it, nothing stored), subscriber on another connection;
 * - `nats jetstream publish`: a JetStream stream with 3 replicas on 3 clustered `nats-server`s (file storage),
 *   PUB with a reply subject, waiting for the stream's ack (stored on a majority); end-to-end through a push
 *   consumer with explicit acks.
 *
 * The same client loop drives all (--ops operations, --concurrency callers, --keys partition keys, 64-byte
 * values). NATS's client speaks its protocol over TCP directly, with no HTTP hop and no slice call: compare
 * the aether rows with both the NATS rows and the no-publish slice row. Ratios: aether / NATS JetStream.
 *
 * Flags: --ops 2000 --concurrency 1,16 --keys 64 --partitions 8 --fsync always|never
 * Run: npx -y deno@2.9.6 run -A --unstable-worker-options tests/bench/pubsub_bench.ts
 */

import { parseArgs } from "node:util";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import { freePort } from "../../runtime/forge/mod.ts";

const { values: flags } = parseArgs({
  options: {
    ops: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "1,16" },
    keys: { type: "string", default: "64" },
    partitions: { type: "string", default: "8" },
    fsync: { type: "string", default: "always" },
  },
});
const OPS = Number(flags.ops);
const CONCURRENCY = flags.concurrency!.split(",").map(Number);
const KEYS = Number(flags.keys);
const PARTITIONS = Number(flags.partitions);
const SLICE = new URL("./_pubsub_bench_slice.ts", import.meta.url).pathname;
const PAD = "x".repeat(30);

interface Row {
  p50: number;
  p99: number;
  perSec: number;
}

function quantiles(times: number[]): { p50: number; p99: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99) };
}

/** The client loop: OPS calls of `one(caller, i)` by `concurrency` callers. */
async function loop(concurrency: number, one: (caller: number, i: number) => Promise<void>): Promise<Row> {
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
  return { ...quantiles(times), perSec: (OPS * 1000) / (performance.now() - started) };
}

function line(name: string, c: number, r: Row | { p50: number; p99: number }): string {
  const rate = "perSec" in r ? `${r.perSec.toFixed(0).padStart(7)}/s` : "";
  return `  ${name.padEnd(34)} c=${String(c).padStart(2)}  p50 ${r.p50.toFixed(2).padStart(7)} ms  p99 ${
    r.p99.toFixed(2).padStart(7)
  } ms  ${rate}`;
}

// ---------------------------------------------------------------------------------------------------------
// A minimal NATS client (the text protocol over TCP): PUB, SUB, request/reply, PING/PONG.

class Nats {
  #conn!: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #pongs: Array<() => void> = [];
  #subs = new Map<string, (payload: string, reply: string | undefined, subject: string) => void>();
  #sid = 0;
  #encoder = new TextEncoder();
  #decoder = new TextDecoder();
  #pending: string[] = [];
  #flushScheduled = false;

  static async connect(port: number): Promise<Nats> {
    const nats = new Nats();
    nats.#conn = await Deno.connect({ hostname: "127.0.0.1", port });
    nats.#conn.setNoDelay(true);
    void nats.#read();
    nats.#write('CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n');
    await nats.ping();
    return nats;
  }

  #write(text: string): void {
    this.#pending.push(text);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(async () => {
      this.#flushScheduled = false;
      const data = this.#encoder.encode(this.#pending.join(""));
      this.#pending = [];
      let written = 0;
      while (written < data.length) written += await this.#conn.write(data.subarray(written));
    });
  }

  ping(): Promise<void> {
    return new Promise((resolve) => {
      this.#pongs.push(resolve);
      this.#write("PING\r\n");
    });
  }

  publish(subject: string, payload: string, reply?: string): void {
    const bytes = this.#encoder.encode(payload).length;
    this.#write(`PUB ${subject}${reply ? ` ${reply}` : ""} ${bytes}\r\n${payload}\r\n`);
  }

  subscribe(subject: string, handler: (payload: string, reply: string | undefined, subject: string) => void) {
    const sid = String(++this.#sid);
    this.#subs.set(sid, handler);
    this.#write(`SUB ${subject} ${sid}\r\n`);
  }

  #inbox = `_INBOX.${crypto.randomUUID().replaceAll("-", "")}`;
  #replies = new Map<string, (payload: string) => void>();
  #inboxReady = false;

  request(subject: string, payload: string, timeoutMs = 10_000): Promise<string> {
    if (!this.#inboxReady) {
      this.#inboxReady = true;
      this.subscribe(`${this.#inbox}.*`, (p, _r, s) => {
        this.#replies.get(s)?.(p);
        this.#replies.delete(s);
      });
    }
    const reply = `${this.#inbox}.${++this.#sid}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats request ${subject} timed out`)), timeoutMs);
      this.#replies.set(reply, (p) => {
        clearTimeout(timer);
        resolve(p);
      });
      this.publish(subject, payload, reply);
    });
  }

  async #read(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    for (;;) {
      let n: number | null;
      try {
        n = await this.#conn.read(chunk);
      } catch {
        return;
      }
      if (n === null) return;
      const merged = new Uint8Array(this.#buffer.length + n);
      merged.set(this.#buffer);
      merged.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = merged;
      this.#parse();
    }
  }

  #parse(): void {
    for (;;) {
      const end = this.#buffer.indexOf(13);
      if (end < 0 || this.#buffer[end + 1] !== 10) return;
      const head = this.#decoder.decode(this.#buffer.subarray(0, end));
      if (head.startsWith("MSG ")) {
        const parts = head.split(" ");
        const size = Number(parts[parts.length - 1]);
        if (this.#buffer.length < end + 2 + size + 2) return;
        const payload = this.#decoder.decode(this.#buffer.subarray(end + 2, end + 2 + size));
        this.#buffer = this.#buffer.subarray(end + 2 + size + 2);
        const [, subject, sid] = parts;
        const reply = parts.length === 5 ? parts[3] : undefined;
        this.#subs.get(sid)?.(payload, reply, subject);
        continue;
      }
      this.#buffer = this.#buffer.subarray(end + 2);
      if (head === "PING") this.#write("PONG\r\n");
      else if (head === "PONG") this.#pongs.shift()?.();
      else if (head.startsWith("-ERR")) console.error(`nats: ${head}`);
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/** Starts nats-server processes: one plain, or `count` clustered with JetStream. */
async function startNats(count: number, jetstream: boolean) {
  const root = await Deno.makeTempDir({ prefix: "aether-nats-" });
  const ports = Array.from({ length: count }, () => ({ client: freePort(), cluster: freePort() }));
  const children = ports.map((p, i) => {
    const args = ["-a", "127.0.0.1", "-p", String(p.client), "-n", `nats${i + 1}`];
    if (jetstream) args.push("-js", "-sd", `${root}/n${i + 1}`);
    if (count > 1) {
      args.push("--cluster_name", "bench", "--cluster", `nats://127.0.0.1:${p.cluster}`);
      args.push(
        "--routes",
        ports.filter((_, j) => j !== i).map((q) => `nats://127.0.0.1:${q.cluster}`).join(","),
      );
    }
    return new Deno.Command("nats-server", { args, stdout: "null", stderr: "null" }).spawn();
  });
  const deadline = Date.now() + 20_000;
  for (const p of ports) {
    for (;;) {
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port: p.client })).close();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error("nats-server did not start");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
  return {
    ports: ports.map((p) => p.client),
    async stop() {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* gone */ }
        await c.status;
      }
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------------------------------------

async function benchAether(): Promise<Map<string, Row>> {
  const results = new Map<string, Row>();
  const cluster = await TestCluster.start(3, { fsync: flags.fsync as "always" | "never" });
  try {
    await cluster.waitForLeader();
    const built = await buildSlice(SLICE);
    await cluster.waitFor("push", () => pushArtifact(cluster.nodes[0], built).then(() => true), 30_000);
    const id = "org.example.bench:pubsub:1.0.0";
    // Retried: on a loaded machine the bundled service slice's transfer may time out once.
    await cluster.waitFor("blueprint applied", async () => {
      const r = await postBlueprint(
        cluster.nodes[0],
        `id = "${id}"\n[[slices]]\nartifact = "${id}"\ninstances = 3\nrequires = ["pubsub"]\n`,
      );
      if (r.status !== 201) throw new Error(`blueprint: ${JSON.stringify(r.body)}`);
      return true;
    }, 120_000);
    await cluster.waitFor("bench slice ACTIVE on 3 nodes", async () => {
      const s = (await sliceStatuses(cluster.nodes[0])).find((x) => x.slice === "org.example.bench:pubsub");
      return s !== undefined && s.instances.filter((i) => i.state === "ACTIVE").length === 3;
    }, 120_000);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} routes`, async () => {
        const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
        return body.routes.some((x) => x.path === "/bench/stats");
      }, 30_000);
    }
    const post = async (i: number, path: string, body: unknown) => {
      const node = cluster.nodes[i % cluster.nodes.length];
      const response = await fetch(node.httpUrl + path, {
        method: "POST",
        body: JSON.stringify(body),
        headers: { "content-type": "application/json" },
      });
      const text = await response.text();
      if (response.status !== 200) throw new Error(`${path}: ${response.status} ${text}`);
      return JSON.parse(text);
    };
    // The two stores the messages could live on, written alone through the management API (same HTTP hop).
    const api = async (i: number, method: string, path: string, body: string) => {
      const response = await cluster.nodes[i % cluster.nodes.length].api(path, {
        method,
        body,
        headers: { "content-type": "application/json" },
      });
      const text = await response.text();
      if (response.status >= 300) throw new Error(`${path}: ${response.status} ${text}`);
    };
    await api(0, "POST", "/api/v1/stores", JSON.stringify({ name: "bench.pubsub" }));
    const value = JSON.stringify({ value: PAD + PAD });
    for (const c of CONCURRENCY) {
      results.set(
        `kv c=${c}`,
        await loop(c, (caller, i) => api(caller + i, "PUT", `/api/v1/kv/app/bench/k${i % KEYS}`, value)),
      );
      results.set(
        `store c=${c}`,
        await loop(
          c,
          (caller, i) => api(caller + i, "PUT", `/api/v1/stores/bench.pubsub/entries/k${i % KEYS}`, value),
        ),
      );
    }
    await post(0, "/bench/subscribe", { topic: "bench", group: "bench", partitions: PARTITIONS });
    const collect = async (expected: number) => {
      const latencies: number[] = [];
      const deadline = Date.now() + 60_000;
      while (latencies.length < expected && Date.now() < deadline) {
        for (let i = 0; i < 3; i++) latencies.push(...(await post(i, "/bench/stats", {})).latencies);
        if (latencies.length < expected) await new Promise((r) => setTimeout(r, 200));
      }
      return latencies;
    };
    // Warm-up (not measured).
    for (let i = 0; i < 50; i++) {
      await post(i, "/bench/publish", { topic: "bench", key: `k${i % KEYS}`, value: {} });
    }
    await collect(0);
    await new Promise((r) => setTimeout(r, 1_000));
    await collect(0);
    for (const c of CONCURRENCY) {
      results.set(`noop c=${c}`, await loop(c, (caller, i) => post(caller + i, "/bench/noop", {})));
      const publish = await loop(c, (caller, i) =>
        post(caller + i, "/bench/publish", {
          topic: "bench",
          key: `k${i % KEYS}`,
          value: { sentAtMs: Date.now(), pad: PAD },
        }));
      results.set(`publish c=${c}`, publish);
      const latencies = await collect(OPS);
      const q = quantiles(latencies);
      results.set(`e2e c=${c}`, { ...q, perSec: NaN });
      if (latencies.length < OPS) {
        console.log(`  (aether: ${latencies.length} of ${OPS} deliveries seen in 60 s)`);
      }
    }
  } finally {
    await cluster.close();
  }
  return results;
}

async function benchNats(jetstream: boolean): Promise<Map<string, Row>> {
  const results = new Map<string, Row>();
  const servers = await startNats(jetstream ? 3 : 1, jetstream);
  try {
    const maxC = Math.max(...CONCURRENCY);
    const clients = await Promise.all(
      Array.from({ length: maxC }, (_, i) => Nats.connect(servers.ports[i % servers.ports.length])),
    );
    const consumer = await Nats.connect(servers.ports[0]);
    let latencies: number[] = [];
    if (jetstream) {
      // A stream with 3 replicas on file storage, and a push consumer with explicit acks.
      for (let attempt = 0;; attempt++) {
        // No answer at all while the JetStream cluster has no meta leader yet: ask again.
        const answer = await clients[0].request(
          "$JS.API.STREAM.CREATE.BENCH",
          JSON.stringify({ name: "BENCH", subjects: ["bench.>"], num_replicas: 3, storage: "file" }),
          2_000,
        ).then((text) => JSON.parse(text), (e) => ({ error: String(e) }));
        if (!answer.error) break;
        if (attempt > 50) throw new Error(`stream create: ${JSON.stringify(answer.error)}`);
        await new Promise((r) => setTimeout(r, 300)); // the JetStream cluster is still electing its meta leader
      }
      consumer.subscribe("deliver.bench", (payload, reply) => {
        latencies.push(Date.now() - JSON.parse(payload).sentAtMs);
        if (reply) consumer.publish(reply, "+ACK");
      });
      await consumer.ping();
      const created = JSON.parse(
        await clients[0].request(
          "$JS.API.CONSUMER.CREATE.BENCH",
          JSON.stringify({
            stream_name: "BENCH",
            config: { deliver_subject: "deliver.bench", ack_policy: "explicit", deliver_policy: "new" },
          }),
        ),
      );
      if (created.error) throw new Error(`consumer create: ${JSON.stringify(created.error)}`);
    } else {
      consumer.subscribe("bench.>", (payload) => latencies.push(Date.now() - JSON.parse(payload).sentAtMs));
      await consumer.ping();
    }
    const publishOne = async (caller: number, i: number) => {
      const payload = JSON.stringify({ sentAtMs: Date.now(), pad: PAD });
      const subject = `bench.k${i % KEYS}`;
      if (jetstream) {
        const ack = JSON.parse(await clients[caller].request(subject, payload));
        if (ack.error) throw new Error(`publish: ${JSON.stringify(ack.error)}`);
      } else {
        clients[caller].publish(subject, payload);
        await clients[caller].ping();
      }
    };
    for (let i = 0; i < 50; i++) await publishOne(0, i);
    await new Promise((r) => setTimeout(r, 500));
    for (const c of CONCURRENCY) {
      latencies = [];
      results.set(`publish c=${c}`, await loop(c, publishOne));
      const deadline = Date.now() + 30_000;
      while (latencies.length < OPS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      results.set(`e2e c=${c}`, { ...quantiles(latencies), perSec: NaN });
    }
    for (const client of [...clients, consumer]) client.close();
  } finally {
    await servers.stop();
  }
  return results;
}

const version = new TextDecoder().decode(
  (await new Deno.Command("nats-server", { args: ["--version"], stdout: "piped" }).output()).stdout,
).trim();
console.log(
  `pub/sub, 3 nodes (fsync ${flags.fsync}), ${OPS} messages per row over ${KEYS} keys, ${PARTITIONS} partitions, ` +
    `~64-byte values; ${version} on loopback TCP`,
);
const aether = await benchAether();
const core = await benchNats(false);
const js = await benchNats(true);
for (const c of CONCURRENCY) {
  console.log(line("aether slice call, no publish", c, aether.get(`noop c=${c}`)!));
  console.log(line("consensus KV put (API)", c, aether.get(`kv c=${c}`)!));
  console.log(line("partitioned store put (API)", c, aether.get(`store c=${c}`)!));
  console.log(line("aether publish (slice call)", c, aether.get(`publish c=${c}`)!));
  console.log(line("aether end-to-end delivery", c, aether.get(`e2e c=${c}`)!));
  console.log(line("nats core publish + flush", c, core.get(`publish c=${c}`)!));
  console.log(line("nats core end-to-end", c, core.get(`e2e c=${c}`)!));
  console.log(line("nats jetstream R3 publish (acked)", c, js.get(`publish c=${c}`)!));
  console.log(line("nats jetstream R3 end-to-end", c, js.get(`e2e c=${c}`)!));
  const a = aether.get(`publish c=${c}`)!, j = js.get(`publish c=${c}`)!;
  const ae = aether.get(`e2e c=${c}`)!, je = js.get(`e2e c=${c}`)!;
  console.log(
    `  ratio aether / jetstream c=${c}: publish throughput ${(a.perSec / j.perSec).toFixed(2)}x, ` +
      `publish p50 ${(a.p50 / j.p50).toFixed(1)}x, end-to-end p50 ${(ae.p50 / je.p50).toFixed(1)}x`,
  );
}
