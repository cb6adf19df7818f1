/**
 * The span hooks (runtime/invoke/spans.ts) on real meshes and real sandboxes, several nodes in one process:
 * an HTTP request through a chain of slices on three nodes records one linked tree (http → call → attempt →
 * serve on the next node → the slice's own call → ...), one trace id throughout, continuing the caller's
 * traceparent; a retry after a node departs is a second attempt under the same call; without a sink nothing
 * is recorded.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { silentLogger } from "../core/mod.ts";
import { type Span, type SpanSink, toSpan } from "../invoke/mod.ts";
import { fixture, InProcessCluster } from "../invoke/testing.ts";
import { createAppHandler } from "./app.ts";
import { RouteDirectory } from "./directory.ts";

/** A sink that keeps every span (the node's ring does the same, bounded). */
function collector(): SpanSink & { spans: Span[] } {
  const spans: Span[] = [];
  return { spans, record: (record) => spans.push(toSpan(record)) };
}

const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN = "b7ad6b7169203331";

Deno.test("an HTTP request through three nodes: one linked tree of spans, the caller's trace continued", async () => {
  const sinks = new Map(["n1", "n2", "n3"].map((id) => [id, collector()]));
  const cluster = await InProcessCluster.start(["n1", "n2", "n3"], (id) => ({ spans: sinks.get(id) }));
  const directory = new RouteDirectory(() => cluster.state);
  const handler = createAppHandler({
    routes: () => {
      directory.reset();
      return directory.table();
    },
    invoker: cluster.node("n1").invoker,
    log: silentLogger,
    spans: sinks.get("n1"),
    node: "n1",
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  try {
    await cluster.deploy("n1", await fixture("front"));
    await cluster.deploy("n2", await fixture("middle"));
    await cluster.deploy("n3", await fixture("back"));
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/front/chain`, {
      method: "POST",
      headers: { "x-request-id": "rid-spans-1", traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` },
      body: "{}",
    });
    equal(response.status, 200, await response.text());

    const all = [...sinks.values()].flatMap((s) => s.spans);
    const shape = (node: string) => sinks.get(node)!.spans.map((s) => `${s.kind} ${s.name}`).sort();
    // front runs on n1 itself at the first try: its call span shows the instance (no attempt span).
    deepStrictEqual(shape("n1"), [
      "attempt org.example.invoke:middle:1.0.0/0@n2",
      "call org.example.invoke:front.chain",
      "call org.example.invoke:middle.relay",
      "http POST /front/chain",
    ]);
    deepStrictEqual(shape("n2"), [
      "attempt org.example.invoke:back:1.0.0/0@n3",
      "call org.example.invoke:back.echo",
      "serve org.example.invoke:middle:1.0.0/0.relay for n1",
    ]);
    deepStrictEqual(shape("n3"), ["serve org.example.invoke:back:1.0.0/0.echo for n2"]);
    for (const span of all) {
      equal(span.traceId, TRACE_ID, `${span.name}: the caller's trace`);
      equal(span.requestId, "rid-spans-1");
      equal(span.outcome, "ok", span.name);
      ok(span.durationMs >= 0);
    }
    equal(new Set(all.map((s) => s.spanId)).size, all.length, "span ids are unique");

    // The chain of parents, from the deepest span up to the caller's span.
    const byId = new Map(all.map((s) => [s.spanId, s]));
    const path: string[] = [];
    let span: Span | undefined = all.find((s) => s.kind === "serve" && s.node === "n3");
    while (span) {
      path.push(`${span.node} ${span.kind}`);
      if (span.parentSpanId === CALLER_SPAN) path.push("caller");
      span = span.parentSpanId === undefined ? undefined : byId.get(span.parentSpanId);
    }
    deepStrictEqual(path, [
      "n3 serve",
      "n2 attempt",
      "n2 call",
      "n2 serve",
      "n1 attempt",
      "n1 call",
      "n1 call",
      "n1 http",
      "caller",
    ]);
    const http = all.find((s) => s.kind === "http")!;
    equal(http.status, 200);
    deepStrictEqual([http.slice, http.method], ["org.example.invoke:front", "chain"]);
    const front = all.find((s) => s.kind === "call" && s.slice === "org.example.invoke:front")!;
    deepStrictEqual([front.instance, front.peer], ["org.example.invoke:front:1.0.0/0", "n1"]);
    const remote = all.find((s) => s.kind === "attempt" && s.peer === "n2")!;
    equal(remote.attempt, 1);
    equal(remote.instance, "org.example.invoke:middle:1.0.0/0");
  } finally {
    await server.shutdown();
    await cluster.close();
  }
});

