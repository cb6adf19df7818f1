import assert from "node:assert/strict";
import { AetherError } from "../core/errors.ts";
import {
  type ArtifactRecord,
  type BlueprintRecord,
  decodeEntry,
  decodeValue,
  encodeEntry,
  encodeValue,
  formatKey,
  isOperatorWritable,
  kvKeys,
  kvPrefixes,
  LIFECYCLE_STATES,
  operatorPrefixWriteError,
  operatorWriteError,
  type ParsedKey,
  parseKey,
  RECORD_FAMILIES,
  type RecordFamily,
  type RecordTypes,
  tryParseKey,
  validateRecord,
} from "./schema.ts";

function badRequest(fn: () => unknown, pattern: RegExp, field?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AetherError, `expected an AetherError, got ${e}`);
    assert.equal(e.code, "bad_request");
    assert.match(e.message, pattern);
    if (field !== undefined) assert.equal(e.extra.field, field);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

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
];

Deno.test("schema: every key family builds, parses back and formats to the same key", () => {
  const families = new Set<string>();
  for (const [built, text, parsed] of KEYS) {
    assert.equal(built, text);
    assert.deepEqual(parseKey(text), parsed, text);
    assert.equal(formatKey(parsed), text);
    families.add(parsed.family);
  }
  assert.equal(families.size, RECORD_FAMILIES.length + 1, "every family (records and app/) is covered");
});

