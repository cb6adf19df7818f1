/**
 * Invocation and the application HTTP router on real node processes (3 members on loopback, slices built from
 * tests/fixtures/invoke, pushed through the repository API and deployed through the deployment API, in the
 * default process isolation): a chain of slices across nodes with one request id in every hop's log, every
 * error status a client can get, the route table over the API and the CLI, version weights over the API,
 * kill -9 of a node while calls stream through it, and "no live instance" once a node is left alone.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, type SliceStatus, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";

const GROUP = "org.example.invoke";
type Json = Record<string, unknown>;

const built = new Map<string, Promise<BuiltSlice>>();
function fixture(name: "front" | "middle" | "back"): Promise<BuiltSlice> {
  let result = built.get(name);
  if (!result) {
    built.set(name, result = buildSlice(new URL(`../fixtures/invoke/${name}.ts`, import.meta.url).pathname));
  }
  return result;
}

async function deploy(node: NodeProcess, name: string, instances: number): Promise<void> {
  const { status, body } = await node.json("/api/v1/deploy", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ artifact: `${GROUP}:${name}:1.0.0`, instances }),
  });
  if (status !== 201 && status !== 200) throw new Error(`deploy ${name}: ${status} ${JSON.stringify(body)}`);
}

/** Waits until every named slice has exactly that many ACTIVE instances on connected nodes. */
async function waitActive(cluster: TestCluster, node: NodeProcess, want: Record<string, number>) {
  let last: SliceStatus[] = [];
  try {
    return await cluster.waitFor(`${JSON.stringify(want)} ACTIVE`, async () => {
      last = await sliceStatuses(node);
      const ready = Object.entries(want).every(([name, count]) => {
        const s = last.find((x) => x.slice === `${GROUP}:${name}`);
        return s !== undefined && s.instances.length === count &&
          s.instances.every((i) => i.state === "ACTIVE" && i.connected);
      });
      return ready ? last : null;
    }, 90_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${JSON.stringify(last)}\n${cluster.logs().slice(-30_000)}`);
  }
}

function nodesOf(slices: SliceStatus[], name: string): string[] {
  return slices.find((s) => s.slice === `${GROUP}:${name}`)!.instances.map((i) => i.node);
}

/** Waits until `node`'s route table has `path` for `method`. */
async function waitRoute(cluster: TestCluster, node: NodeProcess, method: string, path: string) {
  await cluster.waitFor(`${node.id} routes ${method} ${path}`, async () => {
    const { body } = await node.json<{ routes: Array<{ httpMethod: string; path: string }> }>(
      "/api/v1/routes",
    );
    return body.routes.some((r) => r.httpMethod === method && r.path === path);
  }, 30_000);
}

async function call(node: NodeProcess, method: string, path: string, init: RequestInit = {}) {
  const response = await fetch(node.httpUrl + path, { method, ...init });
  const text = await response.text();
  let body: Json | undefined;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = { text };
  }
  return { status: response.status, headers: response.headers, body: body as Json };
}

const post = (node: NodeProcess, path: string, body: unknown, headers: Record<string, string> = {}) =>
  call(node, "POST", path, {
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", ...headers },
  });

const cli = (node: NodeProcess, ...args: string[]) =>
  runCli(["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", node.options.token!, ...args]);

async function publish(node: NodeProcess) {
  for (const name of ["back", "middle", "front"] as const) await pushArtifact(node, await fixture(name));
}

Deno.test("HTTP on 3 nodes: a chain of slices across nodes, one request id in every hop's log, every status", async (t) => {
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--log-level", "debug", "--http-max-body-bytes", "4096"],
  });
  try {
    await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    await publish(n1);
    await deploy(n1, "back", 1);
    await deploy(n1, "middle", 1);
    await deploy(n1, "front", 1);
    const slices = await waitActive(cluster, n1, { back: 1, middle: 1, front: 1 });
    const frontNode = nodesOf(slices, "front")[0];
    // Enter through a node without the front slice, so the request itself is forwarded over the mesh.
    const entry = cluster.nodes.find((n) => n.id !== frontNode)!;
    for (const node of cluster.nodes) await waitRoute(cluster, node, "POST", "/front/chain");
    await waitRoute(cluster, entry, "GET", "/back/fail/{kind}");

    await t.step(
      "a chain across nodes: the request id is the same in every hop and in every hop's log",
      async () => {
        const r = await post(entry, "/front/chain", { order: 7 }, { "x-request-id": "it-chain-0001" });
        equal(r.status, 200, JSON.stringify(r.body));
        equal(r.headers.get("x-request-id"), "it-chain-0001");
        const middle = r.body.next as Json;
        const back = middle.next as Json;
        deepStrictEqual([r.body.requestId, middle.requestId, back.requestId], Array(3).fill("it-chain-0001"));
        deepStrictEqual(back.got, { order: 7 });
        const hosts: Record<string, string> = {
          front: frontNode,
          middle: nodesOf(slices, "middle")[0],
          back: nodesOf(slices, "back")[0],
        };
        for (const [hop, host] of Object.entries(hosts)) {
          const log = cluster.node(host).log;
          ok(
            log.split("\n").some((l) => l.includes(`${hop} hop`) && l.includes("requestId=it-chain-0001")),
            `${host}'s log has the ${hop} hop with the request id`,
          );
        }
        // The node's own lines: the entry logged the HTTP request, the front's node the remote call it served.
        ok(
          entry.log.split("\n").some((l) =>
            l.includes("http request") && l.includes("requestId=it-chain-0001")
          ),
        );
        ok(
          cluster.node(frontNode).log.split("\n").some((l) =>
            l.includes("serving a remote call") && l.includes("requestId=it-chain-0001")
          ),
        );
        ok(new Set(Object.values(hosts)).size >= 2, `the chain spans nodes: ${JSON.stringify(hosts)}`);
        // Without an x-request-id, one is generated and returned.
        const fresh = await post(entry, "/front/chain", {});
        equal(fresh.status, 200);
        match(fresh.headers.get("x-request-id") ?? "", /^[0-9a-f]{16}$/);
        equal(fresh.body.requestId, fresh.headers.get("x-request-id"));
      },
    );

    await t.step("a slice that throws gives a problem document with its mapped status", async () => {
      for (
        const [kind, status, title] of [
          ["missing", 404, "ThingNotFound"],
          ["invalid", 400, "InvalidThing"],
          ["teapot", 418, "SliceError"],
          ["other", 500, "Error"],
        ] as const
      ) {
        const r = await call(entry, "GET", `/back/fail/${kind}`, {
          headers: { "x-request-id": `it-fail-${kind}` },
        });
        equal(r.status, status, `${kind}: ${JSON.stringify(r.body)}`);
        equal(r.headers.get("content-type"), "application/problem+json");
        equal(r.body.title, title);
        equal(r.body.requestId, `it-fail-${kind}`);
        equal(r.body.instance, `/back/fail/${kind}`);
      }
      const details = await call(entry, "GET", "/back/fail/missing");
      deepStrictEqual(details.body.details, { kind: "missing" });
      // Through the whole chain, the error keeps its name and status.
      const chained = await call(entry, "GET", "/front/fail/missing");
      equal(chained.status, 404);
      equal(chained.body.title, "ThingNotFound");
    });

    await t.step(
      "malformed JSON 400, unknown route 404, wrong method 405, too large 413, deadline 504",
      async () => {
        const malformed = await post(entry, "/back/echo", "{not json");
        equal(malformed.status, 400);
        match(malformed.body.detail as string, /not valid JSON/);
        equal(typeof malformed.body.requestId, "string");
        const unknown = await call(entry, "GET", "/nowhere/at/all");
        equal(unknown.status, 404);
        match(unknown.body.detail as string, /no route for GET \/nowhere\/at\/all/);
        const wrongMethod = await call(entry, "PUT", "/back/echo", { body: "{}" });
        equal(wrongMethod.status, 405);
        equal(wrongMethod.headers.get("allow"), "POST");
        const tooLarge = await post(entry, "/back/echo", { pad: "x".repeat(5000) });
        equal(tooLarge.status, 413);
        const started = Date.now();
        const slow = await call(entry, "GET", "/back/sleep?ms=5000", {
          headers: { "x-aether-timeout-ms": "400" },
        });
        equal(slow.status, 504, JSON.stringify(slow.body));
        ok(Date.now() - started < 3_000, "answered at the deadline");
        // A slice timeout configured through the API applies too.
        const set = await cli(n1, "timeout", "set", `${GROUP}:back`, "300");
        equal(set.code, 0, set.stderr);
        await cluster.waitFor("the timeout reaches the entry node", async () => {
          const { body } = await entry.json<{ items: Json[] }>("/api/v1/timeouts");
          return body.items.some((i) => i.timeoutMs === 300);
        });
        equal((await call(entry, "GET", "/back/sleep?ms=3000")).status, 504);
        equal((await cli(n1, "timeout", "clear", `${GROUP}:back`)).code, 0);
      },
    );

    await t.step("parameters, explicit status and headers, no content", async () => {
      const thing = await call(entry, "GET", "/back/things/42?verbose=yes&junk=1");
      equal(thing.status, 200);
      deepStrictEqual(thing.body, { id: "42", verbose: "yes", limit: null, keys: ["id", "verbose"] });
      const created = await post(entry, "/back/created", { name: "pen" });
      equal(created.status, 201);
      equal(created.headers.get("location"), "/back/things/pen");
      deepStrictEqual(created.body, { created: "pen" });
      const nothing = await call(entry, "DELETE", "/back/nothing");
      equal(nothing.status, 204);
    });

    await t.step("the route table over the API and the CLI", async () => {
      const { body } = await entry.json<{ routes: Json[] }>("/api/v1/routes");
      const chain = body.routes.find((r) => r.path === "/front/chain")!;
      deepStrictEqual(
        { ...chain, reachable: undefined },
        {
          httpMethod: "POST",
          path: "/front/chain",
          slice: `${GROUP}:front`,
          method: "chain",
          nodes: [frontNode],
          reachable: undefined,
          queryParams: [],
        },
      );
      const table = await cli(entry, "routes");
      equal(table.code, 0, table.stderr);
      match(table.stdout, /METHOD\s+PATH\s+SLICE\s+SLICE METHOD\s+NODES/);
      match(table.stdout, new RegExp(`POST\\s+/front/chain\\s+${GROUP}:front\\s+chain\\s+${frontNode}`));
      match(table.stdout, /GET\s+\/back\/things\/\{id\}\?verbose&limit/);
      const json = await cli(entry, "routes", "--json");
      ok(JSON.parse(json.stdout).routes.length >= 9);
    });

    await t.step(
      "version weights: set, read back on every node, refused when malformed, cleared",
      async () => {
        // Only one version is published: weights naming an unpublished one are refused, naming it.
        const bad = await n1.json("/api/v1/routing", {
          method: "POST",
          body: JSON.stringify({ artifact: `${GROUP}:back`, weights: { "1.0.0": 3, "1.1.0": 1 } }),
        });
        equal(bad.status, 400);
        match(String(bad.body.detail), /org\.example\.invoke:back:1\.1\.0 is not published/);
        const v110 = await buildSlice(new URL("../fixtures/invoke/back.ts", import.meta.url).pathname, {
          version: "1.1.0",
        });
        await pushArtifact(n1, v110);
        const set = await cli(n1, "routing", "set", `${GROUP}:back`, "1.0.0=3", "1.1.0=1");
        equal(set.code, 0, set.stderr);
        match(set.stdout, /1\.1\.0 \(new\)\s+1\s+25%/);
        for (const node of cluster.nodes) {
          await cluster.waitFor(`${node.id} has the weights`, async () => {
            const { status, body } = await node.json(`/api/v1/routing/${GROUP}:back`);
            return status === 200 && body.ratio === "1:3" && body.newVersion === "1.1.0";
          });
        }
        const listed = await cli(n1, "routing", "--json");
        equal(JSON.parse(listed.stdout).items[0].oldWeight, 3);
        // Only 1.0.0 runs: every request still succeeds (the new version has no instance, the old one serves).
        for (let i = 0; i < 4; i++) equal((await post(entry, "/back/echo", {})).status, 200);
        const zero = await cli(n1, "routing", "set", `${GROUP}:back`, "1.0.0=0", "1.1.0=0");
        equal(zero.code, 1);
        match(zero.stderr, /both weights are 0/);
        equal((await cli(n1, "routing", "clear", `${GROUP}:back`)).code, 0);
        equal((await n1.json(`/api/v1/routing/${GROUP}:back`)).status, 404);
      },
    );

    await t.step("the API invokes a slice by name", async () => {
      const r = await n1.json<Json>(`/api/v1/invoke/${GROUP}:back/echo`, {
        method: "POST",
        headers: { "x-request-id": "it-api-1" },
        body: JSON.stringify({ via: "api" }),
      });
      equal(r.status, 200);
      equal(r.body.ok, true);
      equal((r.body.value as Json).requestId, "it-api-1");
      const cliCall = await cli(n1, "invoke", `${GROUP}:back`, "getThing", '{"id":"7"}');
      equal(cliCall.code, 0, cliCall.stderr);
      equal(JSON.parse(cliCall.stdout).id, "7");
    });

    await t.step(
      "an undeployed slice: its routes go, and callers of it get 503 after the retries",
      async () => {
        // force: front (ACTIVE) calls back, which dependency protection would refuse (409).
        const undeploy = await n1.json("/api/v1/undeploy?force=true", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ artifact: `${GROUP}:back` }),
        });
        equal(undeploy.status, 200, JSON.stringify(undeploy.body));
        await cluster.waitFor(
          "back's routes are gone",
          async () => (await post(entry, "/back/echo", {})).status === 404,
        );
        const chained = await post(entry, "/front/chain", {}, { "x-request-id": "it-undeployed" });
        equal(chained.status, 503, JSON.stringify(chained.body));
        match(chained.body.detail as string, /no live instance/);
        equal(chained.body.requestId, "it-undeployed");
      },
    );

    await t.step("no live instance: a node left alone still routes, and answers 503", async () => {
      for (const node of cluster.nodes) if (node !== entry) await node.kill();
      const started = Date.now();
      const r = await post(entry, "/front/chain", {}, { "x-request-id": "it-alone" });
      equal(r.status, 503, JSON.stringify(r.body));
      match(r.body.detail as string, /no live instance/);
      ok(Date.now() - started < 10_000);
    });
  } finally {
    await cluster.close();
  }
});

