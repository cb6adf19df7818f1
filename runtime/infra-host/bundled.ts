/**
 * The bundled infrastructure repository: the service slices built from infra/<service>/ into infra/dist/
 * (infra/build.ts) and shipped with the runtime. The node reads them once at start; each one's digest (the
 * sha-256 in its committed manifest, checked against the bundle's bytes here) is what the node trusts: only an
 * instance of group `aether.infra` running exactly that digest may use the `@service-host` capability.
 */

import { sha256Hex, type SliceManifest, validateManifest } from "../../slices/host.ts";

/** One bundled service slice. */
export interface BundledService {
  /** The service's name: the artifact of `aether.infra:<name>:<version>`. */
  name: string;
  version: string;
  coordinates: string;
  manifest: SliceManifest;
  bundle: Uint8Array;
  sha256: string;
}

/** The bundled repository: by service name, and what could not be read (with why). */
export interface BundledRepository {
  services: ReadonlyMap<string, BundledService>;
  problems: readonly string[];
}

/** Where the built bundles are: infra/dist at the root of the runtime's tree. */
export const BUNDLED_DIST = new URL("../../infra/dist/", import.meta.url);

/**
 * Reads every `<service>-<version>.manifest.json` and its bundle from `dir`. A file that is unreadable, not a
 * manifest of group `aether.infra`, or whose bundle does not match its digest is left out and reported in
 * `problems` (the node then serves that service itself, the fallback).
 */
export async function readBundledRepository(dir: URL = BUNDLED_DIST): Promise<BundledRepository> {
  const services = new Map<string, BundledService>();
  const problems: string[] = [];
  let names: string[];
  try {
    names = [];
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile && entry.name.endsWith(".manifest.json")) names.push(entry.name);
    }
  } catch (e) {
    return { services, problems: [`${dir.pathname}: ${(e as Error).message}`] };
  }
  for (const name of names.sort()) {
    try {
      const service = await readOne(dir, name);
      const other = services.get(service.name);
      if (other) throw new Error(`a second version of ${service.name} (${other.version} is bundled too)`);
      services.set(service.name, service);
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message}`);
    }
  }
  return { services, problems };
}

async function readOne(dir: URL, file: string): Promise<BundledService> {
  const manifest = validateManifest(JSON.parse(await Deno.readTextFile(new URL(file, dir))));
  const [group, artifact, version] = manifest.coordinates.split(":");
  if (group !== "aether.infra") throw new Error(`${manifest.coordinates} is not of group aether.infra`);
  const bundle = await Deno.readFile(new URL(`${artifact}-${version}.js`, dir));
  const sha256 = await sha256Hex(bundle);
  if (sha256 !== manifest.sha256) {
    throw new Error(`the bundle's sha-256 ${sha256} is not the manifest's ${manifest.sha256}`);
  }
  return { name: artifact, version, coordinates: manifest.coordinates, manifest, bundle, sha256 };
}
