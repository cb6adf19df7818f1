/**
 * The deployment view: the parts of the replicated KV state that deployment reasons about, decoded and
 * indexed, read in one go from a `KvReader` (the node passes its `KvState`; the simulator passes its own).
 * Reading is synchronous, so a view is one consistent revision of the store.
 *
 * `ViewReader` keeps decoded records by key and modRevision so that reading a view after a small change only
 * decodes what changed; that cache is only a cache: a fresh reader builds the same view.
 */

import { baseOf, formatCoordinates, type NodeId } from "../core/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import {
  type CordonRecord,
  type HttpMethod,
  type InstanceRecord,
  KEY_PREFIXES,
  LEADER_KEY,
  type LeaderRecord,
  parseKey,
  type RecordFamily,
  type RecordTypes,
  type RouteRecord,
  type RoutingRecord,
  type TargetRecord,
} from "../model/mod.ts";
import { decodeValueMemo, parseKeyMemo } from "./_memo.ts";
import {
  type ArtifactCatalog,
  catalogFromEntries,
  type DeployManifest,
  ManifestCatalog,
} from "./artifacts.ts";

/** Read access to the replicated state; `KvState` is one. */
export interface KvReader {
  readonly revision: number;
  get(key: string): KvEntry | undefined;
  range(prefix: string): KvEntry[];
}

export interface InstanceView {
  key: string;
  node: NodeId;
  /** `group:artifact:version`. */
  coordinates: string;
  /** `group:artifact`. */
  base: string;
  version: string;
  n: number;
  record: InstanceRecord;
  modRevision: number;
  createRevision: number;
}

export interface TargetView {
  key: string;
  base: string;
  record: TargetRecord;
  modRevision: number;
}

export interface EndpointView {
  key: string;
  coordinates: string;
  base: string;
  method: string;
  node: NodeId;
  n: number;
  modRevision: number;
}

export interface RouteView {
  key: string;
  httpMethod: HttpMethod;
  path: string;
  record: RouteRecord;
  modRevision: number;
}

/** What placement knows of a node besides membership: its labels and whether it is cordoned or draining. */
export interface NodeInfoView {
  labels: Record<string, string>;
  cordon?: CordonRecord;
  cordonKey?: string;
  cordonModRevision?: number;
}

/** `routing/{g}:{a}`: version weights; deployment keeps both versions running while it exists. */
export interface RoutingView {
  key: string;
  base: string;
  record: RoutingRecord;
  modRevision: number;
}

export interface DeploymentView {
  revision: number;
  leader?: { record: LeaderRecord; modRevision: number };
  /** By `group:artifact`. */
  targets: Map<string, TargetView>;
  /** In key order. */
  instances: InstanceView[];
  /** By `group:artifact`, in key order. */
  instancesByBase: Map<string, InstanceView[]>;
  endpoints: EndpointView[];
  routes: RouteView[];
  /** `nodes/{node}/labels|cordon`, by node (only nodes with either). */
  nodes: Map<NodeId, NodeInfoView>;
  /** By `group:artifact`. */
  routing: Map<string, RoutingView>;
  catalog: ArtifactCatalog;
  /** Entries that did not decode (skipped): what was wrong with each. */
  problems: string[];
}

/** Reads views; keeps what it built per key and modRevision between reads (a cache, never a source of truth). */
export class ViewReader {
  /** key -> the view object built for it at `modRevision` (objects are shared between views: do not mutate). */
  #built = new Map<string, { modRevision: number; createRevision: number; value: unknown }>();
  readonly #manifests = new Map<string, { modRevision: number; manifest: DeployManifest }>();
  #catalog: { fingerprint: string; catalog: ManifestCatalog } | undefined;

