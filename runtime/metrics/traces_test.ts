/**
 * The span ring (bounded, overwrites the oldest, finds by request id or trace id, its memory bound), the tree
 * assembly (nesting, ordering, missing parents, duplicates, cycles), the check of peers' spans, and gathering
 * a request's spans from other members over real meshes on loopback.
 */

import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createLogger, newTraceparent, randomHexId } from "../core/mod.ts";
import { type Span, type SpanRecord, withSpanId } from "../invoke/mod.ts";
import { Mesh } from "../net/mod.ts";
import {
  assembleTrace,
  cleanSpan,
  DEFAULT_SPAN_RING_CAPACITY,
  isSpan,
  MAX_SPAN_RING_BYTES,
  MAX_TRACE_SPANS,
  SpanRing,
  type TraceNode,
} from "./traces.ts";
import { ClusterTraces } from "./traces_cluster.ts";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
let nextSpan = 1;
const spanId = () => (nextSpan++).toString(16).padStart(16, "0");

/** The record a hook would have made for `span` (the ring stores records; it answers with spans). */
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
    spanId: spanId(),
    requestId: "req-1",
    node: "n1",
    kind: "call",
    name: "org.example:inventory.reserve",
    slice: "org.example:inventory",
    method: "reserve",
    startMs: 1_700_000_000_000,
    durationMs: 1,
    outcome: "ok",
    ...overrides,
  };
}

Deno.test("the ring keeps the newest spans up to its capacity and counts what it overwrote", () => {
  const ring = new SpanRing(4);
  for (let i = 0; i < 6; i++) ring.record(recordOf(span({ requestId: `r${i}` })));
  deepStrictEqual(ring.stats, { capacity: 4, held: 4, recorded: 6, overwritten: 2 });
  equal(ring.find("r0").spans.length, 0, "overwritten");
  equal(ring.find("r1").spans.length, 0, "overwritten");
  for (const id of ["r2", "r3", "r4", "r5"]) equal(ring.find(id).spans.length, 1, id);
  throws(() => new SpanRing(0), /capacity 0/);
});

Deno.test("find: by request id or trace id, oldest first, the newest kept past the limit", () => {
  const ring = new SpanRing(100);
  const other = "0af7651916cd43dd8448eb211c80319c";
  for (let i = 0; i < 10; i++) {
    ring.record(
      recordOf(span({ requestId: i % 2 === 0 ? "even" : "odd", traceId: i % 2 ? other : TRACE, startMs: i })),
    );
  }
  deepStrictEqual(ring.find("even").spans.map((s) => s.startMs), [0, 2, 4, 6, 8]);
  deepStrictEqual(ring.find(other).spans.map((s) => s.startMs), [1, 3, 5, 7, 9], "by trace id");
  const cut = ring.find("even", 2);
  deepStrictEqual(cut.spans.map((s) => s.startMs), [6, 8]);
  equal(cut.truncated, true);
  equal(ring.find("even").truncated, false);
  equal(ring.find("none").spans.length, 0);
});

