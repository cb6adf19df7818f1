// The outbound HTTP client against real loopback servers: allow lists (manifest and operator), host tricks,
// redirects, size limit, retries of idempotent methods only, and circuit breakers per (group, host).

import { deepEqual as assertEquals, ok as assert, rejects as assertRejects } from "node:assert/strict";
import { isAetherError } from "../core/mod.ts";
import {
  CircuitBreaker,
  createHttpClient,
  type HttpClient,
  parseAllowList,
  parseHostEntry,
  parseTarget,
} from "./http_client.ts";
import type { ServiceCall } from "./services.ts";

type Handler = (req: Request) => Response | Promise<Response>;

async function withServer<T>(handler: Handler, fn: (port: number) => Promise<T>): Promise<T> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    return await fn(server.addr.port);
  } finally {
    await server.shutdown();
  }
}

function client(
  allow: string,
  declared: string[],
  breaker = { failureThreshold: 3, coolDownMs: 300 },
): HttpClient {
  return createHttpClient({
    allowed: () => parseAllowList(allow),
    declared: (c) => c === "org.a:caller:1.0.0" ? declared : c === "org.b:other:1.0.0" ? declared : undefined,
    breaker,
  });
}

function call(payload: Record<string, unknown>, slice = "org.a:caller:1.0.0"): ServiceCall {
  return {
    group: slice.split(":")[0],
    method: "request",
    payload,
    deadlineMs: Date.now() + 10_000,
    requestId: crypto.randomUUID(),
    from: slice,
  };
}

async function refused(p: Promise<unknown>, errorName: string, text: RegExp): Promise<void> {
  const e = await p.then(() => undefined, (e) => e);
  assert(isAetherError(e), `expected an AetherError, got ${e}`);
  assertEquals(e.extra.errorName ?? e.code, errorName, e.message);
  assert(text.test(e.message), e.message);
}

Deno.test("host entries are canonical: case, trailing dot, IPv4 forms, IPv6 brackets; bad ones named", () => {
  assertEquals(parseHostEntry("Api.Example.COM.", "x"), { any: false, host: "api.example.com" });
  assertEquals(parseHostEntry("0x7f.1:9000", "x"), { any: false, host: "127.0.0.1", port: 9000 });
  assertEquals(parseHostEntry("[0:0::1]:8080", "x"), { any: false, host: "[::1]", port: 8080 });
  for (const bad of ["user@host", "host/path", "host:0", "host:99999", "", "a b", "*"]) {
    let message = "";
    try {
      parseHostEntry(bad, "outbound[3]");
    } catch (e) {
      message = (e as Error).message;
    }
    assert(message.startsWith("outbound[3]: "), `${bad}: ${message}`);
  }
  assertEquals(parseAllowList("*, api.example.com"), [{ any: true }, {
    any: false,
    host: "api.example.com",
  }]);
  assertEquals(parseTarget("http://API.example.com./x").hostPort, "api.example.com:80");
  assertEquals(parseTarget("https://[::1]/").hostPort, "[::1]:443");
});

Deno.test("hostile URLs: undeclared, declared not allowed, userinfo, other IP forms, schemes", async () => {
  await withServer(() => new Response("ok"), async (port) => {
    const c = client(`127.0.0.1:${port}`, [`127.0.0.1:${port}`, "api.example.com"]);
    assertEquals((await c.serve(call({ url: `http://127.0.0.1:${port}/` }))).body, "ok");
    // The same address written differently is the same canonical host (it is the same destination).
    assertEquals((await c.serve(call({ url: `http://0x7F.0.0.1:${port}/` }))).status, 200);
    assertEquals((await c.serve(call({ url: `http://127.1:${port}/` }))).status, 200);
    // Upper case and a trailing dot are the same host; an IPv4 literal with a trailing dot too.
    assertEquals((await c.serve(call({ url: `HTTP://127.0.0.1.:${port}/` }))).status, 200);
    await refused(c.serve(call({ url: "http://API.EXAMPLE.COM./" })), "HostNotAllowed", /--outbound-allow/);
    await refused(c.serve(call({ url: `http://LOCALHOST:${port}/` })), "HostNotAllowed", /manifest outbound/);
    await refused(c.serve(call({ url: `http://[::1]:${port}/` })), "HostNotAllowed", /manifest outbound/);
    await refused(c.serve(call({ url: `http://127.0.0.2:${port}/` })), "HostNotAllowed", /manifest outbound/);
    await refused(c.serve(call({ url: `http://localhost:${port}/` })), "HostNotAllowed", /manifest outbound/);
    await refused(c.serve(call({ url: `http://[::ffff:127.0.0.1]:${port}/` })), "HostNotAllowed", /manifest/);
    await refused(c.serve(call({ url: "http://api.example.com/" })), "HostNotAllowed", /--outbound-allow/);
    await refused(
      c.serve(call({ url: `http://api.example.com@127.0.0.1:${port}/` })),
      "HostNotAllowed",
      /userinfo/,
    );
    await refused(c.serve(call({ url: `http://127.0.0.1:${port + 1}/` })), "HostNotAllowed", /manifest/);
    await refused(c.serve(call({ url: "file:///etc/passwd" })), "bad_request", /scheme file:/);
    await refused(c.serve(call({ url: "/relative" })), "bad_request", /not an absolute URL/);
    await refused(
      c.serve(call({ url: `http://127.0.0.1:${port}/`, headers: { Host: "evil" } })),
      "bad_request",
      /headers.Host is set by the runtime/,
    );
    // A slice whose manifest declares nothing, and the operator default (nothing allowed).
    await refused(
      c.serve(call({ url: `http://127.0.0.1:${port}/` }, "org.c:none:1.0.0")),
      "HostNotAllowed",
      /declares no/,
    );
    const closed = client("", [`127.0.0.1:${port}`]);
    await refused(
      closed.serve(call({ url: `http://127.0.0.1:${port}/` })),
      "HostNotAllowed",
      /--outbound-allow/,
    );
  });
});

