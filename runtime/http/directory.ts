/**
 * RouteDirectory: the node's route table, built from the replicated `routes/` records and the manifests in
 * `artifacts/` (which give each route's declared query parameters), rebuilt lazily after a batch changed
 * either prefix. Reads the state it is given; no IO of its own.
 */

import type { KvEntry, KvEvent } from "../kv/mod.ts";
import { decodeValue, KEY_PREFIXES, kvPrefixes, tryParseKey } from "../model/mod.ts";
import type { Logger } from "../core/mod.ts";
import { type RouteDefinition, RouteTable } from "./route_table.ts";

export interface DirectoryReader {
  range(prefix: string): KvEntry[];
}

interface ManifestRoutes {
  entries: Array<{ httpMethod: string; fullPath: string; queryParams: string[] }>;
}

export class RouteDirectory {
  readonly #state: () => DirectoryReader;
  readonly #log?: Logger;
  #table: RouteTable = RouteTable.EMPTY;
  #dirty = true;
  /** Parsed manifest routes by artifact key and modRevision (manifests never change for a version). */
  readonly #manifests = new Map<string, { modRevision: number; routes: ManifestRoutes | null }>();
  readonly #complained = new Set<string>();

  constructor(state: () => DirectoryReader, log?: Logger) {
    this.#state = state;
    this.#log = log;
  }

  /** The current table (rebuilt first if routes or artifacts changed). */
  table(): RouteTable {
    if (this.#dirty) {
      this.#dirty = false;
      this.#table = this.#build();
    }
    return this.#table;
  }

  apply(events: readonly KvEvent[]): void {
    if (this.#dirty) return;
    for (const { key } of events) {
      if (key.startsWith(KEY_PREFIXES.routes) || key.startsWith(KEY_PREFIXES.artifacts)) {
        this.#dirty = true;
        return;
      }
    }
  }

  /** The state was replaced (snapshot install). */
  reset(): void {
    this.#dirty = true;
    this.#manifests.clear();
  }

  #build(): RouteTable {
    const state = this.#state();
    const routes: RouteDefinition[] = [];
    for (const entry of state.range(KEY_PREFIXES.routes)) {
      const key = tryParseKey(entry.key);
      if (key?.family !== "route") continue;
      let record;
      try {
        record = decodeValue("route", entry.value, entry.key);
      } catch (e) {
        this.#complain(entry.key, (e as Error).message);
        continue;
      }
      routes.push({
        httpMethod: key.method,
        path: key.path,
        slice: record.slice,
        method: record.method,
        nodes: record.nodes,
        queryParams: this.#queryParams(state, record.slice, key.method, key.path),
      });
    }
    return new RouteTable(routes);
  }

  /** The query parameters any published version of `slice` declares for the route. */
  #queryParams(state: DirectoryReader, slice: string, httpMethod: string, path: string): string[] {
    const names = new Set<string>();
    let prefix: string;
    try {
      prefix = kvPrefixes.artifactVersions(slice);
    } catch {
      return [];
    }
    for (const entry of state.range(prefix)) {
      const routes = this.#manifestRoutes(entry);
      for (const e of routes?.entries ?? []) {
        if (e.httpMethod === httpMethod && e.fullPath === path) {
          for (const q of e.queryParams) names.add(q);
        }
      }
    }
    return [...names];
  }

  #manifestRoutes(entry: KvEntry): ManifestRoutes | null {
    const cached = this.#manifests.get(entry.key);
    if (cached?.modRevision === entry.modRevision) return cached.routes;
    let routes: ManifestRoutes | null = null;
    try {
      const record = JSON.parse(new TextDecoder().decode(entry.value));
      const r = record?.manifest?.routes;
      if (r && Array.isArray(r.entries)) {
        routes = {
          entries: r.entries.filter((e: Record<string, unknown>) =>
            typeof e?.httpMethod === "string" && typeof e.fullPath === "string" &&
            Array.isArray(e.queryParams)
          ),
        };
      }
    } catch (e) {
      this.#complain(entry.key, (e as Error).message);
    }
    this.#manifests.set(entry.key, { modRevision: entry.modRevision, routes });
    return routes;
  }

  #complain(key: string, problem: string): void {
    if (this.#complained.has(key)) return;
    this.#complained.add(key);
    this.#log?.warn("a route or artifact record was ignored", { key, problem });
  }
}
