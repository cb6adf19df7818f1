import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { AetherError } from "../runtime/core/mod.ts";
import { describeDefinition } from "./_runtime.ts";
import { resolveConfig } from "./config.ts";
import {
  manifestFromDescription,
  manifestProblems,
  matchesErrorPattern,
  parseRoute,
  type SliceManifest,
  statusForError,
  validateManifest,
} from "./manifest.ts";
import order from "../runtime/sandbox/fixtures/order.ts";

const ARTIFACT = { sha256: "a".repeat(64), sizeBytes: 1234, builtAt: "2026-01-02T03:04:05.000Z" };

function good(): SliceManifest {
  return manifestFromDescription(describeDefinition(order), ARTIFACT);
}

Deno.test("a manifest derived from a definition has every field, normalised", () => {
  assertEquals(good(), {
    format: 1,
    coordinates: "org.example:order:1.2.0",
    methods: ["placeOrder", "getOrder", "whoAmI", "notify"],
    routes: {
      prefix: "/api/v1/orders",
      entries: [
        {
          method: "placeOrder",
          httpMethod: "POST",
          path: "/",
          pathParams: [],
          queryParams: [],
          fullPath: "/api/v1/orders",
        },
        {
          method: "getOrder",
          httpMethod: "GET",
          path: "/{id}",
          pathParams: ["id"],
          queryParams: ["verbose"],
          fullPath: "/api/v1/orders/{id}",
        },
        {
          method: "whoAmI",
          httpMethod: "GET",
          path: "/whoami",
          pathParams: [],
          queryParams: [],
          fullPath: "/api/v1/orders/whoami",
        },
      ],
      errors: [{ status: 400, patterns: ["*Invalid*"] }, { status: 404, patterns: ["*NotFound*"] }],
    },
    calls: { pricing: { artifact: "org.example:pricing", range: "^1.0.0" } },
    requires: ["cache"],
    permissions: { net: ["api.example.com:443"], env: [] },
    config: {
      schema: {
        currency: { type: "string", default: "EUR", enum: ["EUR", "USD"] },
        maxQuantity: { type: "integer", default: 10, minimum: 1 },
        greeting: { type: "string", optional: true },
      },
      defaults: { currency: "EUR", maxQuantity: 10 },
    },
    ...ARTIFACT,
  });
  assertEquals(validateManifest(JSON.parse(JSON.stringify(good()))), good());
});

