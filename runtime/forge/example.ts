/**
 * Deploys an example application the way an operator would: build every slice of examples/<name> (each folder
 * with a slice.ts), publish the artifacts, and apply the example's blueprint, waiting until every instance is
 * ACTIVE. The blueprint is applied only when the cluster has none of that id, so an operator's changes
 * (`aether scale ...`) survive a Forge restart. The slices are built while the nodes start.
 */

import { parse as parseToml } from "smol-toml";
import { buildSlice, type BuiltSlice, writeBuiltSlice } from "../authoring/mod.ts";
import { runCli } from "../cli/mod.ts";
import { PROJECT_ROOT } from "../node/mod.ts";
import { FORGE_DIR } from "./state.ts";

export const EXAMPLES_DIR = `${PROJECT_ROOT}/examples`;
/** How long Forge waits for a kept blueprint's instances to be ACTIVE again. */
const SETTLE_TIMEOUT_MS = 60_000;
/** Pushes in flight at once (below the repository's 4 per node). */
const PARALLEL_PUSHES = 3;
/** Attempts of a push the node refused as busy (503). */
const PUSH_ATTEMPTS = 5;

export interface DeployedExample {
  blueprint: string;
  /** False when the cluster already had the blueprint (left as it was). */
  applied: boolean;
}

/** An example's slices, built and written to its dist folder, ready to publish. */
export interface BuiltExample {
  name: string;
  blueprintPath: string;
  blueprint: string;
  slices: { source: string; built: BuiltSlice }[];
}

/** Builds every slice of examples/<name> (no cluster needed: Forge does it while the nodes start). */
export async function buildExample(
  name: string,
  outDir = `${FORGE_DIR}/dist/${name}`,
): Promise<BuiltExample> {
  const exampleDir = `${EXAMPLES_DIR}/${name}`;
  const blueprintPath = `${exampleDir}/blueprint.toml`;
  const blueprint = blueprintId(await Deno.readTextFile(blueprintPath), blueprintPath);
  const names = [...Deno.readDirSync(exampleDir)]
    .filter((e) => e.isDirectory && existsSync(`${exampleDir}/${e.name}/slice.ts`))
    .map((e) => e.name)
    .sort();
  // One build at a time: each is two Deno processes (bundle, describe), and they share 2 cores with the nodes
  // starting meanwhile; side by side they finish later, not sooner.
  const slices: BuiltExample["slices"] = [];
  for (const slice of names) {
    const built = await buildSlice(`${exampleDir}/${slice}/slice.ts`);
    await writeBuiltSlice(outDir, built);
    slices.push({ source: `examples/${name}/${slice}/slice.ts`, built });
  }
  return { name, blueprintPath, blueprint, slices };
}

/**
 * Publishes a built example's slices and applies its blueprint unless the cluster has one of that id (then
 * waits until its instances are ACTIVE).
 */
export async function publishExample(
  example: BuiltExample,
  api: string,
  token?: string,
): Promise<DeployedExample> {
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const { name, blueprintPath, blueprint } = example;
  console.log(`Publishing the ${example.slices.length} slices of examples/${name}...`);
  // A few pushes at a time: a node replicates only 4 at once (more are refused with 503, then retried).
  const queue = [...example.slices];
  await Promise.all(Array.from({ length: PARALLEL_PUSHES }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      await pushArtifact(api, next.built.manifest.coordinates, next.built, next.source, auth);
    }
  }));
  const base = `http://${api}/api/v1/blueprints/${encodeURIComponent(blueprint)}`;
  const existing = await fetch(base, { headers: auth });
  await existing.body?.cancel();
  if (existing.status === 200) {
    console.log(
      `Blueprint ${blueprint} is already in the cluster: kept as it is (aether forge --clean starts over).`,
    );
    await waitSettled(base, blueprint, auth);
    return { blueprint, applied: false };
  }
  console.log(`Applying examples/${name}/blueprint.toml...`);
  const code = await runCli([
    "--connect",
    api,
    ...(token ? ["--token", token] : []),
    "blueprint",
    "apply",
    blueprintPath,
    "--wait",
  ]);
  if (code !== 0) throw new Error(`"aether blueprint apply ${blueprintPath} --wait" failed (exit ${code})`);
  return { blueprint, applied: true };
}

/** Build, publish, apply: exported for the end-to-end tests, which deploy the example exactly as Forge does. */
export async function deployExample(
  name: string,
  api: string,
  outDir = `${FORGE_DIR}/dist/${name}`,
  token?: string,
): Promise<DeployedExample> {
  return await publishExample(await buildExample(name, outDir), api, token);
}

function blueprintId(source: string, path: string): string {
  const id = (parseToml(source) as { id?: unknown }).id;
  if (typeof id !== "string") throw new Error(`${path}: no id = "group:name:version" at the top`);
  return id;
}

async function pushArtifact(
  api: string,
  coordinates: string,
  built: { bundle: Uint8Array; manifest: { sha256: string } },
  source: string,
  auth: Record<string, string>,
): Promise<void> {
  const form = new FormData();
  form.set(
    "manifest",
    new Blob([JSON.stringify(built.manifest)], { type: "application/json" }),
    "manifest.json",
  );
  form.set(
    "bundle",
    new Blob([built.bundle as Uint8Array<ArrayBuffer>], { type: "text/javascript" }),
    "bundle.js",
  );
  const path = `/api/v1/artifacts/${encodeURIComponent(coordinates).replaceAll("%3A", ":")}`;
  let response: Response;
  let text: string;
  for (let attempt = 1;; attempt++) {
    response = await fetch(`http://${api}${path}`, {
      method: "PUT",
      body: form,
      headers: { ...auth, "x-aether-sha256": built.manifest.sha256 },
    });
    text = await response.text();
    if (response.status !== 503 || attempt === PUSH_ATTEMPTS) break;
    await new Promise((r) => setTimeout(r, 100 * attempt));
  }
  if (response.status === 409) {
    throw new Error(
      `${coordinates} is already published in this cluster with other content: ${source} changed without a ` +
        `version bump (a published version never changes). Either start over with an empty cluster: ` +
        `aether forge --clean, or bump the version in ${source}`,
    );
  }
  if (!response.ok) {
    throw new Error(`publishing ${coordinates} failed: ${response.status} ${problemDetail(text)}`);
  }
}

async function waitSettled(url: string, blueprint: string, auth: Record<string, string>): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/status`, { headers: auth });
      if (response.ok && (await response.json() as { settled: boolean }).settled) return;
      else await response.body?.cancel();
    } catch {
      // A node still starting: try again.
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  console.log(`The instances of ${blueprint} are not all ACTIVE yet (aether blueprint status ${blueprint}).`);
}

function problemDetail(text: string): string {
  try {
    const problem = JSON.parse(text);
    if (typeof problem?.detail === "string") return problem.detail;
  } catch {
    // Not a problem document.
  }
  return text.slice(0, 300);
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
