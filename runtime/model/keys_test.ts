import assert from "node:assert/strict";
import { RECORD_FAMILIES } from "./codec.ts";
import { formatKey, kvKeys, kvPrefixes, type ParsedKey, parseKey, tryParseKey } from "./keys.ts";
import { badRequest } from "./_testing.ts";

const KEYS: [string, string, ParsedKey][] = [
  [
    kvKeys.blueprint("org.example:shop:1.0.0"),
    "blueprints/org.example:shop:1.0.0",
    { family: "blueprint", id: "org.example:shop:1.0.0" },
  ],
  [
    kvKeys.target({ group: "org.example", artifact: "orders" }),
    "targets/org.example:orders",
    { family: "target", slice: { group: "org.example", artifact: "orders" } },
  ],
  [
    kvKeys.instance("n2", "org.example:orders:1.2.3-rc.1", 3),
    "instances/n2/org.example:orders:1.2.3-rc.1/3",
    {
      family: "instance",
      node: "n2",
      artifact: { group: "org.example", artifact: "orders", version: "1.2.3-rc.1" },
      n: 3,
    },
  ],
  [
    kvKeys.endpoint({ group: "g", artifact: "a", version: "2.0.0" }, "placeOrder", "node-1", 0),
    "endpoints/g:a:2.0.0/placeOrder/node-1/0",
    {
      family: "endpoint",
      artifact: { group: "g", artifact: "a", version: "2.0.0" },
      method: "placeOrder",
      node: "node-1",
      n: 0,
    },
  ],
  [
    kvKeys.route("GET", "/shop/orders/{id}"),
    "routes/GET/shop/orders/{id}",
    { family: "route", method: "GET", path: "/shop/orders/{id}" },
  ],
  [kvKeys.route("POST", "/"), "routes/POST/", { family: "route", method: "POST", path: "/" }],
  [kvKeys.route("PUT", "/api/"), "routes/PUT/api/", { family: "route", method: "PUT", path: "/api/" }],
  [
    kvKeys.artifact("g:a:1.0.0"),
    "artifacts/g:a:1.0.0",
    { family: "artifact", artifact: { group: "g", artifact: "a", version: "1.0.0" } },
  ],
  [kvKeys.routing("g:a"), "routing/g:a", { family: "routing", slice: { group: "g", artifact: "a" } }],
  [kvKeys.rollout("g:a"), "rollouts/g:a", { family: "rollout", slice: { group: "g", artifact: "a" } }],
  [kvKeys.leader(), "leader", { family: "leader" }],
  [kvKeys.config("http.maxBodyBytes"), "config/http.maxBodyBytes", {
    family: "config",
    name: "http.maxBodyBytes",
  }],
  [
    kvKeys.config("sandbox/allow-net", "n3"),
    "config/node/n3/sandbox/allow-net",
    { family: "config", node: "n3", name: "sandbox/allow-net" },
  ],
  [kvKeys.threshold("cpu.usage"), "thresholds/cpu.usage", { family: "threshold", metric: "cpu.usage" }],
  [
    kvKeys.threshold("g:a/placeOrder/latency.p99"),
    "thresholds/g:a/placeOrder/latency.p99",
    { family: "threshold", metric: "g:a/placeOrder/latency.p99" },
  ],
  [kvKeys.app("team/x y/ü"), "app/team/x y/ü", { family: "app", name: "team/x y/ü" }],
  [kvKeys.nodeLabels("n2"), "nodes/n2/labels", { family: "nodeLabels", node: "n2" }],
  [kvKeys.cordon("n2"), "nodes/n2/cordon", { family: "cordon", node: "n2" }],
];

Deno.test("keys: every key family builds, parses back and formats to the same key", () => {
  const families = new Set<string>();
  for (const [built, text, parsed] of KEYS) {
    assert.equal(built, text);
    assert.deepEqual(parseKey(text), parsed, text);
    assert.equal(formatKey(parsed), text);
    families.add(parsed.family);
  }
  assert.equal(families.size, RECORD_FAMILIES.length + 1, "every family (records and app/) is covered");
});

