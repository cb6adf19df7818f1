/**
 * Builds the bundled infrastructure services: every `infra/<service>/slice.ts` with the ordinary slice build
 * (`aether slice build`'s code: bundle, describe in a sandbox, manifest) into `infra/dist/`
 * (`<service>-<version>.js` and `.manifest.json`). The build time in the manifests is pinned, so the same
 * sources give the same bytes and the same digests: the digest in the committed manifest is what the node
 * trusts (runtime/infra-host/bundled.ts).
 *
 *   npx -y deno@2.9.6 run -A infra/build.ts           writes infra/dist/
 *   npx -y deno@2.9.6 run -A infra/build.ts --check   fails (exit 1) when infra/dist/ differs from a build
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSlice, builtSliceFileNames } from "../runtime/authoring/mod.ts";

const INFRA = fileURLToPath(new URL(".", import.meta.url));
const DIST = join(INFRA, "dist");
/** Pinned build time: the manifest's `builtAt` must not change the digest-bearing files between builds. */
const BUILT_AT = new Date("2026-01-01T00:00:00.000Z");

/** Service folders: every directory of infra/ with a slice.ts (dist and dot folders excluded). */
export async function serviceFolders(): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(INFRA)) {
    if (!entry.isDirectory || entry.name === "dist" || entry.name.startsWith(".")) continue;
    try {
      await Deno.stat(join(INFRA, entry.name, "slice.ts"));
      out.push(entry.name);
    } catch {
      // not a service
    }
  }
  return out.sort();
}

/** Builds every service: file name → contents. */
export async function buildAll(): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>();
  for (const folder of await serviceFolders()) {
    const built = await buildSlice(join(INFRA, folder, "slice.ts"), { now: () => BUILT_AT });
    const [group, artifact] = built.manifest.coordinates.split(":");
    if (group !== "aether.infra" || artifact !== folder) {
      throw new Error(`infra/${folder}/slice.ts: coordinates must be aether.infra:${folder}:<version>`);
    }
    const names = builtSliceFileNames(built.manifest);
    files.set(names.bundle, built.bundle);
    files.set(names.manifest, new TextEncoder().encode(JSON.stringify(built.manifest, null, 2) + "\n"));
  }
  return files;
}

async function main(): Promise<void> {
  const check = Deno.args.includes("--check");
  const files = await buildAll();
  const existing = new Set<string>();
  try {
    for await (const entry of Deno.readDir(DIST)) if (entry.isFile) existing.add(entry.name);
  } catch {
    // no dist yet
  }
  const stale: string[] = [];
  for (const [name, bytes] of files) {
    let current: Uint8Array | undefined;
    try {
      current = await Deno.readFile(join(DIST, name));
    } catch {
      current = undefined;
    }
    const same = current !== undefined && current.length === bytes.length &&
      current.every((b, i) => b === bytes[i]);
    if (!same) stale.push(name);
    if (!same && !check) {
      await Deno.mkdir(DIST, { recursive: true });
      await Deno.writeFile(join(DIST, name), bytes);
    }
    existing.delete(name);
  }
  for (const name of existing) {
    stale.push(`${name} (no longer built)`);
    if (!check) await Deno.remove(join(DIST, name));
  }
  if (check && stale.length > 0) {
    console.error(`infra/dist is stale (run: npx -y deno@2.9.6 run -A infra/build.ts): ${stale.join(", ")}`);
    Deno.exit(1);
  }
  console.log(
    check ? "infra/dist is up to date" : `infra/dist: ${files.size} files, ${stale.length} written`,
  );
}

if (import.meta.main) await main();
