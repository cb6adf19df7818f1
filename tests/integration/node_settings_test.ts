/**
 * Node settings changed live (runtime/infra-host/config.ts NODE_SETTINGS) on 3 real node processes: a change
 * made through one node takes effect on every node within a second without a restart, seen in behaviour:
 *
 * - `invoke.defaultTimeoutMs`: a 3 s method that succeeded with the built-in 30 s deadline answers 504 after
 *   about the new 400 ms on every node; unset, it succeeds again;
 * - `http.headerTimeoutMs`: a connection that never completes its headers is closed after about the new
 *   300 ms instead of the flag's 10 s, on every node's application port;
 * - bad values are refused with 400 naming the setting and its range; an unknown name with 404 naming the
 *   settings there are.
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

type Json = Record<string, unknown>;
const SLOW_MS = 3_000;
const NEW_TIMEOUT_MS = 400;
const NEW_HEADER_TIMEOUT_MS = 300;

async function api(node: NodeProcess, method: string, path: string, body?: unknown) {
  return await node.json<Json>(path, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
}

/** Calls the slow method through `node`'s application port: the status and how long the answer took. */
async function slowCall(node: NodeProcess, ms: number): Promise<{ status: number; tookMs: number }> {
  const start = performance.now();
  const response = await fetch(`${node.httpUrl}/slow/wait`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ ms }),
  });
  await response.body?.cancel();
  return { status: response.status, tookMs: Math.round(performance.now() - start) };
}

/** How long `node`'s application port keeps a connection whose request headers never end. */
async function silentConnectionLifeMs(node: NodeProcess): Promise<number> {
  const port = Number(new URL(node.httpUrl).port);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const start = performance.now();
  await conn.write(new TextEncoder().encode("GET /slow/wait HTTP/1.1\r\nhost: x\r\n"));
  const buffer = new Uint8Array(1024);
  const cutoff = setTimeout(() => conn.close(), 15_000);
  try {
    while ((await conn.read(buffer)) !== null) {
      // the guard may answer 408 before closing; read until it closes
    }
  } catch {
    // closed
  } finally {
    clearTimeout(cutoff);
  }
  try {
    conn.close();
  } catch {
    // already closed
  }
  return Math.round(performance.now() - start);
}