Deno.test("validateManifest reports every problem with its path", () => {
  const cases: Array<[(m: Record<string, unknown>) => void, string, string]> = [
    [(m) => m.format = 2, "format", "must be 1 (got 2)"],
    [(m) => delete m.sha256, "sha256", "is missing"],
    [(m) => m.extra = true, "extra", "is not a manifest field"],
    [
      (m) => m.coordinates = "org.example:order:1.2",
      "coordinates",
      'version "1.2" is not a semantic version',
    ],
    [(m) => m.coordinates = "Org:order:1.2.0", "coordinates", 'group "Org"'],
    [(m) => m.methods = [], "methods", "must be a non-empty list"],
    [(m) => m.methods = ["placeOrder", "Bad"], "methods[1]", '"Bad" must match'],
    [(m) => m.methods = ["placeOrder", "placeOrder"], "methods[1]", "listed twice"],
    [
      (m) => (m.routes as { prefix: string }).prefix = "/api/{v}",
      "routes.prefix",
      "must not contain parameters",
    ],
    [(m) => (m.routes as { prefix: string }).prefix = "/api/", "routes.prefix", 'must not end with "/"'],
    [(m) => route(m, 1).path = "/{id", "routes.entries[1]", 'segment "{id" must be a whole parameter'],
    [(m) => route(m, 1).httpMethod = "FETCH", "routes.entries[1]", "must start with one of GET, POST"],
    [
      (m) => route(m, 1).method = "cancel",
      "routes.entries[1].method",
      '"cancel" is not a method of the slice',
    ],
    [(m) => route(m, 1).fullPath = "/x", "routes.entries[1].fullPath", 'must be "/api/v1/orders/{id}"'],
    [(m) => route(m, 1).pathParams = [], "routes.entries[1].pathParams", 'must be ["id"]'],
    [
      (m) => {
        route(m, 2).path = "/{other}";
        route(m, 2).pathParams = ["other"];
        route(m, 2).fullPath = "/api/v1/orders/{other}";
      },
      "routes.entries[2]",
      "GET /api/v1/orders/{} is the same route as routes.entries[1]",
    ],
    [(m) => errors(m)[0].status = 200, "routes.errors[0].status", "must be an HTTP error status"],
    [(m) => errors(m)[0].patterns = ["*In valid*"], "routes.errors[0].patterns[0]", "is not a name pattern"],
    [(m) => calls(m).pricing.range = "^^1", "calls.pricing.range", '"^^1" is not a version range'],
    [
      (m) => calls(m).pricing.artifact = "org.example:pricing:1.0.0",
      "calls.pricing.artifact",
      "is not group:artifact",
    ],
    [
      (m) => calls(m).pricing.artifact = "org.example:order",
      "calls.pricing.artifact",
      "a slice cannot call itself",
    ],
    [(m) => m.requires = ["Cache"], "requires[0]", "is not a service name"],
    [
      (m) => m.permissions = { net: ["api.example.com:99999"], env: [] },
      "permissions.net[0]",
      "port 99999 is out of range",
    ],
    [(m) => m.permissions = { net: ["bad host"], env: [] }, "permissions.net[0]", "is not a host name"],
    [
      (m) => m.permissions = { net: [], env: ["1X"] },
      "permissions.env[0]",
      "is not an environment variable name",
    ],
    [
      (m) => m.permissions = { net: [], env: [], read: ["/"] },
      "permissions.read",
      "is not a permission slices can ask for",
    ],
    [
      (m) => schema(m).maxQuantity.default = 0,
      "config.schema.maxQuantity.default",
      "must be at least 1, got 0",
    ],
    [(m) => schema(m).currency.type = "text", "config.schema.currency.type", "must be one of string, number"],
    [
      (m) => schema(m).currency.minimum = 1,
      "config.schema.currency.minimum",
      "only number and integer fields",
    ],
    [
      (m) => (m.config as { defaults: unknown }).defaults = {},
      "config.defaults",
      "must equal the schema's defaults",
    ],
    [(m) => m.sha256 = "ABC", "sha256", "64 lower-case hex digits"],
    [(m) => m.sizeBytes = 0, "sizeBytes", "must be a positive integer"],
    [(m) => m.builtAt = "yesterday", "builtAt", "ISO 8601"],
  ];
  for (const [mutate, path, message] of cases) {
    const m = JSON.parse(JSON.stringify(good()));
    mutate(m);
    const problems = manifestProblems(m);
    assert(
      problems.some((p) => p.path === path && p.message.includes(message)),
      `expected ${path}: ${message}; got ${JSON.stringify(problems)}`,
    );
    throws(() => validateManifest(m), (e: AetherError) => {
      assert(e instanceof AetherError && e.code === "bad_request" && e.status === 400);
      assert(e.message.startsWith("invalid slice manifest: "), e.message);
      assertEquals(e.extra.problems, problems);
      return true;
    });
  }
  assertEquals(manifestProblems("not json"), [{ path: "(manifest)", message: "must be a JSON object" }]);
});

function route(m: Record<string, unknown>, i: number): Record<string, unknown> {
  return (m.routes as { entries: Record<string, unknown>[] }).entries[i];
}
function errors(m: Record<string, unknown>): Array<{ status: number; patterns: string[] }> {
  return (m.routes as { errors: Array<{ status: number; patterns: string[] }> }).errors;
}
function calls(m: Record<string, unknown>): Record<string, { artifact: string; range: string }> {
  return m.calls as Record<string, { artifact: string; range: string }>;
}
function schema(m: Record<string, unknown>): Record<string, Record<string, unknown>> {
  return (m.config as { schema: Record<string, Record<string, unknown>> }).schema;
}

