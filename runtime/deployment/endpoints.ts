/**
 * EndpointRegistry: every callable method of every ACTIVE instance in the cluster, cached on each node.
 *
 * Built from the KV state (`endpoints/{g}:{a}:{v}/{method}/{node}/{n}`) and kept current by applying the
 * watch events of that prefix, in revision order. Pure: no IO, no timers. Lookups by slice (`group:artifact`,
 * any version, or `group:artifact:version`) and method are one map access plus a filter by a connectivity
 * predicate the caller supplies (the mesh's "is this node connected now"), so a departed node's endpoints stop
 * being returned the moment the mesh notices, before the leader removes them from KV.
 *
 * Glue: `EndpointRegistry.fromKv(state)` at start, then feed every applied batch's events (or watch
 * `ENDPOINTS_PREFIX` from `registry.revision + 1`); after a snapshot is installed, `reset(state)`.
 */

import { baseOf, formatCoordinates, type NodeId } from "../core/mod.ts";
import type { KvEvent } from "../kv/mod.ts";
import { KEY_PREFIXES, tryParseKey } from "../model/mod.ts";
import type { KvReader } from "./view.ts";

export const ENDPOINTS_PREFIX = KEY_PREFIXES.endpoints;

export interface Endpoint {
  key: string;
  /** `group:artifact:version`. */
  artifact: string;
  version: string;
  method: string;
  node: NodeId;
  /** Instance number on the node. */
  n: number;
}

interface Bucket {
  byKey: Map<string, Endpoint>;
  /** Sorted by node, then artifact, then n; rebuilt lazily after a change. */
  sorted: Endpoint[] | null;
}

export class EndpointRegistry {
  /** `slice/method` and `coordinates/method` -> endpoints. */
  readonly #buckets = new Map<string, Bucket>();
  readonly #all = new Map<string, Endpoint>();
  #revision = 0;

  static fromKv(kv: KvReader): EndpointRegistry {
    const registry = new EndpointRegistry();
    registry.reset(kv);
    return registry;
  }

  /** Revision of the last state or event applied. */
  get revision(): number {
    return this.#revision;
  }

  get size(): number {
    return this.#all.size;
  }

  /** Rebuilds from a state (at start, or after a snapshot replaced the state). */
  reset(kv: KvReader): void {
    this.#buckets.clear();
    this.#all.clear();
    for (const entry of kv.range(ENDPOINTS_PREFIX)) this.#add(entry.key);
    this.#revision = kv.revision;
  }

  /** Applies changes in revision order; events at or before the registry's revision are already in it. */
  apply(events: readonly KvEvent[]): void {
    for (const event of events) {
      if (event.revision <= this.#revision) continue;
      if (event.key.startsWith(ENDPOINTS_PREFIX)) {
        if (event.type === "put") this.#add(event.key);
        else this.#remove(event.key);
      }
    }
    const last = events[events.length - 1];
    if (last && last.revision > this.#revision) this.#revision = last.revision;
  }

  /**
   * Live endpoints of `slice` (`group:artifact` for every version, or `group:artifact:version`) and
   * `method`, sorted by node; `isConnected` filters out nodes the caller cannot reach.
   */
  lookup(slice: string, method: string, isConnected?: (node: NodeId) => boolean): Endpoint[] {
    const bucket = this.#buckets.get(`${slice}/${method}`);
    if (!bucket) return [];
    bucket.sorted ??= [...bucket.byKey.values()].sort(byNode);
    return isConnected ? bucket.sorted.filter((e) => isConnected(e.node)) : bucket.sorted.slice();
  }

  /** Methods with at least one endpoint for `slice` (base or coordinates). */
  methods(slice: string): string[] {
    const out = new Set<string>();
    for (const [name, bucket] of this.#buckets) {
      if (bucket.byKey.size > 0 && name.startsWith(`${slice}/`)) out.add(name.slice(slice.length + 1));
    }
    return [...out].sort();
  }

  #add(key: string): void {
    if (this.#all.has(key)) return;
    const parsed = tryParseKey(key);
    if (parsed?.family !== "endpoint") return;
    const endpoint: Endpoint = {
      key,
      artifact: formatCoordinates(parsed.artifact),
      version: parsed.artifact.version,
      method: parsed.method,
      node: parsed.node,
      n: parsed.n,
    };
    this.#all.set(key, endpoint);
    for (const name of this.#names(endpoint)) {
      let bucket = this.#buckets.get(name);
      if (!bucket) this.#buckets.set(name, bucket = { byKey: new Map(), sorted: null });
      bucket.byKey.set(key, endpoint);
      bucket.sorted = null;
    }
  }

  #remove(key: string): void {
    const endpoint = this.#all.get(key);
    if (!endpoint) return;
    this.#all.delete(key);
    for (const name of this.#names(endpoint)) {
      const bucket = this.#buckets.get(name)!;
      bucket.byKey.delete(key);
      bucket.sorted = null;
      if (bucket.byKey.size === 0) this.#buckets.delete(name);
    }
  }

  #names(e: Endpoint): [string, string] {
    return [`${baseOf(e.artifact)}/${e.method}`, `${e.artifact}/${e.method}`];
  }
}

function byNode(a: Endpoint, b: Endpoint): number {
  return a.node < b.node
    ? -1
    : a.node > b.node
    ? 1
    : a.artifact < b.artifact
    ? -1
    : a.artifact > b.artifact
    ? 1
    : a.n - b.n;
}