Deno.test("a retry after a node departs is a second attempt under the same call span", async () => {
  const sink = collector();
  const cluster = await InProcessCluster.start(
    ["n1", "n2", "n3"],
    (id) => (id === "n1" ? { spans: sink } : {}),
  );
  try {
    const back = await fixture("back");
    await cluster.deploy("n2", back);
    await cluster.deploy("n3", back, 1);
    const call = cluster.node("n1").invoker.invoke("org.example.invoke:back", "sleep", { ms: 400 }, {
      timeoutMs: 20_000,
      requestId: "rid-retry-1",
    });
    await new Promise((r) => setTimeout(r, 100));
    await cluster.stopNode("n2");
    await call;
    const [callSpan] = sink.spans.filter((s) => s.kind === "call");
    const attempts = sink.spans.filter((s) => s.kind === "attempt").sort((a, b) => a.attempt! - b.attempt!);
    deepStrictEqual(
      attempts.map((a) => [a.attempt, a.peer, a.outcome]),
      [[1, "n2", "node_departed"], [2, "n3", "ok"]],
    );
    for (const a of attempts) equal(a.parentSpanId, callSpan.spanId);
    ok(
      attempts[1].startMs >= attempts[0].startMs + attempts[0].durationMs - 1,
      "the retry follows the failure",
    );
    equal(callSpan.outcome, "ok");
    ok(callSpan.durationMs >= 400, `the call spans both attempts (${callSpan.durationMs} ms)`);
  } finally {
    await cluster.close();
  }
});

Deno.test("no live instance: each look is an attempt span, the call ends with the failure's kind", async () => {
  const sink = collector();
  const cluster = await InProcessCluster.start(["n1"], {
    spans: sink,
    retry: { maxAttempts: 3, baseBackoffMs: 10, maxBackoffMs: 20 },
  });
  try {
    const failed = await cluster.node("n1").invoker.invoke("org.example.invoke:nothing", "echo", {}, {
      timeoutMs: 2_000,
    }).then(() => undefined, (e) => e as Error);
    ok(failed, "the call fails");
    const [callSpan] = sink.spans.filter((s) => s.kind === "call");
    equal(callSpan.outcome, "no_instance");
    const attempts = sink.spans.filter((s) => s.kind === "attempt");
    deepStrictEqual(attempts.map((a) => a.attempt), [1, 2, 3], "every look, retries included");
    for (const a of attempts) {
      equal(a.outcome, "no_instance");
      equal(a.parentSpanId, callSpan.spanId);
    }
  } finally {
    await cluster.close();
  }
});

Deno.test("a sink that throws never fails a call or a request; without a sink calls work as before", async () => {
  const throwing: SpanSink = {
    record() {
      throw new Error("a broken sink");
    },
  };
  const cluster = await InProcessCluster.start(["n1"], { spans: throwing });
  const plain = await InProcessCluster.start(["n1"]);
  const directory = new RouteDirectory(() => cluster.state);
  const handler = createAppHandler({
    routes: () => {
      directory.reset();
      return directory.table();
    },
    invoker: cluster.node("n1").invoker,
    log: silentLogger,
    spans: throwing,
    node: "n1",
  });
  try {
    await cluster.deploy("n1", await fixture("back"));
    await plain.deploy("n1", await fixture("back"));
    const outcome = await cluster.node("n1").invoker.invoke("org.example.invoke:back", "echo", { x: 1 });
    ok(outcome.ok, JSON.stringify(outcome));
    equal(cluster.node("n1").invoker.stats().retries, 0, "not retried");
    const response = await handler(new Request("http://node/back/echo", { method: "POST", body: "{}" }));
    equal(response.status, 200, await response.text());
    ok((await plain.node("n1").invoker.invoke("org.example.invoke:back", "echo", { x: 1 })).ok);
  } finally {
    await cluster.close();
    await plain.close();
  }
});
