/**
 * Infrastructure services on 3 real node processes: `requires` resolution (a missing service's message in the
 * seed's shape, bootstrap of kv and cache on a fresh cluster before the slice, reuse by a second blueprint),
 * the URL shortener through every node (shorten, 302 resolve, clicks), group isolation and undeclared
 * services (hostile-code rule), bad input, lock exclusion with growing fencing tokens, the atomic add never
 * going below its minimum under concurrent calls from three nodes, and kill -9 of a node under resolves.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";
import {
  MAX_GROUP_BYTES_PER_STORE,
  PARTITION_COUNT,
  partitionOf,
  partitionShare,
} from "../../runtime/infra-host/mod.ts";

type Json = Record<string, unknown>;

const LINKS = new URL("../../examples/url-shortener/links/slice.ts", import.meta.url).pathname;
const PROBE = new URL("../fixtures/infra/probe.ts", import.meta.url).pathname;
const CACHER = new URL("../fixtures/infra/cacher.ts", import.meta.url).pathname;
const BLUEPRINT = new URL("../../examples/url-shortener/blueprint.toml", import.meta.url).pathname;

async function call(node: NodeProcess, method: string, path: string, body?: unknown) {
  const response = await fetch(node.httpUrl + path, {
    method,
    redirect: "manual",
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
  });
  const text = await response.text();
  let parsed: Json = {};
  try {
    const value = text ? JSON.parse(text) : {};
    parsed = value !== null && typeof value === "object" ? value : { text: value };
  } catch {
    parsed = { text };
  }
  return { status: response.status, location: response.headers.get("location"), body: parsed };
}

async function storeNames(node: NodeProcess): Promise<string[]> {
  const { body } = await node.json<{ items: Array<{ name: string }> }>("/api/v1/stores");
  return body.items.map((s) => s.name);
}

async function waitActive(cluster: TestCluster, node: NodeProcess, slice: string, count: number) {
  await cluster.waitFor(`${slice} ${count} ACTIVE`, async () => {
    const s = (await sliceStatuses(node)).find((x) => x.slice === slice);
    return s !== undefined && s.instances.filter((i) => i.state === "ACTIVE" && i.connected).length >= count;
  }, 90_000);
}

async function waitRoute(cluster: TestCluster, path: string) {
  for (const node of cluster.running()) {
    await cluster.waitFor(`${node.id} routes ${path}`, async () => {
      const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
      return body.routes.some((r) => r.path === path);
    }, 30_000);
  }
}

Deno.test("infrastructure services on 3 nodes: requires, URL shortener, isolation, lock, add, kill -9", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;

    await t.step(
      "a blueprint requiring an unknown service fails with the missing name and the catalog",
      async () => {
        const r = await postBlueprint(
          n1,
          `id = "org.example:missing:1.0.0"\n[[slices]]\nartifact = "org.example.links:links:1.0.0"\n` +
            `requires = ["caching"]\n`,
        );
        equal(r.status, 404, JSON.stringify(r.body));
        const detail = String(r.body.detail);
        match(detail, /Required infrastructure service 'caching' not found\./);
        match(detail, /Available services in infrastructure repository:\n {2}- cache \(v1\.0\.0\)/);
        match(detail, /To add caching service:\n {2}aether infra install caching/);
        ok(!(await storeNames(n1)).includes("infra.kv"), "nothing was started");
      },
    );

    await pushArtifact(n1, await buildSlice(LINKS));
    await pushArtifact(n1, await buildSlice(PROBE));
    await pushArtifact(n1, await buildSlice(CACHER));

    await t.step(
      "bootstrap: kv and cache start before the slice; the shortener answers on every node",
      async () => {
        const r = await postBlueprint(n1, await Deno.readTextFile(BLUEPRINT));
        equal(r.status, 201, JSON.stringify(r.body));
        const names = await storeNames(n1);
        ok(names.includes("infra.kv") && names.includes("infra.cache"), JSON.stringify(names));
        await waitActive(cluster, n1, "org.example.links:links", 3);
        await waitRoute(cluster, "/u/links");
      },
    );

    let code = "";
    await t.step("shorten on n1, resolve on n2 and n3 (302), clicks counted across nodes", async () => {
      const created = await call(n1, "POST", "/u/links", { url: "https://example.org/a?b=1" });
      equal(created.status, 201, JSON.stringify(created.body));
      code = String(created.body.code);
      for (const node of [n2, n3, n2]) {
        const r = await call(node, "GET", `/u/r/${code}`);
        equal(r.status, 302, JSON.stringify(r.body));
        equal(r.location, "https://example.org/a?b=1");
      }
      const stats = await call(n3, "GET", `/u/links/${code}`);
      equal(stats.status, 200);
      equal(stats.body.clicks, 3);
      const bad = await call(n1, "POST", "/u/links", { url: "ftp://x" });
      equal(bad.status, 400);
      match(String(bad.body.detail), /url must be http or https/);
      equal((await call(n2, "GET", "/u/r/nosuchcode")).status, 404);
    });

    await t.step("reuse: a second blueprint requiring kv and lock reuses kv and starts lock", async () => {
      const r = await postBlueprint(
        n1,
        `id = "org.example.probe:probe:1.0.0"\n[[slices]]\nartifact = "org.example.probe:probe:1.0.0"\n` +
          `instances = 3\nrequires = ["kv", "lock"]\n`,
      );
      equal(r.status, 201, JSON.stringify(r.body));
      await waitActive(cluster, n1, "org.example.probe:probe", 3);
      await waitRoute(cluster, "/probe/kv-get");
    });

    await t.step("cache: every method across nodes, TTL, clear, getOrCompute, stats, bad input", async () => {
      const r = await postBlueprint(
        n1,
        `id = "org.example.cacher:cacher:1.0.0"\n[[slices]]\nartifact = "org.example.cacher:cacher:1.0.0"\n` +
          `instances = 3\n`,
      );
      equal(r.status, 201, JSON.stringify(r.body));
      await waitActive(cluster, n1, "org.example.cacher:cacher", 3);
      await waitRoute(cluster, "/cacher/run");
      const run = async (node: NodeProcess, op: Json) => {
        const answer = await call(node, "POST", "/cacher/run", { name: "sessions", ...op });
        return answer;
      };
      equal((await run(n1, { op: "put", key: "u1", value: { name: "ada" } })).status, 200);
      equal(JSON.stringify((await run(n2, { op: "get", key: "u1" })).body), `{"value":{"name":"ada"}}`);
      equal((await run(n3, { op: "putWithTtl", key: "short", value: 1, ttlMs: 300 })).status, 200);
      equal((await run(n1, { op: "get", key: "short" })).body.value, 1);
      await new Promise((resolve) => setTimeout(resolve, 600));
      equal((await run(n2, { op: "get", key: "short" })).body.value, null, "expired");
      equal((await run(n3, { op: "remove", key: "u1" })).body.text, true);
      equal((await run(n1, { op: "get", key: "u1" })).body.value, null);
      const first = await run(n1, { op: "getOrCompute", key: "c" });
      const second = await run(n2, { op: "getOrCompute", key: "c" });
      equal(
        JSON.stringify(second.body),
        JSON.stringify(first.body),
        "computed once, then read from the cache",
      );
      await run(n1, { op: "put", key: "x", value: "y" });
      equal((await run(n2, { op: "clear" })).status, 200);
      equal((await run(n3, { op: "get", key: "x" })).body.value, null, "cleared");
      equal((await run(n3, { op: "get", key: "c" })).body.value, null, "cleared");
      const stats = await run(n1, { op: "stats" });
      ok((stats.body.hits as number) >= 1 && (stats.body.misses as number) >= 1, JSON.stringify(stats.body));
      const badTtl = await run(n1, { op: "putWithTtl", key: "k", value: 1, ttlMs: 0 });
      equal(badTtl.status, 400);
      match(String(badTtl.body.detail), /cache\.put: ttlMs must be an integer from 1 to/);
      const badKey = await run(n2, { op: "get", key: "" });
      equal(badKey.status, 400);
      match(String(badKey.body.detail), /cache\.get: key must be a non-empty string/);
      const badName = await call(n2, "POST", "/cacher/run", { op: "get", name: "no spaces", key: "k" });
      ok(badName.status >= 400);
      match(String(badName.body.detail), /ctx\.infra\.cache\(name\): the name must be/);
    });

    await t.step("aether infra list|status|install and /api/v1/infra", async () => {
      const cli = (...args: string[]) =>
        runCli(["--connect", `127.0.0.1:${n2.ready!.apiPort}`, "--token", n2.options.token!, ...args]);
      const list = await cli("infra", "list");
      equal(list.code, 0, list.stderr);
      match(list.stdout, /SERVICE\s+VERSION\s+RUNNING/);
      match(list.stdout, /\bkv\s+1\.0\.0\s+yes/);
      match(list.stdout, /\block\s+1\.0\.0\s+yes/);
      const status = await cli("infra", "status", "cache");
      equal(status.code, 0, status.stderr);
      match(status.stdout, /store {4}infra\.cache/);
      const missing = await cli("infra", "install", "caching");
      ok(missing.code !== 0);
      match(missing.stderr, /Infrastructure service 'caching' not found/);
      match(missing.stderr, /No bundled service has that name/);
      const again = await n1.json<Json>("/api/v1/infra/kv/install", { method: "POST" });
      equal(again.status, 200);
      equal(again.body.installed, false);
      const bad = await n1.json<Json>("/api/v1/infra/Bad_Name");
      equal(bad.status, 400);
    });

    await t.step(
      "hostile: another group's slice sees none of the shortener's data, nor undeclared services",
      async () => {
        const read = await call(n2, "POST", "/probe/kv-get", { map: "links", key: code });
        equal(read.status, 200, JSON.stringify(read.body));
        equal(read.body.text ?? null, null, "the probe's kv map 'links' is its own (empty)");
        const cache = await call(n2, "POST", "/probe/cache-get", { name: "links", key: code });
        ok(cache.status >= 400, JSON.stringify(cache.body));
        match(String(cache.body.detail), /not among the infrastructure services this slice requires/);
        const raw = await call(n3, "POST", "/probe/raw", { key: "" });
        ok(raw.status >= 400);
        match(String(raw.body.detail), /kv\.put: key must be a non-empty string/);
      },
    );

    await t.step(
      "hostile: a group filling the kv is refused (QuotaExceeded) and starves no other group",
      async () => {
        // Keys of one partition of infra.kv: the probe's group may keep 2 × MAX_GROUP_BYTES_PER_STORE / 1024
        // bytes there (2 MiB): four values of 480 000 characters fit, the fifth is refused.
        const share = partitionShare(MAX_GROUP_BYTES_PER_STORE, PARTITION_COUNT);
        const names: string[] = [];
        for (let i = 0; names.length < 5; i++) {
          if (partitionOf(`org.example.probe/fenced/fill-${i}`) === 7) names.push(`fill-${i}`);
        }
        const value = "x".repeat(480_000);
        for (const [i, name] of names.slice(0, 4).entries()) {
          const r = await call(cluster.nodes[i % 3], "POST", "/probe/fenced-write", {
            name,
            token: 1,
            value,
          });
          equal(r.status, 200, JSON.stringify(r.body).slice(0, 300));
        }
        const refused = await call(n2, "POST", "/probe/fenced-write", { name: names[4], token: 1, value });
        equal(refused.status, 413, JSON.stringify(refused.body).slice(0, 500));
        const detail = String(refused.body.detail);
        match(detail, /group org\.example\.probe keeps \d+ bytes in partition 7/);
        match(detail, new RegExp(`share of ${share} bytes`));
        match(detail, /MAX_GROUP_BYTES_PER_STORE 1073741824 bytes per group per store/);
        equal(refused.body.title, "QuotaExceeded", JSON.stringify(refused.body).slice(0, 300));
        // Nothing stored was lost, the refused write left nothing, and another group still writes.
        const kept = await call(n3, "POST", "/probe/kv-get", { map: "fenced", key: names[0] });
        equal((kept.body as { value?: { value?: string } }).value?.value?.length, 480_000);
        const none = await call(n1, "POST", "/probe/kv-get", { map: "fenced", key: names[4] });
        equal(none.body.text ?? null, null);
        const other = await call(n1, "POST", "/u/links", { url: "https://example.org/after-the-fill" });
        equal(other.status, 201, JSON.stringify(other.body));
      },
    );

    await t.step("lock: one holder at a time, tokens grow, waiters get it after release", async () => {
      const attempts = await Promise.all(
        [n1, n2, n3].map((node) => call(node, "POST", "/probe/acquire", { name: "orders", ttlMs: 20_000 })),
      );
      const won = attempts.filter((a) => a.status === 200);
      equal(won.length, 1, JSON.stringify(attempts.map((a) => [a.status, a.body])));
      for (const lost of attempts.filter((a) => a.status !== 200)) match(String(lost.body.detail), /is held/);
      const first = won[0].body.token as number;
      const waiter = call(n2, "POST", "/probe/acquire", { name: "orders", waitMs: 10_000 });
      await new Promise((r) => setTimeout(r, 300));
      const released = await call(n3, "POST", "/probe/release", { name: "orders", token: first });
      equal(released.status, 200);
      const second = await waiter;
      equal(second.status, 200, JSON.stringify(second.body));
      ok((second.body.token as number) > first, `${second.body.token} > ${first}`);
      const stale = await call(n1, "POST", "/probe/release", { name: "orders", token: first });
      equal(stale.body.text ?? stale.body, false, "a stale token releases nothing");
    });

    await t.step(
      "atomic add with a minimum: 30 concurrent takes of 1 from a stock of 20 from 3 nodes",
      async () => {
        equal(
          (await call(n1, "POST", "/probe/kv-add", { map: "stock", key: "apple", delta: 20 })).status,
          200,
        );
        const takes = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            call(cluster.nodes[i % 3], "POST", "/probe/kv-add", {
              map: "stock",
              key: "apple",
              delta: -1,
              min: 0,
            })),
        );
        const ok200 = takes.filter((r) => r.status === 200).length;
        const refused = takes.filter((r) => r.status === 409 && /below 0/.test(String(r.body.detail))).length;
        equal(ok200, 20, JSON.stringify(takes.map((r) => [r.status, r.body.detail ?? r.body.value])));
        equal(refused, 10);
        const left = await call(n2, "POST", "/probe/kv-get", { map: "stock", key: "apple" });
        equal((left.body as { value: number }).value, 0);
      },
    );

    await t.step(
      "kill -9 of a node under resolves: >= 99.9% of resolves through the others succeed",
      async () => {
        const codes: string[] = [];
        for (let i = 0; i < 20; i++) {
          const r = await call(cluster.nodes[i % 3], "POST", "/u/links", { url: `https://example.org/${i}` });
          equal(r.status, 201, JSON.stringify(r.body));
          codes.push(String(r.body.code));
        }
        const victim = n3;
        const survivors = [n1, n2];
        let sent = 0;
        let good = 0;
        const failures: string[] = [];
        const endAt = Date.now() + 8_000;
        const killAt = Date.now() + 2_000;
        let killed = false;
        const workers = Array.from({ length: 16 }, async (_, w) => {
          while (Date.now() < endAt) {
            if (!killed && Date.now() >= killAt) {
              killed = true;
              await victim.stop("SIGKILL");
            }
            const node = survivors[(sent + w) % 2];
            const c = codes[sent % codes.length];
            sent++;
            const r = await call(node, "GET", `/u/r/${c}`).catch((e) => ({
              status: 0,
              body: { e: String(e) },
            }));
            if (r.status === 302) good++;
            else failures.push(`${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
          }
        });
        await Promise.all(workers);
        const rate = good / sent;
        console.log(
          `resolves: ${sent} sent in 8 s, ${good} ok (${(rate * 100).toFixed(3)}%) around a kill -9; failed:`,
          failures,
        );
        ok(rate >= 0.999, `${rate} ${failures.slice(0, 5).join("; ")}`);
        let clicks = 0;
        for (const c of codes) {
          const stats = await call(n1, "GET", `/u/links/${c}`);
          equal(stats.status, 200, `link ${c} is kept`);
          clicks += stats.body.clicks as number;
        }
        equal(clicks, good, "every acknowledged click is counted once");
      },
    );
  } finally {
    await cluster.close();
  }
});