/** V8's collector, reached through node:v8 and node:vm, to measure what the ring retains. */
function collector(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

/** Heap bytes `fill` leaves retained in a new default ring (garbage collected before and after). */
function retainedBytes(fill: (ring: SpanRing, i: number) => void): number {
  const gc = collector();
  const ring = new SpanRing(DEFAULT_SPAN_RING_CAPACITY);
  gc();
  const before = Deno.memoryUsage().heapUsed;
  for (let i = 0; i < DEFAULT_SPAN_RING_CAPACITY; i++) fill(ring, i);
  gc();
  const retained = Deno.memoryUsage().heapUsed - before;
  equal(ring.stats.held, DEFAULT_SPAN_RING_CAPACITY);
  return retained;
}

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

Deno.test(`memory bound: a full default ring of the largest spans stays under ${MAX_SPAN_RING_BYTES >> 20} MiB`, () => {
  // The largest span the hooks make: an http span with a 200-character path, a 128-character request id and
  // a caller's traceparent; every string its own (as in a node: ids are fresh per request).
  const largest = retainedBytes((ring, i) => {
    const header = newTraceparent();
    ring.record({
      kind: "http",
      traceparent: withSpanId(header, randomHexId(8)),
      parent: header,
      requestId: `${i}-${"r".repeat(128)}`.slice(0, 128),
      node: "node-name-01",
      name: `POST /${"p".repeat(199)}${i}`.slice(0, 205),
      slice: "org.example.some-group:some-artifact",
      method: "someMethodName",
      startMs: 1_700_000_000_000 + i,
      durationMs: 1.25,
      outcome: "ok",
      status: 200,
    });
  });
  // An attempt of the example shop, made as the invoker makes it: its traceparent from the call's, a fresh
  // instance name and a 16-digit request id (the call's traceparent counted too, though the call keeps it).
  const shop = retainedBytes((ring, i) => {
    const call = newTraceparent();
    ring.record({
      kind: "attempt",
      traceparent: withSpanId(call, randomHexId(8)),
      parent: call,
      requestId: randomHexId(8),
      node: "n1",
      slice: "org.example:inventory",
      method: "checkStock",
      instance: `${"org.example:inventory:1.0.0"}/${i % 3}`,
      peer: "n1",
      attempt: 1,
      startMs: 1_700_000_000_000 + i,
      durationMs: 1.25,
      outcome: "ok",
    });
  });
  const n = DEFAULT_SPAN_RING_CAPACITY;
  console.log(
    `  ${n} spans retained: largest ${mib(largest)} (${(largest / n).toFixed(0)} B/span), ` +
      `the shop's attempts ${mib(shop)} (${(shop / n).toFixed(0)} B/span)`,
  );
  ok(largest < MAX_SPAN_RING_BYTES, `${largest} bytes`);
  ok(shop < largest);
});

function names(nodes: TraceNode[], depth = 0): string[] {
  return nodes.flatMap((n) => [`${"  ".repeat(depth)}${n.kind} ${n.name}`, ...names(n.children, depth + 1)]);
}

Deno.test("assembleTrace: children under their parents by start time, offsets from the first span", () => {
  const http = span({ kind: "http", name: "POST /orders", startMs: 1000, durationMs: 10, node: "n1" });
  const call = span({ parentSpanId: http.spanId, name: "place-order.place", startMs: 1000.5, durationMs: 9 });
  const attempt = span({
    kind: "attempt",
    parentSpanId: call.spanId,
    name: "a",
    startMs: 1000.6,
    durationMs: 8.8,
  });
  const serve = span({ kind: "serve", parentSpanId: attempt.spanId, name: "s", node: "n2", startMs: 1001 });
  const second = span({ parentSpanId: serve.spanId, name: "pricing.price", node: "n2", startMs: 1004 });
  const first = span({ parentSpanId: serve.spanId, name: "inventory.check", node: "n2", startMs: 1002 });
  // Out of order, with a duplicate (the same span from two answers).
  const tree = assembleTrace("req-1", [second, serve, http, first, attempt, call, { ...first }]);
  deepStrictEqual(names(tree.roots), [
    "http POST /orders",
    "  call place-order.place",
    "    attempt a",
    "      serve s",
    "        call inventory.check",
    "        call pricing.price",
  ]);
  equal(tree.spanCount, 6);
  deepStrictEqual(tree.nodes, ["n1", "n2"]);
  deepStrictEqual(tree.traceIds, [TRACE]);
  deepStrictEqual(tree.requestIds, ["req-1"]);
  equal(tree.durationMs, 10);
  equal(tree.startTime, new Date(1000).toISOString());
  const serveNode = tree.roots[0].children[0].children[0].children[0];
  equal(serveNode.offsetMs, 1);
  equal(serveNode.node, "n2");
  equal(serveNode.children[1].offsetMs, 4);
});

Deno.test("assembleTrace: a span whose parent is missing is a root; a cycle is cut", () => {
  const a = span({ name: "a", startMs: 1 });
  const orphan = span({ name: "orphan", parentSpanId: "00000000000000ff", startMs: 2 });
  const tree = assembleTrace("req-1", [a, orphan]);
  deepStrictEqual(names(tree.roots), ["call a", "call orphan"]);

  const x = span({ name: "x", startMs: 1 });
  const y = span({ name: "y", startMs: 2, parentSpanId: x.spanId });
  x.parentSpanId = y.spanId;
  const self = span({ name: "self", startMs: 3 });
  self.parentSpanId = self.spanId;
  const cyclic = assembleTrace("req-1", [x, y, self]);
  equal(cyclic.spanCount, 3);
  // x is linked under y first (in start order); y's link under x would close the loop: y stays a root.
  deepStrictEqual(names(cyclic.roots), ["call y", "  call x", "call self"]);
  equal(assembleTrace("none", []).spanCount, 0);
});

Deno.test("isSpan accepts the hooks' spans and refuses malformed ones from a peer; cleanSpan drops nulls", () => {
  ok(isSpan(span()));
  ok(isSpan({ ...span(), parentSpanId: null, status: null }));
  for (
    const bad of [
      null,
      "span",
      { ...span(), traceId: "xyz" },
      { ...span(), spanId: "1234" },
      { ...span(), kind: "other" },
      { ...span(), startMs: "now" },
      { ...span(), durationMs: Infinity },
      { ...span(), parentSpanId: "not-hex-at-all!!" },
      { ...span(), requestId: "r".repeat(201) },
      { ...span(), attempt: "1" },
    ]
  ) ok(!isSpan(bad), JSON.stringify(bad)?.slice(0, 80));
  const cleaned = cleanSpan({ ...span(), parentSpanId: null, status: null } as unknown as Span);
  ok(!("parentSpanId" in cleaned) && !("status" in cleaned));
});

Deno.test("ClusterTraces over real meshes: every member's spans of a request; a stopped member is unreachable", async () => {
  const secret = new TextEncoder().encode("traces-test-secret-0123456789");
  const ids = ["n1", "n2", "n3"];
  const meshes = ids.map((self) =>
    new Mesh({
      self,
      peers: ids.map((id) => ({ id, host: "127.0.0.1", port: 0 })),
      secret,
      logger: createLogger({ level: "error", sink: () => {} }),
    })
  );
  for (const mesh of meshes) await mesh.start();
  for (const mesh of meshes) {
    for (const other of meshes) if (other !== mesh) mesh.setPeerAddress(other.self, "127.0.0.1", other.port);
  }
  const rings = ids.map(() => new SpanRing(MAX_TRACE_SPANS + 100));
  const log = { warn: () => {} };
  const gatherers = meshes.map((mesh, i) =>
    new ClusterTraces({ self: ids[i], members: ids, mesh, ring: rings[i], log, timeoutMs: 1_000 })
  );
  try {
    const deadline = Date.now() + 10_000;
    while (!meshes.every((m) => m.connectedPeers().length === 2)) {
      if (Date.now() > deadline) throw new Error("meshes did not connect");
      await new Promise((r) => setTimeout(r, 10));
    }
    rings[0].record(recordOf(span({ node: "n1", requestId: "req-x", name: "on n1" })));
    rings[1].record(
      recordOf(span({ node: "n2", requestId: "req-x", name: "on n2", parentSpanId: undefined })),
    );
    rings[1].record(recordOf(span({ node: "n2", requestId: "other" })));
    for (let i = 0; i < MAX_TRACE_SPANS + 5; i++) {
      rings[2].record(recordOf(span({ node: "n3", requestId: "many" })));
    }
    const answer = await gatherers[0].gather("req-x");
    deepStrictEqual(answer.spans.map((s) => s.name).sort(), ["on n1", "on n2"]);
    deepStrictEqual(answer.unreachable, {});
    ok(answer.spans.every(isSpan) && answer.spans.every((s) => !Object.values(s).includes(null)));
    const many = await gatherers[1].gather("many");
    equal(many.spans.length, MAX_TRACE_SPANS);
    deepStrictEqual(many.truncated, ["n3"]);

    gatherers[2].stop();
    await meshes[2].stop();
    const without = await gatherers[0].gather("req-x");
    deepStrictEqual(without.spans.map((s) => s.name).sort(), ["on n1", "on n2"]);
    deepStrictEqual(Object.keys(without.unreachable), ["n3"]);
  } finally {
    for (const g of gatherers) g.stop();
    await Promise.all(meshes.map((m) => m.stop().catch(() => {})));
  }
});
