import { deepStrictEqual, equal } from "node:assert/strict";
import { type Endpoint, EndpointSelector, type SelectionInput } from "./selection.ts";

function endpoint(node: string, version = "1.0.0", n = 0, method = "run"): Endpoint {
  const artifact = `g:a:${version}`;
  return { key: `endpoints/${artifact}/${method}/${node}/${n}`, artifact, version, method, node, n };
}

const input = (candidates: Endpoint[], extra: Partial<SelectionInput> = {}): SelectionInput => ({
  slice: "g:a",
  method: "run",
  candidates,
  tried: new Set(),
  ...extra,
});

Deno.test("a local instance is chosen first; several local ones take turns", () => {
  const selector = new EndpointSelector("n2");
  const all = [endpoint("n1"), endpoint("n2", "1.0.0", 0), endpoint("n2", "1.0.0", 1), endpoint("n3")];
  const picked = Array.from({ length: 4 }, () => selector.select(input(all))!.endpoint.key);
  deepStrictEqual(picked, [all[1].key, all[2].key, all[1].key, all[2].key]);
});

Deno.test("without a local instance, remote ones take turns round-robin", () => {
  const selector = new EndpointSelector("n9");
  const all = [endpoint("n1"), endpoint("n2"), endpoint("n3")];
  const nodes = Array.from({ length: 6 }, () => selector.select(input(all))!.endpoint.node);
  deepStrictEqual(nodes, ["n1", "n2", "n3", "n1", "n2", "n3"]);
});

Deno.test("a retry goes to an instance not tried yet; when all were tried they are allowed again", () => {
  const selector = new EndpointSelector("n1");
  const all = [endpoint("n1"), endpoint("n2"), endpoint("n3")];
  const tried = new Set([all[0].key]);
  const second = selector.select(input(all, { tried }))!;
  equal(second.fresh, true);
  equal(second.endpoint.node === "n2" || second.endpoint.node === "n3", true);
  tried.add(second.endpoint.key);
  const third = selector.select(input(all, { tried }))!;
  equal(tried.has(third.endpoint.key), false);
  tried.add(third.endpoint.key);
  const fourth = selector.select(input(all, { tried }))!;
  equal(fourth.fresh, false);
  equal(fourth.endpoint.node, "n1", "all tried: local first again");
  equal(fourth.eligible, 3);
});

Deno.test("only versions in the caller's range, or the exact version named, are eligible", () => {
  const selector = new EndpointSelector("n1");
  const all = [endpoint("n1", "1.0.0"), endpoint("n2", "1.4.2"), endpoint("n3", "2.0.0")];
  deepStrictEqual(selector.eligible({ candidates: all, range: "^1.0.0" }).map((e) => e.version), [
    "1.0.0",
    "1.4.2",
  ]);
  deepStrictEqual(selector.eligible({ candidates: all, range: ">=1.2.0" }).map((e) => e.version), [
    "1.4.2",
    "2.0.0",
  ]);
  deepStrictEqual(selector.eligible({ candidates: all, version: "2.0.0" }).map((e) => e.node), ["n3"]);
  equal(selector.select(input(all, { range: "^3.0.0" })), undefined);
  equal(selector.select(input(all, { range: "not a range" })), undefined);
  equal(selector.select(input([])), undefined);
});

Deno.test("weights choose the version per request, then local first within it", () => {
  const selector = new EndpointSelector("n1");
  const all = [
    endpoint("n1", "1.0.0"),
    endpoint("n2", "1.0.0"),
    endpoint("n2", "1.1.0"),
    endpoint("n3", "1.1.0"),
  ];
  const routing = { oldVersion: "1.0.0", newVersion: "1.1.0", oldWeight: 3, newWeight: 1, updatedAt: 1 };
  const picked = Array.from({ length: 400 }, () => selector.select(input(all, { routing }))!.endpoint);
  equal(picked.filter((e) => e.version === "1.1.0").length, 100);
  // Old requests stay local (n1); new ones alternate between n2 and n3.
  deepStrictEqual(new Set(picked.filter((e) => e.version === "1.0.0").map((e) => e.node)), new Set(["n1"]));
  deepStrictEqual(
    new Set(picked.filter((e) => e.version === "1.1.0").map((e) => e.node)),
    new Set(["n2", "n3"]),
  );
});

Deno.test("a retry stays with the version the call chose while it has untried instances", () => {
  const selector = new EndpointSelector("n9");
  const all = [endpoint("n1", "1.0.0"), endpoint("n2", "1.1.0"), endpoint("n3", "1.1.0")];
  const routing = { oldVersion: "1.0.0", newVersion: "1.1.0", oldWeight: 1, newWeight: 1, updatedAt: 1 };
  const tried = new Set([all[1].key]);
  const retry = selector.select(input(all, { routing, tried, version0: "1.1.0" }))!;
  equal(retry.endpoint.node, "n3");
  tried.add(all[2].key);
  const next = selector.select(input(all, { routing, tried, version0: "1.1.0" }))!;
  equal(next.endpoint.version, "1.0.0", "the chosen version is exhausted: the other one serves");
});