Deno.test("schema: prefixes end at a separator so one node or version never matches another", () => {
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

Deno.test("schema: malformed keys are refused, saying what is wrong", () => {
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

// ---------------------------------------------------------------------------------------------------------------
// Operator namespace

Deno.test("schema: operators write only under app/; everything else is a 403 that names the namespace", () => {
  assert.equal(isOperatorWritable("app/feature-flags"), true);
  assert.equal(operatorWriteError("app/a/b/c"), undefined);
  for (const key of ["targets/g:a", "leader", "blueprints/g:a:1.0.0", "config/x", "app", "apps/x", "x", ""]) {
    assert.equal(isOperatorWritable(key), false, key);
    const error = operatorWriteError(key)!;
    assert.equal(error.code, "forbidden");
    assert.equal(error.status, 403);
    assert.match(error.message, /operators may write only keys under "app\/"/);
  }
  assert.match(
    operatorWriteError("targets/g:a")!.message,
    /belongs to the runtime \(namespace "targets\/"\)/,
  );
  assert.match(operatorWriteError("leader")!.message, /namespace "leader"/);
  assert.match(operatorWriteError("x")!.message, /is outside the operator namespace/);
  // A key under app/ that is not a valid key is a 400, not a 403.
  assert.equal(operatorWriteError("app/")?.status, 400);
  assert.equal(operatorWriteError("app/\u0000")?.status, 400);
  assert.equal(operatorPrefixWriteError("app/"), undefined);
  assert.equal(operatorPrefixWriteError("app/team/"), undefined);
  assert.equal(operatorPrefixWriteError("ap")?.status, 403);
  assert.equal(operatorPrefixWriteError("")?.status, 403);
});

// ---------------------------------------------------------------------------------------------------------------
// Records

/** A manifest as `slices/manifest.ts` defines it (what `slice build` writes and the repository stores). */
const manifest: ArtifactRecord["manifest"] = {
  format: 1,
  coordinates: "org.example:orders:1.2.0",
  methods: ["placeOrder", "getOrder"],
  routes: {
    prefix: "/shop",
    entries: [
      {
        method: "placeOrder",
        httpMethod: "POST",
        path: "/orders",
        fullPath: "/shop/orders",
        pathParams: [],
        queryParams: [],
      },
      {
        method: "getOrder",
        httpMethod: "GET",
        path: "/orders/{id}",
        fullPath: "/shop/orders/{id}",
        pathParams: ["id"],
        queryParams: [],
      },
    ],
    errors: [{ status: 404, patterns: ["*NotFound*"] }],
  },
  calls: { inventory: { artifact: "org.example:inventory", range: "^1.0.0" } },
  requires: ["cache"],
  permissions: { net: ["api.stripe.com:443", "127.0.0.1"], env: [] },
  config: { schema: {}, defaults: {} },
  sha256: "a".repeat(64),
  sizeBytes: 12_345,
  builtAt: "2026-01-02T03:04:05.000Z",
};

const RECORDS: { [F in RecordFamily]: { key: string; value: RecordTypes[F] } } = {
  blueprint: {
    key: "blueprints/org.example:shop:1.0.0",
    value: {
      id: "org.example:shop:1.0.0",
      slices: [
        { artifact: "org.example:inventory:1.1.0", instances: 1, requires: [], transitive: true },
        {
          artifact: "org.example:orders:1.2.0",
          instances: 3,
          min: 2,
          max: 6,
          requires: ["cache"],
          transitive: false,
        },
      ],
      source: 'id = "org.example:shop:1.0.0"\n',
      publishedAt: 1_700_000_000_000,
    },
  },
  target: {
    key: "targets/org.example:orders",
    value: {
      version: "1.2.0",
      instances: 3,
      min: 1,
      owners: ["org.example:shop:1.0.0"],
      updatedAt: 5,
      backoff: { failures: 2, retryAt: 4_000, lastFailedNode: "n3" },
      routedBackoff: { version: "1.3.0", failures: 1, retryAt: 5_000 },
    },
  },
  instance: {
    key: "instances/n1/org.example:orders:1.2.0/0",
    value: {
      state: "FAILED",
      updatedAt: 10,
      reason: "activation timed out after 60000 ms",
      replaces: { node: "n2", n: 0 },
      retiring: true,
    },
  },
  endpoint: { key: "endpoints/org.example:orders:1.2.0/placeOrder/n1/0", value: { registeredAt: 11 } },
  route: {
    key: "routes/GET/shop/orders/{id}",
    value: { slice: "org.example:orders", method: "getOrder", nodes: ["n1", "n2"] },
  },
  artifact: {
    key: "artifacts/org.example:orders:1.2.0",
    value: {
      manifest: structuredClone(manifest),
      sha256: "a".repeat(64),
      sizeBytes: 12_345,
      holders: ["n1", "n2", "n3"],
      pushedAt: 12,
    },
  },
  routing: {
    key: "routing/org.example:orders",
    value: { oldVersion: "1.1.0", newVersion: "1.2.0", oldWeight: 3, newWeight: 1, updatedAt: 13 },
  },
  leader: { key: "leader", value: { nodeId: "n2", view: 7, electedAt: 1_700_000_000_123 } },
  config: {
    key: "config/node/n1/sandbox.allowNet",
    value: { value: { hosts: ["a.example"], n: 1.5 }, updatedAt: 1 },
  },
  threshold: { key: "thresholds/cpu.usage", value: { warning: 0.7, critical: 0.9, updatedAt: 2 } },
};

Deno.test("schema: every record family round-trips through UTF-8 JSON, by family and by key", () => {
  for (const family of RECORD_FAMILIES) {
    const { key, value } = RECORDS[family] as { key: string; value: RecordTypes[RecordFamily] };
    const bytes = encodeValue(family, value);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(bytes)), value, family);
    assert.deepEqual(decodeValue(family, bytes), value, family);
    const entry = decodeEntry(key, bytes);
    assert.equal(entry.family, family);
    assert.deepEqual(entry.key, parseKey(key));
    assert.deepEqual(entry.value, value);
    assert.deepEqual(encodeEntry(key, value), bytes);
  }
  for (const state of LIFECYCLE_STATES) {
    assert.equal(decodeValue("instance", encodeValue("instance", { state, updatedAt: 0 })).state, state);
  }
  const raw = new Uint8Array([0, 1, 2]);
  assert.deepEqual(decodeEntry("app/blob", raw), {
    family: "app",
    key: { family: "app", name: "blob" },
    value: raw,
  });
  assert.equal(encodeEntry("app/blob", raw), raw);
});

/** Applies `change` to a deep copy of the family's valid record. */
function mutated<F extends RecordFamily>(family: F, change: (v: Record<string, unknown>) => void): unknown {
  const copy = structuredClone(RECORDS[family].value) as unknown as Record<string, unknown>;
  change(copy);
  return copy;
}

Deno.test("schema: malformed records are refused, naming the field", () => {
  // deno-lint-ignore no-explicit-any
  type Any = any;
  const cases: [RecordFamily, (v: Any) => void, string, RegExp][] = [
    ["leader", (v) => delete v.nodeId, "nodeId", /nodeId is missing/],
    ["leader", (v) => v.nodeId = "N1", "nodeId", /nodeId must be a node id, got "N1"/],
    ["leader", (v) => v.view = -1, "view", /view must be an integer >= 0, got -1/],
    ["leader", (v) => v.view = 1.5, "view", /view must be an integer/],
    ["leader", (v) => v.electedAt = "now", "electedAt", /electedAt must be a time in ms/],
    ["leader", (v) => v.term = 1, "term", /term is not a known field/],
    ["blueprint", (v) => v.id = "shop", "id", /id must be "group:artifact:version"/],
    ["blueprint", (v) => v.slices = [], "slices", /slices must be an array of 1 to 1000 items/],
    ["blueprint", (v) => v.slices[1].instances = 0, "slices[1].instances", /from 1 to 10000, got 0/],
    [
      "blueprint",
      (v) => v.slices[1].min = 4,
      "slices[1].instances",
      /slices\[1\].instances \(3\) is below min/,
    ],
    ["blueprint", (v) => v.slices[1].max = 1, "slices[1].min", /slices\[1\].min \(2\) must not exceed/],
    ["blueprint", (v) => v.slices[0].requires = ["Cache"], "slices[0].requires[0]", /a service name/],
    [
      "blueprint",
      (v) => v.slices[0].requires = ["cache", "cache"],
      "slices[0].requires[1]",
      /repeats "cache"/,
    ],
    ["blueprint", (v) => v.slices[0].transitive = "yes", "slices[0].transitive", /true or false/],
    ["blueprint", (v) => v.slices[0].artifact = "org.example:orders:9.9.9", "slices[1].artifact", /repeats/],
    [
      "blueprint",
      (v) => v.slices[0].artifact = "g:a:1",
      "slices[0].artifact",
      /semantic version, got "g:a:1"/,
    ],
    ["target", (v) => v.version = "latest", "version", /version must be a semantic version/],
    ["target", (v) => v.instances = -1, "instances", /instances must be an integer from 0/],
    ["target", (v) => v.owners = ["shop"], "owners[0]", /owners\[0\] must be "group:artifact:version"/],
    ["target", (v) => v.updatedAt = -5, "updatedAt", /updatedAt must be a time/],
    ["instance", (v) => v.state = "RUNNING", "state", /state must be one of LOAD, LOADING/],
    ["instance", (v) => v.reason = 42, "reason", /reason must be a string/],
    ["instance", (v) => v.deadline = "soon", "deadline", /deadline must be a time/],
    [
      "instance",
      (v) => v.replaces = { node: "N2", n: 0 },
      "replaces.node",
      /replaces.node must be a node id/,
    ],
    ["instance", (v) => v.replaces = { node: "n2", n: -1 }, "replaces.n", /replaces.n must be an integer/],
    ["instance", (v) => v.retiring = "yes", "retiring", /retiring must be true or false/],
    ["target", (v) => v.backoff = { failures: 0, retryAt: 1 }, "backoff.failures", /from 1 to/],
    ["target", (v) => v.backoff = { failures: 1 }, "backoff.retryAt", /backoff.retryAt is missing/],
    [
      "target",
      (v) => v.routedBackoff = { failures: 1, retryAt: 1 },
      "routedBackoff.version",
      /routedBackoff.version is missing/,
    ],
    ["endpoint", (v) => v.registeredAt = null, "registeredAt", /got null/],
    ["route", (v) => v.slice = "orders", "slice", /slice must be "group:artifact", got "orders"/],
    ["route", (v) => v.method = "get-order", "method", /method must be a method name/],
    ["route", (v) => v.nodes = ["n1", "n1"], "nodes[1]", /repeats "n1"/],
    ["route", (v) => v.nodes = "n1", "nodes", /nodes must be an array/],
    ["artifact", (v) => v.sha256 = "ABC", "sha256", /64 lower-case hex digits/],
    ["artifact", (v) => v.sizeBytes = 1e20, "sizeBytes", /sizeBytes must be an integer/],
    ["artifact", (v) => v.sha256 = "b".repeat(64), "sha256", /sha256 \(b+\) differs from the manifest's/],
    [
      "artifact",
      (v) => v.sizeBytes = 1,
      "sizeBytes",
      /sizeBytes \(1\) differs from the manifest's \(12345\)/,
    ],
    ["artifact", (v) => v.holders = ["n1", "n1"], "holders[1]", /repeats "n1"/],
    ["artifact", (v) => v.manifest.methods = [], "manifest.methods", /must be a non-empty list/],
    [
      "artifact",
      (v) => v.manifest.routes.entries[1].method = "deleteOrder",
      "manifest.routes.entries[1].method",
      /"deleteOrder" is not a method of the slice/,
    ],
    [
      "artifact",
      (v) => v.manifest.routes.entries[0].httpMethod = "FETCH",
      "manifest.routes.entries[0]",
      /must start with one of GET/,
    ],
    [
      "artifact",
      (v) => v.manifest.calls.inventory.range = "",
      "manifest.calls.inventory.range",
      /version range/,
    ],
    ["artifact", (v) => v.manifest.permissions.net = ["http://x"], "manifest.permissions.net[0]", /host/],
    ["artifact", (v) => v.manifest.permissions = {}, "manifest.permissions.net", /must be a list/],
    ["artifact", (v) => v.manifest.format = 2, "manifest.format", /must be 1 \(got 2\)/],
    ["artifact", (v) => v.manifest.extra = true, "manifest.extra", /is not a manifest field/],
    ["artifact", (v) => v.manifest = "x", "manifest", /manifest: must be a JSON object/],
    ["routing", (v) => Object.assign(v, { oldWeight: 0, newWeight: 0 }), "newWeight", /must not both be 0/],
    ["routing", (v) => v.newVersion = v.oldVersion, "newVersion", /must differ from oldVersion/],
    ["routing", (v) => v.newWeight = -1, "newWeight", /newWeight must be an integer from 0/],
    ["config", (v) => v.value = { x: NaN }, "value.x", /value.x must be a JSON value, got NaN/],
    ["config", (v) => delete v.value, "value", /value is missing/],
    ["threshold", (v) => v.warning = Infinity, "warning", /warning must be a finite number/],
    ["threshold", (v) => v.critical = "high", "critical", /critical must be a finite number/],
  ];
  const families = new Set<string>();
  for (const [family, change, field, pattern] of cases) {
    const value = mutated(family, change);
    badRequest(() => validateRecord(family, value), pattern, field);
    badRequest(() => encodeValue(family, value as never), new RegExp(`^${family} record: `));
    families.add(family);
  }
  assert.equal(families.size, RECORD_FAMILIES.length, "every family has rejection cases");
  badRequest(() => validateRecord("leader", "n1"), /value must be an object, got "n1"/);
  badRequest(() => validateRecord("leader", [1]), /value must be an object, got an array/);
});

Deno.test("schema: undecodable bytes and key/record disagreements are refused", () => {
  badRequest(() => decodeValue("leader", new Uint8Array([0xff, 0xfe])), /leader record: not UTF-8 JSON/);
  badRequest(() => decodeValue("leader", new TextEncoder().encode("{")), /not UTF-8 JSON/);
  badRequest(
    () => decodeEntry("leader", new TextEncoder().encode('{"nodeId":"n1","view":1}')),
    /value of "leader": electedAt is missing/,
    "electedAt",
  );
  const blueprint: BlueprintRecord = { ...RECORDS.blueprint.value, id: "org.example:shop:2.0.0" };
  badRequest(
    () => encodeEntry("blueprints/org.example:shop:1.0.0", blueprint),
    /id "org.example:shop:2.0.0" differs from the key's "org.example:shop:1.0.0"/,
    "id",
  );
  badRequest(
    () => decodeEntry("artifacts/org.example:orders:1.3.0", encodeValue("artifact", RECORDS.artifact.value)),
    /manifest.coordinates "org.example:orders:1.2.0" differs from the key's "org.example:orders:1.3.0"/,
    "manifest.coordinates",
  );
  badRequest(() => encodeEntry("app/x", "text"), /must be bytes/);
  badRequest(() => encodeEntry("nowhere", {}), /in no namespace/);
});
