/**
 * Issue 21's services are slices too (issue 20 item 1): `http`, `db`, `pubsub`, `scheduler` and
 * `statemachine`, on 3 real node processes, one application slice requiring all five:
 *
 * - bootstrap by `requires`: when POST /blueprints returns, each service's bundled artifact is in the cluster's
 *   repository with the infra/dist digest and has an ACTIVE instance on every node;
 * - every call from the application, through every node, reaches the service slice: the per-method metrics of
 *   `aether.infra:<service>` count them (http.request, db.query, db.migrate, pubsub.publish, pubsub.subscribe,
 *   pubsub.info, scheduler.schedule, scheduler.run, scheduler.get, statemachine.send, statemachine.get);
 * - what stays with the nodes keeps working: a db transaction through every node (answered by the node that
 *   takes it: the db slice has no transaction methods, and the metrics count none), pub/sub deliveries and
 *   scheduled firings (driven by the nodes, calling the application's methods);
 * - instance counts: the services add one `aether.infra:*` instance per node per service, the application's
 *   own slice keeps its 3;
 * - the db slice scaled to one instance: transactions through the nodes without one still work (their calls
 *   never leave the node that took them), and the queries are counted on the one instance's node only.
 */

import { deepEqual, equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, postJson, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Json = Record<string, unknown>;
const SLICE = "org.example.wrap:app";
const SERVICES = ["http", "db", "pubsub", "scheduler", "statemachine"] as const;
const DIST = new URL("../../infra/dist/", import.meta.url);

function fixtureSource(port: number): string {
  const sdk = new URL("../../slices/mod.ts", import.meta.url).href;
  return `import { defineSlice } from ${JSON.stringify(sdk)};
const url = (path) => "http://127.0.0.1:${port}" + path;
export default defineSlice({
  coordinates: "${SLICE}:1.0.0",
  requires: ["http", "db", "pubsub", "scheduler", "statemachine"],
  outbound: ["127.0.0.1:${port}"],
  machines: {
    door: { initial: "closed", states: { closed: { on: { open: "open" } }, open: { on: { close: "closed" } } } },
  },
  http: {
    prefix: "/wrap",
    routes: {
      httpGet: "POST /http-get", httpPost: "POST /http-post", setup: "POST /setup", insert: "POST /insert",
      tx: "POST /tx", count: "POST /count", publish: "POST /publish", subscribe: "POST /subscribe",
      info: "POST /info", schedule: "POST /schedule", runJob: "POST /run-job", door: "POST /door",
      noop: "POST /noop",
    },
  },
  methods: {
    noop: () => ({}),
    async httpGet(req, ctx) {
      const r = await ctx.infra.http.request({ url: url(req.path) });
      return { status: r.status, body: r.body };
    },
    async httpPost(req, ctx) {
      const r = await ctx.infra.http.fetch(url("/post"), { method: "POST", body: req.body });
      return { status: r.status, body: r.body };
    },
    setup: (_req, ctx) =>
      ctx.infra.db("main").migrate([
        "CREATE TABLE items (n INTEGER NOT NULL, via TEXT NOT NULL)",
        "CREATE TABLE seen (what TEXT NOT NULL, n INTEGER NOT NULL)",
      ]),
    async insert(req, ctx) {
      await ctx.infra.db("main").query("INSERT INTO items (n, via) VALUES (?, ?)", [req.n, "query"]);
      return { ok: true };
    },
    tx: (req, ctx) =>
      ctx.infra.db("main").transaction(async (tx) => {
        await tx.query("INSERT INTO items (n, via) VALUES (?, ?)", [req.n, "tx"]);
        const r = await tx.query("SELECT count(*) AS c FROM items WHERE n = ?", [req.n]);
        return { inside: r.rows[0].c };
      }),
    async count(req, ctx) {
      const r = await ctx.infra.db("main").query(
        "SELECT count(*) AS c FROM " + (req.table === "seen" ? "seen WHERE what = ?" : "items WHERE via = ?"),
        [req.what],
      );
      return { count: r.rows[0].c };
    },
    publish: (req, ctx) => ctx.infra.topic("events").publish({ n: req.n }),
    subscribe: (_req, ctx) =>
      ctx.infra.topic("events").subscribe({ group: "g", method: "onEvent", from: "earliest" }),
    info: async (_req, ctx) => ({ info: await ctx.infra.topic("events").info() }),
    async onEvent(message, ctx) {
      await ctx.infra.db("main").query("INSERT INTO seen (what, n) VALUES (?, ?)", ["event", message.value.n]);
    },
    async schedule(req, ctx) {
      const job = ctx.infra.scheduler(req.job);
      await job.schedule({ delayMs: req.delayMs, method: "onTick", payload: { n: req.n }, replace: true });
      return { job: await job.get() };
    },
    runJob: (req, ctx) => ctx.infra.scheduler(req.job).run(),
    async onTick(req, ctx) {
      await ctx.infra.db("main").query("INSERT INTO seen (what, n) VALUES (?, ?)", ["tick", req.payload.n]);
    },
    async door(req, ctx) {
      const door = ctx.infra.machine("door");
      await door.send(req.id, req.event);
      return { state: (await door.get(req.id))?.state };
    },
  },
});
`;
}

async function post(node: NodeProcess, path: string, body: Json): Promise<Json> {
  const response = await fetch(`${node.httpUrl}/wrap/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  equal(response.status, 200, `${node.id} /wrap/${path}: ${text}`);
  return (text ? JSON.parse(text) : {}) as Json;
}

/** Calls the metrics counted for a slice's method, summed over the nodes (each node's /metrics: its own). */
async function callsCounted(nodes: readonly NodeProcess[], slice: string, method: string): Promise<number> {
  let total = 0;
  for (const node of nodes) {
    const text = await (await node.api("/metrics")).text();
    for (const line of text.split("\n")) {
      if (!line.startsWith("aether_slice_calls_total{")) continue;
      if (!line.includes(`"${slice}"`) || !line.includes(`method="${method}"`)) continue;
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}

/** Waits until the metrics count at least these calls per service method; the timeout names the counts. */
async function waitCounts(
  cluster: TestCluster,
  node: NodeProcess,
  expected: ReadonlyArray<[string, string, number]>,
): Promise<void> {
  let seen: string[] = [];
  try {
    await cluster.waitFor("the service slices' calls in the metrics", async () => {
      seen = [];
      for (const [service, method, count] of expected) {
        const counted = await callsCounted(cluster.nodes, `aether.infra:${service}`, method);
        seen.push(`${service}.${method} ${counted}/${count}`);
      }
      return expected.every(([, , count], i) => Number(seen[i].split(" ")[1].split("/")[0]) >= count);
    }, 30_000);
  } catch (e) {
    const text = await (await node.api("/metrics")).text();
    const lines = text.split("\n").filter((l) => l.startsWith("aether_slice_calls_total{")).slice(0, 40);
    throw new Error(`${(e as Error).message}: ${seen.join(", ")}\n${lines.join("\n")}`);
  }
}

Deno.test("http, db, pubsub, scheduler and statemachine are reached through their service slices", async (t) => {
  let posts = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.method === "POST") {
      posts++;
      return new Response(`got ${await req.text()}`);
    }
    return new Response(`hello ${new URL(req.url).pathname}`);
  });
  const dir = await Deno.makeTempDir({ prefix: "aether-infra-wrap-" });
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--outbound-allow", `127.0.0.1:${server.addr.port}`],
  });
  try {
    await cluster.waitForLeader();
    const [n1, n2] = cluster.nodes;
    const entry = `${dir}/app.ts`;
    await Deno.writeTextFile(entry, fixtureSource(server.addr.port));
    await pushArtifact(n1, await buildSlice(entry));

    await t.step("requires bootstraps every service slice before the app's change", async () => {
      const r = await postBlueprint(
        n1,
        `id = "${SLICE}:1.0.0"\n[[slices]]\nartifact = "${SLICE}:1.0.0"\ninstances = 3\n`,
      );
      equal(r.status, 201, JSON.stringify(r.body));
      const { body } = await n1.json<{ items: Array<{ coordinates: string; sha256: string }> }>(
        "/api/v1/artifacts",
      );
      const statuses = await sliceStatuses(n1);
      for (const service of SERVICES) {
        const manifest = JSON.parse(await Deno.readTextFile(new URL(`${service}-1.0.0.manifest.json`, DIST)));
        const published = body.items.find((a) => a.coordinates === `aether.infra:${service}:1.0.0`);
        equal(published?.sha256, manifest.sha256, `${service}: the bundled digest is published`);
        const s = statuses.find((x) => x.slice === `aether.infra:${service}`);
        equal(s?.instances.filter((i) => i.state === "ACTIVE").length, 3, `${service}: ACTIVE on every node`);
      }
      await cluster.waitFor("the app's 3 instances ACTIVE and routed everywhere", async () => {
        const s = (await sliceStatuses(n1)).find((x) => x.slice === SLICE);
        if (s?.instances.filter((i) => i.state === "ACTIVE" && i.connected).length !== 3) return false;
        for (const node of cluster.nodes) {
          const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
          if (!body.routes.some((route) => route.path === "/wrap/door")) return false;
        }
        return true;
      }, 120_000);
      // Instance counts: one instance of each service slice per node beside the app's own 3.
      const all = await sliceStatuses(n1);
      const own = all.filter((s) => !s.slice.startsWith("aether.infra:"));
      deepEqual(own.map((s) => [s.slice, s.instances.length]), [[SLICE, 3]]);
    });

    await t.step("every call through every node goes through the service slices", async () => {
      await post(n1, "setup", {});
      let n = 0;
      for (const node of cluster.nodes) {
        n++;
        deepEqual(await post(node, "http-get", { path: `/p${n}` }), { status: 200, body: `hello /p${n}` });
        deepEqual(await post(node, "http-post", { body: `b${n}` }), { status: 200, body: `got b${n}` });
        await post(node, "insert", { n });
        deepEqual(await post(node, "tx", { n: 100 + n }), { inside: 1 }, "a transaction through the node");
        await post(node, "publish", { n });
        await post(node, "door", { id: `d${n}`, event: "open" });
        equal((await post(node, "door", { id: `d${n}`, event: "close" })).state, "closed");
      }
      equal(posts, 3, "each POST sent once");
      equal((await post(n1, "count", { what: "query" })).count, 3);
      equal((await post(n2, "count", { what: "tx" })).count, 3);
      const expected: Array<[string, string, number]> = [
        ["http", "request", 6],
        ["db", "migrate", 1],
        ["db", "query", 3 + 2], // 3 inserts, 2 counts (the queries of transactions are not among them)
        ["pubsub", "publish", 3],
        ["statemachine", "send", 6],
        ["statemachine", "get", 6],
      ];
      await waitCounts(cluster, n1, expected);
      for (const method of ["begin", "queryIn", "commit", "rollback"]) {
        equal(
          await callsCounted(cluster.nodes, "aether.infra:db", method),
          0,
          `db.${method} is answered by the node`,
        );
      }
    });

    await t.step("deliveries and firings stay with the nodes and reach the app", async () => {
      await post(n1, "subscribe", {});
      const [a, b, c] = cluster.nodes;
      await post(b, "schedule", { job: "tick", delayMs: 300, n: 7 });
      await post(c, "schedule", { job: "manual", delayMs: 3_600_000, n: 8 });
      await post(a, "run-job", { job: "manual" });
      await cluster.waitFor("3 events delivered, the scheduled and the manual firing done", async () => {
        const events = (await post(a, "count", { table: "seen", what: "event" })).count as number;
        const ticks = (await post(b, "count", { table: "seen", what: "tick" })).count as number;
        return events >= 3 && ticks >= 2;
      }, 30_000);
      const info = (await post(c, "info", {})).info as { groups?: unknown } | null;
      ok(info, "the topic exists");
      await waitCounts(cluster, n1, [
        ["pubsub", "subscribe", 1],
        ["pubsub", "info", 1],
        ["scheduler", "schedule", 2],
        ["scheduler", "get", 2],
        ["scheduler", "run", 1],
      ]);
    });

    await t.step("figures: a call through a service slice against the same app call without it", async () => {
      const p50 = async (path: string, body: Json) => {
        const times: number[] = [];
        for (let i = 0; i < 100; i++) {
          const started = performance.now();
          await post(n1, path, body);
          times.push(performance.now() - started);
        }
        times.sort((a, b) => a - b);
        return `p50 ${times[50].toFixed(2)} ms, p99 ${times[98].toFixed(2)} ms`;
      };
      const lines = [
        `app call without infra: ${await p50("noop", {})}`,
        `ctx.infra.http GET: ${await p50("http-get", { path: "/f" })}`,
        `ctx.infra.db query (read): ${await p50("count", { what: "query" })}`,
      ];
      console.log(`through the service slices (n=100, sequential, via n1): ${lines.join("; ")}`);
    });

    await t.step(
      "db on one node only: transactions through every node stay correct, queries reach that instance",
      async () => {
        const scaled = await postJson(n1, "/api/v1/scale", { artifact: "aether.infra:db", instances: 1 });
        equal(scaled.status, 200, JSON.stringify(scaled.body));
        const host = await cluster.waitFor("aether.infra:db on exactly one node", async () => {
          const s = (await sliceStatuses(n1)).find((x) => x.slice === "aether.infra:db");
          const active = (s?.instances ?? []).filter((i) => i.state === "ACTIVE");
          return s?.instances.length === 1 && active.length === 1 ? active[0].node : undefined;
        }, 60_000);
        const before = await Promise.all(
          cluster.nodes.map((n) => callsCounted([n], "aether.infra:db", "query")),
        );
        let n = 200;
        for (const node of cluster.nodes) {
          n++;
          // Through a node without a db instance: begin, queryIn and commit stay on the node that took them.
          deepEqual(await post(node, "tx", { n }), { inside: 1 }, `a transaction through ${node.id}`);
          await post(node, "insert", { n });
        }
        equal((await post(n1, "count", { what: "tx" })).count, 6);
        await cluster.waitFor("the queries counted on the one db instance's node only", async () => {
          const after = await Promise.all(
            cluster.nodes.map((n) => callsCounted([n], "aether.infra:db", "query")),
          );
          return cluster.nodes.every((node, i) =>
            node.id === host ? after[i] - before[i] >= 4 : after[i] === before[i]
          );
        }, 30_000);
      },
    );
  } finally {
    await cluster.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
