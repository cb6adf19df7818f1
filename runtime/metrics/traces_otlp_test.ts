/**
 * The OTLP/HTTP JSON exporter against a real HTTP receiver on loopback (Deno.serve in this test): the body's
 * shape (resourceSpans → scopeSpans → spans with hex ids, nanosecond strings, kinds, attributes, status),
 * batching, retries of 503 and of a receiver that is not up yet, giving up on 400, the bounded queue while
 * the collector is away, and the URL a user gives.
 */

import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import type { Span, SpanRecord } from "../invoke/mod.ts";
import { OtlpExporter, otlpTracesUrl, unixNanos } from "./traces_otlp.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
let next = 1;

/** The record a hook would have made for `span`. */
function recordOf(span: Span): SpanRecord {
  const { traceId, spanId, parentSpanId, ...rest } = span;
  return {
    ...rest,
    traceparent: `00-${traceId}-${spanId}-01`,
    ...(parentSpanId === undefined ? {} : { parent: `00-${traceId}-${parentSpanId}-01` }),
  };
}

function span(overrides: Partial<Span> = {}): Span {
  return {
    traceId: TRACE,
    spanId: (next++).toString(16).padStart(16, "0"),
    requestId: "req-otlp",
    node: "n1",
    kind: "call",
    name: "org.example:inventory.reserve",
    slice: "org.example:inventory",
    method: "reserve",
    startMs: 1_765_000_000_123.5,
    durationMs: 2.5,
    outcome: "ok",
    ...overrides,
  };
}

/** A receiver that answers each POST with the next status of `statuses` (then 200), keeping the bodies. */
function receiver(statuses: number[] = [], port = 0) {
  const bodies: unknown[] = [];
  const seen: { path: string; type: string | null; status: number }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, async (request) => {
    const body = await request.json();
    const status = statuses.shift() ?? 200;
    seen.push({ path: new URL(request.url).pathname, type: request.headers.get("content-type"), status });
    if (status !== 200) return new Response("try later", { status });
    bodies.push(body);
    return Response.json({});
  });
  return {
    bodies,
    seen,
    port: server.addr.port,
    url: `http://127.0.0.1:${server.addr.port}/v1/traces`,
    server,
  };
}

const silent = { warn: () => {} };

// deno-lint-ignore no-explicit-any
type Json = any;

Deno.test("OTLP JSON: resourceSpans/scopeSpans/spans with hex ids, nanosecond strings, kinds, attributes", async () => {
  const r = receiver();
  const exporter = new OtlpExporter({ url: r.url, node: "n1", log: silent, flushIntervalMs: 50 });
  try {
    const http = span({ kind: "http", name: "POST /api/v1/orders", status: 201, durationMs: 10 });
    const call = span({ parentSpanId: http.spanId });
    const attempt = span({
      kind: "attempt",
      parentSpanId: call.spanId,
      instance: "org.example:inventory:1.0.0/0",
      peer: "n2",
      attempt: 2,
      outcome: "node_departed",
    });
    const serve = span({
      kind: "serve",
      parentSpanId: attempt.spanId,
      node: "n1",
      outcome: "error",
      status: 402,
    });
    for (const s of [http, call, attempt, serve]) exporter.record(recordOf(s));
    await exporter.flush();
    equal(r.bodies.length, 1, "one batch");
    deepStrictEqual(r.seen.map((s) => [s.path, s.type]), [["/v1/traces", "application/json"]]);
    const body = r.bodies[0] as Json;
    equal(body.resourceSpans.length, 1);
    const resource = body.resourceSpans[0];
    deepStrictEqual(resource.resource.attributes, [
      { key: "service.name", value: { stringValue: "aether" } },
      { key: "service.instance.id", value: { stringValue: "n1" } },
    ]);
    equal(resource.scopeSpans.length, 1);
    equal(resource.scopeSpans[0].scope.name, "aether.runtime");
    const spans = resource.scopeSpans[0].spans as Json[];
    equal(spans.length, 4);
    const [h, c, a, s] = spans;
    for (const x of spans) {
      equal(x.traceId, TRACE);
      match(x.spanId, /^[0-9a-f]{16}$/);
      match(x.startTimeUnixNano, /^\d{19}$/);
      ok(BigInt(x.endTimeUnixNano) > BigInt(x.startTimeUnixNano));
    }
    equal(h.parentSpanId, undefined, "the root has no parent field");
    equal(c.parentSpanId, h.spanId);
    equal(a.parentSpanId, c.spanId);
    equal(h.startTimeUnixNano, "1765000000123500000");
    equal(h.endTimeUnixNano, "1765000000133500000");
    deepStrictEqual([h.kind, c.kind, a.kind, s.kind], [2, 1, 3, 2], "server, internal, client, server");
    deepStrictEqual(h.status, { code: 1 });
    deepStrictEqual(a.status, { code: 2, message: "node_departed" });
    deepStrictEqual(s.status, { code: 2, message: "error" });
    const attr = (x: Json, key: string) => x.attributes.find((kv: Json) => kv.key === key)?.value;
    deepStrictEqual(attr(h, "http.response.status_code"), { intValue: "201" });
    deepStrictEqual(attr(h, "aether.request_id"), { stringValue: "req-otlp" });
    deepStrictEqual(attr(a, "aether.attempt"), { intValue: "2" });
    deepStrictEqual(attr(a, "aether.peer"), { stringValue: "n2" });
    deepStrictEqual(attr(a, "aether.instance"), { stringValue: "org.example:inventory:1.0.0/0" });
    deepStrictEqual(attr(s, "aether.status"), { intValue: "402" });
    deepStrictEqual(attr(c, "aether.slice"), { stringValue: "org.example:inventory" });
    equal(exporter.stats.sent, 4);
  } finally {
    await exporter.stop();
    await r.server.shutdown();
  }
});

