/**
 * The cluster's key schema (ARCHITECTURE.md, "Key schema"): one prefix per family, builders of full keys and
 * of prefixes for range reads and watches, and the parser that tells any key's family and parts.
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
 * | `rollouts/{group}:{artifact}`                                | RolloutRecord     |
 * | `leader`                                                     | LeaderRecord      |
 * | `config/{name}`, `config/node/{node}/{name}`                 | ConfigRecord      |
 * | `thresholds/{metric}`                                        | ThresholdRecord   |
 * | `app/{name}`                                                 | raw operator bytes |
 * | `nodes/{node}/labels`, `nodes/{node}/cordon`                 | NodeLabelsRecord, CordonRecord |
 */

import {
  AetherError,
  type ArtifactBase,
  type ArtifactCoordinates,
  type NodeId,
  parseArtifactBase,
  parseCoordinates,
} from "../core/mod.ts";
import {
  appText,
  baseText,
  checkedKey,
  coordsText,
  dottedText,
  type HttpMethod,
  httpMethodText,
  INSTANCE_NUMBER,
  instanceText,
  methodText,
  nodeText,
  routePathText,
} from "./_names.ts";
import { LEADER_KEY } from "./leader.ts";

export const KEY_PREFIXES = {
  blueprints: "blueprints/",
  targets: "targets/",
  instances: "instances/",
  endpoints: "endpoints/",
  routes: "routes/",
  artifacts: "artifacts/",
  routing: "routing/",
  rollouts: "rollouts/",
  config: "config/",
  thresholds: "thresholds/",
  app: "app/",
  nodes: "nodes/",
} as const;

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
export interface RolloutKey {
  family: "rollout";
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

export interface NodeLabelsKey {
  family: "nodeLabels";
  node: NodeId;
}
export interface CordonKey {
  family: "cordon";
  node: NodeId;
}

export type ParsedKey =
  | BlueprintKey
  | TargetKey
  | InstanceKey
  | EndpointKey
  | RouteKey
  | ArtifactKey
  | RoutingKey
  | RolloutKey
  | LeaderKey
  | ConfigKey
  | ThresholdKey
  | AppKey
  | NodeLabelsKey
  | CordonKey;

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
  rollout: (slice: ArtifactBase | string): string => checkedKey(`rollouts/${baseText(slice, "rollout key")}`),
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
  nodeLabels: (node: NodeId): string => checkedKey(`nodes/${nodeText(node, "node labels key")}/labels`),
  cordon: (node: NodeId): string => checkedKey(`nodes/${nodeText(node, "cordon key")}/cordon`),
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
    case KEY_PREFIXES.rollouts:
      expect(1, "rollouts/{group}:{artifact}");
      return { family: "rollout", slice: parseArtifactBase(rest, where) };
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
    case KEY_PREFIXES.nodes:
      expect(2, "nodes/{node}/labels or nodes/{node}/cordon");
      if (parts[1] !== "labels" && parts[1] !== "cordon") {
        throw new AetherError(
          "bad_request",
          `${where} is not of the form nodes/{node}/labels or nodes/{node}/cordon`,
        );
      }
      return parts[1] === "labels"
        ? { family: "nodeLabels", node: nodeText(parts[0], where) }
        : { family: "cordon", node: nodeText(parts[0], where) };
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
    case "rollout":
      return kvKeys.rollout(key.slice);
    case "leader":
      return LEADER_KEY;
    case "config":
      return kvKeys.config(key.name, key.node);
    case "threshold":
      return kvKeys.threshold(key.metric);
    case "app":
      return kvKeys.app(key.name);
    case "nodeLabels":
      return kvKeys.nodeLabels(key.node);
    case "cordon":
      return kvKeys.cordon(key.node);
  }
}

function parseInstanceNumber(text: string, where: string): number {
  if (!INSTANCE_NUMBER.test(text)) {
    throw new AetherError("bad_request", `${where}: instance number "${text}" is not a non-negative integer`);
  }
  return Number(text);
}
