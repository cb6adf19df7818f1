/**
 * The management API's contract for agents and tools: an OpenAPI 3.1 document generated from the one endpoint
 * table (roles.ts) and a description of each entry here, keyed by the same `METHOD path`. The generator throws
 * when an entry has no description or a description has no entry, so the document cannot drift from the table,
 * and the table cannot drift from the router (tests/integration/openapi_test.ts compares it with the routes the
 * node serves and validates it with an OpenAPI 3.1 validator).
 */

import { Hono } from "hono";
import { type ErrorCode, PROBLEM_TYPE, STATUS_BY_CODE } from "../core/mod.ts";
import { MAX_BLUEPRINT_BYTES, MAX_INSTANCES } from "../deployment/mod.ts";
import { MAX_CALL_TIMEOUT_MS } from "../invoke/mod.ts";
import { ALERT_SEVERITIES, MAX_ALERT_FOR_MS, ROLES } from "../model/mod.ts";
import { MAX_REVISION } from "./_input.ts";
import { DEFAULT_AUDIT_LIMIT, MAX_AUDIT_ENTRIES } from "./audit.ts";
import { MAX_KV_LIST_LIMIT, MAX_KV_TIMEOUT_MS } from "./kv.ts";
import { DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT } from "./logs.ts";
import { DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT } from "./events.ts";
import { ENDPOINT_ROLES, type EndpointEntry } from "./roles.ts";

/** A JSON Schema (2020-12, the dialect OpenAPI 3.1 uses). */
export type JsonSchema = Record<string, unknown>;

export interface QueryParameter {
  name: string;
  description: string;
  schema: JsonSchema;
  in?: "query" | "header";
}

/** What a request carries: JSON (with its schema), or a content type the handler reads itself. */
export type RequestBody =
  | { json: JsonSchema; required?: boolean }
  | { contentType: string; schema?: JsonSchema; description: string };

export interface OperationDoc {
  summary: string;
  description?: string;
  /** Descriptions of the path parameters (`:name`, or `*` for a wildcard), by name. */
  pathParameters?: Record<string, string>;
  query?: QueryParameter[];
  body?: RequestBody;
  /** The success answer: its status (200 unless said), JSON schema, or another content type. */
  response: {
    status?: number;
    description: string;
    json?: JsonSchema;
    contentType?: string;
    also200?: string;
  };
  /** Problem answers beyond the ones every call may get (401/403 from the role, 400 from the Host check). */
  problems?: number[];
}

// -- schema helpers --------------------------------------------------------------------------------------------

