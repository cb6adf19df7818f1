/**
 * Version-weighted routing across versions on real node processes (3 members on loopback, default process
 * isolation): v1.0.0 and v1.1.0 of a slice that names its version in every answer run side by side while
 * `routing/` names both; weights 3:1 send about a quarter of HTTP requests (spread over the three nodes' app
 * ports) and of slice-to-slice calls to 1.1.0; deploying 1.1.0 while the weights name both stops nothing;
 * clearing the weights retires 1.0.0 (which the target no longer names) without a failed request, and every
 * request then reaches 1.1.0.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, type SliceStatus, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";

const GROUP = "org.example.routing";
const VERSIONED = `${GROUP}:versioned`;
const CALLER = `${GROUP}:caller`;

/** What `GET /api/v1/slices` adds while weights keep a second version running. */
type RoutedStatus = SliceStatus & {
  routed?: { version: string; desired: number; active: number };
  weights?: Record<string, number>;
};

function build(name: "versioned" | "caller", version?: string): Promise<BuiltSlice> {
  const path = new URL(`../fixtures/routing/${name}.ts`, import.meta.url).pathname;
  return buildSlice(path, version ? { version } : {});
}

async function api(node: NodeProcess, method: string, path: string, body?: unknown) {
  const { status, body: answer } = await node.json(path, {
    method,
    headers: { "content-type": "application/json" },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (status >= 300) throw new Error(`${method} ${path} answered ${status}: ${JSON.stringify(answer)}`);
  return answer;
}

/** Waits until `check` holds for the slices as `node` reports them; the last state goes into the failure. */
async function waitSlices(
  cluster: TestCluster,
  node: NodeProcess,
  what: string,
  check: (versioned: RoutedStatus | undefined, caller: RoutedStatus | undefined) => boolean,
): Promise<RoutedStatus> {
  let last: RoutedStatus[] = [];
  try {
    await cluster.waitFor(what, async () => {
      last = await sliceStatuses(node) as RoutedStatus[];
      return check(last.find((s) => s.slice === VERSIONED), last.find((s) => s.slice === CALLER));
    }, 60_000);
  } catch (e) {
    throw new Error(
      `${(e as Error).message}\n${JSON.stringify(last, null, 1)}\n${cluster.logs().slice(-20_000)}`,
    );
  }
  return last.find((s) => s.slice === VERSIONED)!;
}

/** `node/n version state` of every instance, sorted. */
function instancesOf(s: RoutedStatus): string[] {
  return s.instances.map((i) => `${i.node}/${i.n} ${i.version} ${i.state} ${i.updatedAt}`).sort();
}

/** `count` HTTP requests to `GET /versioned/which`, spread round-robin over the nodes, a few at a time. */
async function hits(
  nodes: NodeProcess[],
  count: number,
): Promise<{ versions: Record<string, number>; statuses: number[] }> {
  const versions: Record<string, number> = {};
  const statuses: number[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const node = nodes[next++ % nodes.length];
      const response = await fetch(`${node.httpUrl}/versioned/which`);
      const body = await response.json();
      statuses.push(response.status);
      if (response.status === 200) versions[body.version] = (versions[body.version] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return { versions, statuses };
}

/** The caller slice calls the versioned one `n` times per request, one request through each node. */
async function calls(nodes: NodeProcess[], n: number): Promise<Record<string, number>> {
  const versions: Record<string, number> = {};
  for (const node of nodes) {
    const response = await fetch(`${node.httpUrl}/caller/tally?n=${n}`);
    const body = await response.json();
    equal(response.status, 200, JSON.stringify(body));
    for (const [version, k] of Object.entries(body.versions as Record<string, number>)) {
      versions[version] = (versions[version] ?? 0) + k;
    }
  }
  return versions;
}

/** Waits until every node's replica has endpoints of exactly `versions` (so none still routes by an old view). */
async function waitEndpoints(cluster: TestCluster, versions: string[]): Promise<void> {
  for (const node of cluster.nodes) {
    await cluster.waitFor(`${node.id} has endpoints of ${versions}`, async () => {
      const { body } = await node.json<{ items: { key: string }[] }>(
        `/api/v1/kv?prefix=${encodeURIComponent(`endpoints/${VERSIONED}:`)}`,
      );
      const seen = [...new Set(body.items.map((i) => i.key.split("/")[1].split(":")[2]))].sort();
      return seen.join() === [...versions].sort().join();
    }, 30_000);
  }
}

const cli = (node: NodeProcess, ...args: string[]) =>
  runCli(["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", node.options.token!, ...args]);

/** `key@modRevision` of every instance record in `node`'s replica. */
async function instanceRevisions(node: NodeProcess): Promise<string[]> {
  const { body } = await node.json<{ items: { key: string; revision: number }[] }>(
    "/api/v1/kv?prefix=instances/",
  );
  return body.items.map((i) => `${i.key}@${i.revision}`).sort();
}

function share(versions: Record<string, number>, version: string): number {
  const total = Object.values(versions).reduce((a, b) => a + b, 0);
  return (versions[version] ?? 0) / total;
}

Deno.test("weights of 1:3 between two running versions give about a quarter of requests to the new one", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    const [v100, v110, caller] = await Promise.all([
      build("versioned"),
      build("versioned", "1.1.0"),
      build("caller"),
    ]);
    for (const slice of [v100, v110, caller]) await pushArtifact(n1, slice);

    await t.step("with weights naming 1.0.0 and 1.1.0, instances of both versions run", async () => {
      await api(n1, "POST", "/api/v1/deploy", { artifact: `${VERSIONED}:1.0.0`, instances: 1 });
      await api(n1, "POST", "/api/v1/deploy", { artifact: `${CALLER}:1.0.0`, instances: 1 });
      await api(n1, "POST", "/api/v1/routing", { artifact: VERSIONED, weights: { "1.0.0": 3, "1.1.0": 1 } });
      const s = await waitSlices(
        cluster,
        n1,
        "1.0.0 and 1.1.0 ACTIVE",
        (v, c) =>
          v?.settled === true && c?.settled === true && v.routed?.active === 1 &&
          v.instances.every((i) => i.state === "ACTIVE" && i.connected),
      );
      equal(s.version, "1.0.0");
      deepStrictEqual(s.routed, { version: "1.1.0", desired: 1, active: 1 });
      deepStrictEqual(s.weights, { "1.0.0": 3, "1.1.0": 1 });
      deepStrictEqual(s.instances.map((i) => i.version).sort(), ["1.0.0", "1.1.0"]);
      const table = await cli(n1, "slices");
      equal(table.code, 0, table.stderr);
      match(
        table.stdout,
        /org\.example\.routing:versioned\s+1\.0\.0 \+1\.1\.0\s+1\s+1\+1\s+settled\s+.*@1\.1\.0 ACTIVE/,
      );
      await waitEndpoints(cluster, ["1.0.0", "1.1.0"]);
    });

    await t.step("HTTP requests over the three nodes: about a quarter reach 1.1.0", async () => {
      const { versions, statuses } = await hits(cluster.nodes, 200);
      deepStrictEqual([...new Set(statuses)], [200]);
      const newShare = share(versions, "1.1.0");
      console.log(
        `HTTP, 200 requests over 3 nodes: ${JSON.stringify(versions)} (${
          (newShare * 100).toFixed(1)
        }% to 1.1.0)`,
      );
      ok(
        newShare >= 0.2 && newShare <= 0.3,
        `1.1.0 got ${(newShare * 100).toFixed(1)}%: ${JSON.stringify(versions)}`,
      );
    });

    await t.step("slice-to-slice calls follow the weights too", async () => {
      const versions = await calls(cluster.nodes, 40);
      const newShare = share(versions, "1.1.0");
      console.log(
        `calls, 120 from the caller slice: ${JSON.stringify(versions)} (${
          (newShare * 100).toFixed(1)
        }% to 1.1.0)`,
      );
      ok(
        newShare >= 0.2 && newShare <= 0.3,
        `1.1.0 got ${(newShare * 100).toFixed(1)}%: ${JSON.stringify(versions)}`,
      );
    });

    const before = instancesOf(await waitSlices(cluster, n1, "still settled", (v) => v?.settled === true));

    await t.step("deploying 1.1.0 while the weights name both versions stops nothing", async () => {
      const revisionsBefore = await instanceRevisions(n1);
      await api(n1, "POST", "/api/v1/deploy", { artifact: `${VERSIONED}:1.1.0`, instances: 1 });
      const s = await waitSlices(
        cluster,
        n1,
        "1.1.0 is the target, 1.0.0 routed",
        (v) => v?.version === "1.1.0" && v.settled && v.routed?.version === "1.0.0",
      );
      deepStrictEqual(instancesOf(s), before);
      // Give the leader time to act (it would retire 1.0.0 within a step): traffic keeps its 3:1 split.
      const { versions, statuses } = await hits(cluster.nodes, 120);
      deepStrictEqual([...new Set(statuses)], [200]);
      const newShare = share(versions, "1.1.0");
      ok(
        newShare >= 0.2 && newShare <= 0.3,
        `1.1.0 got ${(newShare * 100).toFixed(1)}%: ${JSON.stringify(versions)}`,
      );
      deepStrictEqual(await instanceRevisions(n1), revisionsBefore, "no instance record was touched");
    });

    await t.step(
      "clearing the weights retires 1.0.0 without a failed request; all traffic goes to 1.1.0",
      async () => {
        let streaming = true;
        const during: number[] = [];
        const stream = (async () => {
          for (let i = 0; streaming; i++) {
            const r = await hits([cluster.nodes[i % 3]], 3);
            during.push(...r.statuses);
          }
        })();
        try {
          await api(n1, "DELETE", `/api/v1/routing/${VERSIONED}`);
          const s = await waitSlices(
            cluster,
            n1,
            "only 1.1.0 left",
            (v) =>
              v?.settled === true && v.routed === undefined &&
              v.instances.every((i) => i.version === "1.1.0"),
          );
          deepStrictEqual(
            s.instances.map((i) => `${i.version} ${i.state}`),
            ["1.1.0 ACTIVE"],
          );
          await waitEndpoints(cluster, ["1.1.0"]);
        } finally {
          streaming = false;
          await stream;
        }
        ok(during.length > 0);
        console.log(`${during.length} requests while 1.0.0 was retired, statuses ${[...new Set(during)]}`);
        deepStrictEqual([...new Set(during)], [200], `${during.length} requests while 1.0.0 was retired`);
        const { versions } = await hits(cluster.nodes, 30);
        deepStrictEqual(versions, { "1.1.0": 30 });
        deepStrictEqual(await calls(cluster.nodes, 10), { "1.1.0": 30 });
        // 1.0.0 went the normal way out: the leader wrote DEACTIVATE (then UNLOAD) for it.
        const retired = before.find((i) => i.includes(" 1.0.0 "))!.split(" ")[0].replace(
          "/",
          `/${VERSIONED}:1.0.0/`,
        );
        for (const command of ["DEACTIVATE", "UNLOAD retired"]) {
          ok(
            cluster.nodes.some((n) => n.log.includes(`${command} instances/${retired}`)),
            `a leader logged ${command} instances/${retired}`,
          );
        }
      },
    );
  } finally {
    await cluster.close();
  }
});
