/**
 * A real node's HTTP listeners (management API and application port) against hostile clients (issue 15, item
 * 13): slow-loris headers, partial bodies and idle connections are closed within their timeouts, the
 * connection limit holds, and the node keeps answering meanwhile. Also (item 3): --api-host and --app-host
 * bind each listener to its own address. Every wait is bounded.
 */

import assert from "node:assert/strict";
import { NodeProcess } from "../../runtime/forge/mod.ts";
import { rawConnection, within } from "../_support/raw_connection.ts";

const HEADER_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 1000;
const IDLE_TIMEOUT_MS = 2000;
const LORIS_CONNECTIONS = 300;

async function startNode(extraArgs: string[] = []): Promise<{ node: NodeProcess; root: string }> {
  const root = await Deno.makeTempDir({ prefix: "aether-servers-" });
  const secretFile = `${root}/secret`;
  await Deno.writeTextFile(secretFile, `test-secret-${crypto.randomUUID()}`);
  const node = new NodeProcess({
    id: "n1",
    peers: "n1@127.0.0.1:0",
    dataDir: `${root}/n1`,
    secretFile,
    extraArgs: [
      ...["--header-timeout-ms", String(HEADER_TIMEOUT_MS), "--body-timeout-ms", String(BODY_TIMEOUT_MS)],
      ...["--idle-timeout-ms", String(IDLE_TIMEOUT_MS)],
      ...extraArgs,
    ],
  });
  await node.start();
  return { node, root };
}

async function stopNode({ node, root }: { node: NodeProcess; root: string }): Promise<void> {
  await node.stop();
  await Deno.remove(root, { recursive: true }).catch(() => {});
}

function ports(node: NodeProcess) {
  return { api: node.ready!.apiPort, app: node.ready!.httpPort };
}

Deno.test("slow-loris: 300 unfinished requests per port are closed by the header timeout", async () => {
  const started = await startNode();
  const connections: Awaited<ReturnType<typeof rawConnection>>[] = [];
  try {
    const { api, app } = ports(started.node);
    const t0 = performance.now();
    for (const port of [api, app]) {
      for (let i = 0; i < LORIS_CONNECTIONS; i++) {
        connections.push(
          await rawConnection("127.0.0.1", port, "GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
        );
      }
    }
    const health = await fetch(`http://127.0.0.1:${api}/api/v1/health`);
    await health.body?.cancel();
    assert.ok(health.status < 500, `health answered ${health.status} during the flood`);
    await within(Promise.all(connections.map((c) => c.closed)), 15_000, "every slow-loris connection closed");
    const slowest = Math.max(...connections.map((c) => c.openMs));
    console.log(
      `${connections.length} slow-loris connections opened in ${(performance.now() - t0).toFixed(0)} ms; ` +
        `all closed, the last after ${slowest.toFixed(0)} ms (header timeout ${HEADER_TIMEOUT_MS} ms)`,
    );
    assert.ok(connections.every((c) => c.received === ""), "a slow-loris connection got an answer");
    assert.ok(slowest < HEADER_TIMEOUT_MS + 5000, `a connection stayed open ${slowest} ms`);
  } finally {
    for (const c of connections) {
      try {
        c.conn.close();
      } catch {
        // closed by the server
      }
    }
    await stopNode(started);
  }
});

Deno.test("a body that declares 100 bytes and sends 2 is not held: both ports close it", async () => {
  const started = await startNode();
  try {
    const { api, app } = ports(started.node);
    const partial = (port: number, path: string) =>
      rawConnection(
        "127.0.0.1",
        port,
        `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
          `Content-Length: 100\r\n\r\n{"`,
      );
    const clients = [await partial(app, "/anything"), await partial(api, "/api/v1/kv/app/x")];
    const bound = BODY_TIMEOUT_MS + IDLE_TIMEOUT_MS + 3000;
    await within(Promise.all(clients.map((c) => c.closed)), bound + 2000, "partial-body connections closed");
    for (const c of clients) {
      console.log(
        `partial body: closed after ${c.openMs.toFixed(0)} ms, answer ${c.received.split("\r\n")[0]}`,
      );
      assert.ok(c.openMs < bound, `a partial-body connection stayed open ${c.openMs} ms`);
    }
  } finally {
    await stopNode(started);
  }
});

Deno.test("the connection limit holds per listener; closed connections free their slots", async () => {
  const started = await startNode(["--max-connections", "20"]);
  const held: Awaited<ReturnType<typeof rawConnection>>[] = [];
  try {
    const { api, app } = ports(started.node);
    for (let i = 0; i < 20; i++) held.push(await rawConnection("127.0.0.1", app, ""));
    await new Promise((r) => setTimeout(r, 100));
    const over = await rawConnection("127.0.0.1", app, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await within(over.closed, 2000, "the connection over the limit closed");
    assert.equal(over.received, "", "the connection over the limit was served");
    // The API's limit is its own.
    const health = await fetch(`http://127.0.0.1:${api}/api/v1/health`);
    await health.body?.cancel();
    assert.ok(health.status < 500);
    for (const c of held) c.conn.close();
    await Promise.all(held.map((c) => c.closed));
    await new Promise((r) => setTimeout(r, 100));
    const after = await fetch(`http://127.0.0.1:${app}/nothing-here`);
    await after.body?.cancel();
    assert.equal(after.status, 404);
  } finally {
    for (const c of held) {
      try {
        c.conn.close();
      } catch {
        // already closed
      }
    }
    await stopNode(started);
  }
});

Deno.test("--api-host and --app-host bind the API and the app port to their own addresses", async () => {
  const started = await startNode(["--api-host", "127.0.0.2", "--app-host", "127.0.0.3"]);
  try {
    const { api, app } = ports(started.node);
    const status = async (host: string, port: number, path: string) => {
      try {
        const response = await fetch(`http://${host}:${port}${path}`);
        await response.body?.cancel();
        return response.status;
      } catch {
        return "refused";
      }
    };
    assert.ok(typeof await status("127.0.0.2", api, "/api/v1/health") === "number");
    assert.equal(await status("127.0.0.1", api, "/api/v1/health"), "refused");
    assert.equal(await status("127.0.0.3", app, "/nothing-here"), 404);
    assert.equal(await status("127.0.0.1", app, "/nothing-here"), "refused");
    assert.equal(await status("127.0.0.2", app, "/nothing-here"), "refused");
  } finally {
    await stopNode(started);
  }
});

Deno.test("--app-guard off: the app port is plain Deno.serve; the API stays guarded", async () => {
  const started = await startNode(["--app-guard", "off"]);
  const connections: Awaited<ReturnType<typeof rawConnection>>[] = [];
  try {
    const { api, app } = ports(started.node);
    for (const port of [api, app]) {
      connections.push(await rawConnection("127.0.0.1", port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    }
    await within(connections[0].closed, HEADER_TIMEOUT_MS + 4000, "the API's slow-loris connection closed");
    const stillOpen = await Promise.race([
      connections[1].closed.then(() => false),
      new Promise<boolean>((r) => setTimeout(() => r(true), HEADER_TIMEOUT_MS + 1000)),
    ]);
    assert.equal(stillOpen, true, "the unguarded app port closed a slow-loris connection");
  } finally {
    for (const c of connections) {
      try {
        c.conn.close();
      } catch {
        // already closed
      }
    }
    await stopNode(started);
  }
});
