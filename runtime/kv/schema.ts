/**
 * The typed key schema of the cluster's KV store (ARCHITECTURE.md, "Key schema"): key builders and parsers for
 * every family, the records stored under them, validators and the UTF-8 JSON codec, and the operator-namespace
 * rule (operators write only under `app/`; the rest belongs to the runtime).
 *
 * | key                                                          | record            |
 * | ------------------------------------------------------------ | ----------------- |
 * | `blueprints/{group}:{artifact}:{version}`                    | BlueprintRecord   |
 * | `targets/{group}:{artifact}`                                 | TargetRecord      |
 * | `instances/{node}/{group}:{artifact}:{version}/{n}`          | InstanceRecord    |
 * | `endpoints/{group}:{artifact}:{version}/{method}/{node}/{n}` | EndpointRecord    |
 * | `routes/{METHOD}{path}` (path starts with `/`)               | RouteRecord       |
 * | `artifacts/{group}:{artifact}:{version}`                     | ArtifactRecord    |
 * | `routing/{group}:{artifact}`                                 | RoutingRecord     |
 * | `leader`                                                     | LeaderRecord      |
 * | `config/{name}`, `config/node/{node}/{name}`                 | ConfigRecord      |
 * | `thresholds/{metric}`                                        | ThresholdRecord   |
 * | `app/{name}`                                                 | raw operator bytes |
 *
 * Records other than the leader's were designed from the issues and may be refined by whoever builds the
 * feature that writes them; keep the validator and the type in step.
 */

import {
  type ArtifactBase,
  type ArtifactCoordinates,
  formatBase,
  formatCoordinates,
  isVersion,
  parseArtifactBase,
  parseCoordinates,
} from "../core/artifact.ts";
import { AetherError } from "../core/errors.ts";
import { isNodeId, type NodeId } from "../core/ids.ts";
import { manifestProblems, type SliceManifest } from "../../slices/manifest.ts";
import { MAX_KEY_BYTES, utf8Length } from "./commands.ts";
import {
  array,
  boolean,
  type Check,
  FieldError,
  finite,
  integer,
  join,
  json,
  type JsonValue,
  literal,
  object,
  optional,
  refine,
  string,
  timestamp,
  validate,
} from "./_validate.ts";

export type { JsonValue } from "./_validate.ts";

// ---------------------------------------------------------------------------------------------------------------
// Names

const SLICE_METHOD = /^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/;
const INSTANCE_NUMBER = /^(0|[1-9]\d{0,8})$/;
const PATH_SEGMENT = /^(?:[A-Za-z0-9._~!$&'()*+,;=:@%-]+|\{[A-Za-z_][A-Za-z0-9_]*\})$/;
const DOTTED_PATH = /^[A-Za-z0-9_.:-]+(?:\/[A-Za-z0-9_.:-]+)*$/;
const SERVICE = /^[a-z][a-z0-9-]{0,62}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;
// deno-lint-ignore no-control-regex -- control characters are exactly what app keys must not contain
const CONTROL = /[\u0000-\u001f\u007f]/;

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] as const;
export type HttpMethod = typeof HTTP_METHODS[number];

function baseText(base: ArtifactBase | string, where: string): string {
  return formatBase(parseArtifactBase(typeof base === "string" ? base : formatBase(base), where));
}

function coordsText(coords: ArtifactCoordinates | string, where: string): string {
  return formatCoordinates(
    parseCoordinates(typeof coords === "string" ? coords : formatCoordinates(coords), where),
  );
}

function nodeText(node: NodeId, where: string): NodeId {
  if (typeof node !== "string" || !isNodeId(node)) {
    throw new AetherError("bad_request", `${where}: "${node}" is not a valid node id`);
  }
  return node;
}

function instanceText(n: number, where: string): string {
  if (!Number.isSafeInteger(n) || n < 0 || n > 999_999_999) {
    throw new AetherError(
      "bad_request",
      `${where}: instance number ${n} is not an integer from 0 to 999999999`,
    );
  }
  return String(n);
}

function methodText(method: string, where: string): string {
  if (typeof method !== "string" || !SLICE_METHOD.test(method)) {
    throw new AetherError("bad_request", `${where}: "${method}" is not a valid slice method name`);
  }
  return method;
}

function httpMethodText(method: string, where: string): HttpMethod {
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    throw new AetherError("bad_request", `${where}: "${method}" is not one of ${HTTP_METHODS.join(", ")}`);
  }
  return method as HttpMethod;
}