Deno.test("route DSL", () => {
  assertEquals(parseRoute("GET /items/{id}?verbose&limit"), {
    httpMethod: "GET",
    path: "/items/{id}",
    pathParams: ["id"],
    queryParams: ["verbose", "limit"],
  });
  assertEquals(parseRoute("POST /"), { httpMethod: "POST", path: "/", pathParams: [], queryParams: [] });
  for (
    const [spec, fragment] of [
      ["GET", "must start with one of"],
      ["get /x", "must start with one of"],
      ["GET x", 'must start with "/"'],
      ["GET //x", "empty segment"],
      ["GET /x/", 'must not end with "/"'],
      ["GET /a/{id}/{id}", "names a path parameter twice"],
      ["GET /a?q&q", "names a query parameter twice"],
      ["GET /a/{id}?id", '"id" is both a path and a query parameter'],
      ["GET /a?x?y", 'more than one "?"'],
      ["GET /a b", "not allowed in a URL path"],
    ]
  ) {
    const result = parseRoute(spec);
    assert(typeof result === "string" && result.includes(fragment), `${spec}: ${JSON.stringify(result)}`);
  }
});

Deno.test("error mapping: explicit status, first matching rule, else 500", () => {
  const routes = {
    errors: [{ status: 400, patterns: ["*Invalid*", "Bad?"] }, { status: 404, patterns: ["*NotFound"] }],
  };
  assertEquals(statusForError(routes, { name: "InvalidOrder" }), 400);
  assertEquals(statusForError(routes, { name: "OrderNotFound" }), 404);
  assertEquals(statusForError(routes, { name: "NotFoundAnywhere" }), 500);
  assertEquals(statusForError(routes, { name: "BadX" }), 400);
  assertEquals(statusForError(routes, { name: "OrderNotFound", status: 410 }), 410);
  assertEquals(statusForError(null, { name: "OrderNotFound" }), 500);
  assert(matchesErrorPattern("*", "Anything"));
  assert(!matchesErrorPattern("Order", "OrderNotFound"));
});

Deno.test("resolveConfig: defaults, optional fields, every problem named", () => {
  const schema = good().config.schema;
  assertEquals(resolveConfig(schema, {}), { currency: "EUR", maxQuantity: 10 });
  assertEquals(resolveConfig(schema, { greeting: "hi", maxQuantity: 3 }), {
    currency: "EUR",
    maxQuantity: 3,
    greeting: "hi",
  });
  throws(() => resolveConfig(schema, { currency: "GBP", maxQuantity: 2.5, extra: 1 }), (e: AetherError) => {
    assertEquals(e.code, "bad_request");
    assertEquals(
      e.message,
      "invalid configuration: config.extra is not a configuration field of this slice (known: currency, maxQuantity, " +
        'greeting); config.currency expected one of "EUR", "USD", got "GBP"; config.maxQuantity expected an integer, ' +
        "got 2.5",
    );
    return true;
  });
  throws(() => resolveConfig({ key: { type: "string" } }, {}), /config.key is required \(string\)/);
  // A number too large for a double (JSON `1e400`) arrives as Infinity: named so, never as "null".
  for (const type of ["integer", "number"] as const) {
    throws(
      () => resolveConfig({ limit: { type } }, JSON.parse('{"limit":1e400}')),
      new RegExp(`config.limit expected an? ${type}, got Infinity \\(not a finite number\\)$`),
    );
  }
  throws(
    () => resolveConfig({ limit: { type: "string" } }, { limit: -Infinity }),
    /got -Infinity \(not a finite/,
  );
  assertEquals(resolveConfig({ hosts: { type: "string[]", default: ["a"] } }, {}), { hosts: ["a"] });
});
