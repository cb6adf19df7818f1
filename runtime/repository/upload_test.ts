import { deepStrictEqual, equal, match, ok, rejects } from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { sha256Hex, type SliceManifest } from "../../slices/host.ts";
import { checkUpload, type UploadInput } from "./_upload.ts";

const BUNDLE = new TextEncoder().encode("export default { methods: {} };\n// é\n");

async function manifestFor(bundle: Uint8Array): Promise<SliceManifest> {
  return {
    format: 1,
    coordinates: "org.example:upload:1.0.0",
    methods: ["handle"],
    routes: null,
    calls: {},
    requires: [],
    permissions: { net: [], env: [] },
    config: { schema: {}, defaults: {} },
    sha256: await sha256Hex(bundle),
    sizeBytes: bundle.length,
    builtAt: "2026-01-01T00:00:00.000Z",
  };
}

async function input(overrides: Partial<UploadInput> = {}): Promise<UploadInput> {
  return {
    manifestText: JSON.stringify(await manifestFor(BUNDLE)),
    bundle: BUNDLE,
    maxBundleBytes: 1024,
    ...overrides,
  };
}

async function refused(promise: Promise<unknown>, reason: string, status: number, pattern: RegExp) {
  await rejects(promise, (e: unknown) => {
    ok(e instanceof AetherError, `expected AetherError, got ${e}`);
    equal(e.extra.reason, reason);
    equal(e.status, status);
    match(e.message, pattern);
    return true;
  });
}

Deno.test("upload: a manifest with the bundle it describes is accepted as is", async () => {
  const checked = await checkUpload(await input({ urlCoordinates: "org.example:upload:1.0.0" }));
  deepStrictEqual(checked.manifest, await manifestFor(BUNDLE));
  equal(checked.bundle, BUNDLE);
  const declared = await checkUpload(await input({ declaredSha256: await sha256Hex(BUNDLE) }));
  equal(declared.bundle, BUNDLE);
});

Deno.test("upload: each bad upload gets its own precise refusal", async () => {
  const manifest = await manifestFor(BUNDLE);
  await refused(checkUpload(await input({ bundle: undefined })), "not_a_slice", 400, /no bundle part/);
  await refused(
    checkUpload(await input({ manifestText: undefined, bundle: undefined })),
    "not_a_slice",
    400,
    /no manifest and bundle part/,
  );
  await refused(
    checkUpload(await input({ maxBundleBytes: 10 })),
    "too_large",
    413,
    /bundle is \d+ bytes, over this node's limit of 10 bytes/,
  );
  await refused(checkUpload(await input({ manifestText: "{" })), "manifest_invalid", 400, /not JSON/);
  const invalid = { ...manifest, methods: [], permissions: { net: ["http://x"], env: [] } };
  await rejects(checkUpload(await input({ manifestText: JSON.stringify(invalid) })), (e: AetherError) => {
    equal(e.extra.reason, "manifest_invalid");
    equal(e.extra.field, "methods");
    const problems = e.extra.problems as { path: string }[];
    deepStrictEqual(problems.map((p) => p.path), ["methods", "permissions.net[0]"]);
    return true;
  });
  await refused(
    checkUpload(await input({ urlCoordinates: "org.example:upload:2.0.0" })),
    "coordinates_mismatch",
    400,
    /URL names org.example:upload:2.0.0 but the manifest is for org.example:upload:1.0.0/,
  );
  const binary = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 1]);
  await refused(
    checkUpload({
      ...await input(),
      manifestText: JSON.stringify(await manifestFor(binary)),
      bundle: binary,
    }),
    "not_a_slice",
    400,
    /not JavaScript text \(a NUL byte at offset 4\)/,
  );
  const latin1 = new Uint8Array([0x63, 0xe9, 0x0a]);
  await refused(
    checkUpload({
      ...await input(),
      manifestText: JSON.stringify(await manifestFor(latin1)),
      bundle: latin1,
    }),
    "not_a_slice",
    400,
    /not valid UTF-8/,
  );
  const longer = new TextEncoder().encode(new TextDecoder().decode(BUNDLE) + "// more\n");
  await refused(
    checkUpload(await input({ bundle: longer })),
    "not_a_slice",
    400,
    /bundle is \d+ bytes but the manifest describes one of \d+ bytes/,
  );
  const flipped = BUNDLE.slice();
  flipped[0] = "E".charCodeAt(0);
  await refused(
    checkUpload(await input({ bundle: flipped })),
    "hash_mismatch",
    400,
    /sha-256 is [0-9a-f]{64} but the manifest says [0-9a-f]{64}/,
  );
  await refused(
    checkUpload(await input({ declaredSha256: "0".repeat(64) })),
    "hash_mismatch",
    400,
    /but the request declared 0{64} \(x-aether-sha256\)/,
  );
});