/**
 * A route path as a slice declares it: `/`, or `/`-separated segments that are literal text or `{param}`; a
 * trailing `/` marks a prefix.
 */
export function isRoutePath(path: string): boolean {
  if (typeof path !== "string" || !path.startsWith("/") || path.length > 512) return false;
  if (path === "/") return true;
  const body = path.endsWith("/") ? path.slice(1, -1) : path.slice(1);
  return body.split("/").every((segment) => PATH_SEGMENT.test(segment));
}

function routePathText(path: string, where: string): string {
  if (!isRoutePath(path)) {
    throw new AetherError(
      "bad_request",
      `${where}: "${path}" is not a route path ("/" then segments of URL characters or {param})`,
    );
  }
  return path;
}

function dottedText(name: string, what: string, where: string): string {
  if (typeof name !== "string" || name.length > 256 || !DOTTED_PATH.test(name)) {
    throw new AetherError(
      "bad_request",
      `${where}: ${what} "${name}" must be "/"-separated parts of letters, digits and "_.:-"`,
    );
  }
  return name;
}

function appText(name: string, where: string): string {
  if (typeof name !== "string" || name.length === 0 || CONTROL.test(name)) {
    throw new AetherError("bad_request", `${where}: an app/ key needs a name without control characters`);
  }
  return name;
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

export const KEY_PREFIXES = {
  blueprints: "blueprints/",
  targets: "targets/",
  instances: "instances/",
  endpoints: "endpoints/",
  routes: "routes/",
  artifacts: "artifacts/",
  routing: "routing/",
  config: "config/",
  thresholds: "thresholds/",
  app: "app/",
} as const;

export const LEADER_KEY = "leader";
export const OPERATOR_PREFIX = KEY_PREFIXES.app;

export interface BlueprintKey {
  family: "blueprint";
  /** The blueprint id, `group:artifact:version`. */
  id: string;
}
export interface TargetKey {
  family: "target";
  slice: ArtifactBase;
}
export interface InstanceKey {
  family: "instance";
  node: NodeId;
  artifact: ArtifactCoordinates;
  n: number;
}
export interface EndpointKey {
  family: "endpoint";
  artifact: ArtifactCoordinates;
  method: string;
  node: NodeId;
  n: number;
}
export interface RouteKey {
  family: "route";
  method: HttpMethod;
  path: string;
}
export interface ArtifactKey {
  family: "artifact";
  artifact: ArtifactCoordinates;
}
export interface RoutingKey {
  family: "routing";
  slice: ArtifactBase;
}
export interface LeaderKey {
  family: "leader";
}
export interface ConfigKey {
  family: "config";
  /** Present for a node's own setting (`config/node/{node}/{name}`). */
  node?: NodeId;
  name: string;
}
export interface ThresholdKey {
  family: "threshold";
  metric: string;
}
export interface AppKey {
  family: "app";
  name: string;
}

export type ParsedKey =
  | BlueprintKey
  | TargetKey
  | InstanceKey
  | EndpointKey
  | RouteKey
  | ArtifactKey
  | RoutingKey
  | LeaderKey
  | ConfigKey
  | ThresholdKey
  | AppKey;

export type KeyFamily = ParsedKey["family"];

/** Builders of full keys; each validates its parts and throws AetherError("bad_request") naming the bad one. */
export const kvKeys = {
  blueprint: (id: ArtifactCoordinates | string): string =>
    checkedKey(`blueprints/${coordsText(id, "blueprint id")}`),
  target: (slice: ArtifactBase | string): string => checkedKey(`targets/${baseText(slice, "target key")}`),
  instance: (node: NodeId, artifact: ArtifactCoordinates | string, n: number): string =>
    checkedKey(
      `instances/${nodeText(node, "instance key")}/${coordsText(artifact, "instance key")}/${
        instanceText(n, "instance key")
      }`,
    ),
  endpoint: (artifact: ArtifactCoordinates | string, method: string, node: NodeId, n: number): string =>
    checkedKey(
      `endpoints/${coordsText(artifact, "endpoint key")}/${methodText(method, "endpoint key")}/${
        nodeText(node, "endpoint key")
      }/${instanceText(n, "endpoint key")}`,
    ),
  route: (method: HttpMethod, path: string): string =>
    checkedKey(`routes/${httpMethodText(method, "route key")}${routePathText(path, "route key")}`),
  artifact: (artifact: ArtifactCoordinates | string): string =>
    checkedKey(`artifacts/${coordsText(artifact, "artifact key")}`),
  routing: (slice: ArtifactBase | string): string => checkedKey(`routing/${baseText(slice, "routing key")}`),
  leader: (): string => LEADER_KEY,
  /** `config/{name}` for the cluster, `config/node/{node}/{name}` for one node. */
  config: (name: string, node?: NodeId): string => {
    if (node === undefined && name.split("/")[0] === "node") {
      throw new AetherError("bad_request", `config key: "node/..." is reserved for per-node settings`);
    }
    const scope = node === undefined ? "" : `node/${nodeText(node, "config key")}/`;
    return checkedKey(`config/${scope}${dottedText(name, "name", "config key")}`);
  },
  threshold: (metric: string): string =>
    checkedKey(`thresholds/${dottedText(metric, "metric", "threshold key")}`),
  app: (name: string): string => checkedKey(`app/${appText(name, "app key")}`),
} as const;

/** Prefixes for range reads and watches; every one ends at a separator, so `n1/` never matches `n10/`. */
export const kvPrefixes = {
  ...KEY_PREFIXES,
  instancesOfNode: (node: NodeId): string => `instances/${nodeText(node, "instances prefix")}/`,
  instancesOfNodeArtifact: (node: NodeId, artifact: ArtifactCoordinates | string): string =>
    `instances/${nodeText(node, "instances prefix")}/${coordsText(artifact, "instances prefix")}/`,
  endpointsOf: (artifact: ArtifactCoordinates | string): string =>
    `endpoints/${coordsText(artifact, "endpoints prefix")}/`,
  endpointsOfMethod: (artifact: ArtifactCoordinates | string, method: string): string =>
    `endpoints/${coordsText(artifact, "endpoints prefix")}/${methodText(method, "endpoints prefix")}/`,
  /** Endpoints of every version of a slice. */
  endpointsOfSlice: (slice: ArtifactBase | string): string =>
    `endpoints/${baseText(slice, "endpoints prefix")}:`,
  artifactVersions: (slice: ArtifactBase | string): string =>
    `artifacts/${baseText(slice, "artifacts prefix")}:`,
  routesOfMethod: (method: HttpMethod): string => `routes/${httpMethodText(method, "routes prefix")}/`,
  configOfNode: (node: NodeId): string => `config/node/${nodeText(node, "config prefix")}/`,
} as const;

function checkedKey(key: string): string {
  if (utf8Length(key) > MAX_KEY_BYTES) {
    throw new AetherError(
      "bad_request",
      `key "${key.slice(0, 64)}..." is longer than ${MAX_KEY_BYTES} bytes`,
    );
  }
  return key;
}

/** Parses any key of the schema; throws AetherError("bad_request") that says what is wrong with it. */
export function parseKey(key: string): ParsedKey {
  if (typeof key !== "string" || key.length === 0) {
    throw new AetherError("bad_request", "key must not be empty");
  }
  checkedKey(key);
  if (key === LEADER_KEY) return { family: "leader" };
  const where = `key "${key}"`;
  const slash = key.indexOf("/");
  const head = slash < 0 ? key : key.slice(0, slash + 1);
  const rest = slash < 0 ? "" : key.slice(slash + 1);
  const parts = rest.split("/");
  const expect = (count: number, shape: string) => {
    if (parts.length !== count) throw new AetherError("bad_request", `${where} is not of the form ${shape}`);
  };
  switch (head) {
    case KEY_PREFIXES.blueprints:
      expect(1, "blueprints/{group}:{artifact}:{version}");
      return { family: "blueprint", id: coordsText(rest, where) };
    case KEY_PREFIXES.targets:
      expect(1, "targets/{group}:{artifact}");
      return { family: "target", slice: parseArtifactBase(rest, where) };
    case KEY_PREFIXES.instances:
      expect(3, "instances/{node}/{group}:{artifact}:{version}/{n}");
      return {
        family: "instance",
        node: nodeText(parts[0], where),
        artifact: parseCoordinates(parts[1], where),
        n: parseInstanceNumber(parts[2], where),
      };
    case KEY_PREFIXES.endpoints:
      expect(4, "endpoints/{group}:{artifact}:{version}/{method}/{node}/{n}");
      return {
        family: "endpoint",
        artifact: parseCoordinates(parts[0], where),
        method: methodText(parts[1], where),
        node: nodeText(parts[2], where),
        n: parseInstanceNumber(parts[3], where),
      };
    case KEY_PREFIXES.routes: {
      const method = httpMethodText(parts[0], where);
      return { family: "route", method, path: routePathText(rest.slice(parts[0].length), where) };
    }
    case KEY_PREFIXES.artifacts:
      expect(1, "artifacts/{group}:{artifact}:{version}");
      return { family: "artifact", artifact: parseCoordinates(rest, where) };
    case KEY_PREFIXES.routing:
      expect(1, "routing/{group}:{artifact}");
      return { family: "routing", slice: parseArtifactBase(rest, where) };
    case KEY_PREFIXES.config:
      if (parts[0] === "node") {
        if (parts.length < 3) {
          throw new AetherError("bad_request", `${where} is not of the form config/node/{node}/{name}`);
        }
        return {
          family: "config",
          node: nodeText(parts[1], where),
          name: dottedText(parts.slice(2).join("/"), "name", where),
        };
      }
      return { family: "config", name: dottedText(rest, "name", where) };
    case KEY_PREFIXES.thresholds:
      return { family: "threshold", metric: dottedText(rest, "metric", where) };
    case KEY_PREFIXES.app:
      return { family: "app", name: appText(rest, where) };
    default:
      throw new AetherError(
        "bad_request",
        `${where} is in no namespace of the schema (${
          [...Object.values(KEY_PREFIXES), LEADER_KEY].join(", ")
        })`,
      );
  }
}

/** Like parseKey, but undefined for a key outside the schema. */
export function tryParseKey(key: string): ParsedKey | undefined {
  try {
    return parseKey(key);
  } catch {
    return undefined;
  }
}

/** Builds the key a parsed key came from (parseKey and formatKey are inverses). */
export function formatKey(key: ParsedKey): string {
  switch (key.family) {
    case "blueprint":
      return kvKeys.blueprint(key.id);
    case "target":
      return kvKeys.target(key.slice);
    case "instance":
      return kvKeys.instance(key.node, key.artifact, key.n);
    case "endpoint":
      return kvKeys.endpoint(key.artifact, key.method, key.node, key.n);
    case "route":
      return kvKeys.route(key.method, key.path);
    case "artifact":
      return kvKeys.artifact(key.artifact);
    case "routing":
      return kvKeys.routing(key.slice);
    case "leader":
      return LEADER_KEY;
    case "config":
      return kvKeys.config(key.name, key.node);
    case "threshold":
      return kvKeys.threshold(key.metric);
    case "app":
      return kvKeys.app(key.name);
  }
}

function parseInstanceNumber(text: string, where: string): number {
  if (!INSTANCE_NUMBER.test(text)) {
    throw new AetherError("bad_request", `${where}: instance number "${text}" is not a non-negative integer`);
  }
  return Number(text);
}

// ---------------------------------------------------------------------------------------------------------------
// Operator namespace

/** Whether an operator (management API, CLI) may write `key`: only keys under `app/` are theirs. */
export function isOperatorWritable(key: string): boolean {
  return operatorWriteError(key) === undefined;
}

/** The 403 for an operator write outside `app/` (or a 400 for a malformed app key); undefined when allowed. */
export function operatorWriteError(key: string): AetherError | undefined {
  if (typeof key === "string" && key.startsWith(OPERATOR_PREFIX)) {
    try {
      checkedKey(key);
      appText(key.slice(OPERATOR_PREFIX.length), `key "${key}"`);
      return undefined;
    } catch (e) {
      return e as AetherError;
    }
  }
  const namespace = typeof key === "string"
    ? [...Object.values(KEY_PREFIXES), LEADER_KEY].find((p) => key === p || key.startsWith(p))
    : undefined;
  const owner = namespace
    ? `belongs to the runtime (namespace "${namespace}")`
    : "is outside the operator namespace";
  return new AetherError(
    "forbidden",
    `key "${key}" ${owner}; operators may write only keys under "${OPERATOR_PREFIX}"`,
    { key },
  );
}

/** Like operatorWriteError, for a prefix delete: the prefix must lie inside `app/`. */
export function operatorPrefixWriteError(prefix: string): AetherError | undefined {
  if (typeof prefix === "string" && prefix.startsWith(OPERATOR_PREFIX)) return undefined;
  return new AetherError(
    "forbidden",
    `prefix "${prefix}" reaches outside the operator namespace; operators may write only keys under ` +
      `"${OPERATOR_PREFIX}"`,
    { prefix },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Records

export const LIFECYCLE_STATES = [
  "LOAD",
  "LOADING",
  "LOADED",
  "ACTIVATE",
  "ACTIVATING",
  "ACTIVE",
  "DEACTIVATE",
  "DEACTIVATING",
  "FAILED",
  "UNLOAD",
  "UNLOADING",
] as const;
export type LifecycleState = typeof LIFECYCLE_STATES[number];

export function isLifecycleState(value: unknown): value is LifecycleState {
  return typeof value === "string" && (LIFECYCLE_STATES as readonly string[]).includes(value);
}

/** `leader`: the member holding cluster-management duties, agreed through consensus. */
export interface LeaderRecord {
  nodeId: NodeId;
  /** Grows by one with every change of leader; a write names the view it replaces (compare-and-set). */
  view: number;
  electedAt: number;
}

/** One slice of a published blueprint, after expansion with the slices it calls. */
export interface BlueprintSlice {
  /** `group:artifact:version`. */
  artifact: string;
  instances: number;
  /** Autoscaling bounds. */
  min?: number;
  max?: number;
  /** Infrastructure services the slice requires (for example "cache"). */
  requires: string[];
  /** True when expansion added it because another slice calls it; false when the operator listed it. */
  transitive: boolean;
}

/** `blueprints/{id}`: a published blueprint, parsed, validated and expanded. */
export interface BlueprintRecord {
  /** `group:artifact:version`, the same as in the key. */
  id: string;
  /** In activation order: every slice after the slices it calls. */
  slices: BlueprintSlice[];
  /** The TOML as published, for `blueprint get`. */
  source?: string;
  publishedAt: number;
}

/** `targets/{group}:{artifact}`: the desired version and instance count of one slice. */
export interface TargetRecord {
  version: string;
  instances: number;
  min?: number;
  max?: number;
  /** Blueprint ids that want this slice; empty when it was deployed directly. */
  owners: string[];
  updatedAt: number;
  /**
   * Failure backoff, kept here (not in the leader's memory) so it survives a change of leader: after each
   * FAILED instance the leader waits until `retryAt` before it places a replacement, preferring a node other
   * than `lastFailedNode`. Cleared once the slice has stayed healthy for a while.
   */
  backoff?: TargetBackoff;
  /**
   * The same for the other version `routing/{g}:{a}` keeps running next to the target's (see
   * runtime/deployment/cluster_manager.ts): its failures back off on their own, so a failing canary never delays
   * replacements of the target version. Tagged with its version; dropped when that version is no longer routed.
   */
  routedBackoff?: RoutedBackoff;
}

export interface RoutedBackoff extends TargetBackoff {
  version: string;
}

export interface TargetBackoff {
  /** Consecutive failures of the slice's instances since it was last healthy. */
  failures: number;
  /** No replacement is placed before this time (ms). */
  retryAt: number;
  lastFailedNode?: NodeId;
  /** Why the last instance failed (for operators: `slices`, `--wait`). */
  lastReason?: string;
}

/** `instances/{node}/{g}:{a}:{v}/{n}`: the lifecycle command (leader) or state (node) of one instance. */
export interface InstanceRecord {
  state: LifecycleState;
  updatedAt: number;
  /** In-progress states: when the node gives up and reports FAILED. */
  deadline?: number;
  /** FAILED: why. */
  reason?: string;
  /**
   * Set by the leader on a LOAD that moves an instance (rebalancing): the instance on `node` with the same
   * coordinates and number `n` is removed once this one is ACTIVE, so the slice never drops below its count.
   */
  replaces?: { node: NodeId; n: number };
  /** Set by the leader with DEACTIVATE (kept by the node): after DEACTIVATING, LOADED means "unload me next". */
  retiring?: boolean;
  /**
   * FAILED because its node no longer runs it (the node restarted, or stopped it without quorum): not a failure
   * of the slice, so it is replaced without backoff.
   */
  lost?: boolean;
}

/** `endpoints/{g}:{a}:{v}/{method}/{node}/{n}`: a callable method of an active instance (the key says which). */
export interface EndpointRecord {
  registeredAt: number;
}

/** `routes/{METHOD}{path}`: which slice method serves an HTTP route, and on which nodes. */
export interface RouteRecord {
  /** `group:artifact`; the version follows `routing/` weights or the target. */
  slice: string;
  method: string;
  nodes: NodeId[];
}

/**
 * `artifacts/{g}:{a}:{v}`: a published artifact (written by the artifact repository, runtime/repository): its
 * manifest as `slices/manifest.ts` defines it, its bundle's hash and size (the same as the manifest's), and the
 * nodes holding the bundle on disk. Versions are immutable: the record of a version is created once and only
 * its `holders` change after that.
 */
export interface ArtifactRecord {
  manifest: SliceManifest;
  /** Lower-case hex sha-256 of the bundle (equals `manifest.sha256`). */
  sha256: string;
  /** Bytes of the bundle (equals `manifest.sizeBytes`). */
  sizeBytes: number;
  /** Nodes that stored the bundle durably; the first is the node that received the push. */
  holders: NodeId[];
  /** When the push was committed (ms since the epoch). */
  pushedAt: number;
}

/** `routing/{g}:{a}`: traffic weights between two versions during a rolling, canary or blue-green deployment. */
export interface RoutingRecord {
  oldVersion: string;
  newVersion: string;
  oldWeight: number;
  newWeight: number;
  updatedAt: number;
}

/** `config/...`: one dynamic configuration value. */
export interface ConfigRecord {
  value: JsonValue;
  updatedAt: number;
}

/** `thresholds/{metric}`: alert thresholds of one metric. */
export interface ThresholdRecord {
  warning: number;
  critical: number;
  updatedAt: number;
}

export interface RecordTypes {
  blueprint: BlueprintRecord;
  target: TargetRecord;
  instance: InstanceRecord;
  endpoint: EndpointRecord;
  route: RouteRecord;
  artifact: ArtifactRecord;
  routing: RoutingRecord;
  leader: LeaderRecord;
  config: ConfigRecord;
  threshold: ThresholdRecord;
}

/** Every family whose values are JSON records (`app/` values are the operator's raw bytes). */
export type RecordFamily = keyof RecordTypes;

// ---------------------------------------------------------------------------------------------------------------
// Validators

const nodeId = string({ pattern: /^[a-z0-9][a-z0-9-]{0,62}$/, expectation: "a node id" });
const coords = string({ pattern: /^[^:]+:[^:]+:[^:]+$/, expectation: '"group:artifact:version"' });
const coordsField: Check<string> = (value, path) => {
  const text = coords(value, path);
  try {
    parseCoordinates(text);
  } catch {
    throw new FieldError(
      path,
      `${path} must be "group:artifact:version" with a semantic version, got "${text}"`,
    );
  }
  return text;
};
const baseField: Check<string> = (value, path) => {
  const text = string({ expectation: '"group:artifact"' })(value, path);
  try {
    parseArtifactBase(text);
  } catch {
    throw new FieldError(path, `${path} must be "group:artifact", got "${text}"`);
  }
  return text;
};
const version: Check<string> = (value, path) => {
  if (typeof value !== "string" || value.includes("+") || !isVersion(value)) {
    throw new FieldError(
      path,
      `${path} must be a semantic version such as 1.2.0, got ${JSON.stringify(value)}`,
    );
  }
  return value;
};
const sliceMethod = string({ pattern: SLICE_METHOD, expectation: "a method name" });
const services = array(string({ pattern: SERVICE, expectation: "a service name" }), { unique: true });
const nodes = array(nodeId, { unique: true });

function bounds(value: { instances: number; min?: number; max?: number }, path: string): void {
  const at = (field: string) => join(path, field);
  if (value.min !== undefined && value.max !== undefined && value.min > value.max) {
    throw new FieldError(
      at("min"),
      `${at("min")} (${value.min}) must not exceed ${at("max")} (${value.max})`,
    );
  }
  if (value.min !== undefined && value.instances < value.min) {
    throw new FieldError(
      at("instances"),
      `${at("instances")} (${value.instances}) is below min (${value.min})`,
    );
  }
  if (value.max !== undefined && value.instances > value.max) {
    throw new FieldError(
      at("instances"),
      `${at("instances")} (${value.instances}) is above max (${value.max})`,
    );
  }
}

const leaderCheck: Check<LeaderRecord> = object({ nodeId, view: integer(0), electedAt: timestamp() });

const blueprintSliceCheck: Check<BlueprintSlice> = refine(
  object({
    artifact: coordsField,
    instances: integer(1, 10_000),
    min: optional(integer(0, 10_000)),
    max: optional(integer(1, 10_000)),
    requires: services,
    transitive: boolean(),
  }),
  bounds,
);

const blueprintCheck: Check<BlueprintRecord> = refine(
  object({
    id: coordsField,
    slices: array(blueprintSliceCheck, { min: 1, max: 1_000 }),
    source: optional(string({ maxLength: 1024 * 1024 })),
    publishedAt: timestamp(),
  }),
  (value, path) => {
    const seen = new Map<string, number>();
    value.slices.forEach((slice, i) => {
      const base = slice.artifact.split(":").slice(0, 2).join(":");
      if (seen.has(base)) {
        const at = join(path, `slices[${i}].artifact`);
        throw new FieldError(at, `${at} repeats ${base} (slices[${seen.get(base)}])`);
      }
      seen.set(base, i);
    });
  },
);

const backoffFields = {
  failures: integer(1, 1_000_000),
  retryAt: timestamp(),
  lastFailedNode: optional(nodeId),
  lastReason: optional(string({ maxLength: 1024 })),
};

const targetCheck: Check<TargetRecord> = refine(
  object({
    version,
    instances: integer(0, 10_000),
    min: optional(integer(0, 10_000)),
    max: optional(integer(1, 10_000)),
    owners: array(coordsField, { unique: true }),
    updatedAt: timestamp(),
    backoff: optional(object(backoffFields)),
    routedBackoff: optional(object({ version, ...backoffFields })),
  }),
  bounds,
);

const instanceCheck: Check<InstanceRecord> = object({
  state: literal(LIFECYCLE_STATES),
  updatedAt: timestamp(),
  deadline: optional(timestamp()),
  reason: optional(string({ maxLength: 4096 })),
  replaces: optional(object({ node: nodeId, n: integer(0, 999_999_999) })),
  retiring: optional(boolean()),
  lost: optional(boolean()),
});

const endpointCheck: Check<EndpointRecord> = object({ registeredAt: timestamp() });

const routeCheck: Check<RouteRecord> = object({ slice: baseField, method: sliceMethod, nodes });

/** The real manifest check (slices/manifest.ts), its first problem reported as a field error under `path`. */
const manifestCheck: Check<SliceManifest> = (value, path) => {
  const problems = manifestProblems(value);
  if (problems.length > 0) {
    const first = problems[0];
    const at = first.path === "(manifest)" ? path : join(path, first.path);
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more)` : "";
    throw new FieldError(at, `${at}: ${first.message}${more}`);
  }
  return value as SliceManifest;
};

const artifactCheck: Check<ArtifactRecord> = refine(
  object({
    manifest: manifestCheck,
    sha256: string({ pattern: SHA256_HEX, expectation: "64 lower-case hex digits" }),
    sizeBytes: integer(0),
    holders: nodes,
    pushedAt: timestamp(),
  }),
  (value, path) => {
    for (const field of ["sha256", "sizeBytes"] as const) {
      if (value[field] !== value.manifest[field]) {
        const at = join(path, field);
        throw new FieldError(
          at,
          `${at} (${value[field]}) differs from the manifest's (${value.manifest[field]})`,
        );
      }
    }
  },
);