Deno.test("keys: prefixes end at a separator so one node or version never matches another", () => {
  assert.equal(kvPrefixes.instancesOfNode("n1"), "instances/n1/");
  assert.ok(!kvKeys.instance("n10", "g:a:1.0.0", 0).startsWith(kvPrefixes.instancesOfNode("n1")));
  assert.equal(kvPrefixes.endpointsOf("g:a:1.0.0"), "endpoints/g:a:1.0.0/");
  assert.ok(!kvKeys.endpoint("g:a:1.0.0-beta", "m", "n1", 0).startsWith(kvPrefixes.endpointsOf("g:a:1.0.0")));
  assert.equal(kvPrefixes.endpointsOfMethod("g:a:1.0.0", "m"), "endpoints/g:a:1.0.0/m/");
  assert.ok(kvKeys.endpoint("g:a:3.1.0", "m", "n1", 0).startsWith(kvPrefixes.endpointsOfSlice("g:a")));
  assert.ok(!kvKeys.endpoint("g:ab:3.1.0", "m", "n1", 0).startsWith(kvPrefixes.endpointsOfSlice("g:a")));
  assert.ok(kvKeys.artifact("g:a:3.1.0").startsWith(kvPrefixes.artifactVersions("g:a")));
  assert.equal(kvPrefixes.routesOfMethod("GET"), "routes/GET/");
  assert.equal(kvPrefixes.configOfNode("n2"), "config/node/n2/");
  assert.equal(kvPrefixes.blueprints, "blueprints/");
  assert.equal(kvPrefixes.instancesOfNodeArtifact("n1", "g:a:1.0.0"), "instances/n1/g:a:1.0.0/");
});

Deno.test("keys: malformed keys are refused, saying what is wrong", () => {
  const cases: [() => unknown, RegExp][] = [
    [() => parseKey(""), /must not be empty/],
    [() => parseKey("nothing/here"), /in no namespace of the schema/],
    [() => parseKey("leaders"), /in no namespace/],
    [() => parseKey("blueprints/shop"), /is not group:artifact:version/],
    [() => parseKey("blueprints/g:a:1.0"), /version "1.0" is not a semantic version/],
    [() => parseKey("blueprints/g:a:1.0.0/x"), /not of the form blueprints\//],
    [() => parseKey("targets/g:a:1.0.0"), /is not group:artifact /],
    [() => parseKey("targets/g:"), /has an empty artifact name/],
    [() => parseKey("instances/N1/g:a:1.0.0/0"), /"N1" is not a valid node id/],
    [() => parseKey("instances/n1/g:a:1.0.0"), /not of the form instances\/\{node\}/],
    [() => parseKey("instances/n1/g:a:1.0.0/01"), /instance number "01"/],
    [() => parseKey("instances/n1/g:a:1.0.0/-1"), /instance number "-1"/],
    [() => parseKey("endpoints/g:a:1.0.0/9lives/n1/0"), /"9lives" is not a valid slice method name/],
    [() => parseKey("endpoints/g:a:1.0.0/m/n1"), /not of the form endpoints\//],
    [() => parseKey("routes/FETCH/x"), /"FETCH" is not one of GET/],
    [() => parseKey("routes/GET"), /"" is not a route path/],
    [() => parseKey("routes/GET/a//b"), /is not a route path/],
    [() => parseKey("routes/GET/a b"), /is not a route path/],
    [() => parseKey("routes/GET/{1x}"), /is not a route path/],
    [() => parseKey("artifacts/g:a"), /is not group:artifact:version/],
    [() => parseKey("routing/g:a:1.0.0"), /is not group:artifact /],
    [() => parseKey("config/"), /name "" must be/],
    [() => parseKey("config/a b"), /name "a b" must be/],
    [() => parseKey("config/node/n1"), /not of the form config\/node\/\{node\}\/\{name\}/],
    [() => parseKey("config/node/N1/x"), /"N1" is not a valid node id/],
    [() => parseKey("thresholds/"), /metric "" must be/],
    [() => parseKey("app/"), /needs a name without control characters/],
    [() => parseKey("app/a\nb"), /without control characters/],
    [() => parseKey(`app/${"x".repeat(1100)}`), /longer than 1024 bytes/],
    [() => kvKeys.blueprint("shop"), /blueprint id: "shop" is not group:artifact:version/],
    [() => kvKeys.target({ group: "g", artifact: "a:b" }), /is not group:artifact /],
    [() => kvKeys.instance("n1", "g:a:1.0.0", 1.5), /instance number 1.5/],
    [() => kvKeys.instance("n1", { group: "g", artifact: "a", version: "x" }, 1), /not a semantic version/],
    [() => kvKeys.endpoint("g:a:1.0.0", "a-b", "n1", 0), /"a-b" is not a valid slice method name/],
    [() => kvKeys.route("get" as "GET", "/"), /"get" is not one of GET/],
    [() => kvKeys.route("GET", "no-slash"), /is not a route path/],
    [() => kvKeys.config("node/x"), /reserved for per-node settings/],
    [() => kvKeys.threshold("cpu usage"), /metric "cpu usage"/],
    [() => kvKeys.app(""), /needs a name/],
  ];
  for (const [fn, pattern] of cases) badRequest(fn, pattern);
  assert.equal(tryParseKey("nothing"), undefined);
  assert.deepEqual(tryParseKey("leader"), { family: "leader" });
});