  read(kv: KvReader): DeploymentView {
    const problems: string[] = [];
    const previous = this.#built;
    const built = new Map<string, { modRevision: number; createRevision: number; value: unknown }>();
    /** The object for `entry`, rebuilt only when the entry changed; undefined (and noted) when it does not decode. */
    const cached = <T>(entry: KvEntry, build: () => T): T | undefined => {
      const hit = previous.get(entry.key);
      if (hit && hit.modRevision === entry.modRevision && hit.createRevision === entry.createRevision) {
        built.set(entry.key, hit);
        return hit.value as T;
      }
      try {
        const value = build();
        built.set(entry.key, { modRevision: entry.modRevision, createRevision: entry.createRevision, value });
        return value;
      } catch (e) {
        problems.push((e as Error).message);
        return undefined;
      }
    };
    const keyOf = <F extends "target" | "instance" | "endpoint" | "route" | "routing">(
      key: string,
      family: F,
    ): KeyOf<F> => {
      const parsed = parseKeyMemo(key);
      if (parsed.family !== family) throw new Error(`key "${key}" is not a ${family} key`);
      return parsed as KeyOf<F>;
    };
    const record = <F extends RecordFamily>(family: F, entry: KvEntry): RecordTypes[F] =>
      decodeValueMemo(family, entry.value, `value of "${entry.key}"`);

    const view: DeploymentView = {
      revision: kv.revision,
      targets: new Map(),
      instances: [],
      instancesByBase: new Map(),
      endpoints: [],
      routes: [],
      routing: new Map(),
      nodes: new Map(),
      catalog: this.#readCatalog(kv.range(KEY_PREFIXES.artifacts), problems),
      problems,
    };

    const leaderEntry = kv.get(LEADER_KEY);
    if (leaderEntry) {
      const leader = cached(leaderEntry, () => ({
        record: record("leader", leaderEntry),
        modRevision: leaderEntry.modRevision,
      }));
      if (leader) view.leader = leader;
    }
    for (const entry of kv.range(KEY_PREFIXES.targets)) {
      const target = cached(entry, (): TargetView => {
        const key = keyOf(entry.key, "target");
        const base = `${key.slice.group}:${key.slice.artifact}`;
        return { key: entry.key, base, record: record("target", entry), modRevision: entry.modRevision };
      });
      if (target) view.targets.set(target.base, target);
    }
    for (const entry of kv.range(KEY_PREFIXES.instances)) {
      const instance = cached(entry, (): InstanceView => {
        const key = keyOf(entry.key, "instance");
        return {
          key: entry.key,
          node: key.node,
          coordinates: formatCoordinates(key.artifact),
          base: baseOf(key.artifact),
          version: key.artifact.version,
          n: key.n,
          record: record("instance", entry),
          modRevision: entry.modRevision,
          createRevision: entry.createRevision,
        };
      });
      if (!instance) continue;
      view.instances.push(instance);
      const list = view.instancesByBase.get(instance.base);
      if (list) list.push(instance);
      else view.instancesByBase.set(instance.base, [instance]);
    }
    for (const entry of kv.range(KEY_PREFIXES.endpoints)) {
      // Endpoint values carry nothing deployment needs; the key says it all.
      const endpoint = cached(entry, (): EndpointView => {
        const key = keyOf(entry.key, "endpoint");
        return {
          key: entry.key,
          coordinates: formatCoordinates(key.artifact),
          base: baseOf(key.artifact),
          method: key.method,
          node: key.node,
          n: key.n,
          modRevision: entry.modRevision,
        };
      });
      if (endpoint) view.endpoints.push(endpoint);
    }
    for (const entry of kv.range(KEY_PREFIXES.routes)) {
      const route = cached(entry, (): RouteView => {
        const key = keyOf(entry.key, "route");
        return {
          key: entry.key,
          httpMethod: key.method,
          path: key.path,
          record: record("route", entry),
          modRevision: entry.modRevision,
        };
      });
      if (route) view.routes.push(route);
    }
    for (const entry of kv.range(KEY_PREFIXES.routing)) {
      const routing = cached(entry, (): RoutingView => {
        const key = keyOf(entry.key, "routing");
        const base = `${key.slice.group}:${key.slice.artifact}`;
        return { key: entry.key, base, record: record("routing", entry), modRevision: entry.modRevision };
      });
      if (routing) view.routing.set(routing.base, routing);
    }
    for (const entry of kv.range(KEY_PREFIXES.nodes)) {
      const info = cached(entry, () => {
        const parsed = parseKeyMemo(entry.key);
        if (parsed.family === "nodeLabels") {
          return { node: parsed.node, labels: record("nodeLabels", entry).labels };
        }
        if (parsed.family === "cordon") return { node: parsed.node, cordon: record("cordon", entry) };
        throw new Error(`key "${entry.key}" is not a nodes/ key`);
      });
      if (!info) continue;
      const node = view.nodes.get(info.node) ?? { labels: {} };
      if ("labels" in info && info.labels) node.labels = info.labels;
      if ("cordon" in info && info.cordon) {
        node.cordon = info.cordon;
        node.cordonKey = entry.key;
        node.cordonModRevision = entry.modRevision;
      }
      view.nodes.set(info.node, node);
    }
    this.#built = built;
    return view;
  }

