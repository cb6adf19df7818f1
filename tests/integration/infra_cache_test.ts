/**
 * The cache's configuration and LRU eviction on 3 real node processes (one instance of
 * fixtures/cache_slice.ts, so every cache call is served by one node and the order of use is the test's):
 * eviction by entries (least recently used first, a read saves a key), by bytes, shrinking a cache evicts at
 * once, the default TTL, bad configuration refused with the field named, and the counters (hits, misses,
 * evictions, entries, bytes) in the call's stats and in the cluster's metrics.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";

type Json = Record<string, unknown>;

const SLICE = new URL("./fixtures/cache_slice.ts", import.meta.url).pathname;

async function op(node: NodeProcess, body: Json): Promise<{ status: number; body: Json }> {
  const response = await fetch(`${node.httpUrl}/cache/op`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as Json };
}

Deno.test("cache on 3 nodes: per-cache config, LRU eviction by entries and bytes, default TTL, stats", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    await pushArtifact(n1, await buildSlice(SLICE));
    const r = await postBlueprint(
      n1,
      `id = "org.example.cachebench:cache:1.0.0"\n[[slices]]\n` +
        `artifact = "org.example.cachebench:cache-slice:1.0.0"\ninstances = 1\n`,
    );
    equal(r.status, 201, JSON.stringify(r.body));
    await cluster.waitFor("one ACTIVE instance", async () => {
      const s = (await sliceStatuses(n1)).find((x) => x.slice === "org.example.cachebench:cache-slice");
      return s !== undefined && s.instances.some((i) => i.state === "ACTIVE" && i.connected);
    }, 90_000);
    for (const node of cluster.nodes) {
      await cluster.waitFor(`${node.id} routes /cache/op`, async () => {
        const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
        return body.routes.some((x) => x.path === "/cache/op");
      }, 30_000);
    }
    const get = async (node: NodeProcess, name: string, key: string) => {
      const answer = await op(node, { op: "get", name, key });
      equal(answer.status, 200, JSON.stringify(answer.body));
      return answer.body.value;
    };
    const put = async (node: NodeProcess, name: string, key: string, value: unknown) => {
      const answer = await op(node, { op: "put", name, key, value });
      equal(answer.status, 200, JSON.stringify(answer.body));
    };

    await t.step("bad configuration is refused, naming the field and the allowed range", async () => {
      const negative = await op(n1, { op: "configure", name: "c", config: { maxEntries: -1 } });
      equal(negative.status, 400, JSON.stringify(negative.body));
      match(String(negative.body.detail), /cache\.configure: maxEntries must be an integer from 0 .* got -1/);
      const text = await op(n2, { op: "configure", name: "c", config: { maxBytes: "1MB" } });
      equal(text.status, 400);
      match(String(text.body.detail), /cache\.configure: maxBytes must be an integer .* got "1MB"/);
      const ttl = await op(n3, { op: "configure", name: "c", config: { defaultTtlMs: 1.5 } });
      equal(ttl.status, 400);
      match(String(ttl.body.detail), /cache\.configure: defaultTtlMs must be an integer from 0/);
      const unknown = await op(n1, { op: "configure", name: "c", config: { maxEntires: 3 } });
      equal(unknown.status, 400);
      match(String(unknown.body.detail), /cache\.configure: unknown field "maxEntires"/);
    });

    await t.step("by entries: the least recently used key leaves; a read saves a key", async () => {
      const set = await op(n1, { op: "configure", name: "lru", config: { maxEntries: 3 } });
      equal(set.status, 200, JSON.stringify(set.body));
      deepEqual(set.body, { defaultTtlMs: null, maxEntries: 3, maxBytes: 0 });
      await put(n1, "lru", "a", 1);
      await put(n2, "lru", "b", 2);
      await put(n3, "lru", "c", 3);
      equal(await get(n1, "lru", "a"), 1); // a is now the most recently used: b is the oldest
      await put(n2, "lru", "d", 4);
      equal(await get(n3, "lru", "b"), null, "b was evicted");
      equal(await get(n1, "lru", "a"), 1);
      equal(await get(n1, "lru", "c"), 3);
      equal(await get(n1, "lru", "d"), 4);
      await put(n1, "lru", "e", 5); // order was a, c, d: a leaves
      equal(await get(n2, "lru", "a"), null, "a was evicted");
      const stats = (await op(n3, { op: "stats", name: "lru" })).body;
      equal(stats.evictions, 2, JSON.stringify(stats));
      equal(stats.entries, 3, JSON.stringify(stats));
      equal(stats.maxEntries, 3);
      equal(stats.misses, 2, JSON.stringify(stats));
      equal(stats.hits, 4, JSON.stringify(stats));
    });

    await t.step("by bytes: oldest keys leave until key + value bytes fit", async () => {
      await op(n1, { op: "configure", name: "bytes", config: { maxBytes: 100 } });
      const value = "x".repeat(38); // JSON "xxx…" = 40 bytes, key 1 byte: 41 per entry
      await put(n1, "bytes", "a", value);
      await put(n1, "bytes", "b", value);
      let stats = (await op(n1, { op: "stats", name: "bytes" })).body;
      equal(stats.bytes, 82, JSON.stringify(stats));
      await put(n2, "bytes", "c", value);
      equal(await get(n1, "bytes", "a"), null, "a was evicted to fit c");
      equal(await get(n1, "bytes", "b"), value);
      equal(await get(n1, "bytes", "c"), value);
      stats = (await op(n1, { op: "stats", name: "bytes" })).body;
      equal(stats.bytes, 82, JSON.stringify(stats));
      equal(stats.evictions, 1, JSON.stringify(stats));
    });

    await t.step("shrinking a cache evicts at once; clear empties its index", async () => {
      for (const k of ["p", "q", "r", "s"]) await put(n1, "shrink", k, k);
      await op(n2, { op: "configure", name: "shrink", config: { maxEntries: 10 } });
      for (const k of ["t", "u"]) await put(n1, "shrink", k, k); // tracked: p, q, r, s, t, u
      await op(n3, { op: "configure", name: "shrink", config: { maxEntries: 1 } });
      equal(await get(n1, "shrink", "t"), null, "t evicted by the smaller bound");
      equal(await get(n1, "shrink", "u"), "u");
      // Keys put while the cache was unbounded are tracked too (so an unbounded cache reports its size).
      equal(await get(n1, "shrink", "p"), null, "p, put before the cache had bounds, evicted too");
      await op(n1, { op: "clear", name: "shrink" });
      const stats = (await op(n1, { op: "stats", name: "shrink" })).body;
      equal(stats.entries, 0, JSON.stringify(stats));
      equal(await get(n1, "shrink", "u"), null);
    });

    await t.step("default TTL: puts without a TTL expire after it", async () => {
      await op(n1, { op: "configure", name: "ttl", config: { defaultTtlMs: 400 } });
      await put(n1, "ttl", "k", "v");
      const ttlOwn = await op(n2, { op: "putWithTtl", name: "ttl", key: "long", value: 1, ttlMs: 60_000 });
      equal(ttlOwn.status, 200);
      equal(await get(n2, "ttl", "k"), "v");
      await new Promise((resolve) => setTimeout(resolve, 900));
      equal(await get(n3, "ttl", "k"), null, "expired by the default TTL");
      equal(await get(n3, "ttl", "long"), 1, "an explicit TTL wins");
      equal((await op(n1, { op: "stats", name: "ttl" })).body.defaultTtlMs, 400);
    });

    await t.step("operators: aether infra cache set|show, PUT/GET /api/v1/caches, bad input", async () => {
      const cli = (...args: string[]) =>
        runCli(["--connect", `127.0.0.1:${n2.ready!.apiPort}`, "--token", n2.options.token!, ...args]);
      const set = await cli(
        "infra",
        "cache",
        "set",
        "org.example.cachebench",
        "ops",
        "--max-entries",
        "2",
        "--max-bytes",
        "1KiB",
        "--default-ttl",
        "5m",
      );
      equal(set.code, 0, set.stderr);
      match(set.stdout, /default TTL {2}300000 ms/);
      match(set.stdout, /max entries {2}2 \(per node\)/);
      match(set.stdout, /max bytes {4}1024 B \(per node\)/);
      for (const k of ["a", "b", "c"]) await put(n3, "ops", k, k); // the slice's calls obey the operator's bound
      equal(await get(n1, "ops", "a"), null, "a evicted by the bound set through the API");
      const show = await cli("infra", "cache", "show", "org.example.cachebench", "ops");
      equal(show.code, 0, show.stderr);
      match(show.stdout, /max entries {2}2 \(per node\)/);
      const badTtl = await cli(
        "infra",
        "cache",
        "set",
        "org.example.cachebench",
        "ops",
        "--default-ttl",
        "soon",
      );
      ok(badTtl.code !== 0);
      match(badTtl.stderr, /--default-ttl "soon" is not a duration like 60s/);
      const api = (method: string, path: string, body?: unknown) =>
        n1.json<Json>(path, {
          method,
          ...(body === undefined
            ? {}
            : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
        });
      const badBody = await api("PUT", "/api/v1/caches/org.example.cachebench/ops", { maxEntries: "many" });
      equal(badBody.status, 400, JSON.stringify(badBody.body));
      match(String(badBody.body.detail), /maxEntries must be an integer from 0/);
      const badGroup = await api("PUT", "/api/v1/caches/-bad/ops", { maxEntries: 1 });
      equal(badGroup.status, 400, JSON.stringify(badGroup.body));
      match(String(badGroup.body.detail), /path group "-bad": expected a slice group/);
      const shown = await api("GET", "/api/v1/caches/org.example.cachebench/ops");
      equal(shown.status, 200);
      equal(shown.body.maxEntries, 2);
      equal(shown.body.defaultTtlMs, 300_000);
    });

    await t.step("the metrics carry each cache's counters, merged over the nodes", async () => {
      await cluster.waitFor("cache series in the cluster snapshot", async () => {
        const { body } = await n2.json<{ caches?: Array<Json> }>("/api/v1/metrics");
        const lru = body.caches?.find((c) => c.cache === "org.example.cachebench/lru");
        return lru !== undefined && lru.evictions === 2 && lru.entries === 3 && (lru.hits as number) >= 4;
      }, 15_000);
      const text = await (await n1.api("/metrics")).text();
      match(text, /aether_cache_evictions_total\{[^}]*cache="org\.example\.cachebench\/lru"[^}]*\} 2/);
      ok(/aether_cache_entries\{[^}]*cache="org\.example\.cachebench\/bytes"[^}]*\} 2/.test(text), text);
    });
  } finally {
    await cluster.close();
  }
});
