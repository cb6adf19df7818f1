import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { defineSlice, respond, slice, SliceDefinitionError, SliceError } from "./mod.ts";
import { testSlice } from "./testing.ts";
import pricing from "../runtime/sandbox/fixtures/pricing.ts";
import order from "../runtime/sandbox/fixtures/order.ts";

const noop = () => null;

Deno.test("defineSlice checks the structure and names the bad field", () => {
  const base = { coordinates: "org.example:x:1.0.0", methods: { doIt: noop } };
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ ...base, coordinates: "org.example:x" }, 'coordinates must be "group:artifact:version"'],
    [{ ...base, methods: {} }, "methods is empty"],
    [{ ...base, methods: { DoIt: noop } }, 'method name "DoIt" must match ^[a-z][a-zA-Z0-9]+$'],
    [{ ...base, methods: { x: noop } }, 'method name "x" must match'],
    [{ ...base, methods: { do_it: noop } }, 'method name "do_it"'],
    [{ ...base, methods: { doIt: 42 } }, "methods.doIt must be a function"],
    [{ ...base, start: "soon" }, "start must be a function"],
    [{ ...base, http: { prefix: "api" } }, 'http.prefix must be a path starting with "/"'],
    [{ ...base, http: { prefix: "/a", routes: { other: "GET /" } } }, "http.routes.other names no method"],
    [{ ...base, http: { prefix: "/a", routes: { doIt: "FETCH /" } } }, 'http.routes.doIt is "FETCH /"'],
    [{ ...base, http: { prefix: "/a", routes: { doIt: "GET x" } } }, 'http.routes.doIt is "GET x"'],
    [
      { ...base, http: { prefix: "/a", errors: { 200: ["*"] } } },
      "http.errors key 200 is not an HTTP error status",
    ],
    [{ ...base, calls: { p: { artifact: "a:b", range: "^1" } } }, "calls.p must be made with slice<Api>"],
    [{ ...base, requires: "cache" }, "requires must be a list of strings"],
    [{ ...base, permissions: { net: "example.com" } }, "permissions.net must be a list of strings"],
  ];
  for (const [spec, message] of cases) {
    throws(() => defineSlice(spec as never), (e: Error) => {
      assert(e instanceof SliceDefinitionError, String(e));
      assert(
        e.message.startsWith("defineSlice(") && e.message.includes(message),
        `${e.message} / ${message}`,
      );
      return true;
    });
  }
  throws(() => slice("org.example:pricing:1.0.0", "^1.0.0"), /expected "group:artifact" without a version/);
  throws(() => slice("org.example:pricing", ""), /expected a version range/);
});

Deno.test("defineSlice returns a frozen, normalised definition", () => {
  const def = defineSlice({ coordinates: "org.example:x:1.0.0", methods: { doIt: noop } });
  assertEquals([def.kind, def.format, def.requires, def.permissions, def.calls, def.config], [
    "aether.slice",
    1,
    [],
    { net: [], env: [] },
    {},
    {},
  ]);
  assert(Object.isFrozen(def));
});

Deno.test("SliceError keeps the subclass name, status and details; respond() validates", () => {
  class PaymentDeclined extends SliceError {}
  const e = new PaymentDeclined("card declined", { status: 402, details: { code: "R1" } });
  assertEquals([e.name, e.message, e.status, e.details], ["PaymentDeclined", "card declined", 402, {
    code: "R1",
  }]);
  assert(e instanceof Error);
  assertEquals(respond({ status: 201, headers: { "X-Id": "7" }, body: { id: 7 } }), {
    kind: "aether.response",
    status: 201,
    headers: { "x-id": "7" },
    body: { id: 7 },
  });
  throws(() => respond({ status: 99, body: null }), /status 99 is not an HTTP status/);
});

Deno.test("testSlice: routes, dependencies and config behave as in the sandbox", async () => {
  const t = await testSlice(order, { config: { currency: "USD" }, calls: { pricing } });
  await t.start();
  const placed = await t.invoke("placeOrder", { sku: "LAPTOP-PRO", quantity: 1 }, { requestId: "r-1" });
  assertEquals(placed, {
    ok: true,
    value: { id: "o-1", total: 2398.8, currency: "USD" },
    status: 201,
    headers: { location: "/api/v1/orders/o-1" },
  });
  assertEquals(await t.call("getOrder", { id: "o-1" }), { id: "o-1", sku: "LAPTOP-PRO", total: 2398.8 });
  await rejects(t.call("getOrder", { id: "nope" }), { name: "OrderNotFound", status: 404 });
  // The dependency's error crosses the hop by name and is mapped by the caller.
  await rejects(t.call("placeOrder", { sku: "NOPE", quantity: 1 }), {
    name: "UnknownSkuNotFound",
    status: 404,
  });
  assertEquals(t.outbound.map((c) => [c.name, c.method, c.requestId]), [
    ["pricing", "calculatePrice", "r-1"],
    ["pricing", "calculatePrice", t.outbound[1].requestId],
  ]);
  assert(
    t.logs.some((l) => l.message === "placed order o-1" && l.requestId === "r-1"),
    JSON.stringify(t.logs),
  );
  assertEquals(t.manifest.routes?.entries.map((e) => `${e.httpMethod} ${e.fullPath}`), [
    "POST /api/v1/orders",
    "GET /api/v1/orders/{id}",
    "GET /api/v1/orders/whoami",
  ]);
});

Deno.test("testSlice: stubs, missing stubs, config errors and invalid coordinates", async () => {
  const calls: unknown[] = [];
  const t = await testSlice(order, {
    calls: {
      pricing: { calculatePrice: (req: { quantity: number }) => (calls.push(req), { total: req.quantity }) },
    },
  });
  assertEquals(await t.call("placeOrder", { sku: "A", quantity: 3 }), {
    id: "o-2",
    total: 3,
    currency: "EUR",
  });
  assertEquals(calls, [{ sku: "A", quantity: 3 }]);

  const unstubbed = await testSlice(order);
  await rejects(unstubbed.call("placeOrder", { sku: "A", quantity: 1 }), {
    name: "SliceCallFailed",
    message: "testSlice: no stub for calls.pricing (pass it in options.calls)",
  });
  await rejects(
    testSlice(order, { config: { currency: "GBP" } }),
    /config.currency expected one of "EUR", "USD", got "GBP"/,
  );
  const badRange = defineSlice({
    coordinates: "org.example:bad:1.0",
    calls: { p: slice<{ f(r: number): Promise<number> }>("org.example:p", "^^1") },
    methods: { doIt: noop },
  });
  await rejects(testSlice(badRange), (e: Error) => {
    assert(e.message.includes('coordinates: version "1.0" is not a semantic version'), e.message);
    assert(e.message.includes('calls.p.range: "^^1" is not a version range'), e.message);
    return true;
  });
});

Deno.test("ctx: deadline, signal and remaining time follow the call's deadline", async () => {
  const def = defineSlice({
    coordinates: "org.example:clock:1.0.0",
    methods: {
      async wait(req: { ms: number }, ctx) {
        const before = ctx.remainingMs;
        await new Promise((r) => setTimeout(r, req.ms));
        return { before, aborted: ctx.signal.aborted, deadlineInFuture: ctx.deadline > Date.now() - 1000 };
      },
    },
  });
  const t = await testSlice(def);
  const result = await t.call("wait", { ms: 10 }, { timeoutMs: 500 });
  assert(result.before > 400 && result.before <= 500, JSON.stringify(result));
  assertEquals([result.aborted, result.deadlineInFuture], [false, true]);
});