  #readCatalog(entries: KvEntry[], problems: string[]): ManifestCatalog {
    // Revisions only grow, so the count and the newest modRevision change whenever the set of entries does.
    let newest = 0;
    for (const entry of entries) newest = Math.max(newest, entry.modRevision);
    const fingerprint = `${entries.length}:${newest}`;
    if (this.#catalog?.fingerprint === fingerprint) return this.#catalog.catalog;
    const catalog = catalogFromEntries(entries, this.#manifests, problems);
    this.#catalog = { fingerprint, catalog };
    return catalog;
  }
}

type KeyOf<F extends string> = Extract<ReturnType<typeof parseKey>, { family: F }>;

/**
 * The version `routing/` keeps running next to the target's: the other one it names, when it names the target's
 * version; undefined when there is no record or it names neither (it then does not describe this deployment).
 */
export function routedVersion(targetVersion: string, routing: RoutingRecord | undefined): string | undefined {
  if (!routing) return undefined;
  if (routing.oldVersion === targetVersion) return routing.newVersion;
  if (routing.newVersion === targetVersion) return routing.oldVersion;
  return undefined;
}

/**
 * How many instances `version` of a slice runs: the count `routing/` gives it while a rolling update moves in
 * batches, else the target's count.
 */
export function versionCount(
  targetInstances: number,
  version: string,
  routing: RoutingRecord | undefined,
): number {
  if (!routing) return targetInstances;
  const count = version === routing.oldVersion
    ? routing.oldInstances
    : version === routing.newVersion
    ? routing.newInstances
    : undefined;
  return count ?? targetInstances;
}

/** One cluster member as the local node sees it. */
export interface MemberStatus {
  id: NodeId;
  /** Connected to this node (always true for the node itself). */
  connected: boolean;
  /** When `connected` last changed, or when this node started watching (ms). */
  sinceMs: number;
}

/** live: connected; suspect: down for less than the grace period; departed: down longer, or not a member. */
export type NodeCondition = "live" | "suspect" | "departed";

export function nodeCondition(
  node: NodeId,
  members: ReadonlyMap<NodeId, MemberStatus>,
  nowMs: number,
  departureGraceMs: number,
): NodeCondition {
  const member = members.get(node);
  if (!member) return "departed";
  if (member.connected) return "live";
  return nowMs - member.sinceMs >= departureGraceMs ? "departed" : "suspect";
}

/** The artifact catalog of a KV state (decodes every `artifacts/` entry; use a ViewReader to repeat cheaply). */
export function catalogFromKv(kv: KvReader, problems: string[] = []): ManifestCatalog {
  return catalogFromEntries(kv.range(KEY_PREFIXES.artifacts), new Map(), problems);
}
