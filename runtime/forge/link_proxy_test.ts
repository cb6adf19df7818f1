import { equal, ok, throws } from "node:assert/strict";
import { MAX_LATENCY_MS, startLinkProxy } from "./link_proxy.ts";

/** A loopback echo server. */
function echoServer(): { port: number; close(): Promise<void> } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      conn.readable.pipeTo(conn.writable).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await serving;
    },
  };
}

async function roundTrip(conn: Deno.Conn, text: string): Promise<{ answer: string; ms: number }> {
  const started = performance.now();
  await conn.write(new TextEncoder().encode(text));
  const buffer = new Uint8Array(1024);
  let answer = "";
  while (answer.length < text.length) {
    const n = await conn.read(buffer);
    if (n === null) break;
    answer += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return { answer, ms: performance.now() - started };
}

Deno.test("latency delays each direction; order is kept; setting it back to 0 removes the delay", async () => {
  const echo = echoServer();
  const proxy = startLinkProxy({ targetPort: echo.port });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    const fast = await roundTrip(conn, "ping");
    equal(fast.answer, "ping");
    proxy.setLatency(400);
    equal(proxy.latencyMs, 400);
    const slow = await roundTrip(conn, "a".repeat(100) + "b".repeat(100));
    equal(slow.answer, "a".repeat(100) + "b".repeat(100));
    // One-way delay on the way there and on the way back.
    ok(slow.ms >= 790, `round trip took ${slow.ms.toFixed(0)} ms with 400 ms each way`);
    proxy.setLatency(0);
    const again = await roundTrip(conn, "pong");
    equal(again.answer, "pong");
    // Well below the 800 ms of the delayed round trip, with room for a busy machine.
    ok(again.ms < 600, `round trip took ${again.ms.toFixed(0)} ms without latency`);
  } finally {
    conn.close();
    await proxy.close();
    await echo.close();
  }
});

Deno.test("a partition holds bytes back in both directions until heal", async () => {
  const echo = echoServer();
  const proxy = startLinkProxy({ targetPort: echo.port });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
  try {
    equal((await roundTrip(conn, "one")).answer, "one");
    proxy.partition();
    equal(proxy.partitioned, true);
    const pending = roundTrip(conn, "two");
    const early = await Promise.race([pending, new Promise((r) => setTimeout(() => r("held"), 300))]);
    equal(early, "held");
    proxy.heal();
    equal((await pending).answer, "two");
  } finally {
    conn.close();
    await proxy.close();
    await echo.close();
  }
});

Deno.test("a latency outside 0..MAX_LATENCY_MS is refused", async () => {
  const proxy = startLinkProxy({ targetPort: 9 });
  try {
    throws(() => proxy.setLatency(-1), RangeError);
    throws(() => proxy.setLatency(1.5), RangeError);
    throws(() => proxy.setLatency(MAX_LATENCY_MS + 1), RangeError);
    equal(proxy.latencyMs, 0);
  } finally {
    await proxy.close();
  }
});

Deno.test("the proxy reaches a target that was down when the proxy started", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const proxy = startLinkProxy({ targetPort: port });
  try {
    const refused = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    const n = await refused.read(new Uint8Array(8)).catch(() => null);
    equal(n, null, "the proxy closes a connection it cannot carry");
    refused.close();
    const server = Deno.listen({ hostname: "127.0.0.1", port });
    const accepted = server.accept().then((c) => c.readable.pipeTo(c.writable).catch(() => {}));
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    equal((await roundTrip(conn, "back")).answer, "back");
    conn.close();
    server.close();
    await accepted;
  } finally {
    await proxy.close();
  }
});