Deno.test("kill -9 a node while calls stream through it: every call still succeeds", async () => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    await publish(n1);
    await deploy(n1, "back", 3);
    await deploy(n1, "middle", 3);
    await deploy(n1, "front", 2);
    const slices = await waitActive(cluster, n1, { back: 3, middle: 3, front: 2 });
    const frontNodes = nodesOf(slices, "front");
    const entry = cluster.nodes.find((n) => !frontNodes.includes(n.id))!;
    const victim = cluster.node(frontNodes[0]);
    await waitRoute(cluster, entry, "POST", "/front/chain");

    // Every request enters at `entry`, which has no front instance: each one is forwarded to a front node,
    // half of them to the victim; front holds each call for 30 ms, so some are in flight there when it dies.
    const results: Array<{ status: number; ms: number; detail?: unknown }> = [];
    let stop = false;
    let sent = 0;
    const lane = async () => {
      while (!stop) {
        const t0 = Date.now();
        const r = await post(entry, "/front/chain", { delayMs: 30 }, { "x-request-id": `it-kill-${sent++}` });
        results.push({
          status: r.status,
          ms: Date.now() - t0,
          detail: r.status === 200 ? undefined : r.body,
        });
      }
    };
    const lanes = Array.from({ length: 6 }, lane);
    await cluster.waitFor("calls flowing", () => Promise.resolve(results.length >= 30));
    await victim.kill();
    const killedAt = results.length;
    await cluster.waitFor(
      "calls after the kill",
      () => Promise.resolve(results.length >= killedAt + 60),
      30_000,
    );
    stop = true;
    await Promise.all(lanes);
    const failed = results.filter((r) => r.status !== 200);
    deepStrictEqual(failed, [], `${failed.length} of ${results.length} calls failed`);
    ok(results.length >= 90);
    const slowest = Math.max(...results.map((r) => r.ms));
    ok(slowest < 5_000, `no call waited for its deadline (slowest ${slowest} ms)`);
    ok(
      entry.log.includes("node departed with calls in flight; retrying them elsewhere"),
      "calls in flight to the killed node were retried at once",
    );
  } finally {
    await cluster.close();
  }
});
