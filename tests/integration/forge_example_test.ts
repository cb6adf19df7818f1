/**
 * Forge's example deployment against a real node: an example slice whose source changed while its version
 * did not is refused by the repository (409), and Forge turns that into a message naming the slice and both
 * ways out (start over with --clean, or bump the version), instead of a bare 409.
 */

import { equal, match, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { TestCluster } from "../_support/cluster.ts";
import { buildSlice, type BuiltSlice } from "../../runtime/authoring/mod.ts";
import { sha256Hex } from "../../slices/manifest.ts";
import { type BuiltExample, publishExample } from "../../runtime/forge/mod.ts";

const FIXTURE = fileURLToPath(new URL("./fixtures/repo_greeter.ts", import.meta.url));

/** The same slice with one more comment: other bytes under the same coordinates, as after an edit. */
async function edited(base: BuiltSlice): Promise<BuiltSlice> {
  const bundle = new TextEncoder().encode(new TextDecoder().decode(base.bundle) + "// edited\n");
  return {
    manifest: { ...base.manifest, sha256: await sha256Hex(bundle), sizeBytes: bundle.length },
    bundle,
  };
}

function example(built: BuiltSlice): BuiltExample {
  return {
    name: "shop",
    blueprintPath: "examples/shop/blueprint.toml",
    blueprint: "org.example.repo:shop:1.0.0",
    slices: [{ source: "examples/shop/greeter/slice.ts", built }],
  };
}

Deno.test("forge: an example slice edited without a version bump is named with both fixes", async () => {
  const original = await buildSlice(FIXTURE);
  const cluster = await TestCluster.start(1);
  try {
    const api = cluster.nodes[0].apiUrl.replace("http://", "");
    const form = new FormData();
    form.set("manifest", new Blob([JSON.stringify(original.manifest)]), "manifest.json");
    form.set("bundle", new Blob([original.bundle as Uint8Array<ArrayBuffer>]), "bundle.js");
    const pushed = await cluster.nodes[0].api(`/api/v1/artifacts`, { method: "POST", body: form });
    await pushed.body?.cancel();
    equal(pushed.status, 201);

    await rejects(publishExample(example(await edited(original)), api, cluster.token), (e: Error) => {
      match(e.message, new RegExp(`${original.manifest.coordinates} is already published`));
      match(e.message, /examples\/shop\/greeter\/slice\.ts changed without a version bump/);
      match(e.message, /aether forge --clean/);
      match(e.message, /bump the version in examples\/shop\/greeter\/slice\.ts/);
      return true;
    });
  } finally {
    await cluster.close();
  }
});