Deno.test({
  name: "node settings change live on 3 nodes: call deadline and HTTP header timeout, bad values refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const cluster = await TestCluster.create(3);
    try {
      await cluster.startAll();
      await cluster.waitForLeader();
      const [n1, n2, n3] = cluster.nodes;
      const dir = new URL("./fixtures/", import.meta.url).pathname;
      await pushArtifact(n1, await buildSlice(`${dir}slow_slice.ts`));
      const deploy = await api(n1, "POST", "/api/v1/deploy", {
        artifact: "org.example.slow:slow:1.0.0",
        instances: 3,
      });
      ok(deploy.status === 200 || deploy.status === 201, JSON.stringify(deploy.body));
      await cluster.waitFor("3 slow instances ACTIVE", async () => {
        const slices = await sliceStatuses(n1);
        const slow = slices.find((s) => s.slice === "org.example.slow:slow")?.instances ?? [];
        return slow.filter((i) => i.state === "ACTIVE").length === 3;
      }, 90_000);
      for (const node of cluster.nodes) {
        await cluster.waitFor(
          `${node.id} routes /slow`,
          async () => (await slowCall(node, 0)).status === 200,
        );
      }

      await t.step(
        "invoke.defaultTimeoutMs: every node cuts calls at the new deadline within a second",
        async () => {
          const before = await Promise.all(cluster.nodes.map((node) => slowCall(node, SLOW_MS)));
          ok(before.every((r) => r.status === 200), `before: ${JSON.stringify(before)}`);
          const put = await api(n2, "PUT", "/api/v1/settings/invoke.defaultTimeoutMs", {
            value: NEW_TIMEOUT_MS,
          });
          equal(put.status, 200, JSON.stringify(put.body));
          equal(put.body.source, "cluster");
          const putAt = performance.now();
          const seen = await Promise.all(
            cluster.nodes.map((node) =>
              cluster.waitFor(`${node.id} reports the new deadline`, async () => {
                const { body } = await api(node, "GET", "/api/v1/settings");
                const setting = (body.settings as Json[]).find((s) => s.name === "invoke.defaultTimeoutMs");
                return setting?.value === NEW_TIMEOUT_MS ? Math.round(performance.now() - putAt) : null;
              }, 10_000)
            ),
          );
          console.log(`setting propagation (PUT answered to GET on each node): ${seen.join(", ")} ms`);
          // Behaviour one second after the change, on every node at once.
          await new Promise((resolve) =>
            setTimeout(resolve, Math.max(0, 1_000 - (performance.now() - putAt)))
          );
          const after = await Promise.all(cluster.nodes.map((node) => slowCall(node, SLOW_MS)));
          console.log(`slow calls 1 s after the change: ${JSON.stringify(after)}`);
          for (const [i, r] of after.entries()) {
            equal(r.status, 504, `${cluster.nodes[i].id}: ${JSON.stringify(r)}`);
            ok(
              r.tookMs < SLOW_MS - 1_000,
              `${cluster.nodes[i].id} answered at the new deadline: ${r.tookMs} ms`,
            );
          }
          const unset = await api(n3, "DELETE", "/api/v1/settings/invoke.defaultTimeoutMs");
          equal(unset.body.source, "flag");
          equal(unset.body.value, 30_000);
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          const back = await Promise.all(cluster.nodes.map((node) => slowCall(node, SLOW_MS)));
          ok(back.every((r) => r.status === 200), `after unset: ${JSON.stringify(back)}`);
        },
      );

      await t.step(
        "http.headerTimeoutMs: every node closes a silent connection at the new timeout",
        async () => {
          const put = await api(n1, "PUT", "/api/v1/settings/http.headerTimeoutMs", {
            value: NEW_HEADER_TIMEOUT_MS,
          });
          equal(put.status, 200, JSON.stringify(put.body));
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          const lives = await Promise.all(cluster.nodes.map(silentConnectionLifeMs));
          console.log(`silent connection closed after: ${lives.join(", ")} ms (flag: 10000 ms)`);
          for (const [i, ms] of lives.entries()) {
            ok(ms < 3_000, `${cluster.nodes[i].id} closed the silent connection after ${ms} ms`);
          }
          const unset = await api(n1, "DELETE", "/api/v1/settings/http.headerTimeoutMs");
          equal(unset.body.value, 10_000);
        },
      );

      await t.step("bad values are refused naming the setting and its range", async () => {
        const zero = await api(n1, "PUT", "/api/v1/settings/invoke.defaultTimeoutMs", { value: 0 });
        equal(zero.status, 400);
        const detail = String(zero.body.detail);
        ok(detail.includes("invoke.defaultTimeoutMs") && detail.includes("from 1 to 900000"), detail);
        const text = await api(n2, "PUT", "/api/v1/settings/invoke.maxAttempts", { value: "many" });
        equal(text.status, 400);
        ok(String(text.body.detail).includes("invoke.maxAttempts"), String(text.body.detail));
        ok(String(text.body.detail).includes("from 1 to 20"), String(text.body.detail));
        const few = await api(n3, "PUT", "/api/v1/settings/http.maxConnections", { value: 2 });
        equal(few.status, 400);
        ok(String(few.body.detail).includes("from 16 to 1000000"), String(few.body.detail));
        const unknown = await api(n1, "PUT", "/api/v1/settings/invoke.nope", { value: 1 });
        equal(unknown.status, 404);
        ok(String(unknown.body.detail).includes("invoke.defaultTimeoutMs"), String(unknown.body.detail));
        const list = await api(n2, "GET", "/api/v1/settings");
        const timeout = (list.body.settings as Json[]).find((s) => s.name === "invoke.defaultTimeoutMs");
        equal(timeout?.value, 30_000, "a refused value changed nothing");
      });
    } finally {
      await cluster.close();
    }
  },
});
