/**
 * What deployment needs to know about published artifacts: which versions of a slice exist, and what each
 * version's manifest says (the slices it calls, its methods and HTTP routes). The manifest type is the slice
 * SDK's (`slices/manifest.ts`), the single source of truth for manifests.
 *
 * `artifacts/{g}:{a}:{v}` records are read with `manifestOfArtifactValue`; it expects the record's `manifest`
 * field to hold a `slices/manifest.ts` manifest. This is the one place to change if the artifact record's shape
 * changes.
 */

import { AetherError, baseOf, compareVersions, formatCoordinates, parseCoordinates } from "../core/mod.ts";
import { type SliceManifest, validateManifest } from "../../slices/host.ts";
import type { KvEntry } from "../kv/mod.ts";
import { KEY_PREFIXES } from "../model/mod.ts";

/** The parts of a manifest that deployment reads. */
export type DeployManifest = Pick<SliceManifest, "coordinates" | "methods" | "routes" | "calls" | "requires">;

/** One slice a manifest calls, flattened: `base` is `group:artifact`. */
export interface SliceCall {
  /** The client name the slice uses for it. */
  name: string;
  base: string;
  range: string;
}

export interface ArtifactCatalog {
  /** Published versions of `group:artifact`, lowest first. */
  versions(base: string): readonly string[];
  /** The manifest of `group:artifact:version`, or undefined when it is not published. */
  manifest(coordinates: string): DeployManifest | undefined;
}

/** The calls of a manifest, sorted by the called slice (then client name) so every reader sees one order. */
export function callsOf(manifest: DeployManifest): SliceCall[] {
  return Object.entries(manifest.calls)
    .map(([name, ref]) => ({ name, base: ref.artifact, range: ref.range }))
    .sort((
      a,
      b,
    ) => (a.base < b.base ? -1 : a.base > b.base ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

const MANIFESTS = new WeakMap<Uint8Array, { key: string; manifest: DeployManifest }>();

/** Reads the manifest out of an `artifacts/` record value (UTF-8 JSON with a `manifest` field). */
export function manifestOfArtifactValue(key: string, value: Uint8Array): DeployManifest {
  const hit = MANIFESTS.get(value);
  if (hit?.key === key) return hit.manifest;
  const manifest = decodeManifest(key, value);
  MANIFESTS.set(value, { key, manifest });
  return manifest;
}

function decodeManifest(key: string, value: Uint8Array): DeployManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8.decode(value));
  } catch (e) {
    throw new AetherError("bad_request", `value of "${key}": not UTF-8 JSON (${(e as Error).message})`);
  }
  const manifest = validateManifest((parsed as { manifest?: unknown } | null)?.manifest);
  const named = `${KEY_PREFIXES.artifacts}${manifest.coordinates}`;
  if (named !== key) {
    throw new AetherError(
      "bad_request",
      `value of "${key}": manifest.coordinates is "${manifest.coordinates}"`,
    );
  }
  return manifest;
}

/** A catalog over a fixed set of manifests (tests, the simulator, and views built from KV). */
export class ManifestCatalog implements ArtifactCatalog {
  readonly #manifests = new Map<string, DeployManifest>();
  readonly #versions = new Map<string, string[]>();

  constructor(manifests: Iterable<DeployManifest> = []) {
    for (const manifest of manifests) this.add(manifest);
  }

  add(manifest: DeployManifest): void {
    const coordinates = formatCoordinates(parseCoordinates(manifest.coordinates, "manifest.coordinates"));
    const base = baseOf(coordinates);
    if (!this.#manifests.has(coordinates)) {
      const versions = this.#versions.get(base) ?? [];
      versions.push(coordinates.slice(base.length + 1));
      versions.sort(compareVersions);
      this.#versions.set(base, versions);
    }
    this.#manifests.set(coordinates, manifest);
  }

  versions(base: string): readonly string[] {
    return this.#versions.get(base) ?? [];
  }

  manifest(coordinates: string): DeployManifest | undefined {
    return this.#manifests.get(coordinates);
  }

  get size(): number {
    return this.#manifests.size;
  }
}

/**
 * Decodes `artifacts/` entries into a catalog, reusing what `previous` decoded for entries whose modRevision
 * did not change. Entries that do not decode are skipped and named in `problems`.
 */
export function catalogFromEntries(
  entries: readonly KvEntry[],
  cache: Map<string, { modRevision: number; manifest: DeployManifest }>,
  problems: string[],
): ManifestCatalog {
  const catalog = new ManifestCatalog();
  const seen = new Set<string>();
  for (const entry of entries) {
    seen.add(entry.key);
    let cached = cache.get(entry.key);
    if (cached?.modRevision !== entry.modRevision) {
      try {
        cached = {
          modRevision: entry.modRevision,
          manifest: manifestOfArtifactValue(entry.key, entry.value),
        };
        cache.set(entry.key, cached);
      } catch (e) {
        cache.delete(entry.key);
        problems.push((e as Error).message);
        continue;
      }
    }
    catalog.add(cached.manifest);
  }
  for (const key of cache.keys()) if (!seen.has(key)) cache.delete(key);
  return catalog;
}
