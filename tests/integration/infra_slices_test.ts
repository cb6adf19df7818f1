/**
 * Infrastructure services ARE slices (issue 20 item 1, seed 004), on 3 real node processes:
 *
 * - reserved group: a user's artifact in `aether.infra` is refused (403, reason reserved_group), publish and
 *   delete alike, so nothing but the runtime's bundled digest ever runs there;
 * - a missing service fails the blueprint with the seed's message and publishes nothing;
 * - bootstrap on a fresh cluster: when POST /blueprints returns, the bundled artifacts of `lock` and `cache`
 *   are in the cluster's repository (the digest of infra/dist), their slices have an ACTIVE instance on every
 *   node, in the order `requires` names them (lock's target created first); the app's slice comes after;
 * - calls go through the invoker to the service slice (the per-method metrics of `aether.infra:cache` count
 *   them), the app's entries are scoped to its group;
 * - reuse: a second blueprint requiring the cache changes neither the artifact nor the service's target;
 * - hostile: another group's slice reads nothing of the app's, cannot use `ctx.serviceHost` (403), and a slice
 *   that reaches the service slice through `calls` without requiring it is refused (403);
 * - kill -9 of a node hosting a service instance while calls go on through a node without one: the invoker
 *   fails the calls over to the other instance.
 */

import { deepEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, postJson, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { runCli } from "../_support/cli.ts";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Json = Record<string, unknown>;

const fixture = (name: string) => new URL(`../fixtures/infra_slices/${name}.ts`, import.meta.url).pathname;
const DIST = new URL("../../infra/dist/", import.meta.url);

async function bundledSha(service: string): Promise<string> {
  return JSON.parse(await Deno.readTextFile(new URL(`${service}-1.0.0.manifest.json`, DIST))).sha256;
}

async function call(node: NodeProcess, path: string, body: unknown) {
  const response = await fetch(node.httpUrl + path, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  const text = await response.text();
  let parsed: Json = {};
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { text };
  }
  return { status: response.status, body: parsed };
}

async function upload(node: NodeProcess, slice: BuiltSlice) {
  const form = new FormData();
  form.append("manifest", JSON.stringify(slice.manifest));
  form.append("bundle", new Blob([slice.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
  const response = await node.api(`/api/v1/artifacts`, { method: "POST", body: form });
  return { status: response.status, body: await response.json() as Json };
}

async function artifacts(
  node: NodeProcess,
): Promise<Array<{ coordinates: string; sha256: string; pushedAt: number }>> {
  const { body } = await node.json<{ items: never[] }>("/api/v1/artifacts");
  return body.items;
}

async function createRevision(node: NodeProcess, key: string): Promise<number> {
  const response = await node.api(`/api/v1/kv/${key}`);
  await response.body?.cancel();
  equal(response.status, 200, `GET /api/v1/kv/${key}`);
  return Number(response.headers.get("x-aether-create-revision"));
}

async function activeNodes(node: NodeProcess, slice: string): Promise<string[]> {
  const s = (await sliceStatuses(node)).find((x) => x.slice === slice);
  return (s?.instances ?? []).filter((i) => i.state === "ACTIVE" && i.connected).map((i) => i.node);
}

async function waitRoute(cluster: TestCluster, path: string) {
  for (const node of cluster.running()) {
    await cluster.waitFor(`${node.id} routes ${path}`, async () => {
      const { body } = await node.json<{ routes: Array<{ path: string }> }>("/api/v1/routes");
      return body.routes.some((r) => r.path === path);
    }, 30_000);
  }
}

/** The calls the metrics counted for a slice's method, summed over the nodes (Prometheus text of `node`). */
async function callsCounted(node: NodeProcess, slice: string, method: string): Promise<number> {
  const response = await node.api("/metrics");
  const text = await response.text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("aether_slice_calls_total{")) continue;
    if (!line.includes(`"${slice}`) || !line.includes(`method="${method}"`)) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

Deno.test("infrastructure services are slices: bootstrap, reuse, order, hostile code, failover", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    const cacheSha = await bundledSha("cache");
    const lockSha = await bundledSha("lock");

    await t.step("users cannot publish or delete artifacts of the reserved group aether.infra", async () => {
      const fake = await buildSlice(fixture("fake_cache"));
      const r = await upload(n1, fake);
      equal(r.status, 403, JSON.stringify(r.body));
      equal(r.body.reason, "reserved_group");
      match(String(r.body.detail), /aether\.infra is reserved for the infrastructure services bundled/);
      const del = await n2.api(`/api/v1/artifacts/aether.infra:cache:1.0.0`, { method: "DELETE" });
      equal(del.status, 403, await del.text());
      ok(!(await artifacts(n1)).some((a) => a.coordinates.startsWith("aether.infra:")), "nothing published");
    });

    await t.step("a missing service fails with the seed's message and publishes nothing", async () => {
      const r = await postBlueprint(
        n1,
        `id = "org.example:missing:1.0.0"\n[[slices]]\nartifact = "org.example.svcapp:app:1.0.0"\n` +
          `requires = ["caching"]\n`,
      );
      equal(r.status, 404, JSON.stringify(r.body));
      match(String(r.body.detail), /Required infrastructure service 'caching' not found\./);
      match(String(r.body.detail), /To add caching service:\n {2}aether infra install caching/);
      ok(!(await artifacts(n1)).some((a) => a.coordinates.startsWith("aether.infra:")));
    });

    for (const name of ["app", "spy", "sneak"]) await pushArtifact(n1, await buildSlice(fixture(name)));

    await t.step("bootstrap: lock then cache published and ACTIVE on every node before the app", async () => {
      const r = await postBlueprint(
        n2,
        `id = "org.example.svcapp:app:1.0.0"\n[[slices]]\nartifact = "org.example.svcapp:app:1.0.0"\n` +
          `instances = 3\n`,
      );
      equal(r.status, 201, JSON.stringify(r.body));
      // Already when the blueprint is accepted: published with the bundled digest, every instance ACTIVE.
      const published = await artifacts(n3);
      deepEqual(
        published.filter((a) => a.coordinates.startsWith("aether.infra:")).map((
          a,
        ) => [a.coordinates, a.sha256])
          .sort(),
        [["aether.infra:cache:1.0.0", cacheSha], ["aether.infra:lock:1.0.0", lockSha]],
      );
      equal((await activeNodes(n2, "aether.infra:lock")).length, 3);
      equal((await activeNodes(n2, "aether.infra:cache")).length, 3);
      // Dependency order: `requires = ["lock", "cache"]`; the app's target only after both.
      const lockRev = await createRevision(n1, "targets/aether.infra:lock");
      const cacheRev = await createRevision(n1, "targets/aether.infra:cache");
      const appRev = await createRevision(n1, "targets/org.example.svcapp:app");
      ok(lockRev < cacheRev && cacheRev < appRev, `lock ${lockRev} < cache ${cacheRev} < app ${appRev}`);
      await cluster.waitFor(
        "app ACTIVE on 3 nodes",
        async () => (await activeNodes(n1, "org.example.svcapp:app")).length === 3,
        60_000,
      );
      await waitRoute(cluster, "/svc/put");
    });

    await t.step(
      "calls go through the invoker to the service slice; status shows its instances",
      async () => {
        const before = await callsCounted(n1, "aether.infra:cache", "get");
        for (const [i, node] of [n1, n2, n3].entries()) {
          const put = await call(node, "/svc/put", { cache: "s", key: `k${i}`, value: { n: i } });
          equal(put.status, 200, JSON.stringify(put.body));
        }
        for (const node of [n3, n1, n2]) {
          const got = await call(node, "/svc/get", { cache: "s", key: "k1" });
          equal(got.status, 200, JSON.stringify(got.body));
          deepEqual(got.body.value, { n: 1 });
        }
        const lock = await call(n2, "/svc/lock", { name: "l" });
        equal(lock.status, 200, JSON.stringify(lock.body));
        equal(lock.body.released, true);
        await cluster.waitFor("the service slice's get calls in the metrics", async () => {
          const counted = await callsCounted(n1, "aether.infra:cache", "get");
          // At least one of the gets (each ran on a node's local cache instance; samples merge over time).
          if (counted >= before + 1) return true;
          const text = await (await n1.api("/metrics")).text();
          const lines = text.split("\n").filter((l) => l.startsWith("aether_slice_calls_total"));
          throw new Error(`counted ${counted}, before ${before}: ${lines.join("\n").slice(0, 1500)}`);
        }, 20_000);
        const { body } = await n3.json<Json & { slice: Json & { instances: Json[] } }>("/api/v1/infra/cache");
        equal(body.running, true);
        equal(body.slice.artifact, "aether.infra:cache:1.0.0");
        equal(body.slice.published, true);
        equal(body.slice.active, 3);
        const cli = (...args: string[]) =>
          runCli(["--connect", `127.0.0.1:${n1.ready!.apiPort}`, "--token", n1.options.token!, ...args]);
        const status = await cli("infra", "status", "cache");
        equal(status.code, 0, status.stderr);
        match(status.stdout, /artifact aether\.infra:cache:1\.0\.0 .*in the repository/);
        match(status.stdout, /instances 3\/3 active: /);
        const list = await cli("infra", "list");
        match(list.stdout, /cache\s+1\.0\.0\s+yes\s+3\/3 active/);
      },
    );

    await t.step(
      "reuse: a second blueprint requiring the cache changes neither artifact nor target",
      async () => {
        const pushedAt = (await artifacts(n1)).find((a) =>
          a.coordinates === "aether.infra:cache:1.0.0"
        )!.pushedAt;
        const targetRev = await createRevision(n1, "targets/aether.infra:cache");
        const started = Date.now();
        const r = await postBlueprint(
          n3,
          `id = "org.example.hostile:spy:1.0.0"\n[[slices]]\nartifact = "org.example.hostile:spy:1.0.0"\n` +
            `instances = 1\n`,
        );
        equal(r.status, 201, JSON.stringify(r.body));
        ok(Date.now() - started < 10_000, "reuse does not wait for a new deployment");
        equal(
          (await artifacts(n1)).find((a) => a.coordinates === "aether.infra:cache:1.0.0")!.pushedAt,
          pushedAt,
        );
        equal(await createRevision(n1, "targets/aether.infra:cache"), targetRev);
        await cluster.waitFor(
          "spy ACTIVE",
          async () => (await activeNodes(n1, "org.example.hostile:spy")).length === 1,
          60_000,
        );
        await waitRoute(cluster, "/spy/get");
      },
    );

    await t.step(
      "hostile: another group reads nothing, ctx.serviceHost and calls without requires are 403",
      async () => {
        const spied = await call(n1, "/spy/get", { cache: "s", key: "k1" });
        equal(spied.status, 200, JSON.stringify(spied.body));
        equal(spied.body.value, null, "the spy's group has its own, empty cache s");
        const host = await call(n2, "/spy/host", { cache: "s", key: "k1" });
        equal(host.status, 403, JSON.stringify(host.body));
        match(JSON.stringify(host.body), /@service-host is reserved for the bundled infrastructure services/);
        const r = await postBlueprint(
          n1,
          `id = "org.example.hostile:sneak:1.0.0"\n[[slices]]\nartifact = "org.example.hostile:sneak:1.0.0"\n` +
            `instances = 1\n`,
        );
        equal(r.status, 201, JSON.stringify(r.body));
        await cluster.waitFor("sneak ACTIVE", async () =>
          (await activeNodes(n1, "org.example.hostile:sneak")).length === 1, 60_000);
        await waitRoute(cluster, "/sneak/get");
        const sneaked = await call(n3, "/sneak/get", { cache: "s", key: "k1" });
        equal(sneaked.status, 403, JSON.stringify(sneaked.body));
        match(JSON.stringify(sneaked.body), /not among the infrastructure services this slice requires/);
      },
    );

    await t.step(
      "kill -9 of a node hosting a cache instance: calls through another node fail over",
      async () => {
        // Two instances, so one node has none and every call from it goes over the mesh to an instance.
        const scaled = await postJson(n1, "/api/v1/scale", { artifact: "aether.infra:cache", instances: 2 });
        equal(scaled.status, 200, JSON.stringify(scaled.body));
        const hosts = await cluster.waitFor("cache on exactly 2 nodes", async () => {
          const s = (await sliceStatuses(n1)).find((x) =>
            x.slice === "aether.infra:cache"
          );
          const nodes = (s?.instances ?? []).map((i) => i.node);
          return nodes.length === 2 && s!.instances.every((i) => i.state === "ACTIVE") ? nodes : undefined;
        }, 60_000);
        const caller = cluster.nodes.find((n) => !hosts.includes(n.id))!;
        const leader = await cluster.waitForLeader();
        // Kill a host that is not the leader when possible (the test is about the invoker, not elections).
        const victim = cluster.node(hosts.find((h) => h !== leader) ?? hosts[0]);
        let sent = 0;
        let good = 0;
        const failures: string[] = [];
        let stop = false;
        const load = (async () => {
          for (let i = 0; !stop; i++) {
            sent++;
            const key = `f${i % 50}`;
            const r = i % 2 === 0
              ? await call(caller, "/svc/put", { cache: "f", key, value: i })
              : await call(caller, "/svc/get", { cache: "f", key });
            if (r.status === 200) good++;
            else if (failures.length < 10) {
              failures.push(`${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
            }
          }
        })();
        await new Promise((resolve) => setTimeout(resolve, 1_500));
        await victim.stop("SIGKILL");
        await new Promise((resolve) => setTimeout(resolve, 5_000));
        stop = true;
        await load;
        console.log(
          `cache calls through ${caller.id} (no local instance), ${victim.id} killed: ${good}/${sent} ok; ` +
            `failed: ${JSON.stringify(failures)}`,
        );
        ok(sent > 100, `only ${sent} calls sent`);
        ok(good / sent >= 0.99, `${good}/${sent} succeeded: ${failures.join("; ")}`);
      },
    );
  } catch (e) {
    console.error(
      cluster.logs().split("\n").filter((l) => /infra|ERROR|error/.test(l)).slice(-60).join("\n"),
    );
    throw e;
  } finally {
    await cluster.close();
  }
});