const str: JsonSchema = { type: "string" };
const bool: JsonSchema = { type: "boolean" };
const int = (minimum: number, maximum: number): JsonSchema => ({ type: "integer", minimum, maximum });
const revision = int(0, MAX_REVISION);
const obj = (properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema => ({
  type: "object",
  properties,
  ...(required.length ? { required } : {}),
});
const list = (name: string, items: JsonSchema = { type: "object" }): JsonSchema =>
  obj({ [name]: { type: "array", items } }, [name]);
const anyObj: JsonSchema = { type: "object" };
const anyValue: JsonSchema = {};
const arr = (items: JsonSchema): JsonSchema => ({ type: "array", items });
const SSE = "text/event-stream";

const dryRun: QueryParameter = {
  name: "dryRun",
  description: "true: answer the plan without changing anything",
  schema: { type: "string", enum: ["true", "false"] },
};
const force: QueryParameter = {
  name: "force",
  description: "true: undeploy or scale to 0 even while ACTIVE slices call it, or scale below the slice's " +
    "disruption budget (minAvailable); else 409 naming them",
  schema: { type: "string", enum: ["true", "false"] },
};
const kvTimeout: QueryParameter = {
  name: "timeoutMs",
  description: "how long to wait for the cluster, in milliseconds",
  schema: int(1, MAX_KV_TIMEOUT_MS),
};
const ifRevision: QueryParameter = {
  name: "ifRevision",
  description: "apply only if the key's revision is this (0: only if it does not exist); 409 otherwise",
  schema: revision,
};
const since: QueryParameter = {
  name: "since",
  description: "a duration back from now (`90s`, `15m`, `2h`) or an ISO 8601 time",
  schema: str,
};
const coordinates = "group:artifact:version";
const sliceName = "group:artifact";
const instances = int(0, MAX_INSTANCES);
const deployAnswer = obj({ dryRun: bool, revision }, ["dryRun"]);
const topicParams = { group: "the slice group owning the topic", topic: "the topic name" };
const jobParams = { group: "the slice group owning the job", name: "the job name" };
const machineParams = { group: "the slice group declaring the machine", machine: "the machine name" };
const tokenView = obj({
  id: str,
  name: str,
  role: { type: "string", enum: [...ROLES] },
  createdAt: str,
  expiresAt: { type: ["string", "null"] },
  revokedAt: { type: ["string", "null"] },
  createdBy: { type: ["string", "null"] },
}, ["id", "name", "role"]);
const upload: RequestBody = {
  contentType: "multipart/form-data",
  description: 'parts "manifest" (the slice manifest, TOML) and "bundle" (the bundled JavaScript)',
  schema: obj({ manifest: str, bundle: { type: "string", contentMediaType: "text/javascript" } }, [
    "manifest",
    "bundle",
  ]),
};
const uploadQuery: QueryParameter[] = [
  { name: "replicas", description: "how many nodes keep a copy", schema: int(1, 999) },
  {
    name: "x-aether-sha256",
    in: "header",
    description: "the bundle's sha-256 (hex); the upload is refused when it differs",
    schema: str,
  },
];
const uploadAnswer: OperationDoc["response"] = {
  status: 201,
  description: "published",
  also200: "already published with the same bundle",
  json: obj({ coordinates: str, sha256: str, created: bool }),
};

/** Every endpoint of ENDPOINT_ROLES, described. Keys are `METHOD path`, exactly as in the role table. */
export const ENDPOINT_DOCS: Readonly<Record<string, OperationDoc>> = {
  "GET /api/v1/health": {
    summary: "Whether this node is ready and in a quorum (503 when not)",
    response: {
      description: "healthy",
      json: obj({
        status: { type: "string", enum: ["healthy", "unhealthy"] },
        ready: bool,
        quorum: bool,
        nodeId: str,
        leader: { type: ["string", "null"] },
        members: { type: "array" },
      }, ["status", "ready", "quorum", "nodeId"]),
    },
    problems: [503],
  },
  "GET /api/v1/ready": {
    summary: "Readiness probe: caught up and in a quorum (503 with the same body when not)",
    response: { description: "ready", json: obj({ ready: bool, nodeId: str }, ["ready", "nodeId"]) },
    problems: [503],
  },
  "GET /api/v1/openapi.json": {
    summary: "This document: every endpoint, its role, parameters, bodies and problem answers",
    response: { description: "the OpenAPI 3.1 document", json: { type: "object" } },
  },
  "GET /api/v1/status": {
    summary: "This node's view of the cluster: leader, members, consensus, limits, ports, features",
    response: {
      description: "node and cluster status",
      json: obj({
        nodeId: str,
        leader: { type: ["object", "null"] },
        isLeader: bool,
        ready: bool,
        quorum: bool,
        members: { type: "array" },
        revision,
        phase: str,
        uptimeSeconds: { type: "number" },
        ports: { type: "object" },
      }, ["nodeId", "ready", "quorum"]),
    },
  },
  "GET /api/v1/logs": {
    summary: "Log records of the whole cluster, newest last; `follow=true` streams them (server-sent events)",
    description: "An unknown query parameter is a 400 naming it. Streams send `record`, `dropped` and " +
      "`unreachable` events.",
    query: [
      { name: "node", description: "only this member's records", schema: str },
      { name: "slice", description: `only this slice (${sliceName} or ${coordinates})`, schema: str },
      { name: "requestId", description: "only this request's records", schema: { ...str, maxLength: 200 } },
      {
        name: "level",
        description: "this level and above",
        schema: { type: "string", enum: ["debug", "info", "warn", "error"] },
      },
      since,
      {
        name: "limit",
        description: `most records (default ${DEFAULT_LOG_LIMIT})`,
        schema: int(1, MAX_LOG_LIMIT),
      },
      { name: "follow", description: "true: keep streaming new records", schema: str },
    ],
    response: {
      description: "records and the members that did not answer (or an event stream when following)",
      json: obj({ records: { type: "array" }, unreachable: { type: "object" } }, ["records", "unreachable"]),
    },
    problems: [400, 503],
  },
  "GET /api/v1/events": {
    summary: "The cluster event stream of this node (server-sent events, id and Last-Event-ID resume)",
    description:
      "Events: node.joined/down/left/suspected/back, leader.changed, instance.state, blueprint.*, " +
      "target.*, routing.*, route.*, artifact.*, alert.*, controller.*, rollout.*. Each SSE message has `id` " +
      "(this node's event id) and `event` (the type); data is the event as JSON. Resuming after an id the " +
      "node no longer holds is a 410 naming the oldest id held. `follow=false` answers JSON instead.",
    query: [
      {
        name: "type",
        description:
          "only these types or families (node, node.down, alert.firing), repeated or comma-separated",
        schema: str,
      },
      { name: "since", description: "resume after this event id (as Last-Event-ID)", schema: revision },
      {
        name: "recent",
        description: "start a new stream with the newest N matching events (default 0)",
        schema: int(0, MAX_EVENTS_LIMIT),
      },
      {
        name: "limit",
        description: `follow=false: most events (default ${DEFAULT_EVENTS_LIMIT})`,
        schema: int(1, MAX_EVENTS_LIMIT),
      },
      { name: "follow", description: "false: answer JSON and end (default true: stream)", schema: str },
      {
        name: "last-event-id",
        in: "header",
        description: "resume after this event id",
        schema: { type: "string", pattern: "^\\d{1,16}$" },
      },
    ],
    response: {
      description: "an event stream (or, with follow=false, the newest events as JSON)",
      contentType: SSE,
    },
    problems: [400, 410],
  },
  "GET /api/v1/ws": {
    summary: "WebSocket feed: the cluster snapshot every second and events as they happen (the dashboard's)",
    description: 'Messages are JSON: {"kind":"snapshot","source":"metrics"|"status","snapshot":...} every ' +
      'second, {"kind":"event","event":...} per event. Send {"types":["node","alert"]} to filter events.',
    response: { status: 101, description: "switching to the WebSocket protocol" },
    problems: [400, 503],
  },
  "GET /api/v1/traces/:requestId": {
    summary: "One request's spans from every node as a tree: HTTP router, slice calls, attempts, remote side",
    description:
      "Each node keeps its newest spans in a bounded ring; the node asked gathers the others' over " +
      "the mesh. Offsets are milliseconds from the request's first span. 404 when no node has a span of it.",
    pathParameters: { requestId: "the request id (x-request-id), or a W3C trace id (32 hex digits)" },
    response: {
      description: "the trace: its spans nested under their parents, and the members that did not answer",
      json: obj({
        id: str,
        requestIds: { type: "array", items: str },
        traceIds: { type: "array", items: str },
        startTime: str,
        durationMs: { type: "number" },
        spanCount: { type: "integer" },
        nodes: { type: "array", items: str },
        roots: { type: "array" },
        unreachable: { type: "object" },
        truncated: { type: "array", items: str },
      }, ["id", "roots", "spanCount", "unreachable"]),
    },
    problems: [400, 404],
  },
  "GET /api/v1/alerts/rules": {
    summary: "Every alert rule (thresholds/ in KV) with its text form",
    response: {
      description: "the rules",
      json: list(
        "rules",
        obj({ name: str, expr: str, metric: str, op: str, forMs: int(0, MAX_ALERT_FOR_MS) }),
      ),
    },
  },
  "PUT /api/v1/alerts/rules/:name": {
    summary: "Creates or replaces an alert rule; the leader evaluates it every second",
    description: 'E.g. {"expr": "p99 of org.example:orders/placeOrder > 200ms", "for": "30s", "severity": ' +
      '"critical"}. Expressions: p50..p999 / error-rate of group:artifact[/method], cpu / memory of node ID ' +
      "or of nodes, instances of group:artifact < desired. Units: ms, s, %, KiB/MiB/GiB.",
    pathParameters: { name: "the rule's name (lower-case letters, digits, _ . -)" },
    body: {
      json: obj({
        expr: str,
        for: { type: "string", description: "how long the condition must hold: 30s, 1m" },
        window: { type: "string", description: "latency and error rate: the window (default 1m)" },
        severity: { type: "string", enum: [...ALERT_SEVERITIES] },
        summary: str,
      }),
      required: true,
    },
    response: {
      status: 201,
      description: "created",
      also200: "replaced",
      json: obj({ name: str, expr: str, created: bool, revision }, ["name", "expr", "revision"]),
    },
    problems: [400, 409, 413, 503],
  },
  "DELETE /api/v1/alerts/rules/:name": {
    summary: "Removes an alert rule (its alerts resolve at the next evaluation)",
    pathParameters: { name: "the rule's name" },
    response: {
      description: "deleted",
      json: obj({ name: str, deleted: bool, revision }, ["name", "deleted"]),
    },
    problems: [400, 404, 503],
  },
  "GET /api/v1/alerts": {
    summary: "The alerts pending and firing now (any node answers)",
    query: [{ name: "resolved", description: "true: also the recently resolved ones", schema: str }],
    response: {
      description: "the alerts",
      json: obj({ alerts: { type: "array" }, resolved: { type: "array" } }, ["alerts"]),
    },
    problems: [400, 503],
  },
  "GET /api/v1/kv": {
    summary: "Lists keys and values under a prefix (auth records only for admins)",
    query: [
      { name: "prefix", description: "only keys starting with this", schema: str },
      { name: "limit", description: "most items (default 1000)", schema: int(1, MAX_KV_LIST_LIMIT) },
      { name: "startAfter", description: "only keys after this one (paging)", schema: str },
    ],
    response: {
      description: "entries",
      json: obj({ revision, items: { type: "array" } }, ["revision", "items"]),
    },
    problems: [400],
  },
  "GET /api/v1/kv/*": {
    summary: "Reads one key's value (raw bytes; revisions in x-aether-* headers)",
    pathParameters: { "*": "the key (may contain /, percent-encoded)" },
    query: [{ name: "consistent", description: "true: read through the leader", schema: str }, kvTimeout],
    response: { description: "the value", contentType: "application/octet-stream" },
    problems: [400, 404, 503, 504],
  },
  "PUT /api/v1/kv/*": {
    summary: "Writes one key (only under app/)",
    pathParameters: { "*": "the key, under app/" },
    query: [ifRevision, kvTimeout],
    body: { contentType: "application/octet-stream", description: "the value, as raw bytes" },
    response: { description: "written", json: obj({ revision }, ["revision"]) },
    problems: [400, 409, 413, 503, 504],
  },
  "DELETE /api/v1/kv/*": {
    summary: "Deletes one key (only under app/)",
    pathParameters: { "*": "the key, under app/" },
    query: [ifRevision, kvTimeout],
    response: { description: "deleted (0 when absent)", json: obj({ revision, deleted: int(0, 1) }) },
    problems: [400, 409, 503, 504],
  },
  "GET /api/v1/kv-watch": {
    summary: "Streams changes under a prefix (server-sent events `put`/`delete`, id = revision)",
    query: [
      { name: "prefix", description: "only keys starting with this", schema: str },
      { name: "fromRevision", description: "replay changes from this revision", schema: revision },
      {
        name: "last-event-id",
        in: "header",
        description: "resume after this revision",
        schema: { type: "string", pattern: "^\\d{1,16}$" },
      },
    ],
    response: { description: "an event stream", contentType: SSE },
    problems: [400],
  },
  "POST /api/v1/blueprints": {
    summary: "Publishes a blueprint (TOML): creates or updates the slices it lists",
    query: [dryRun],
    body: {
      contentType: "application/toml",
      description: `the blueprint, TOML (at most ${MAX_BLUEPRINT_BYTES} bytes)`,
    },
    response: {
      status: 201,
      description: "created",
      also200: "updated, or the plan of a dry run",
      json: obj({ action: str, dryRun: bool, revision }, ["dryRun"]),
    },
    problems: [400, 409, 413, 503],
  },
  "GET /api/v1/blueprints": {
    summary: "Lists published blueprints",
    response: { description: "blueprints", json: obj({ revision, blueprints: { type: "array" } }) },
  },
  "GET /api/v1/blueprints/:id": {
    summary: "One blueprint",
    pathParameters: { id: "the blueprint id" },
    response: { description: "the blueprint", json: obj({ revision, id: str }) },
    problems: [400, 404],
  },
  "GET /api/v1/blueprints/:id/status": {
    summary: "Whether each slice of a blueprint runs as it asks",
    pathParameters: { id: "the blueprint id" },
    response: { description: "status per slice", json: obj({ revision }) },
    problems: [400, 404],
  },
  "DELETE /api/v1/blueprints/:id": {
    summary: "Deletes a blueprint and undeploys what only it deployed",
    pathParameters: { id: "the blueprint id" },
    query: [dryRun],
    response: { description: "the plan applied", json: deployAnswer },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/deploy": {
    summary: "Deploys a published artifact (a new version of a running slice replaces it)",
    query: [dryRun],
    body: {
      json: obj({
        artifact: { ...str, description: coordinates },
        instances: { ...instances, description: "default: the running version's count, else 1" },
      }, ["artifact"]),
      required: true,
    },
    response: {
      status: 201,
      description: "deployed a slice that was not running",
      also200: "changed a running slice, or the plan of a dry run",
      json: deployAnswer,
    },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/scale": {
    summary: "Changes how many instances of a slice run",
    query: [dryRun, force],
    body: {
      json: obj({ artifact: { ...str, description: sliceName }, instances }, ["artifact", "instances"]),
      required: true,
    },
    response: { description: "the plan applied", json: deployAnswer },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/undeploy": {
    summary: "Stops a slice everywhere",
    query: [dryRun, force],
    body: { json: obj({ artifact: { ...str, description: sliceName } }, ["artifact"]), required: true },
    response: { description: "the plan applied", json: deployAnswer },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/slices": {
    summary: "Every deployed slice: its instances, where they run, their state",
    response: { description: "slices", json: obj({ revision, slices: { type: "array" } }, ["slices"]) },
  },
  "GET /api/v1/aspects": {
    summary:
      "Slice methods with a dynamic aspect (log, metrics, log+metrics); methods not listed run with none",
    response: {
      description: "switched methods",
      json: obj({
        items: {
          type: "array",
          items: obj({ slice: str, method: str, mode: str }, ["slice", "method", "mode"]),
        },
      }, [
        "items",
      ]),
    },
  },
  "PUT /api/v1/aspects": {
    summary:
      "Switches a slice method's aspect on every node (applied within about a second, no restart): log " +
      "records arguments and results (size-limited, redacted), metrics adds argument/result sizes, none " +
      "removes it",
    body: {
      json: obj({ target: str, mode: { type: "string", enum: ["none", "log", "metrics", "log+metrics"] } }, [
        "target",
        "mode",
      ]),
      required: true,
    },
    response: {
      description: "the method's mode now",
      json: obj({ slice: str, method: str, mode: str }, ["mode"]),
    },
    problems: [400, 409, 503, 504],
  },
  "GET /api/v1/outbound": {
    summary:
      "Outbound HTTP of slices: the hosts the operator allows (--outbound-allow) and, per node, each " +
      "(group, host) with requests, failures, retries, refusals and circuit state",
    response: {
      description: "allowed hosts and per-node series",
      json: obj({ allowed: { type: "array", items: str }, nodes: { type: "array" } }, ["allowed", "nodes"]),
    },
  },
  "GET /api/v1/infra": {
    summary: "Lists the bundled infrastructure services: name, version, methods, whether each runs, its " +
      "slice (artifact, digest, instances) if any",
    response: { description: "services", json: list("items") },
  },
  "GET /api/v1/infra/:name": {
    summary: "One infrastructure service (404 names the services available)",
    pathParameters: { name: "the service name (cache, lock, kv)" },
    response: {
      description: "the service",
      json: obj({ name: str, version: str, description: str, running: bool }, ["name", "version", "running"]),
    },
    problems: [400, 404],
  },
  "GET /api/v1/caches/:group/:cache": {
    summary:
      "A cache's configuration and this node's counters (the cluster's sums: GET /api/v1/metrics, caches)",
    pathParameters: { group: "the slices' group (org.example.shop)", cache: "the cache's name" },
    response: {
      description: "configuration and counters",
      json: obj({
        group: str,
        cache: str,
        maxEntries: int(0, 1_000_000),
        hits: int(0, Number.MAX_SAFE_INTEGER),
      }, [
        "group",
        "cache",
      ]),
    },
    problems: [400, 503],
  },
  "PUT /api/v1/caches/:group/:cache": {
    summary: "Sets a cache's default TTL and LRU bounds (each node evicts beyond maxEntries / maxBytes)",
    pathParameters: { group: "the slices' group (org.example.shop)", cache: "the cache's name" },
    body: {
      json: obj({
        defaultTtlMs: int(0, 30 * 24 * 3600_000),
        maxEntries: int(0, 1_000_000),
        maxBytes: int(0, 4 * 1024 ** 3),
      }),
      required: true,
    },
    response: { description: "the configuration", json: anyObj },
    problems: [400, 503],
  },
  "GET /api/v1/databases": {
    summary:
      "SQL databases of slices: backend (embedded or postgres) and this node's copy's applied revision",
    response: { description: "the databases", json: list("items") },
  },
  "GET /api/v1/databases/:group/:name": {
    summary: "One SQL database: its backend (embedded unless set) and this node's copy",
    pathParameters: { group: "the slices' group (org.example.shop)", name: "the database's name (orders)" },
    response: {
      description: "the database",
      json: obj({
        database: str,
        group: str,
        name: str,
        backend: str,
        appliedRevision: int(0, Number.MAX_SAFE_INTEGER),
      }, [
        "database",
        "backend",
      ]),
    },
    problems: [400],
  },
  "PUT /api/v1/databases/:group/:name": {
    summary: "Sets a database's backend: embedded (SQLite replicated through consensus) or a PostgreSQL URL",
    pathParameters: { group: "the slices' group (org.example.shop)", name: "the database's name (orders)" },
    body: {
      json: obj({ backend: str, url: str, passwordSecret: str }, ["backend"]),
      required: true,
    },
    response: { description: "the database with its new setting", json: anyObj },
    problems: [400, 503],
  },
  "GET /api/v1/topics": {
    summary: "Pub/sub topics: partitions, messages, bytes, consumer groups with their lag per partition",
    query: [{ name: "group", description: "only the topics of this slice group", schema: str }],
    response: { description: "the topics", json: list("items") },
    problems: [400],
  },
  "GET /api/v1/topics/:group/:topic": {
    summary: "One pub/sub topic with its consumer groups' lag per partition (next offset, head, lag)",
    pathParameters: topicParams,
    response: {
      description: "the topic",
      json: obj(
        { group: str, topic: str, partitions: int(1, 32), messages: int(0, Number.MAX_SAFE_INTEGER) },
        [
          "group",
          "topic",
          "partitions",
        ],
      ),
    },
    problems: [400, 404],
  },
  "POST /api/v1/topics/:group/:topic/publish": {
    summary: "Publishes a message as a slice of the group would (acknowledged once replicated by consensus)",
    pathParameters: topicParams,
    body: { json: obj({ value: anyValue, key: str, idempotencyKey: str }, ["value"]), required: true },
    response: {
      description: "where it was stored",
      json: obj({ topic: str, partition: int(0, 31), offset: revision, duplicate: bool }, ["offset"]),
    },
    problems: [400, 413, 503],
  },
  "POST /api/v1/topics/:group/:topic/subscriptions": {
    summary: "Subscribes a consumer group: a slice method of the topic's group receives every message",
    pathParameters: topicParams,
    body: {
      json: obj({ group: str, slice: str, method: str, maxAttempts: int(1, 100), from: str }, [
        "group",
        "slice",
        "method",
      ]),
      required: true,
    },
    response: { description: "the subscription", json: anyObj },
    problems: [400, 409, 503],
  },
  "POST /api/v1/topics/:group/:topic/seek": {
    summary: "Replay: moves a consumer group to an offset (every partition, or one)",
    pathParameters: topicParams,
    body: {
      json: obj({ group: str, offset: int(0, Number.MAX_SAFE_INTEGER), partition: int(0, 31) }, [
        "group",
        "offset",
      ]),
      required: true,
    },
    response: { description: "the new position", json: anyObj },
    problems: [400, 404, 503],
  },
  "POST /api/v1/infra/:name/install": {
    summary: "Starts an infrastructure service: creates its store, publishes and deploys its bundled slice " +
      "(infra/), and answers once its instances are ACTIVE",
    pathParameters: { name: "the service name (cache, lock, kv)" },
    response: {
      description: "the service, running",
      json: obj({ name: str, version: str, running: bool, installed: bool }, [
        "name",
        "running",
        "installed",
      ]),
    },
    problems: [400, 404, 503, 504],
  },
  "GET /api/v1/jobs": {
    summary: "Lists scheduled jobs: schedule, target, next occurrence, last run (?group= one group's)",
    query: [
      { name: "group", description: "only this slice group's jobs", schema: str },
      {
        name: "all",
        description: "true: state-machine timeouts too",
        schema: { type: "string", enum: ["true", "false"] },
      },
    ],
    response: { description: "jobs", json: list("items") },
    problems: [400],
  },
  "POST /api/v1/jobs/:group/:name": {
    summary: "Creates a job: exactly one of cron (5 or 6 fields, UTC unless tz), atMs, delayMs; it calls " +
      "method of slice (of the group) with {job, scheduledAtMs, attempt, payload}",
    pathParameters: jobParams,
    body: {
      json: obj({
        cron: str,
        tz: str,
        atMs: int(0, Number.MAX_SAFE_INTEGER),
        delayMs: int(0, 366 * 86_400_000),
        slice: str,
        method: str,
        payload: anyValue,
        misfire: { type: "string", enum: ["skip", "catchup"] },
        misfireGraceMs: int(0, 86_400_000),
        replace: bool,
      }, ["slice", "method"]),
      required: true,
    },
    response: { status: 201, description: "the job", json: anyObj },
    problems: [400, 403, 409, 503],
  },
  "GET /api/v1/jobs/:group/:name": {
    summary: "One job with its history",
    pathParameters: jobParams,
    response: { description: "the job", json: anyObj },
    problems: [400, 404],
  },
  "GET /api/v1/jobs/:group/:name/history": {
    summary: "A job's last runs (at most 20): occurrence, fired at, duration, outcome, attempt, node",
    pathParameters: jobParams,
    response: { description: "history", json: list("items") },
    problems: [400, 404],
  },
  "POST /api/v1/jobs/:group/:name/run": {
    summary: "Fires a job now, outside its schedule (recorded as manual); answers the method's outcome",
    pathParameters: jobParams,
    response: {
      description: "the outcome",
      json: obj({ ok: bool, value: anyValue, error: anyValue }, ["ok"]),
    },
    problems: [400, 404, 503],
  },
  "POST /api/v1/jobs/:group/:name/pause": {
    summary: "Stops firing a job (an occurrence being fired completes)",
    pathParameters: jobParams,
    response: { description: "the job", json: anyObj },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/jobs/:group/:name/resume": {
    summary: "Fires a paused job again, from its next occurrence after now (missed ones are not fired)",
    pathParameters: jobParams,
    response: { description: "the job", json: anyObj },
    problems: [400, 404, 409, 503],
  },
  "DELETE /api/v1/jobs/:group/:name": {
    summary: "Deletes a job",
    pathParameters: jobParams,
    response: { description: "whether it existed", json: obj({ deleted: bool }, ["deleted"]) },
    problems: [400, 404, 503],
  },
  "GET /api/v1/machines": {
    summary: "Declared state machines (from the slices' manifests) and their instance counts",
    query: [{ name: "group", description: "only this slice group's machines", schema: str }],
    response: { description: "machines", json: list("items") },
    problems: [400],
  },
  "GET /api/v1/machines/:group/:machine": {
    summary: "The instances of one state machine (?limit, 1-1000, default 100)",
    pathParameters: machineParams,
    query: [{ name: "limit", description: "at most this many (1-1000)", schema: str }],
    response: { description: "instances", json: list("items") },
    problems: [400],
  },
  "GET /api/v1/machines/:group/:machine/:id": {
    summary: "One state machine instance: state, version, data, history (linearizable read)",
    pathParameters: { ...machineParams, id: "the instance id" },
    response: { description: "the instance", json: anyObj },
    problems: [400, 404, 503],
  },
  "DELETE /api/v1/machines/:group/:machine/:id": {
    summary: "Removes a state machine instance and its pending state timeout (a group keeps at most 10 000)",
    pathParameters: { ...machineParams, id: "the instance id" },
    response: { description: "whether it existed", json: obj({ deleted: bool }, ["deleted"]) },
    problems: [400, 503],
  },
  "POST /api/v1/machines/:group/:machine/:id/events": {
    summary: "Sends an event to an instance (created in the initial state when absent), applied by " +
      "compare-and-set; 409 when the current state has no transition for it or a guard refuses",
    pathParameters: { ...machineParams, id: "the instance id" },
    body: { json: obj({ event: str, data: anyObj }, ["event"]), required: true },
    response: { description: "the instance after the transition", json: anyObj },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/stores": {
    summary: "Lists the partitioned stores: config and this node's share (partitions, entries)",
    response: { description: "stores", json: list("items") },
  },
  "POST /api/v1/stores": {
    summary: "Creates a partitioned store (or opens it: 200 when it exists with these options)",
    body: {
      json: obj({
        name: { ...str, description: "1-64 of [a-z0-9._-]" },
        replicas: int(1, 7),
        writeQuorum: int(1, 7),
        engine: { type: "string", enum: ["sqlite", "memory"] },
      }, ["name"]),
      required: true,
    },
    response: { status: 201, description: "created", json: obj({ name: str }), also200: "it existed" },
    problems: [400, 409, 503],
  },
  "GET /api/v1/stores/:store/entries/:key": {
    summary: "Reads one entry of a store from its partition's primary",
    pathParameters: { store: "the store name", key: "the key (percent-encoded)" },
    response: {
      description: "the entry",
      json: obj({
        key: str,
        value: str,
        version: int(0, Number.MAX_SAFE_INTEGER),
        expiresAtMs: int(0, Number.MAX_SAFE_INTEGER),
      }, [
        "key",
        "value",
        "version",
      ]),
    },
    problems: [400, 404, 503],
  },
  "PUT /api/v1/stores/:store/entries/:key": {
    summary: "Writes one entry (acknowledged once a write quorum of its owners stored it)",
    pathParameters: { store: "the store name", key: "the key (percent-encoded)" },
    body: {
      json: obj({
        value: str,
        ttlMs: { ...int(1, Number.MAX_SAFE_INTEGER), description: "expires this long after the write" },
        ifVersion: { ...int(0, Number.MAX_SAFE_INTEGER), description: "compare-and-set: 0 = only if absent" },
      }, ["value"]),
      required: true,
    },
    response: {
      description: "written",
      json: obj({ version: int(0, Number.MAX_SAFE_INTEGER) }, ["version"]),
    },
    problems: [400, 404, 409, 413, 503],
  },
  "DELETE /api/v1/stores/:store/entries/:key": {
    summary: "Deletes one entry",
    pathParameters: { store: "the store name", key: "the key (percent-encoded)" },
    query: [{ name: "ifVersion", description: "compare-and-set on the entry's version", schema: str }],
    response: { description: "whether a live entry was deleted", json: obj({ deleted: bool }, ["deleted"]) },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/config": {
    summary: "The live node settings and every slice with configuration values set",
    response: {
      description: "settings and slices",
      json: obj({ settings: arr(anyObj), slices: arr(anyObj) }),
    },
  },
  "GET /api/v1/config/:slice": {
    summary: "A slice's configuration: the values set and what its instances run with (defaults applied)",
    pathParameters: { slice: "group:artifact" },
    response: { description: "the slice's configuration", json: obj({ slice: str, values: anyObj }) },
    problems: [400, 404],
  },
  "PUT /api/v1/config/:slice": {
    summary: "Sets configuration fields of a slice, checked against its schema; running instances see them",
    pathParameters: { slice: "group:artifact" },
    body: { json: obj({ values: anyObj }, ["values"]), required: true },
    response: { description: "the slice's configuration", json: obj({ slice: str, values: anyObj }) },
    problems: [400, 404, 413, 503],
  },
  "DELETE /api/v1/config/:slice/:field": {
    summary: "Unsets one configuration field (the schema's default applies again)",
    pathParameters: { slice: "group:artifact", field: "the field" },
    response: { description: "the slice's configuration", json: obj({ slice: str, values: anyObj }) },
    problems: [400, 404, 503],
  },
  "GET /api/v1/settings": {
    summary:
      "Node settings changed live (log level, invoker timeouts and limits, HTTP timeouts, outbound.allow): " +
      "each value and whether it is the flag's, built in, or the cluster's",
    response: { description: "settings", json: obj({ settings: arr(anyObj) }) },
  },
  "PUT /api/v1/settings/:name": {
    summary: "Sets a node setting for every node (cluster config overrides the node's flag)",
    pathParameters: { name: "the setting, e.g. log.level" },
    body: { json: obj({ value: anyValue }, ["value"]), required: true },
    response: { description: "the setting", json: anyObj },
    problems: [400, 404, 503],
  },
  "DELETE /api/v1/settings/:name": {
    summary: "Unsets a node setting: every node returns to its flag's value",
    pathParameters: { name: "the setting" },
    response: { description: "the setting", json: anyObj },
    problems: [404, 503],
  },
  "GET /api/v1/secrets": {
    summary: "Secret names and versions (never values)",
    response: { description: "secrets", json: obj({ enabled: bool, secrets: arr(anyObj) }) },
  },
  "GET /api/v1/secrets/:name": {
    summary: "One secret's versions (never its value)",
    pathParameters: { name: "the secret" },
    response: { description: "the secret's versions", json: anyObj },
    problems: [400, 404],
  },
  "PUT /api/v1/secrets/:name": {
    summary: "Creates a secret or adds a version (encrypted with the cluster master key before it is stored)",
    pathParameters: { name: "the secret" },
    body: { json: obj({ value: str }, ["value"]), required: true },
    response: { status: 201, description: "created", json: anyObj, also200: "a new version" },
    problems: [400, 413, 503],
  },
  "POST /api/v1/secrets/:name/rotate": {
    summary: "A new version of an existing secret (slices read it from then on)",
    pathParameters: { name: "the secret" },
    body: { json: obj({ value: str }, ["value"]), required: true },
    response: { description: "the secret's versions", json: anyObj },
    problems: [400, 404, 413, 503],
  },
  "DELETE /api/v1/secrets/:name": {
    summary: "Deletes a secret and every version",
    pathParameters: { name: "the secret" },
    response: { description: "deleted", json: obj({ deleted: str }) },
    problems: [400, 404, 503],
  },
  "GET /api/v1/ratelimits": {
    summary: "Rate limits with this node's share of each (rate, bucket, granted and refused counts)",
    response: { description: "rate limits", json: obj({ ratelimits: arr(anyObj) }) },
  },
  "PUT /api/v1/ratelimits/:name": {
    summary: "Defines or changes a cluster-wide rate limit (token bucket: permits per second and burst)",
    pathParameters: { name: "the limit" },
    body: {
      json: obj({ ratePerSec: int(1, 1_000_000), burst: int(1, 1_000_000) }, ["ratePerSec"]),
      required: true,
    },
    response: { description: "the limit", json: anyObj },
    problems: [400, 503],
  },
  "DELETE /api/v1/ratelimits/:name": {
    summary: "Deletes a rate limit",
    pathParameters: { name: "the limit" },
    response: { description: "deleted", json: obj({ deleted: str }) },
    problems: [400, 404, 503],
  },
  "GET /api/v1/artifacts": {
    summary: "Lists published artifacts",
    response: { description: "artifacts", json: list("items") },
  },
  "POST /api/v1/artifacts": {
    summary: "Publishes an artifact (coordinates from its manifest)",
    query: uploadQuery,
    body: upload,
    response: uploadAnswer,
    problems: [400, 409, 413, 503],
  },
  "PUT /api/v1/artifacts/:coordinates": {
    summary: "Publishes an artifact at these coordinates (the manifest must agree)",
    pathParameters: { coordinates },
    query: uploadQuery,
    body: upload,
    response: uploadAnswer,
    problems: [400, 409, 413, 503],
  },
  "GET /api/v1/artifacts/:base/versions": {
    summary: "The published versions of an artifact",
    pathParameters: { base: sliceName },
    response: { description: "versions", json: obj({ base: str, versions: { type: "array", items: str } }) },
  },
  "GET /api/v1/artifacts/:coordinates": {
    summary: "One artifact's record (hash, size, manifest, whether this node holds it)",
    pathParameters: { coordinates },
    response: { description: "the record", json: obj({ coordinates: str, sha256: str, local: bool }) },
    problems: [400, 404],
  },
  "GET /api/v1/artifacts/:coordinates/manifest": {
    summary: "One artifact's manifest",
    pathParameters: { coordinates },
    response: { description: "the manifest", json: { type: "object" } },
    problems: [400, 404],
  },
  "GET /api/v1/artifacts/:coordinates/bundle": {
    summary: "One artifact's bundle (JavaScript; etag and x-aether-sha256 carry its hash)",
    pathParameters: { coordinates },
    response: { description: "the bundle", contentType: "text/javascript" },
    problems: [400, 404, 503],
  },
  "DELETE /api/v1/artifacts/:coordinates": {
    summary: "Deletes a published artifact (refused while deployed)",
    pathParameters: { coordinates },
    response: { description: "deleted", json: obj({ deleted: str, revision }) },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/routes": {
    summary: "The HTTP routes the app port serves, and the nodes that serve each",
    response: { description: "routes", json: list("routes") },
  },
  "GET /api/v1/routing": {
    summary: "Version weights of every slice in a rollout",
    response: { description: "weights", json: list("items") },
  },
  "GET /api/v1/routing/:artifact": {
    summary: "Version weights of one slice",
    pathParameters: { artifact: sliceName },
    response: { description: "weights", json: { type: "object" } },
    problems: [400, 404],
  },
  "POST /api/v1/routing": {
    summary: "Splits a slice's calls between two published versions",
    body: {
      json: obj({
        artifact: { ...str, description: sliceName },
        weights: { type: "object", additionalProperties: { type: "integer", minimum: 0 } },
      }, ["artifact", "weights"]),
      required: true,
    },
    response: { description: "the weights set", json: obj({ revision }) },
    problems: [400, 503],
  },
  "DELETE /api/v1/routing/:artifact": {
    summary: "Removes a slice's version weights",
    pathParameters: { artifact: sliceName },
    response: { description: "removed", json: obj({ artifact: str, deleted: bool, revision }) },
    problems: [400, 404, 503],
  },
  "GET /api/v1/controller": {
    summary: "The autoscaling controller: leading, paused, pins, evaluation time, forecaster",
    response: {
      description: "its status",
      json: obj({ leading: bool, paused: bool, pinned: { type: "object" }, forecaster: str }, ["paused"]),
    },
  },
  "GET /api/v1/controller/rules": {
    summary: "The controller's stored rules and the effective ones (defaults filled in)",
    response: {
      description: "the rules",
      json: obj({ stored: { type: "object" }, effective: { type: "object" }, revision }, ["effective"]),
    },
  },
  "PUT /api/v1/controller/rules": {
    summary: "Replaces the controller's stored rules; the leader uses them from its next tick",
    description:
      "Every field is optional: targetInFlightPerInstance, scaleDownUtilization, cpuHigh, cpuLow, " +
      "p95ObjectiveMs, objectives {group:artifact: ms}, stableWindowMs, panicWindowMs, panicThreshold, " +
      "upCooldownMs, downCooldownMs, maxStepUp, maxStepDown, maxPerNode, maxChangesPerMinute, forecast, " +
      "forecastConfidence.",
    body: { json: { type: "object" }, required: true },
    response: {
      description: "stored",
      json: obj({ stored: { type: "object" }, effective: { type: "object" } }, ["effective"]),
    },
    problems: [400, 413, 503],
  },
  "POST /api/v1/controller/pause": {
    summary: "Pauses automatic scaling (min/max and pins stay as they are)",
    response: { description: "paused", json: obj({ paused: bool }, ["paused"]) },
    problems: [409, 503],
  },
  "POST /api/v1/controller/resume": {
    summary: "Resumes automatic scaling",
    response: { description: "resumed", json: obj({ paused: bool }, ["paused"]) },
    problems: [409, 503],
  },
  "PUT /api/v1/controller/pins/:slice": {
    summary: "Pins a slice: the controller leaves it alone until the pin is lifted",
    pathParameters: { slice: sliceName },
    body: { json: obj({ instances: int(0, MAX_INSTANCES) }) },
    response: { description: "pinned", json: obj({ slice: str, pin: { type: "object" } }, ["slice"]) },
    problems: [400, 404, 409, 413, 503],
  },
  "DELETE /api/v1/controller/pins/:slice": {
    summary: "Lifts a slice's pin",
    pathParameters: { slice: sliceName },
    response: { description: "unpinned", json: obj({ slice: str, pinned: bool }, ["slice"]) },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/controller/decisions": {
    summary: "The controller's latest decisions, each with its reason and inputs",
    query: [
      { name: "slice", description: "only this slice (group:artifact)", schema: str },
      { name: "limit", description: "at most this many (newest)", schema: int(1, 64) },
    ],
    response: { description: "decisions, oldest first", json: list("decisions") },
    problems: [400],
  },
  "GET /api/v1/controller/forecast": {
    summary: "Per slice: the last hour's per-minute request rates beside the forecaster's prediction",
    query: [{ name: "slice", description: "only this slice (group:artifact)", schema: str }],
    response: { description: "forecasts", json: obj({ forecaster: str, slices: { type: "array" } }) },
    problems: [400],
  },
  "GET /api/v1/nodes": {
    summary:
      "Every node: connected, labels, cordon or drain, its instances by state, whether a drain is done",
    response: { description: "nodes", json: list("items") },
  },
  "GET /api/v1/nodes/:id": {
    summary: "One node: labels, cordon or drain, its instances by state (drain progress), drained",
    pathParameters: { id: "node id" },
    response: { description: "the node", json: obj({ id: str, drained: bool }) },
    problems: [400, 404],
  },
  "POST /api/v1/nodes/:id/cordon": {
    summary: "Cordons a node: no new instances go to it; those it runs stay",
    pathParameters: { id: "node id" },
    body: { json: obj({ reason: str }), required: false },
    response: {
      description: "the cordon record",
      json: obj({ node: str, cordon: obj({ mode: str }), revision }),
    },
    problems: [400, 404, 409, 413, 503],
  },
  "POST /api/v1/nodes/:id/drain": {
    summary:
      "Drains a node: cordoned, and its instances moved off one at a time, each replacement ACTIVE before " +
      "the old one stops (disruption budgets hold); GET /nodes/{id} shows when it is drained",
    pathParameters: { id: "node id" },
    body: { json: obj({ reason: str }), required: false },
    response: {
      description: "the cordon record",
      json: obj({ node: str, cordon: obj({ mode: str }), revision }),
    },
    problems: [400, 404, 409, 413, 503],
  },
  "POST /api/v1/nodes/:id/uncordon": {
    summary: "Uncordons a node (ends a drain): it takes instances again, and rebalancing fills it",
    pathParameters: { id: "node id" },
    response: { description: "whether it was cordoned", json: obj({ node: str, uncordoned: bool }) },
    problems: [400, 503],
  },
  "GET /api/v1/rollouts": {
    summary: "Every slice's rollout (the last one, finished or not)",
    response: { description: "rollouts", json: list("items") },
  },
  "GET /api/v1/rollouts/:artifact": {
    summary: "One slice's rollout: phase, step, verdicts, each version's instances and weight",
    pathParameters: { artifact: sliceName },
    response: { description: "the rollout", json: obj({ artifact: str, phase: str, strategy: str }) },
    problems: [400, 404],
  },
  "POST /api/v1/rollouts": {
    summary: "Starts a rolling, canary or blue-green rollout of a deployed slice to a published version",
    body: {
      json: obj({
        artifact: { ...str, description: sliceName },
        version: str,
        strategy: { type: "string", enum: ["rolling", "canary", "blue-green"] },
        steps: { type: "array", items: { ...str, description: '"5%", "pause 30s" or "pause"' } },
        maxSurge: { ...str, description: 'a count ("1") or a percentage ("25%")' },
        maxUnavailable: { ...str, description: 'a count ("0") or a percentage' },
        scaleDownDelayMs: int(0, 86_400_000),
        autoPromote: bool,
        analysis: obj({
          minSuccessRate: { type: "number", minimum: 0, maximum: 1 },
          maxP99Factor: { type: "number", minimum: 1 },
          maxP99Ms: int(1, 3_600_000),
          p99ToleranceMs: int(0, 3_600_000),
          failureLimit: int(1, 100),
          minRequests: int(0, 1_000_000),
          alerts: { type: "array", items: str, maxItems: 16, description: "alert rules that fail a step" },
        }),
      }, ["artifact", "version", "strategy"]),
      required: true,
    },
    response: { status: 201, description: "the rollout started", json: obj({ artifact: str, revision }) },
    problems: [400, 404, 409, 413, 503],
  },
  "POST /api/v1/rollouts/:artifact/pause": {
    summary: "Pauses a rollout where it stands",
    pathParameters: { artifact: sliceName },
    response: { description: "the rollout", json: obj({ artifact: str, phase: str, revision }) },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/rollouts/:artifact/resume": {
    summary: "Resumes a paused rollout (passes an open-ended pause step)",
    pathParameters: { artifact: sliceName },
    response: { description: "the rollout", json: obj({ artifact: str, phase: str, revision }) },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/rollouts/:artifact/promote": {
    summary: "Promotes a rollout: skips the remaining steps (blue-green: switches traffic)",
    pathParameters: { artifact: sliceName },
    response: { description: "the rollout", json: obj({ artifact: str, phase: str, revision }) },
    problems: [400, 404, 409, 503],
  },
  "POST /api/v1/rollouts/:artifact/abort": {
    summary: "Aborts a rollout: traffic back to the stable version, the new one retired",
    pathParameters: { artifact: sliceName },
    response: { description: "the rollout", json: obj({ artifact: str, phase: str, revision }) },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/timeouts": {
    summary: "Call timeouts configured per slice",
    response: { description: "timeouts", json: list("items") },
  },
  "PUT /api/v1/timeouts/:artifact": {
    summary: "Sets a slice's call timeout",
    pathParameters: { artifact: sliceName },
    body: { json: obj({ timeoutMs: int(1, MAX_CALL_TIMEOUT_MS) }, ["timeoutMs"]), required: true },
    response: { description: "set", json: obj({ artifact: str, timeoutMs: { type: "integer" }, revision }) },
    problems: [400, 503],
  },
  "DELETE /api/v1/timeouts/:artifact": {
    summary: "Removes a slice's call timeout (the default applies)",
    pathParameters: { artifact: sliceName },
    response: { description: "removed", json: obj({ artifact: str, deleted: bool, revision }) },
    problems: [400, 404, 503],
  },
  "POST /api/v1/invoke/:target/:method": {
    summary: "Calls one method of a slice",
    pathParameters: { target: `${sliceName} or ${coordinates}`, method: "the slice method" },
    query: [
      { name: "x-request-id", in: "header", description: "the request id to use", schema: str },
      {
        name: "x-aether-timeout-ms",
        in: "header",
        description: "the call's deadline in milliseconds",
        schema: { type: "string", pattern: "^[1-9]\\d{0,8}$" },
      },
      {
        name: "x-aether-version",
        in: "header",
        description:
          "blue-green preview: only this version serves the call (must agree with a target's version)",
        schema: str,
      },
    ],
    body: { json: { description: "the method's request (any JSON; {} when empty)" } },
    response: { description: "the method's answer", json: obj({ requestId: str }, ["requestId"]) },
    problems: [400, 404, 413, 500, 503, 504],
  },
  "GET /api/v1/whoami": {
    summary: "The caller's token: id, name and role",
    response: {
      description: "the caller",
      json: obj({ tokenId: str, tokenName: str, role: { type: "string", enum: [...ROLES] } }),
    },
  },
  "POST /api/v1/tokens": {
    summary: "Creates a token; the answer holds its secret, shown only this once",
    body: {
      json: obj({
        name: { type: "string", pattern: "^[A-Za-z0-9 ._@:-]{1,64}$" },
        role: { type: "string", enum: [...ROLES] },
        ttl: { ...str, description: "lifetime, e.g. 30m, 12h, 90d (none: never expires)" },
      }, ["name", "role"]),
      required: true,
    },
    response: {
      status: 201,
      description: "the token",
      json: { ...tokenView, properties: { ...(tokenView.properties as object), token: str } },
    },
    problems: [400, 409, 503],
  },
  "GET /api/v1/tokens": {
    summary: "Lists tokens (never their secrets)",
    response: { description: "tokens", json: list("items", tokenView) },
  },
  "DELETE /api/v1/tokens/:id": {
    summary: "Revokes a token",
    pathParameters: { id: "the token id (4-32 letters or digits)" },
    response: { description: "the revoked token", json: tokenView },
    problems: [400, 404, 409, 503],
  },
  "GET /api/v1/audit": {
    summary: "The audit log: every mutating call (who, role, what, target, result, request id, time)",
    query: [
      since,
      {
        name: "limit",
        description: `most records, newest (default ${DEFAULT_AUDIT_LIMIT})`,
        schema: int(1, MAX_AUDIT_ENTRIES),
      },
    ],
    response: { description: "records, oldest first", json: list("items") },
    problems: [400],
  },
  "GET /metrics": {
    summary:
      "Prometheus text (0.0.4) of this node's metrics; `scope=cluster`: every live node's, from any node",
    description:
      "Names start `aether_`, base units (seconds, bytes), counters end in `_total`, histograms have " +
      "`_bucket`/`_sum`/`_count`; labels: node, slice, version, method, kind, instance, route (the template), " +
      "status_class, peer. For a Prometheus scrape job, give it a viewer token (`authorization` credentials).",
    query: [{
      name: "scope",
      description: "node (default) or cluster",
      schema: { type: "string", enum: ["node", "cluster"] },
    }],
    response: { description: "the exposition (text/plain; version=0.0.4)", contentType: "text/plain" },
    problems: [400],
  },
  "GET /api/v1/metrics": {
    summary:
      "The cluster metrics snapshot: every node's sample (stale ones flagged) and slices merged by version",
    description: "The leader merges the nodes' samples every second and broadcasts them; any node answers. " +
      "Counters are cumulative since each node started; latency histograms use fixed buckets " +
      "(`counts` per bucket, bounds in ms from 0.25 to 60000, then +Inf). 503 before the first snapshot.",
    query: [{
      name: "scope",
      description: "cluster (default) or node (this node's own sample)",
      schema: { type: "string", enum: ["cluster", "node"] },
    }],
    response: {
      description: "the snapshot",
      json: obj({
        atMs: { type: "number" },
        leader: str,
        seq: { type: "integer" },
        nodes: { type: "array" },
        slices: { type: "array" },
      }),
    },
    problems: [400, 503],
  },
  "GET /api/v1/metrics/history": {
    summary: "Points of the 2-hour history: 1 s for the last 15 minutes, 10 s before",
    description: "Series: node.cpu|node.rss|node.heap|node.lag:<node>, calls|errors:<g:a:v>/<method> (per " +
      "second), p50|p95|p99:<g:a:v>/<method> (ms), cluster.calls, cluster.errors. No `series`: every series.",
    query: [
      { name: "series", description: "comma-separated series names", schema: str },
      { name: "from", description: "epoch ms, ISO 8601, or a duration back from now (15m)", schema: str },
      {
        name: "to",
        description: "epoch ms, ISO 8601, or a duration back from now (default now)",
        schema: str,
      },
      {
        name: "step",
        description: "seconds between points (a multiple of 10 beyond 15 minutes)",
        schema: int(1, 7_200),
      },
    ],
    response: {
      description: "the points per series ([epoch ms, value or null])",
      json: obj({
        fromMs: { type: "number" },
        toMs: { type: "number" },
        stepSeconds: { type: "integer" },
        series: { type: "array" },
      }),
    },
    problems: [400],
  },
  "GET /api/v1/invocations": {
    summary: "Per slice version and method: calls/s, error rate and p50/p95/p99 over a window, and per node",
    query: [
      { name: "window", description: "seconds (default 60)", schema: int(1, 300) },
      { name: "slice", description: `only this slice (${sliceName} or ${coordinates})`, schema: str },
      { name: "method", description: "only this method", schema: str },
    ],
    response: {
      description: "the summaries",
      json: obj({ windowSeconds: { type: "integer" }, invocations: { type: "array" } }, ["invocations"]),
    },
    problems: [400],
  },
};

/** Every error code a problem document's `type` may end in, with its status: core's own table. */
export const PROBLEM_STATUSES: Readonly<Record<ErrorCode, number>> = STATUS_BY_CODE;

const STATUS_TEXT: Record<number, string> = {
  400: "bad request: the problem names the parameter, field or header",
  401: "no token, or an unknown, expired or revoked one; `roleNeeded` names the role",
  403: "the token's role is below the one needed; `roleNeeded` names it",
  404: "no such thing",
  409: "a conflict (a revision that no longer matches, a limit reached, something in use)",
  410: "gone",
  413: "the body is over the limit",
  500: "the call failed (a slice's error or a crash)",
  503: "no quorum, unavailable or overloaded; may carry `retryAfterSeconds`",
  504: "timed out",
};

/** The OpenAPI path of a role-table pattern: `:id` → `{id}`, `*` → `{key}`. */
export function openApiPath(path: string): string {
  return path.split("/").map((part) => {
    if (part === "*") return "{key}";
    return part.startsWith(":") ? `{${part.slice(1)}}` : part;
  }).join("/");
}

function operationId(entry: EndpointEntry): string {
  const words = (entry.path.startsWith("/api/v1/") ? entry.path.slice(8) : `root/${entry.path}`)
    .split(/[/.-]/).filter((w) => w)
    .map((w) => w === "*" ? "by key" : w.startsWith(":") ? `by ${w.slice(1)}` : w).join(" ").split(" ");
  return [entry.method.toLowerCase(), ...words].map((w, i) => i ? w[0].toUpperCase() + w.slice(1) : w).join(
    "",
  )
    .replace(/[^A-Za-z0-9]/g, "");
}

function parametersOf(entry: EndpointEntry, doc: OperationDoc): JsonSchema[] {
  const where = `${entry.method} ${entry.path}`;
  const names = entry.path.split("/").filter((p) => p === "*" || p.startsWith(":")).map((p) =>
    p === "*" ? "*" : p.slice(1)
  );
  const described = Object.keys(doc.pathParameters ?? {});
  const missing = names.filter((n) => !described.includes(n));
  const extra = described.filter((n) => !names.includes(n));
  if (missing.length || extra.length) {
    throw new Error(
      `openapi.ts: ${where}: path parameters ${names.join(", ") || "none"}, described: ` +
        `${described.join(", ") || "none"}`,
    );
  }
  const path = names.map((name) => ({
    name: name === "*" ? "key" : name,
    in: "path",
    required: true,
    description: doc.pathParameters![name],
    schema: str,
  }));
  const query = (doc.query ?? []).map((q) => ({
    name: q.name,
    in: q.in ?? "query",
    required: false,
    description: q.description,
    schema: q.schema,
  }));
  return [...path, ...query];
}

function requestBodyOf(body: RequestBody): JsonSchema {
  if ("json" in body) {
    return { required: body.required ?? false, content: { "application/json": { schema: body.json } } };
  }
  return {
    required: true,
    description: body.description,
    content: { [body.contentType]: { schema: body.schema ?? { type: "string", format: "binary" } } },
  };
}

function responsesOf(entry: EndpointEntry, doc: OperationDoc): JsonSchema {
  const status = doc.response.status ?? 200;
  const content = doc.response.json
    ? { "application/json": { schema: doc.response.json } }
    : { [doc.response.contentType ?? "application/octet-stream"]: { schema: str } };
  const responses: JsonSchema = { [String(status)]: { description: doc.response.description, content } };
  if (doc.response.also200) responses["200"] = { description: doc.response.also200, content };
  const problems = new Set([400, ...(doc.problems ?? [])]);
  if (entry.role !== "open") {
    problems.add(401);
    problems.add(403);
  }
  for (const code of [...problems].sort()) {
    if (String(code) in responses) continue;
    responses[String(code)] = { $ref: `#/components/responses/Problem${code}` };
  }
  return responses;
}

function operationOf(entry: EndpointEntry, doc: OperationDoc): JsonSchema {
  const role = entry.role;
  const parameters = parametersOf(entry, doc);
  return {
    operationId: operationId(entry),
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    // The folder after /api/v1 (the root's own /metrics is its own tag).
    tags: [(entry.path.split("/")[3] ?? entry.path.split("/")[1]).replace(/\.json$|-watch$/, "")],
    "x-aether-role": role,
    ...(entry.target ? { "x-aether-audit-target": entry.target === "*" ? "key" : entry.target } : {}),
    security: role === "open" ? [] : [{ bearer: [] }],
    ...(parameters.length ? { parameters } : {}),
    ...(doc.body ? { requestBody: requestBodyOf(doc.body) } : {}),
    responses: responsesOf(entry, doc),
  };
}

function components(): JsonSchema {
  const statuses = [...new Set(Object.values(PROBLEM_STATUSES))].sort();
  const responses = Object.fromEntries(statuses.map((status) => [
    `Problem${status}`,
    {
      description: STATUS_TEXT[status] ?? "a problem",
      content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
    },
  ]));
  return {
    securitySchemes: {
      bearer: {
        type: "http",
        scheme: "bearer",
        bearerFormat: "aether_{id}_{secret}",
        description: "A token from `aether token create` (or the cluster's first admin token).",
      },
    },
    schemas: {
      Problem: {
        type: "object",
        description:
          "RFC 7807 problem details; extra fields (field, parameter, roleNeeded, requestId, ...) " +
          "name what was wrong",
        properties: {
          type: {
            type: "string",
            enum: Object.keys(PROBLEM_STATUSES).map((code) => `${PROBLEM_TYPE}${code}`).concat(
              `${PROBLEM_TYPE}slice-error`,
            ),
          },
          title: str,
          status: { type: "integer", minimum: 400, maximum: 599 },
          detail: str,
          instance: str,
          roleNeeded: { type: "string", enum: [...ROLES] },
          requestId: str,
        },
        required: ["type", "title", "status", "detail"],
      },
    },
    responses,
  };
}

/**
 * The OpenAPI 3.1 document of `entries`, each described by `docs[METHOD path]`. Throws naming the entry when a
 * description is missing, a description has no entry, or the path parameters and their descriptions differ.
 */
export function openApiDocument(
  entries: readonly EndpointEntry[] = ENDPOINT_ROLES,
  docs: Readonly<Record<string, OperationDoc>> = ENDPOINT_DOCS,
): JsonSchema {
  const keys = new Set(entries.map((e) => `${e.method} ${e.path}`));
  const undescribed = [...keys].filter((k) => !Object.hasOwn(docs, k));
  const unlisted = Object.keys(docs).filter((k) => !keys.has(k));
  if (undescribed.length || unlisted.length) {
    throw new Error(
      `openapi.ts: endpoints without a description: ${undescribed.join(", ") || "none"}; ` +
        `descriptions of endpoints roles.ts does not list: ${unlisted.join(", ") || "none"}`,
    );
  }
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const entry of entries) {
    const path = openApiPath(entry.path);
    paths[path] ??= {};
    paths[path][entry.method.toLowerCase()] = operationOf(entry, docs[`${entry.method} ${entry.path}`]);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Aether management API",
      version: "1",
      description:
        "Roles, least to most: open (no token), viewer, operator, admin; each operation names its " +
        "role in `x-aether-role`. With --closed-probes, open endpoints need a viewer token. Errors are " +
        "application/problem+json documents whose `type` ends in the error code.",
    },
    servers: [{ url: "/" }],
    security: [{ bearer: [] }],
    paths,
    components: components(),
  };
}

/** `GET /openapi.json` (mounted under /api/v1): the document, built once. */
export function openApiRoutes(): Hono {
  const app = new Hono();
  let document: JsonSchema | undefined;
  app.get("/openapi.json", (c) => c.json(document ??= openApiDocument()));
  return app;
}
