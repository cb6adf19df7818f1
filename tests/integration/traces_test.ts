/**
 * Request traces on 3 real node processes with the example shop (examples/ecommerce, its five slices built
 * and pushed, a blueprint giving place-order one instance and the other four slices one per node), every node
 * started with --otlp-endpoint naming an OTLP/HTTP receiver this test serves on loopback:
 *
 * - an order sent to a node without place-order's instance crosses nodes: the router and the first attempt
 *   on the node that took it, the served call and place-order's four calls on the node that runs it;
 * - GET /api/v1/traces/{requestId} through the third node (which recorded none of it) assembles one tree:
 *   http → call place-order → attempt → serve → place-order's calls of the four others (inventory, pricing,
 *   payment, fulfillment; eight calls), each answered by the local instance at the first try (so its call
 *   span names the instance, and has no attempt span); every span's parent is in the tree and a child lies
 *   within its parent;
 * - `aether trace <requestId>` prints the timeline: the five slices with their timings, both nodes;
 * - the receiver got the same spans as OTLP JSON (resourceSpans/scopeSpans/spans, hex ids, nanosecond
 *   strings) from both nodes;
 * - a malformed id is a 400 naming the parameter, an unknown one a 404; the CLI exits non-zero for it;
 * - with the node that ran place-order killed, the trace still answers with the other node's spans and
 *   names the dead one unreachable (the CLI warns).
 *
 *   deno test -A --unstable-worker-options tests/integration/traces_test.ts
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { runCli } from "../_support/cli.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const EXAMPLE = new URL("../../examples/ecommerce/", import.meta.url);
const SLICES = ["place-order", "inventory", "pricing", "payment", "fulfillment"];
const ORDER = JSON.parse(await Deno.readTextFile(new URL("order.json", EXAMPLE)));
const BLUEPRINT = `id = "org.example:ecommerce-traces:1.0.0"
${
  SLICES.map((s) => `
[[slices]]
artifact = "org.example:${s}:1.0.0"
instances = ${s === "place-order" ? 1 : 3}
`).join("")
}`;

interface SpanView {
  spanId: string;
  parentSpanId?: string;
  traceId: string;
  kind: string;
  name: string;
  node: string;
  slice?: string;
  method?: string;
  instance?: string;
  peer?: string;
  offsetMs: number;
  durationMs: number;
  outcome: string;
  status?: number;
  children: SpanView[];
}

interface TraceView {
  id: string;
  requestIds: string[];
  traceIds: string[];
  durationMs: number;
  spanCount: number;
  nodes: string[];
  roots: SpanView[];
  unreachable: Record<string, string>;
}

function flatten(spans: SpanView[]): SpanView[] {
  return spans.flatMap((s) => [s, ...flatten(s.children)]);
}

/** An OTLP/HTTP receiver on loopback: keeps every request body it gets. */
function startReceiver() {
  const bodies: Record<string, unknown>[] = [];
  const contentTypes = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (request) => {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/v1/traces") {
      return new Response(null, { status: 404 });
    }
    contentTypes.add(request.headers.get("content-type") ?? "");
    bodies.push(await request.json());
    return Response.json({});
  });
  return { bodies, contentTypes, url: `http://127.0.0.1:${server.addr.port}`, stop: () => server.shutdown() };
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
  status: { code: number };
}

/** The spans the receiver got for `requestId`, with the node each came from. */
function otlpSpans(bodies: Record<string, unknown>[], requestId: string): { node: string; span: OtlpSpan }[] {
  const out: { node: string; span: OtlpSpan }[] = [];
  for (const body of bodies) {
    // deno-lint-ignore no-explicit-any
    for (const rs of (body as any).resourceSpans) {
      const node = rs.resource.attributes.find((a: { key: string }) => a.key === "service.instance.id")?.value
        .stringValue;
      for (const ss of rs.scopeSpans) {
        for (const span of ss.spans as OtlpSpan[]) {
          const id = span.attributes.find((a) => a.key === "aether.request_id")?.value.stringValue;
          if (id === requestId) out.push({ node, span });
        }
      }
    }
  }
  return out;
}

async function placeOrder(node: NodeProcess, requestId: string): Promise<void> {
  const response = await fetch(`${node.httpUrl}/api/v1/orders`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-request-id": requestId },
    body: JSON.stringify(ORDER),
  });
  const text = await response.text();
  equal(response.status, 201, text);
  equal(response.headers.get("x-request-id"), requestId);
}