Deno.test("OTLP batches: at most batchSpans per request, sent when a batch is full", async () => {
  const r = receiver();
  // A long interval: only a full batch triggers a send before flush().
  const exporter = new OtlpExporter({
    url: r.url,
    node: "n1",
    log: silent,
    batchSpans: 10,
    flushIntervalMs: 60_000,
  });
  try {
    for (let i = 0; i < 25; i++) exporter.record(recordOf(span()));
    const deadline = Date.now() + 5_000;
    while (r.bodies.length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 10));
    await exporter.flush();
    const sizes = (r.bodies as Json[]).map((b) => b.resourceSpans[0].scopeSpans[0].spans.length);
    deepStrictEqual(sizes, [10, 10, 5]);
    equal(exporter.stats.sent, 25);
    equal(exporter.stats.queued, 0);
  } finally {
    await exporter.stop();
    await r.server.shutdown();
  }
});

Deno.test("OTLP retries: 503 twice then accepted; a 400 is given up at once and counted", async () => {
  const r = receiver([503, 503]);
  const exporter = new OtlpExporter({
    url: r.url,
    node: "n1",
    log: silent,
    flushIntervalMs: 20,
    firstRetryDelayMs: 20,
  });
  try {
    exporter.record(recordOf(span()));
    await exporter.flush();
    deepStrictEqual(r.seen.map((s) => s.status), [503, 503, 200]);
    equal(exporter.stats.retries, 2);
    equal(exporter.stats.sent, 1);
    equal(r.bodies.length, 1);

    const bad = receiver([400]);
    const refused = new OtlpExporter({ url: bad.url, node: "n1", log: silent, firstRetryDelayMs: 20 });
    refused.record(recordOf(span()));
    await refused.flush();
    deepStrictEqual(bad.seen.map((s) => s.status), [400]);
    equal(refused.stats.droppedFailed, 1);
    equal(refused.stats.retries, 0);
    match(refused.stats.lastError!, /HTTP 400/);
    await refused.stop();
    await bad.server.shutdown();
  } finally {
    await exporter.stop();
    await r.server.shutdown();
  }
});

Deno.test("OTLP with the collector away: the queue stays bounded; the batch in flight is retried until it is up", async () => {
  // Find a free port, then keep nothing listening on it until the exporter has failed a few times.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const exporter = new OtlpExporter({
    url: `http://127.0.0.1:${port}/v1/traces`,
    node: "n1",
    log: silent,
    batchSpans: 5,
    maxQueuedSpans: 20,
    flushIntervalMs: 20,
    firstRetryDelayMs: 100,
    maxAttempts: 10,
  });
  let r: ReturnType<typeof receiver> | undefined;
  try {
    for (let i = 0; i < 100; i++) exporter.record(recordOf(span()));
    await new Promise((res) => setTimeout(res, 150));
    const stats = exporter.stats;
    ok(stats.queued <= 20, `queued ${stats.queued}`);
    equal(stats.droppedQueueFull, 80, "the spans beyond the queue's bound");
    ok(stats.retries >= 1, "the first batch is being retried");
    match(stats.lastError!, /POST http:\/\/127\.0\.0\.1/);
    r = receiver([], port);
    await exporter.flush();
    equal(exporter.stats.sent, 20, "the queued spans arrive once the collector is up");
    equal(exporter.stats.queued, 0);
  } finally {
    await exporter.stop();
    await r?.server.shutdown();
  }
});

Deno.test("otlpTracesUrl: a base gets /v1/traces; a path is kept; bad URLs are named", () => {
  equal(otlpTracesUrl("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
  equal(otlpTracesUrl("http://collector:4318/"), "http://collector:4318/v1/traces");
  equal(otlpTracesUrl("https://otel.example/custom/path"), "https://otel.example/custom/path");
  throws(() => otlpTracesUrl("collector:4318"), /not an http:\/\/ or https:\/\/ URL/);
  throws(() => otlpTracesUrl("not a url"), /is not a URL/);
  throws(() => otlpTracesUrl("ftp://x/"), /not an http/);
  throws(() => otlpTracesUrl("http://user:pw@x/"), /credentials/);
  equal(unixNanos(1.5), "1500000");
  equal(unixNanos(1_765_000_000_123.5), "1765000000123500000");
});