const routingCheck: Check<RoutingRecord> = refine(
  object({
    oldVersion: version,
    newVersion: version,
    oldWeight: integer(0, 1_000_000),
    newWeight: integer(0, 1_000_000),
    updatedAt: timestamp(),
  }),
  (value, path) => {
    if (value.oldWeight === 0 && value.newWeight === 0) {
      throw new FieldError(join(path, "newWeight"), "oldWeight and newWeight must not both be 0");
    }
    if (value.oldVersion === value.newVersion) {
      const at = join(path, "newVersion");
      throw new FieldError(at, `${at} must differ from oldVersion (both ${value.oldVersion})`);
    }
  },
);

const configCheck: Check<ConfigRecord> = object({ value: json(), updatedAt: timestamp() });

const thresholdCheck: Check<ThresholdRecord> = object({
  warning: finite(),
  critical: finite(),
  updatedAt: timestamp(),
});

const CHECKS: { [F in RecordFamily]: Check<RecordTypes[F]> } = {
  blueprint: blueprintCheck,
  target: targetCheck,
  instance: instanceCheck,
  endpoint: endpointCheck,
  route: routeCheck,
  artifact: artifactCheck,
  routing: routingCheck,
  leader: leaderCheck,
  config: configCheck,
  threshold: thresholdCheck,
};

