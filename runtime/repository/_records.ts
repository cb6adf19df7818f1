/**
 * Pure helpers over the replicated state: which records use an artifact version (so it cannot be deleted), and
 * the `artifacts/` records themselves.
 *
 * Blueprints, targets, routing weights and instances belong to the deployment layer; this module reads only
 * the fields that name versions and reads them leniently (a record it cannot parse does not block a delete
 * and does not crash the repository).
 */

import { parseCoordinates } from "../core/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import { type ArtifactRecord, decodeValue, KEY_PREFIXES, kvKeys } from "../model/mod.ts";

/** The reads the helpers need: the node's KvState fits. */
export interface StateReader {
  get(key: string): KvEntry | undefined;
  range(prefix: string, limit?: number, startAfter?: string): KvEntry[];
}

const utf8 = new TextDecoder();

function jsonOf(entry: KvEntry | undefined): Record<string, unknown> | undefined {
  if (!entry) return undefined;
  try {
    const value = JSON.parse(utf8.decode(entry.value));
    return value && typeof value === "object" && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Everything that uses `coordinates`, each named for an operator: `blueprint org.example:shop:1.0.0`,
 * `target org.example:orders`, `routing org.example:orders`, `instances on n1, n2`. Empty when unused.
 */
export function usersOf(state: StateReader, coordinates: string): string[] {
  const { group, artifact, version } = parseCoordinates(coordinates);
  const base = `${group}:${artifact}`;
  const users: string[] = [];
  for (const entry of state.range(KEY_PREFIXES.blueprints)) {
    const slices = jsonOf(entry)?.slices;
    if (
      Array.isArray(slices) &&
      slices.some((s) => s && typeof s === "object" && (s as { artifact?: unknown }).artifact === coordinates)
    ) {
      users.push(`blueprint ${entry.key.slice(KEY_PREFIXES.blueprints.length)}`);
    }
  }
  if (jsonOf(state.get(kvKeys.target(base)))?.version === version) users.push(`target ${base}`);
  const routing = jsonOf(state.get(kvKeys.routing(base)));
  if (routing && (routing.oldVersion === version || routing.newVersion === version)) {
    users.push(`routing ${base}`);
  }
  const nodes = new Set<string>();
  for (const entry of state.range(KEY_PREFIXES.instances)) {
    const [, node, coords] = entry.key.split("/");
    if (coords === coordinates) nodes.add(node);
  }
  if (nodes.size > 0) users.push(`instances on ${[...nodes].sort().join(", ")}`);
  return users;
}

/** Decodes an `artifacts/` entry (validated); undefined when it does not decode. */
export function artifactRecordOf(entry: KvEntry): ArtifactRecord | undefined {
  try {
    return decodeValue("artifact", entry.value, `value of "${entry.key}"`);
  } catch {
    return undefined;
  }
}

/** The coordinates an `artifacts/` key names. */
export function coordinatesOfKey(key: string): string {
  return key.slice(KEY_PREFIXES.artifacts.length);
}

/** The record with `node` added to its holders (the same object when it is already there). */
export function withHolder(record: ArtifactRecord, node: string): ArtifactRecord {
  return record.holders.includes(node) ? record : { ...record, holders: [...record.holders, node] };
}
