/**
 * `slice init`: scaffolds a slice project: `slice.ts` (a working slice with a GET route, an error mapping and a
 * config field), `slice_test.ts` (tests that run with `deno test`), and a `deno.json` whose import map resolves
 * `@aether/slices` and `@aether/slices/testing`.
 *
 * Why the import map names the SDK by an absolute `file:` URL: the project lives anywhere (not inside the
 * checkout), works offline, and the SDK is not published to any registry these machines can reach (no JSR, and
 * the SDK imports `runtime/core`, so copying `slices/` alone would not do). An absolute URL keeps working when
 * the project moves; it breaks only when the Aether checkout moves, and then `slice init` in a fresh directory
 * (or editing two lines of deno.json) fixes it. A relative path into the checkout broke when the project moved.
 */

import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { AetherError, parseArtifactBase, parseCoordinates } from "../core/mod.ts";

export interface InitSliceOptions {
  /** Group of the new slice's coordinates; default `org.example`. Ignored when `name` is full coordinates. */
  group?: string;
  /** Initial version; default `0.1.0`. */
  version?: string;
  /** The Aether checkout whose SDK the project uses; default: this one. */
  aetherRoot?: string;
}

const AETHER_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const FALLBACK_SEMVER = { semver: "npm:semver@7.8.6", "@types/semver": "npm:@types/semver@7.8.0" };

/** The SDK's own npm dependencies, as pinned in the checkout's deno.json (the SDK's core imports need them). */
async function sdkImports(root: string): Promise<Record<string, string>> {
  try {
    const config = JSON.parse(await Deno.readTextFile(join(root, "deno.json")));
    const imports = config.imports ?? {};
    if (typeof imports.semver === "string" && typeof imports["@types/semver"] === "string") {
      return { semver: imports.semver, "@types/semver": imports["@types/semver"] };
    }
  } catch {
    // Fall back to the versions this code was written against.
  }
  return { ...FALLBACK_SEMVER };
}

/** The SDK's entry files as absolute `file:` URLs; refuses a root that has no SDK on disk. */
async function sdkUrls(root: string): Promise<{ sdk: string; testing: string }> {
  const sdk = join(root, "slices", "mod.ts");
  const testing = join(root, "slices", "testing.ts");
  for (const file of [sdk, testing]) {
    try {
      await Deno.stat(file);
    } catch {
      throw new AetherError(
        "bad_request",
        `slice init: the slice SDK is not on disk at ${file}; run slice init with an aether that runs from ` +
          `an Aether checkout`,
      );
    }
  }
  return { sdk: pathToFileURL(sdk).href, testing: pathToFileURL(testing).href };
}

/** The scaffold's slice: README.md ("Slices: write, build, publish") shows it as generated for greeter. */
export function sliceSource(coordinates: string, artifact: string): string {
  return `import { defineSlice, SliceError } from "@aether/slices";

/** The class name matches \`http.errors\`' "*Invalid*", so callers get 400. */
export class GreetingInvalid extends SliceError {}

export default defineSlice({
  coordinates: "${coordinates}",
  config: { greeting: { type: "string", default: "Hello", description: "the word a greeting starts with" } },
  http: { prefix: "/api/v1/${artifact}", routes: { greet: "GET /{name}" }, errors: { 400: ["*Invalid*"] } },
  methods: {
    greet(req: { name: string }, ctx) {
      if (req.name.length > 40) throw new GreetingInvalid("name must be at most 40 characters");
      ctx.log.info("greeting", { name: req.name });
      return { greeting: \`\${ctx.config.greeting}, \${req.name}!\` };
    },
  },
});
`;
}

function testSource(): string {
  return `import { deepStrictEqual, rejects } from "node:assert/strict";
import { testSlice } from "@aether/slices/testing";
import slice from "./slice.ts";

Deno.test("greet greets by name", async () => {
  const t = await testSlice(slice);
  deepStrictEqual(await t.call("greet", { name: "Ada" }), { greeting: "Hello, Ada!" });
  deepStrictEqual(t.logs.map((l) => l.message), ["greeting"]);
});

Deno.test("the greeting comes from configuration", async () => {
  const t = await testSlice(slice, { config: { greeting: "Hi" } });
  deepStrictEqual(await t.call("greet", { name: "Grace" }), { greeting: "Hi, Grace!" });
});

Deno.test("a name longer than 40 characters is refused with 400", async () => {
  const t = await testSlice(slice);
  await rejects(t.call("greet", { name: "x".repeat(41) }), { name: "GreetingInvalid", status: 400 });
});

Deno.test("the route is GET {prefix}/{name}", async () => {
  const t = await testSlice(slice);
  deepStrictEqual(t.manifest.routes?.entries.map((e) => \`\${e.httpMethod} \${e.fullPath}\`), [
    \`GET \${t.manifest.routes?.prefix}/{name}\`,
  ]);
});
`;
}

async function denoJson(root: string): Promise<string> {
  const { sdk, testing } = await sdkUrls(root);
  const config = {
    imports: { "@aether/slices": sdk, "@aether/slices/testing": testing, ...(await sdkImports(root)) },
    tasks: {
      test: "deno test",
      check: "deno check slice.ts slice_test.ts",
      build: "aether slice build slice.ts",
    },
    fmt: { lineWidth: 110 },
  };
  return JSON.stringify(config, null, 2) + "\n";
}

/** Coordinates of the new slice from `name` (an artifact or full coordinates) and the options. */
function scaffoldCoordinates(name: string, options: InitSliceOptions): string {
  if (name.includes(":")) {
    const c = parseCoordinates(name, "slice init");
    return `${c.group}:${c.artifact}:${c.version}`;
  }
  const base = parseArtifactBase(`${options.group ?? "org.example"}:${name}`, "slice init");
  const coordinates = `${base.group}:${base.artifact}:${options.version ?? "0.1.0"}`;
  parseCoordinates(coordinates, "slice init");
  return coordinates;
}

/** The files of a new project, by name relative to its directory. */
export async function scaffoldFiles(
  name: string,
  options: InitSliceOptions = {},
): Promise<Record<string, string>> {
  const coordinates = scaffoldCoordinates(name, options);
  const { artifact } = parseCoordinates(coordinates);
  return {
    "slice.ts": sliceSource(coordinates, artifact),
    "slice_test.ts": testSource(),
    "deno.json": await denoJson(resolve(options.aetherRoot ?? AETHER_ROOT)),
    ".gitignore": "dist/\n",
  };
}

/** Creates a slice project in `dir` (which must not hold any of the files it writes). Returns their paths. */
export async function initSlice(
  dir: string,
  name: string,
  options: InitSliceOptions = {},
): Promise<string[]> {
  const files = await scaffoldFiles(name, options);
  const target = resolve(dir);
  await Deno.mkdir(target, { recursive: true });
  const existing: string[] = [];
  for (const file of Object.keys(files)) {
    try {
      await Deno.lstat(join(target, file));
      existing.push(file);
    } catch {
      // Not there: good.
    }
  }
  if (existing.length > 0) {
    throw new AetherError(
      "conflict",
      `slice init: ${target} already has ${existing.join(", ")}; nothing was written`,
    );
  }
  const written: string[] = [];
  for (const [file, content] of Object.entries(files)) {
    const path = join(target, file);
    await Deno.writeTextFile(path, content, { createNew: true });
    written.push(path);
  }
  return written;
}