export const RECORD_FAMILIES = Object.keys(CHECKS) as RecordFamily[];

/**
 * Checks a record of `family`; returns it rebuilt with its declared fields only, or throws
 * AetherError("bad_request") naming the wrong field (`extra.field`).
 */
export function validateRecord<F extends RecordFamily>(
  family: F,
  value: unknown,
  where = `${family} record`,
): RecordTypes[F] {
  const check = CHECKS[family] as Check<RecordTypes[F]> | undefined;
  if (!check) throw new AetherError("bad_request", `${where}: "${family}" is not a record family`);
  return validate(check, value, where);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

/** Validates and encodes a record as UTF-8 JSON. */
export function encodeValue<F extends RecordFamily>(family: F, value: RecordTypes[F]): Uint8Array {
  return utf8.encode(JSON.stringify(validateRecord(family, value)));
}

/** Decodes and validates a record stored as UTF-8 JSON. */
export function decodeValue<F extends RecordFamily>(
  family: F,
  bytes: Uint8Array,
  where = `${family} record`,
): RecordTypes[F] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${e instanceof Error ? e.message : e})`);
  }
  return validateRecord(family, parsed, where);
}

/** A KV entry decoded by its key: the parsed key and its typed record (raw bytes under `app/`). */
export type DecodedEntry =
  | {
    [F in RecordFamily]: { family: F; key: Extract<ParsedKey, { family: F }>; value: RecordTypes[F] };
  }[RecordFamily]
  | { family: "app"; key: AppKey; value: Uint8Array };

/**
 * Decodes any schema entry by its key and checks that key and record agree (a blueprint's id, an artifact's
 * manifest coordinates).
 */
export function decodeEntry(key: string, bytes: Uint8Array): DecodedEntry {
  const parsed = parseKey(key);
  if (parsed.family === "app") return { family: "app", key: parsed, value: bytes };
  const where = `value of "${key}"`;
  const value = decodeValue(parsed.family, bytes, where);
  checkAgreement(parsed, value, where);
  return { family: parsed.family, key: parsed, value } as DecodedEntry;
}

/** Validates a record for `key` (family from the key, agreement of key and record) and encodes it. */
export function encodeEntry(key: string, value: unknown): Uint8Array {
  const parsed = parseKey(key);
  if (parsed.family === "app") {
    if (!(value instanceof Uint8Array)) {
      throw new AetherError("bad_request", `value of "${key}" must be bytes`);
    }
    return value;
  }
  const where = `value of "${key}"`;
  const checked = validateRecord(parsed.family, value, where);
  checkAgreement(parsed, checked, where);
  return utf8.encode(JSON.stringify(checked));
}

function checkAgreement(key: ParsedKey, value: unknown, where: string): void {
  if (key.family === "blueprint" && (value as BlueprintRecord).id !== key.id) {
    throw new AetherError(
      "bad_request",
      `${where}: id "${(value as BlueprintRecord).id}" differs from the key's "${key.id}"`,
      {
        field: "id",
      },
    );
  }
  if (key.family === "artifact") {
    const named = (value as ArtifactRecord).manifest.coordinates;
    if (named !== formatCoordinates(key.artifact)) {
      throw new AetherError(
        "bad_request",
        `${where}: manifest.coordinates "${named}" differs from the key's "${
          formatCoordinates(key.artifact)
        }"`,
        { field: "manifest.coordinates" },
      );
    }
  }
}
