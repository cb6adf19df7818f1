/**
 * The HTTP listeners' guard against real sockets: slow-loris headers, partial bodies, idle connections and
 * the connection limit, each bounded in time; and what it must not break (long handlers, streams, the
 * client's address).
 */

import assert from "node:assert/strict";
import { createLogger } from "../core/mod.ts";
import { type GuardedServer, serveGuarded, type ServeHandler, type ServerLimits } from "./server_guard.ts";
import { rawConnection, within } from "../../tests/_support/raw_connection.ts";

const LIMITS: ServerLimits = {
  headerTimeoutMs: 300,
  bodyTimeoutMs: 300,
  idleTimeoutMs: 600,
  maxConnections: 5,
};
const log = createLogger({ name: "guard-test", level: "error" });

const handler: ServeHandler = async (request, info) => {
  const url = new URL(request.url);
  if (url.pathname === "/slow") await new Promise((r) => setTimeout(r, 1500));
  if (url.pathname === "/stream") {
    let n = 0;
    const body = new ReadableStream({
      async pull(controller) {
        await new Promise((r) => setTimeout(r, 400));
        controller.enqueue(new TextEncoder().encode(`tick ${n}\n`));
        if (++n === 4) controller.close();
      },
    });
    return new Response(body);
  }
  if (request.body) {
    try {
      const bytes = await request.arrayBuffer();
      return new Response(`got ${bytes.byteLength}`);
    } catch (e) {
      return new Response(`body failed: ${(e as Error).message}`, { status: 408 });
    }
  }
  return new Response(`hello ${info.remoteAddr.hostname}`);
};

async function withServer(test: (server: GuardedServer) => Promise<void>, limits = LIMITS): Promise<void> {
  const server = serveGuarded({ name: "test", hostname: "127.0.0.1", port: 0, limits, log }, handler);
  try {
    await test(server);
  } finally {
    await server.shutdown();
  }
}

Deno.test("guard: a request whose headers never complete is closed after headerTimeoutMs", async () => {
  await withServer(async (server) => {
    const loris = await rawConnection("127.0.0.1", server.addr.port, "GET / HTTP/1.1\r\nHost: x\r\n");
    await within(loris.closed, 3000, "slow-loris connection closed");
    assert.ok(loris.openMs >= 250 && loris.openMs < 2000, `closed after ${loris.openMs} ms`);
    assert.equal(loris.received, "");
    assert.equal(server.stats().headerTimeouts, 1);
  });
});

Deno.test("guard: a body that stops arriving fails after bodyTimeoutMs; the connection closes", async () => {
  await withServer(async (server) => {
    const partial = await rawConnection(
      "127.0.0.1",
      server.addr.port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
    );
    await within(partial.closed, 3000, "partial-body connection closed");
    assert.match(partial.received, /^HTTP\/1.1 408/);
    assert.match(partial.received, /no bytes for 300 ms \(body timeout\)/);
    assert.ok(partial.openMs < 2000, `closed after ${partial.openMs} ms`);
    assert.equal(server.stats().bodyTimeouts, 1);
  });
});

Deno.test("guard: idle connections close after idleTimeoutMs, before and after a request", async () => {
  await withServer(async (server) => {
    const silent = await rawConnection("127.0.0.1", server.addr.port);
    const kept = await rawConnection("127.0.0.1", server.addr.port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    await within(Promise.all([silent.closed, kept.closed]), 3000, "idle connections closed");
    assert.match(kept.received, /^HTTP\/1.1 200[\s\S]*hello 127.0.0.1/);
    for (const c of [silent, kept]) assert.ok(c.openMs >= 500 && c.openMs < 2500, `${c.openMs} ms`);
    assert.equal(server.stats().idleTimeouts, 2);
  });
});

Deno.test("guard: beyond maxConnections new connections close at once; a freed slot is reused", async () => {
  await withServer(async (server) => {
    const held = [];
    for (let i = 0; i < LIMITS.maxConnections; i++) {
      held.push(await rawConnection("127.0.0.1", server.addr.port));
    }
    await new Promise((r) => setTimeout(r, 50));
    const extra = await rawConnection("127.0.0.1", server.addr.port);
    await within(extra.closed, 1000, "the connection over the limit closed");
    assert.ok(extra.openMs < 200, `closed after ${extra.openMs} ms`);
    assert.equal(server.stats().refusedConnections, 1);
    held[0].conn.close();
    await held[0].closed;
    await new Promise((r) => setTimeout(r, 50));
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
    assert.equal(await response.text(), "hello 127.0.0.1");
    for (const c of held.slice(1)) c.conn.close();
    await Promise.all(held.map((c) => c.closed));
  }, { ...LIMITS, idleTimeoutMs: 10_000 });
});

Deno.test("guard: slow handlers, long streams and large bodies outlive the timeouts", async () => {
  await withServer(async (server) => {
    const base = `http://127.0.0.1:${server.addr.port}`;
    const slow = await fetch(`${base}/slow`);
    assert.equal(await slow.text(), "hello 127.0.0.1");
    const stream = await fetch(`${base}/stream`);
    assert.equal(await stream.text(), "tick 0\ntick 1\ntick 2\ntick 3\n");
    const posted = await fetch(`${base}/`, { method: "POST", body: new Uint8Array(200_000) });
    assert.equal(await posted.text(), "got 200000");
    const stats = server.stats();
    assert.deepEqual([stats.headerTimeouts, stats.bodyTimeouts, stats.idleTimeouts], [0, 0, 0]);
  });
});

Deno.test("guard: shutdown lets a request in flight finish and closes idle connections at once", async () => {
  const server = serveGuarded({ name: "test", hostname: "127.0.0.1", port: 0, limits: LIMITS, log }, handler);
  const idle = await rawConnection("127.0.0.1", server.addr.port);
  const slow = fetch(`http://127.0.0.1:${server.addr.port}/slow`).then((r) => r.text());
  await new Promise((r) => setTimeout(r, 200));
  const stopped = server.shutdown();
  await within(idle.closed, 500, "the idle connection closed by shutdown");
  assert.equal(await slow, "hello 127.0.0.1");
  await within(stopped, 3000, "shutdown");
});