Deno.test("redirects: followed to allowed hosts only, credentials dropped across origins", async () => {
  await withServer((req) => new Response(req.headers.get("authorization") ?? "none"), async (other) => {
    await withServer((req) => {
      const path = new URL(req.url).pathname;
      if (path === "/to-other") return Response.redirect(`http://127.0.0.1:${other}/`, 302);
      if (path === "/to-evil") return Response.redirect("http://evil.example.com/", 302);
      if (path === "/to-undeclared") return Response.redirect(`http://localhost:${other}/`, 302);
      if (path === "/loop") return Response.redirect(req.url, 302);
      return new Response("home");
    }, async (port) => {
      const c = client(`127.0.0.1:${port},127.0.0.1:${other},evil.example.com`, [
        `127.0.0.1:${port}`,
        `127.0.0.1:${other}`,
      ]);
      const r = await c.serve(
        call({ url: `http://127.0.0.1:${port}/to-other`, headers: { authorization: "s3" } }),
      );
      assertEquals([r.body, r.redirects, r.url], ["none", 1, `http://127.0.0.1:${other}/`]);
      await refused(
        c.serve(call({ url: `http://127.0.0.1:${port}/to-evil` })),
        "HostNotAllowed",
        /redirect to evil/,
      );
      await refused(
        c.serve(call({ url: `http://127.0.0.1:${port}/to-undeclared` })),
        "HostNotAllowed",
        /redirect/,
      );
      await refused(
        c.serve(call({ url: `http://127.0.0.1:${port}/loop` })),
        "TooManyRedirects",
        /more than 5/,
      );
    });
  });
});

Deno.test("a huge response is cut at maxResponseBytes, with and without content-length", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(65);
  await withServer((req) => {
    if (new URL(req.url).pathname === "/declared") return new Response(new Uint8Array(3 * 1024 * 1024));
    // Streams forever without a length: the client must stop reading, not buffer it.
    const stream = new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(chunk) });
    return new Response(stream);
  }, async (port) => {
    const c = client(`127.0.0.1:${port}`, [`127.0.0.1:${port}`]);
    await refused(c.serve(call({ url: `http://127.0.0.1:${port}/declared` })), "ResponseTooLarge", /1048576/);
    await refused(
      c.serve(call({ url: `http://127.0.0.1:${port}/stream`, maxResponseBytes: 100_000 })),
      "ResponseTooLarge",
      /100000/,
    );
    const ok = await c.serve(
      call({ url: `http://127.0.0.1:${port}/declared`, maxResponseBytes: 4 * 1024 * 1024 }),
    );
    assertEquals(ok.body.length, 3 * 1024 * 1024);
    assertEquals(c.stats()[0].circuit, "closed"); // a large answer is not the host's failure
  });
});

Deno.test("retries: idempotent methods only, within the deadline", async () => {
  let hits = 0;
  await withServer(
    () => (++hits % 3 === 0 ? new Response("third") : new Response("busy", { status: 503 })),
    async (port) => {
      const c = client(`127.0.0.1:${port}`, [`127.0.0.1:${port}`], { failureThreshold: 10, coolDownMs: 300 });
      const r = await c.serve(call({ url: `http://127.0.0.1:${port}/`, method: "GET" }));
      assertEquals([r.status, r.body, r.attempts], [200, "third", 3]);
      hits = 0;
      const post = await c.serve(call({ url: `http://127.0.0.1:${port}/`, method: "POST", body: "x" }));
      assertEquals([post.status, post.attempts], [503, 1]);
      hits = 0;
      const none = await c.serve(call({ url: `http://127.0.0.1:${port}/`, retries: 0 }));
      assertEquals([none.status, none.attempts], [503, 1]);
      assertEquals(c.stats()[0].retries, 2);
    },
  );
});

