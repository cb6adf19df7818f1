import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { AetherError } from "../core/mod.ts";
import { describeBundle, type IsolationMode } from "../sandbox/mod.ts";
import { buildSlice, readBuiltSlice, writeBuiltSlice } from "./build.ts";
import { initSlice } from "./init.ts";
import { sha256Hex, validateManifest } from "../../slices/host.ts";

const MODES: readonly IsolationMode[] = ["worker", "process"];

/** The sandbox tests' slices: files `deno bundle` reads, not modules this test imports. */
function fixturePath(file: string): string {
  return fileURLToPath(new URL(`../sandbox/fixtures/${file}`, import.meta.url));
}

const SDK = pathToFileURL(new URL("../../slices/mod.ts", import.meta.url).pathname).href;
const NOW = () => new Date("2026-03-04T05:06:07.000Z");

Deno.test("build: a slice with routes, dependencies and config becomes one module and a full manifest", async () => {
  const built = await buildSlice(fixturePath("order.ts"), { now: NOW });
  const text = new TextDecoder().decode(built.bundle);
  assert(!/^\s*import\s/m.test(text) && !/\bfrom\s+["']/.test(text), "the bundle still imports something");
  assert(text.includes("aether.slice") && text.includes("defineSlice"), "the SDK is bundled in");
  assert(text.includes("OrderNotFound"), "class names are kept (error mapping needs them)");
  const m = built.manifest;
  assertEquals([m.format, m.coordinates, m.methods], [1, "org.example:order:1.2.0", [
    "placeOrder",
    "getOrder",
    "whoAmI",
    "notify",
  ]]);
  assertEquals(m.routes?.prefix, "/api/v1/orders");
  assertEquals(m.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`), [
    "placeOrder=POST /api/v1/orders",
    "getOrder=GET /api/v1/orders/{id}",
    "whoAmI=GET /api/v1/orders/whoami",
  ]);
  assertEquals(m.routes?.errors, [{ status: 400, patterns: ["*Invalid*"] }, {
    status: 404,
    patterns: ["*NotFound*"],
  }]);
  assertEquals(m.calls, { pricing: { artifact: "org.example:pricing", range: "^1.0.0" } });
  assertEquals([m.requires, m.permissions], [["cache"], { net: ["api.example.com:443"], env: [] }]);
  assertEquals(m.config.defaults, { currency: "EUR", maxQuantity: 10 });
  assertEquals(Object.keys(m.config.schema), ["currency", "maxQuantity", "greeting"]);
  assertEquals([m.sha256, m.sizeBytes, m.builtAt], [
    await sha256Hex(built.bundle),
    built.bundle.length,
    NOW().toISOString(),
  ]);
  assertEquals(validateManifest(JSON.parse(JSON.stringify(m))), m);
});

Deno.test("build: both sandboxes read the same definition; --version replaces the version", async () => {
  const built = await buildSlice(fixturePath("pricing.ts"), { version: "1.4.0-rc.1" });
  assertEquals(built.manifest.coordinates, "org.example:pricing:1.4.0-rc.1");
  const [worker, process] = await Promise.all(MODES.map((mode) => describeBundle(built.bundle, { mode })));
  assertEquals(worker, process);
  assertEquals(worker.coordinates, "org.example:pricing:1.0.0");
  await rejects(
    buildSlice(fixturePath("pricing.ts"), { version: "1.4" }),
    /--version: version "1.4" is not a semantic/,
  );
});

Deno.test("build: bad entries are refused with a precise message", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const write = async (name: string, source: string) => {
      await Deno.writeTextFile(join(dir, name), source);
      return join(dir, name);
    };
    const cases: Array<[string, string, RegExp]> = [
      ["syntax.ts", "export default {", /bundling .*syntax\.ts failed/],
      [
        "nothing.ts",
        "export const x = 1;",
        /exports no slice definition \(expected `export default defineSlice/,
      ],
      [
        "coords.ts",
        `import { defineSlice } from "${SDK}";\nexport default defineSlice({ coordinates: "Org:x:1.0.0", methods: { doIt: () => 1 } });`,
        /invalid slice manifest: coordinates: group "Org" in "Org:x:1.0.0" is not valid/,
      ],
      [
        "range.ts",
        `import { defineSlice, slice } from "${SDK}";\nexport default defineSlice({ coordinates: "a:b:1.0.0", ` +
        `calls: { c: slice("a:c", "latest") }, methods: { doIt: () => 1 } });`,
        /calls\.c\.range: "latest" is not a version range/,
      ],
      [
        "throws.ts",
        `throw new Error("refusing to load");\nexport default 1;`,
        /failed to load in a sandbox without permissions: Error: refusing to load/,
      ],
      [
        "reads.ts",
        `const text = await Deno.readTextFile("/etc/hostname");\nexport default text;`,
        /NotCapable: Requires read access/,
      ],
      [
        "exits.ts",
        `Deno.exit(4);\nexport default 1;`,
        /called Deno.exit\(4\) while loading/,
      ],
    ];
    for (const [name, source, expected] of cases) {
      const path = await write(name, source);
      await rejects(buildSlice(path), (e: AetherError) => {
        assertEquals(e.code, "bad_request", e.message);
        assert(expected.test(e.message), `${name}: ${e.message}`);
        return true;
      });
    }
    await rejects(buildSlice(join(dir, "missing.ts")), /entry file .*missing\.ts does not exist/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("build: a built slice written to disk reads back; a changed bundle is detected", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const built = await buildSlice(fixturePath("pricing.ts"));
    const { bundlePath, manifestPath } = await writeBuiltSlice(dir, built);
    assertEquals([bundlePath, manifestPath], [
      join(dir, "pricing-1.0.0.js"),
      join(dir, "pricing-1.0.0.manifest.json"),
    ]);
    assertEquals(await readBuiltSlice(manifestPath), built);
    await Deno.writeTextFile(bundlePath, "\n// tampered", { append: true });
    await rejects(readBuiltSlice(manifestPath), /pricing-1\.0\.0\.js does not match its manifest/);
    await Deno.writeTextFile(manifestPath, "{}");
    await rejects(
      readBuiltSlice(manifestPath),
      /invalid slice manifest: format: is missing; coordinates: is missing/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("init: the scaffolded project's tests pass and it builds, outside the checkout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aether-init-" });
  try {
    const project = join(dir, "greeter");
    const files = await initSlice(project, "greeter", { group: "com.acme" });
    assertEquals(files.map((f) => f.slice(project.length + 1)).sort(), [
      ".gitignore",
      "deno.json",
      "slice.ts",
      "slice_test.ts",
    ]);
    const config = JSON.parse(await Deno.readTextFile(join(project, "deno.json")));
    assertEquals(config.imports["@aether/slices"], SDK, "the SDK by an absolute file URL");
    assertEquals(config.imports["@aether/slices/testing"], SDK.replace(/mod\.ts$/, "testing.ts"));
    const source = await Deno.readTextFile(join(project, "slice.ts"));
    assert(source.startsWith(`import { defineSlice, SliceError } from "@aether/slices";`), source);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--quiet"],
      cwd: project,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const report = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert(out.success && /ok \| 4 passed \| 0 failed/.test(report), report);
    const built = await buildSlice(join(project, "slice.ts"));
    assertEquals(built.manifest.coordinates, "com.acme:greeter:0.1.0");
    assertEquals(built.manifest.routes?.entries.map((e) => `${e.httpMethod} ${e.fullPath}`), [
      "GET /api/v1/greeter/{name}",
    ]);
    await rejects(
      initSlice(project, "greeter"),
      /already has slice\.ts, slice_test\.ts, deno\.json, \.gitignore/,
    );
    await rejects(initSlice(join(dir, "x"), "Bad Name"), /artifact "Bad Name"/);
    await rejects(
      initSlice(join(dir, "y"), "greeter", { aetherRoot: dir }),
      /slice SDK is not on disk at .*slices\/mod\.ts/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
