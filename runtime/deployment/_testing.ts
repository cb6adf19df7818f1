/**
 * Helpers for deployment tests and the simulator: real manifests (valid by `slices/manifest.ts`), real artifact
 * records in a real `KvState`, and a way to apply the commands the reducers emit.
 */

import type { NodeId } from "../core/mod.ts";
import { type KvCommand, type KvEvent, type KvResult, KvState } from "../kv/mod.ts";
import { encodeValue, kvKeys, type TargetRecord } from "../model/mod.ts";
import { type SliceManifest, validateManifest } from "../../slices/host.ts";
import type { HttpMethod } from "../../slices/mod.ts";
import type { MemberStatus } from "./view.ts";

export interface ManifestSpec {
  /** Client name -> [`group:artifact`, range]. */
  calls?: Record<string, [string, string]>;
  methods?: string[];
  /** [HTTP method, path relative to the prefix, slice method]. */
  routes?: [HttpMethod, string, string][];
  prefix?: string;
}

export function manifest(coordinates: string, spec: ManifestSpec = {}): SliceManifest {
  const methods = spec.methods ?? ["handle"];
  const prefix = spec.prefix ?? `/${coordinates.split(":")[1]}`;
  const routes = spec.routes
    ? {
      prefix,
      entries: spec.routes.map(([httpMethod, path, method]) => ({
        method,
        httpMethod,
        path,
        fullPath: prefix === "/" ? path : path === "/" ? prefix : prefix + path,
        pathParams: [...path.matchAll(/\{([a-zA-Z_][a-zA-Z0-9_]*)\}/g)].map((m) => m[1]),
        queryParams: [],
      })),
      errors: [],
    }
    : null;
  const calls: SliceManifest["calls"] = {};
  for (const [name, [artifact, range]] of Object.entries(spec.calls ?? {})) calls[name] = { artifact, range };
  return validateManifest({
    format: 1,
    coordinates,
    methods,
    routes,
    calls,
    requires: [],
    permissions: { net: [], env: [] },
    config: { schema: {}, defaults: {} },
    sha256: "0".repeat(64),
    sizeBytes: 100,
    builtAt: "2025-01-01T00:00:00.000Z",
  });
}

const utf8 = new TextEncoder();

/** The `artifacts/` record value the repository stores for a manifest. */
export function artifactValue(m: SliceManifest, holders: NodeId[] = ["n1"]): Uint8Array {
  return utf8.encode(
    JSON.stringify({ manifest: m, sha256: m.sha256, sizeBytes: m.sizeBytes, holders, pushedAt: 1 }),
  );
}

/** Applies a command, throwing when it is refused as invalid (a bug in whoever built it). */
export function applyCommand(kv: KvState, command: KvCommand, events: KvEvent[] = []): KvResult {
  const result = kv.apply(command, events);
  if (!result.ok && result.code !== "compare_failed") throw new Error(`command refused: ${result.message}`);
  return result;
}

export function publish(kv: KvState, ...manifests: SliceManifest[]): void {
  for (const m of manifests) {
    applyCommand(kv, { type: "put", key: kvKeys.artifact(m.coordinates), value: artifactValue(m) });
  }
}

export function setLeader(kv: KvState, node: NodeId, view = 1): void {
  applyCommand(kv, {
    type: "put",
    key: kvKeys.leader(),
    value: encodeValue("leader", { nodeId: node, view, electedAt: 0 }),
  });
}

export function putTarget(kv: KvState, base: string, target: TargetRecord): void {
  applyCommand(kv, { type: "put", key: kvKeys.target(base), value: encodeValue("target", target) });
}

/** Members all connected since 0, except `down` (id -> since when it is down). */
export function membersOf(ids: NodeId[], down: Record<NodeId, number> = {}): MemberStatus[] {
  return ids.map((id) =>
    id in down ? { id, connected: false, sinceMs: down[id] } : { id, connected: true, sinceMs: 0 }
  );
}