Deno.test("timeouts are bounded by the caller's deadline", async () => {
  await withServer(async () => {
    await new Promise((r) => setTimeout(r, 2_000));
    return new Response("late");
  }, async (port) => {
    const c = client(`127.0.0.1:${port}`, [`127.0.0.1:${port}`]);
    const started = Date.now();
    const slow = call({ url: `http://127.0.0.1:${port}/`, timeoutMs: 5_000, retries: 0 });
    slow.deadlineMs = Date.now() + 300;
    await refused(c.serve(slow), "Timeout", /did not answer within/);
    assert(Date.now() - started < 1_500, `took ${Date.now() - started} ms`);
  });
});

Deno.test("circuit per (group, host): opens after N failures, refuses; a probe closes it", async () => {
  let healthy = false;
  await withServer(
    () => healthy ? new Response("up") : new Response("down", { status: 500 }),
    async (broken) => {
      await withServer(() => new Response("fine"), async (good) => {
        const c = client(`127.0.0.1:${broken},127.0.0.1:${good}`, [
          `127.0.0.1:${broken}`,
          `127.0.0.1:${good}`,
        ]);
        for (let i = 0; i < 3; i++) {
          assertEquals((await c.serve(call({ url: `http://127.0.0.1:${broken}/`, retries: 0 }))).status, 500);
        }
        await refused(
          c.serve(call({ url: `http://127.0.0.1:${broken}/` })),
          "CircuitOpen",
          /circuit .* is open/,
        );
        // Another host of the same slice, and the same host for another group, are unaffected.
        assertEquals((await c.serve(call({ url: `http://127.0.0.1:${good}/` }))).body, "fine");
        healthy = true;
        assertEquals(
          (await c.serve(call({ url: `http://127.0.0.1:${broken}/` }, "org.b:other:1.0.0"))).body,
          "up",
        );
        const stats = c.stats();
        const of = (group: string, port: number) =>
          stats.find((s) => s.group === group && s.host === `127.0.0.1:${port}`)!;
        assertEquals(of("org.a", broken).circuit, "open");
        assertEquals(of("org.a", broken).rejected, 1);
        assertEquals(of("org.a", good).circuit, "closed");
        assertEquals(of("org.b", broken).circuit, "closed");
        await new Promise((r) => setTimeout(r, 350));
        assertEquals(
          c.stats().find((s) => s.group === "org.a" && s.host === `127.0.0.1:${broken}`)!.circuit,
          "half-open",
        );
        assertEquals((await c.serve(call({ url: `http://127.0.0.1:${broken}/` }))).body, "up");
        assertEquals(
          c.stats().find((s) => s.group === "org.a" && s.host === `127.0.0.1:${broken}`)!.circuit,
          "closed",
        );
      });
    },
  );
});

Deno.test("breaker: one probe at a time in half-open; a failed probe opens it again", () => {
  let t = 0;
  const b = new CircuitBreaker({ failureThreshold: 2, coolDownMs: 100 });
  b.failure(t);
  assertEquals(b.state(t), "closed");
  b.failure(t);
  assertEquals([b.state(t), b.admit(t)], ["open", false]);
  t = 100;
  assertEquals([b.admit(t), b.admit(t)], [true, false]);
  b.failure(t);
  assertEquals([b.state(t + 50), b.state(t + 100)], ["open", "half-open"]);
  assert(b.admit(t + 100));
  b.success();
  assertEquals(b.state(t + 100), "closed");
});

Deno.test("connection refused counts as a failure and is retried for GET", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const c = client(`127.0.0.1:${port}`, [`127.0.0.1:${port}`], { failureThreshold: 3, coolDownMs: 10_000 });
  await assertRejects(() => c.serve(call({ url: `http://127.0.0.1:${port}/` })));
  const s = c.stats()[0];
  assertEquals([s.requests, s.failures, s.circuit], [3, 3, "open"]);
});

Deno.test("in-flight limits: a group cannot hold more than its share; others get through", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  await withServer(async (req) => {
    if (new URL(req.url).pathname === "/slow") await gate;
    return new Response("done");
  }, async (port) => {
    const c = createHttpClient({
      allowed: () => parseAllowList(`127.0.0.1:${port}`),
      declared: () => [`127.0.0.1:${port}`],
      maxInFlightPerGroup: 3,
      maxInFlight: 5,
    });
    const slow = (slice: string) => c.serve(call({ url: `http://127.0.0.1:${port}/slow` }, slice));
    const held = [slow("org.a:caller:1.0.0"), slow("org.a:caller:1.0.0"), slow("org.a:caller:1.0.0")];
    await new Promise((r) => setTimeout(r, 100));
    await refused(
      slow("org.a:caller:1.0.0"),
      "TooManyRequests",
      /3 requests of group org\.a already in flight/,
    );
    held.push(slow("org.b:other:1.0.0"), slow("org.b:other:1.0.0"));
    await new Promise((r) => setTimeout(r, 100));
    await refused(slow("org.c:third:1.0.0"), "TooManyRequests", /5 outbound requests already in flight/);
    release();
    for (const r of await Promise.all(held)) assertEquals(r.body, "done");
    // Released: the group may send again.
    assertEquals((await c.serve(call({ url: `http://127.0.0.1:${port}/` }))).body, "done");
  });
});