Deno.test("traces on 3 nodes: an order's spans from two nodes as one tree, aether trace, OTLP export", async (t) => {
  const receiver = startReceiver();
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    extraArgs: ["--otlp-endpoint", receiver.url],
  });
  try {
    await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    for (const slice of SLICES) {
      const built = await buildSlice(new URL(`${slice}/slice.ts`, EXAMPLE).pathname);
      // As Forge does: a push that a busy machine's mesh cut short (a 503 naming the member) is pushed again.
      await cluster.waitFor(`the push of ${slice}`, async () => {
        await pushArtifact(n1, built);
        return true;
      }, 60_000);
    }
    const applied = await postBlueprint(n1, BLUEPRINT);
    ok(applied.status === 200 || applied.status === 201, JSON.stringify(applied.body));
    const placeOrderNode = await cluster.waitFor(
      "the shop ACTIVE: place-order once, the others on every node",
      async () => {
        const slices = await sliceStatuses(n1);
        const active = (name: string) =>
          slices.find((s) => s.slice === `org.example:${name}`)?.instances.filter((i) =>
            i.state === "ACTIVE" && i.connected
          ) ?? [];
        if (!SLICES.every((s) => active(s).length === (s === "place-order" ? 1 : 3))) return null;
        return active("place-order")[0].node;
      },
      60_000,
    );
    const entry = cluster.nodes.find((n) => n.id !== placeOrderNode)!;
    const reader = cluster.nodes.find((n) => n.id !== placeOrderNode && n.id !== entry.id)!;
    const requestId = `trace-it-${crypto.randomUUID().slice(0, 8)}`;
    // The route is known on every node once its endpoint records arrived: retry the first order briefly.
    await cluster.waitFor("an order placed through a node without place-order", async () => {
      await placeOrder(entry, requestId);
      return true;
    });

    let trace: TraceView | undefined;
    /** The router, place-order's call, attempt and served call, and each call place-order made. */
    let spanCount = 0;
    await t.step(
      "GET /api/v1/traces/{requestId} through the third node: one tree over two nodes",
      async () => {
        const { status, body } = await reader.json<TraceView>(`/api/v1/traces/${requestId}`);
        equal(status, 200, JSON.stringify(body));
        trace = body;
        deepStrictEqual(trace.requestIds, [requestId]);
        equal(trace.traceIds.length, 1, "one trace id");
        deepStrictEqual(trace.nodes, [entry.id, placeOrderNode].sort());
        deepStrictEqual(trace.unreachable, {});
        equal(trace.roots.length, 1, `one root: ${trace.roots.map((r) => r.name).join(", ")}`);
        const http = trace.roots[0];
        equal(http.kind, "http");
        equal(http.node, entry.id);
        equal(http.name, "POST /api/v1/orders");
        equal(http.status, 201);
        equal(http.offsetMs, 0);
        const [call] = http.children;
        equal(call.kind, "call");
        equal(call.slice, "org.example:place-order");
        const [attempt] = call.children;
        equal(attempt.kind, "attempt");
        equal(attempt.node, entry.id);
        equal(attempt.peer, placeOrderNode);
        const [serve] = attempt.children;
        equal(serve.kind, "serve");
        equal(serve.node, placeOrderNode);
        equal(serve.peer, entry.id);
        const calls = serve.children.filter((s) => s.kind === "call");
        deepStrictEqual(
          [...new Set(calls.map((c) => c.slice))].sort(),
          ["org.example:fulfillment", "org.example:inventory", "org.example:payment", "org.example:pricing"],
        );
        spanCount = 4 + calls.length;
        for (const c of calls) {
          equal(c.node, placeOrderNode, `${c.name} ran where place-order runs`);
          equal(c.outcome, "ok", c.name);
          equal(c.children.length, 0, `${c.name}: answered at the first try, no attempt span`);
          equal(c.peer, placeOrderNode, `${c.name}: the local instance`);
          match(c.instance!, /^org\.example:[a-z-]+:1\.0\.0\/\d+$/);
        }
        const all = flatten(trace.roots);
        equal(all.length, trace.spanCount);
        equal(all.length, spanCount, all.map((s) => `${s.node} ${s.kind} ${s.name}`).join("\n"));
        const byId = new Map(all.map((s) => [s.spanId, s]));
        for (const span of all) {
          ok(
            span.durationMs >= 0 && span.durationMs <= trace.durationMs + 0.01,
            `${span.name} within the trace`,
          );
          if (span.parentSpanId === undefined) continue;
          const parent = byId.get(span.parentSpanId)!;
          // Same machine, one clock: a child starts after its parent (1 ms of slack for the two processes).
          ok(span.offsetMs >= parent.offsetMs - 1, `${span.name} starts within ${parent.name}`);
          ok(
            span.offsetMs + span.durationMs <= parent.offsetMs + parent.durationMs + 1,
            `${span.name} ends within ${parent.name}`,
          );
        }
      },
    );

    await t.step("aether trace <requestId>: the five slices and their timings, on both nodes", async () => {
      const connect = ["--connect", `127.0.0.1:${reader.ready!.apiPort}`, "--token", cluster.token];
      const text = await runCli([...connect, "trace", requestId]);
      equal(text.code, 0, text.stderr);
      console.log(text.stdout);
      match(text.stdout, new RegExp(`request ${requestId}\\b`));
      match(text.stdout, new RegExp(`${spanCount} spans on n\\d, n\\d`));
      for (const slice of SLICES) {
        match(
          text.stdout,
          new RegExp(
            `[\\d.]+ ms +[\\d.]+ ms +n\\d +\\[[ █]+\\] +call org\\.example:${slice}\\.\\w+ +ok`,
          ),
          `${slice} with its start and duration`,
        );
      }
      match(text.stdout, new RegExp(`${entry.id} .*http POST /api/v1/orders → 201`));
      match(
        text.stdout,
        new RegExp(
          `${placeOrderNode} .*serve org\\.example:place-order:1\\.0\\.0/\\d+\\.placeOrder for ${entry.id}`,
        ),
      );
      const lines = text.stdout.trim().split("\n");
      const indent = (word: string) => {
        const line = lines.find((l) => l.includes(word))!;
        return line.slice(line.indexOf("]") + 1).search(/\S/);
      };
      ok(indent("call org.example:inventory") > indent("serve "), "slice calls nest under the served call");
      ok(indent("serve ") > indent("http POST"), "the served call nests under the router");

      const json = await runCli([...connect, "trace", requestId, "--json"]);
      equal(json.code, 0, json.stderr);
      equal(JSON.parse(json.stdout).spanCount, spanCount);

      const missing = await runCli([...connect, "trace", "no-such-request"]);
      ok(missing.code !== 0, "an unknown request fails");
      match(missing.stderr, /no spans of request no-such-request/);
    });

    await t.step("bad and unknown ids: 400 naming the parameter, 404", async () => {
      const bad = await reader.json<{ detail: string; parameter?: string }>(`/api/v1/traces/a%20b`);
      equal(bad.status, 400);
      match(bad.body.detail, /path parameter requestId/);
      const unknown = await reader.json<{ detail: string }>(`/api/v1/traces/nothing-here`);
      equal(unknown.status, 404);
      match(unknown.body.detail, /no spans of request nothing-here/);
    });

    await t.step("OTLP/HTTP JSON export: the same spans from both nodes reach the receiver", async () => {
      const received = await cluster.waitFor("every span of the order at the receiver", () => {
        const spans = otlpSpans(receiver.bodies, requestId);
        return Promise.resolve(spans.length >= spanCount ? spans : null);
      }, 10_000);
      equal(received.length, spanCount);
      deepStrictEqual([...receiver.contentTypes], ["application/json"]);
      deepStrictEqual([...new Set(received.map((r) => r.node))].sort(), [entry.id, placeOrderNode].sort());
      const ids = new Set(flatten(trace!.roots).map((s) => s.spanId));
      for (const { span } of received) {
        match(span.traceId, /^[0-9a-f]{32}$/);
        equal(span.traceId, trace!.traceIds[0]);
        match(span.spanId, /^[0-9a-f]{16}$/);
        ok(ids.has(span.spanId), `span ${span.name} is in the tree`);
        if (span.parentSpanId !== undefined) ok(ids.has(span.parentSpanId), `${span.name}'s parent is there`);
        match(span.startTimeUnixNano, /^\d{19}$/);
        ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
        ok([1, 2, 3].includes(span.kind), `kind ${span.kind}`);
        equal(span.status.code, 1, `${span.name} ok`);
      }
      const http = received.find((r) => r.span.kind === 2 && r.span.parentSpanId === undefined)!;
      equal(http.node, entry.id);
      equal(
        http.span.attributes.find((a) => a.key === "http.response.status_code")?.value.intValue,
        "201",
      );
    });

    await t.step(
      "a member that is down: its spans are missing, it is named unreachable, the rest still shown",
      async () => {
        await cluster.node(placeOrderNode).kill();
        const { status, body } = await reader.json<TraceView>(`/api/v1/traces/${requestId}`);
        equal(status, 200, JSON.stringify(body));
        deepStrictEqual(Object.keys(body.unreachable), [placeOrderNode]);
        deepStrictEqual(body.nodes, [entry.id]);
        deepStrictEqual(flatten(body.roots).map((s) => s.kind), ["http", "call", "attempt"]);
        const connect = ["--connect", `127.0.0.1:${reader.ready!.apiPort}`, "--token", cluster.token];
        const text = await runCli([...connect, "trace", requestId]);
        equal(text.code, 0, text.stderr);
        match(text.stderr, new RegExp(`warning: ${placeOrderNode} did not answer, its spans are missing`));
      },
    );
  } finally {
    await cluster.close();
    await receiver.stop();
  }
});
