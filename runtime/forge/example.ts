/**
 * Deploys an example application the way an operator would: build every slice of examples/<name> (each folder
 * with a slice.ts), publish the artifacts, and apply the example's blueprint, waiting until every instance is
 * ACTIVE. The blueprint is applied only when the cluster has none of that id, so an operator's changes
 * (`aether scale ...`) survive a Forge restart. Slices are built side by side.
 */

import { parse as parseToml } from "smol-toml";
import { buildSlice, writeBuiltSlice } from "../authoring/mod.ts";
import { runCli } from "../cli/mod.ts";
import { PROJECT_ROOT } from "../node/mod.ts";
import { FORGE_DIR } from "./state.ts";

export const EXAMPLES_DIR = `${PROJECT_ROOT}/examples`;
/** How long Forge waits for a kept blueprint's instances to be ACTIVE again. */
const SETTLE_TIMEOUT_MS = 60_000;

export interface DeployedExample {
  blueprint: string;
  /** False when the cluster already had the blueprint (left as it was). */
  applied: boolean;
}

/** Exported for the end-to-end tests, which deploy the example exactly as Forge does. */
export async function deployExample(
  name: string,
  api: string,
  outDir = `${FORGE_DIR}/dist/${name}`,
): Promise<DeployedExample> {
  const exampleDir = `${EXAMPLES_DIR}/${name}`;
  const blueprintPath = `${exampleDir}/blueprint.toml`;
  const blueprint = blueprintId(await Deno.readTextFile(blueprintPath), blueprintPath);
  const slices = [...Deno.readDirSync(exampleDir)]
    .filter((e) => e.isDirectory && existsSync(`${exampleDir}/${e.name}/slice.ts`))
    .map((e) => e.name)
    .sort();
  console.log(`Building ${slices.length} slices of examples/${name} and publishing them...`);
  const built = await Promise.all(slices.map(async (slice) => {
    const built = await buildSlice(`${exampleDir}/${slice}/slice.ts`);
    await writeBuiltSlice(outDir, built);
    return { slice, built };
  }));
  // One push at a time: a node replicates only a few pushes at once (more are refused with 503).
  for (const { slice, built: b } of built) {
    await pushArtifact(api, b.manifest.coordinates, b, `examples/${name}/${slice}/slice.ts`);
  }
  const base = `http://${api}/api/v1/blueprints/${encodeURIComponent(blueprint)}`;
  const existing = await fetch(base);
  await existing.body?.cancel();
  if (existing.status === 200) {
    console.log(
      `Blueprint ${blueprint} is already in the cluster: kept as it is (aether forge --clean starts over).`,
    );
    await waitSettled(base, blueprint);
    return { blueprint, applied: false };
  }
  console.log(`Applying examples/${name}/blueprint.toml...`);
  const code = await runCli(["--connect", api, "blueprint", "apply", blueprintPath, "--wait"]);
  if (code !== 0) throw new Error(`"aether blueprint apply ${blueprintPath} --wait" failed (exit ${code})`);
  return { blueprint, applied: true };
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
  const response = await fetch(`http://${api}${path}`, {
    method: "PUT",
    body: form,
    headers: { "x-aether-sha256": built.manifest.sha256 },
  });
  const text = await response.text();
  if (response.status === 409) {
    throw new Error(
      `${source} changed, but ${coordinates} is already published in this cluster with other content ` +
        `(${problemDetail(text)}). Either start over with an empty cluster: aether forge --clean, ` +
        `or bump the version in ${source}`,
    );
  }
  if (!response.ok) {
    throw new Error(`publishing ${coordinates} failed: ${response.status} ${problemDetail(text)}`);
  }
}

async function waitSettled(url: string, blueprint: string): Promise<void> {
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/status`);
      if (response.ok && (await response.json() as { settled: boolean }).settled) return;
      else await response.body?.cancel();
    } catch {
      // A node still starting: try again.
    }
    await new Promise((r) => setTimeout(r, 200));
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
