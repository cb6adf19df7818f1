import { deepStrictEqual, equal } from "node:assert/strict";
import { type RouteDefinition, RouteTable, splitPath } from "./route_table.ts";

const route = (
  httpMethod: string,
  path: string,
  method = "m",
  queryParams: string[] = [],
): RouteDefinition => ({
  httpMethod,
  path,
  slice: "g:a",
  method,
  nodes: ["n1"],
  queryParams,
});

const table = new RouteTable([
  route("GET", "/api/v1/orders/{id}", "getOrder"),
  route("GET", "/api/v1/orders/special", "special"),
  route("POST", "/api/v1/orders", "placeOrder"),
  route("DELETE", "/api/v1/orders/{id}", "cancel"),
  route("GET", "/api/v1/orders/{id}/items/{item}", "item"),
  route("GET", "/api/", "fallback"),
  route("GET", "/api/v1/", "v1fallback"),
  route("GET", "/", "root"),
  route("PUT", "/items/{name}", "putByName"),
  route("GET", "/items/{id}/x", "xById"),
]);

function found(method: string, path: string) {
  const m = table.match(method, path);
  if (m.kind !== "found") throw new Error(`${method} ${path}: ${JSON.stringify(m)}`);
  return { method: m.route.method, params: m.params };
}

Deno.test("path parameters are extracted and percent-decoded", () => {
  deepStrictEqual(found("GET", "/api/v1/orders/o-17"), { method: "getOrder", params: { id: "o-17" } });
  deepStrictEqual(found("GET", "/api/v1/orders/a%20b%2Fc"), { method: "getOrder", params: { id: "a b/c" } });
  deepStrictEqual(found("GET", "/api/v1/orders/o-1/items/7"), {
    method: "item",
    params: { id: "o-1", item: "7" },
  });
  // Different parameter names at the same depth belong to their own routes.
  deepStrictEqual(found("PUT", "/items/pen"), { method: "putByName", params: { name: "pen" } });
  deepStrictEqual(found("GET", "/items/9/x"), { method: "xById", params: { id: "9" } });
});

Deno.test("the most specific route wins: literal over parameter, exact over prefix, longer prefix first", () => {
  equal(found("GET", "/api/v1/orders/special").method, "special");
  equal(found("GET", "/api/v1/orders/other").method, "getOrder");
  equal(found("GET", "/api/v1/unknown/deep/path").method, "v1fallback");
  equal(found("GET", "/api/v2/x").method, "fallback");
  equal(found("GET", "/api").method, "fallback");
  equal(found("GET", "/").method, "root");
});

Deno.test("a trailing slash on the request is ignored; empty segments and bad encodings never match", () => {
  equal(found("POST", "/api/v1/orders/").method, "placeOrder");
  equal(table.match("GET", "/api/v1/orders//x").kind, "not_found");
  equal(table.match("GET", "/api/v1/orders/%E0%A4%A").kind, "not_found");
  equal(splitPath("no-slash"), undefined);
  deepStrictEqual(splitPath("/"), []);
});

Deno.test("a path served only for other methods is 'method not allowed' with those methods; else not found", () => {
  deepStrictEqual(table.match("PATCH", "/api/v1/orders/o-1"), {
    kind: "method_not_allowed",
    allowed: ["DELETE", "GET"],
  });
  deepStrictEqual(table.match("GET", "/items/pen"), { kind: "method_not_allowed", allowed: ["PUT"] });
  deepStrictEqual(new RouteTable([route("GET", "/a/b")]).match("GET", "/a/c"), { kind: "not_found" });
  deepStrictEqual(new RouteTable([route("GET", "/a/b")]).match("GET", "/a/b/c"), { kind: "not_found" });
  deepStrictEqual(RouteTable.EMPTY.match("GET", "/"), { kind: "not_found" });
});

Deno.test("a route for the method in a less specific branch still serves it", () => {
  const t = new RouteTable([
    route("GET", "/o/special", "special"),
    route("POST", "/o/{id}", "post"),
    route("POST", "/o/", "prefix"),
  ]);
  const m = t.match("POST", "/o/special");
  equal(m.kind === "found" && m.route.method, "post");
  const deeper = t.match("POST", "/o/special/more");
  equal(deeper.kind === "found" && deeper.route.method, "prefix");
});

Deno.test("the table lists its routes sorted by path and method", () => {
  deepStrictEqual(
    table.list().slice(0, 4).map((r) => `${r.httpMethod} ${r.path}`),
    ["GET /", "GET /api/", "GET /api/v1/", "POST /api/v1/orders"],
  );
  equal(table.size, 10);
});
