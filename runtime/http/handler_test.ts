/**
 * The application HTTP handler served by Deno.serve in front of real sandboxes and real meshes (several nodes
 * in one process; the multi-process version is tests/integration/invoke_test.ts). Here two versions of a
 * slice run at once, which the deployment API cannot do yet (a target has one version), to show that HTTP
 * requests follow version weights per request.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { silentLogger } from "../core/mod.ts";
import { fixture, InProcessCluster } from "../invoke/testing.ts";
import { createAppHandler } from "./app.ts";
import { RouteDirectory } from "./directory.ts";

function serveNode(cluster: InProcessCluster, id: string, previewSecret?: string) {
  const directory = new RouteDirectory(() => cluster.state);
  const handler = createAppHandler({
    routes: () => {
      directory.reset();
      return directory.table();
    },
    invoker: cluster.node(id).invoker,
    log: silentLogger,
    maxBodyBytes: 2048,
    previewSecret,
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return { server, url: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("HTTP requests follow version weights per request: 1:3 gives a quarter to the new version", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  const { server, url } = serveNode(cluster, "n1");
  try {
    await cluster.deploy("n2", await fixture("back"));
    await cluster.deploy("n3", await fixture("back", "1.1.0"));
    cluster.setRouting("org.example.invoke:back", {
      oldVersion: "1.0.0",
      newVersion: "1.1.0",
      oldWeight: 3,
      newWeight: 1,
    });
    const versions: string[] = [];
    for (let i = 0; i < 80; i++) {
      const response = await fetch(`${url}/back/echo`, { method: "POST", body: JSON.stringify({ i }) });
      equal(response.status, 200);
      versions.push(((await response.json()) as { coordinates: string }).coordinates);
    }
    equal(versions.filter((v) => v.endsWith(":1.1.0")).length, 20);
    // Without weights both versions serve, in turns (n1 has no instance: round-robin over n2 and n3).
    cluster.apply({ type: "delete", key: "routing/org.example.invoke:back" });
    const unweighted = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${url}/back/echo`, { method: "POST", body: "{}" });
      unweighted.add(((await response.json()) as { coordinates: string }).coordinates);
    }
    deepStrictEqual(unweighted, new Set(["org.example.invoke:back:1.0.0", "org.example.invoke:back:1.1.0"]));
  } finally {
    await server.shutdown();
    await cluster.close();
  }
});

Deno.test("preview: x-aether-version with the node's secret reaches only that version; else refused or ignored", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"]);
  const secret = "a-preview-secret-of-16+";
  const withSecret = serveNode(cluster, "n1", secret);
  const withoutSecret = serveNode(cluster, "n1");
  const coordinates = async (url: string, headers: Record<string, string>) => {
    const response = await fetch(`${url}/back/echo`, { method: "POST", body: "{}", headers });
    const body = await response.json();
    return response.ok ? (body as { coordinates: string }).coordinates : `${response.status} ${body.detail}`;
  };
  try {
    await cluster.deploy("n2", await fixture("back"));
    await cluster.deploy("n3", await fixture("back", "1.1.0"));
    // Blue-green before promotion: every request to the stable version, none to the new one.
    cluster.setRouting("org.example.invoke:back", {
      oldVersion: "1.0.0",
      newVersion: "1.1.0",
      oldWeight: 1,
      newWeight: 0,
    });
    const preview = { "x-aether-version": "1.1.0", "x-aether-preview-secret": secret };
    for (let i = 0; i < 5; i++) {
      equal(await coordinates(withSecret.url, preview), "org.example.invoke:back:1.1.0");
      equal(await coordinates(withSecret.url, {}), "org.example.invoke:back:1.0.0");
    }
    const wrong = await coordinates(withSecret.url, { ...preview, "x-aether-preview-secret": "guess" });
    equal(
      wrong,
      "403 header x-aether-version needs header x-aether-preview-secret with this node's preview secret",
    );
    const bad = await coordinates(withSecret.url, { ...preview, "x-aether-version": "latest" });
    equal(bad, '400 header x-aether-version: "latest" is not a version like 1.2.0');
    // A node without a preview secret ignores the header: nobody picks an unreleased version by default.
    equal(await coordinates(withoutSecret.url, preview), "org.example.invoke:back:1.0.0");
  } finally {
    await withSecret.server.shutdown();
    await withoutSecret.server.shutdown();
    await cluster.close();
  }
});

Deno.test("HTTP statuses through the handler: forwarded calls, errors, limits, no route, no live instance", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2"], {
    retry: { maxAttempts: 2, baseBackoffMs: 10 },
  });
  const { server, url } = serveNode(cluster, "n1");
  try {
    await cluster.deploy("n2", await fixture("back"));
    const echo = await fetch(`${url}/back/echo`, {
      method: "POST",
      body: '{"a":1}',
      headers: { "x-request-id": "h-1" },
    });
    equal(echo.status, 200);
    equal(echo.headers.get("x-request-id"), "h-1");
    const body = await echo.json();
    deepStrictEqual([body.got, body.requestId], [{ a: 1 }, "h-1"]);
    const cases: Array<[string, RequestInit, number]> = [
      ["/back/fail/missing", {}, 404],
      ["/back/fail/invalid", {}, 400],
      ["/back/echo", { method: "POST", body: "[1," }, 400],
      ["/back/echo", { method: "POST", body: "x".repeat(3000) }, 413],
      ["/back/echo", { method: "GET" }, 405],
      ["/nope", {}, 404],
      ["/back/sleep?ms=3000", { headers: { "x-aether-timeout-ms": "100" } }, 504],
      ["/back/sleep?ms=1", { headers: { "x-aether-timeout-ms": "soon" } }, 400],
      ["/back/things/a%2Fb?verbose=1", {}, 200],
    ];
    for (const [path, init, status] of cases) {
      const response = await fetch(url + path, init);
      const text = await response.text();
      equal(response.status, status, `${init.method ?? "GET"} ${path}: ${text}`);
      if (status >= 400) {
        equal(response.headers.get("content-type"), "application/problem+json");
        ok(JSON.parse(text).requestId, "problem documents carry the request id");
      }
    }
    // A GET body has no meaning and is not read (not even malformed JSON is an error); the connection still
    // serves the next request. fetch() refuses to send a GET body, so this goes over a raw socket.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    const get = "GET /back/things/7 HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\n\r\n[1,";
    await conn.write(new TextEncoder().encode(get + get));
    let raw = "";
    const chunk = new Uint8Array(8192);
    while ((raw.match(/HTTP\/1\.1 /g) ?? []).length < 2 || !raw.endsWith("}")) {
      const n = await conn.read(chunk);
      if (n === null) break;
      raw += new TextDecoder().decode(chunk.subarray(0, n));
    }
    conn.close();
    deepStrictEqual(raw.match(/HTTP\/1\.1 \d+/g), ["HTTP/1.1 200", "HTTP/1.1 200"], raw);
    // The only instance's node departs: the route is still known, the answer is 503.
    await cluster.stopNode("n2");
    const gone = await fetch(`${url}/back/echo`, { method: "POST", body: "{}" });
    equal(gone.status, 503);
    const problem = await gone.json();
    ok(/no live instance/.test(problem.detail), problem.detail);
  } finally {
    await server.shutdown();
    await cluster.close();
  }
});

Deno.test("a slow instance at its maxPendingRequests answers 503 with retry-after; the admitted requests complete", async () => {
  // One attempt per call, so the instance's refusal is what the client sees (the invoker would retry it).
  const cluster = await InProcessCluster.start(["n1"], {
    hostLimits: { maxPendingRequests: 2 },
    retry: { maxAttempts: 1 },
  });
  const { server, url } = serveNode(cluster, "n1");
  try {
    await cluster.deploy("n1", await fixture("back"));
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => fetch(`${url}/back/sleep?ms=400`)),
    );
    const bodies = await Promise.all(responses.map((r) => r.json()));
    const answered = responses.filter((r) => r.status === 200);
    const refused = responses.flatMap((r, i) => r.status === 503 ? [{ r, body: bodies[i] }] : []);
    deepStrictEqual([answered.length, refused.length], [2, 3]);
    for (const { r, body } of refused) {
      equal(r.headers.get("retry-after"), "1");
      equal(r.headers.get("content-type"), "application/problem+json");
      ok(
        /refused, 2 calls are waiting for the slice already \(limit maxPendingRequests 2\)/.test(body.detail),
        body.detail,
      );
    }
    equal(cluster.node("n1").executor.refusedRequests, 3);
  } finally {
    await server.shutdown();
    await cluster.close();
  }
});

Deno.test("an overloaded instance on another node answers 503 with retry-after through this node", async () => {
  const cluster = await InProcessCluster.start(["n1", "n2"], {
    hostLimits: { maxPendingRequests: 2 },
    retry: { maxAttempts: 1 },
  });
  const { server, url } = serveNode(cluster, "n1");
  try {
    await cluster.deploy("n2", await fixture("back"));
    const responses = await Promise.all(
      Array.from({ length: 5 }, () => fetch(`${url}/back/sleep?ms=400`)),
    );
    const bodies = await Promise.all(responses.map((r) => r.json()));
    const refused = responses.flatMap((r, i) => r.status === 503 ? [{ r, body: bodies[i] }] : []);
    equal(refused.length, 3, JSON.stringify(bodies));
    for (const { r, body } of refused) {
      equal(r.headers.get("retry-after"), "1", body.detail);
      ok(/node n2: .*maxPendingRequests 2/.test(body.detail), body.detail);
    }
  } finally {
    await server.shutdown();
    await cluster.close();
  }
});

Deno.test("with the default maxPendingRequests, 256 concurrent requests to one slow instance are all served", async () => {
  const cluster = await InProcessCluster.start(["n1"], { retry: { maxAttempts: 1 } });
  const { server, url } = serveNode(cluster, "n1");
  try {
    const instanceId = await cluster.deploy("n1", await fixture("back"));
    const host = cluster.node("n1").executor.get(instanceId)!.host!;
    let peak = 0;
    const sampler = setInterval(() => peak = Math.max(peak, host.stats.pendingRequests), 5);
    const responses = await Promise.all(
      Array.from({ length: 256 }, () => fetch(`${url}/back/sleep?ms=300`)),
    );
    clearInterval(sampler);
    await Promise.all(responses.map((r) => r.body?.cancel()));
    deepStrictEqual(new Set(responses.map((r) => r.status)), new Set([200]));
    equal(cluster.node("n1").executor.refusedRequests, 0);
    ok(peak >= 128, `only ${peak} calls were pending at once`);
  } finally {
    await server.shutdown();
    await cluster.close();
  }
});
