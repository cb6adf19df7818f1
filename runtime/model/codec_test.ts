import assert from "node:assert/strict";
import type { ArtifactRecord } from "./artifacts.ts";
import type { BlueprintRecord } from "./blueprints.ts";
import {
  decodeEntry,
  decodeValue,
  encodeEntry,
  encodeValue,
  RECORD_FAMILIES,
  type RecordFamily,
  type RecordTypes,
  validateRecord,
} from "./codec.ts";
import { LIFECYCLE_STATES } from "./instances.ts";
import { parseKey } from "./keys.ts";
import { badRequest } from "./_testing.ts";

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
  rollout: {
    key: "rollouts/org.example:orders",
    value: {
      strategy: "canary",
      stableVersion: "1.1.0",
      newVersion: "1.2.0",
      phase: "Progressing",
      steps: ["5%", "pause 30s", "pause", "100%"],
      step: 1,
      stepStartedAt: 20,
      maxSurge: "25%",
      maxUnavailable: "0",
      scaleDownDelayMs: 30_000,
      autoPromote: false,
      analysis: { minSuccessRate: 0.99, maxP99Factor: 1.5, failureLimit: 1, minRequests: 10 },
      failures: 0,
      verdicts: [{ step: 1, at: 21, ok: true, reason: "fine", requests: 100, successRate: 1 }],
      instances: 3,
      startedAt: 19,
      updatedAt: 21,
    },
  },
  leader: { key: "leader", value: { nodeId: "n2", view: 7, electedAt: 1_700_000_000_123 } },
  config: {
    key: "config/node/n1/sandbox.allowNet",
    value: { value: { hosts: ["a.example"], n: 1.5 }, updatedAt: 1 },
  },
  threshold: {
    key: "thresholds/orders-p99",
    value: {
      metric: "latency",
      slice: "org.example:orders",
      method: "placeOrder",
      quantile: 0.99,
      op: ">",
      threshold: 200,
      forMs: 30_000,
      severity: "critical",
      updatedAt: 2,
    },
  },
  nodeLabels: { key: "nodes/n1/labels", value: { labels: { zone: "a", disk: "ssd" }, updatedAt: 3 } },
  cordon: { key: "nodes/n1/cordon", value: { mode: "drain", since: 4, by: "admin" } },
};

Deno.test("codec: every record family round-trips through UTF-8 JSON, by family and by key", () => {
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

Deno.test("codec: malformed records are refused, naming the field", () => {
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
    ["rollout", (v) => v.steps = ["5%", "pause 3 s"], "steps[1]", /is not a step/],
    ["rollout", (v) => v.newVersion = v.stableVersion, "newVersion", /must differ from stableVersion/],
    ["rollout", (v) => v.maxSurge = "25x", "maxSurge", /maxSurge/],
    ["config", (v) => v.value = { x: NaN }, "value.x", /value.x must be a JSON value, got NaN/],
    ["config", (v) => delete v.value, "value", /value is missing/],
    ["threshold", (v) => v.threshold = Infinity, "threshold", /threshold must be a finite number/],
    ["threshold", (v) => v.op = "!=", "op", /op must be one of >, >=, <, <=/],
    ["threshold", (v) => delete v.slice, "slice", /slice is missing: latency is measured per slice/],
    ["threshold", (v) => v.quantile = 0.2, "quantile", /quantile must be from 0.5 to 0.999/],
    ["nodeLabels", (v) => v.labels = { Zone: "a" }, "labels.Zone", /labels.Zone/],
    ["cordon", (v) => v.mode = "evict", "mode", /mode must be one of cordon, drain/],
    [
      "threshold",
      (v) => v.threshold = "desired",
      "threshold",
      /"desired" is a threshold of instances_active/,
    ],
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

Deno.test("codec: undecodable bytes and key/record disagreements are refused", () => {
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
