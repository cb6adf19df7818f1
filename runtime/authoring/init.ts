/**
 * `slice init`: scaffolds a slice project: `slice.ts` (a working slice with a route, an error mapping and a
 * config field), `slice_test.ts` (tests that run with `deno task test`), and a `deno.json` whose import map
 * points at this checkout's SDK and whose tasks test, type-check and build the slice.
 */

import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
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

/** The SDK's own npm dependencies, as pinned in the checkout's deno.json (the test helpers need them). */
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

function sliceSource(coordinates: string, artifact: string): string {
  const prefix = `/api/v1/${artifact}`;
  return `import { defineSlice, SliceError } from "@aether/slices";

export interface GreetRequest {
  name: string;
}

export interface Greeting {
  message: string;
}

/** Thrown for a bad request; \`http.errors\` maps it to 400. */
export class InvalidName extends SliceError {}

export default defineSlice({
  coordinates: "${coordinates}",
  config: {
    greeting: { type: "string", default: "Hello", description: "Word the greeting starts with" },
  },
  http: {
    prefix: "${prefix}",
    routes: { greet: "POST /greet" },
    errors: { 400: ["*Invalid*"] },
  },
  methods: {
    greet(request: GreetRequest, ctx): Greeting {
      const name = request.name?.trim();
      if (!name) throw new InvalidName("name must not be empty");
      ctx.log.info("greeting", { name });
      return { message: \`\${ctx.config.greeting}, \${name}!\` };
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
  deepStrictEqual(await t.call("greet", { name: "Ada" }), { message: "Hello, Ada!" });
  deepStrictEqual(t.logs.map((l) => l.message), ["greeting"]);
});

Deno.test("the greeting comes from configuration", async () => {
  const t = await testSlice(slice, { config: { greeting: "Hi" } });
  deepStrictEqual(await t.call("greet", { name: "Grace" }), { message: "Hi, Grace!" });
});

Deno.test("an empty name is refused with 400", async () => {
  const t = await testSlice(slice);
  await rejects(t.call("greet", { name: "  " }), { name: "InvalidName", status: 400 });
});
`;
}

/** Creates a slice project in `dir` (which must not hold any of the files it writes). Returns their paths. */
export async function initSlice(
  dir: string,
  name: string,
  options: InitSliceOptions = {},
): Promise<string[]> {
  let coordinates: string;
  if (name.includes(":")) {
    const c = parseCoordinates(name, "slice init");
    coordinates = `${c.group}:${c.artifact}:${c.version}`;
  } else {
    const base = parseArtifactBase(`${options.group ?? "org.example"}:${name}`, "slice init");
    coordinates = `${base.group}:${base.artifact}:${options.version ?? "0.1.0"}`;
    parseCoordinates(coordinates, "slice init");
  }
  const { artifact } = parseCoordinates(coordinates);
  const target = resolve(dir);
  const root = resolve(options.aetherRoot ?? AETHER_ROOT);
  const sdk = relative(target, join(root, "slices")).split("\\").join("/");
  const sdkPath = sdk.startsWith(".") ? sdk : `./${sdk}`;
  const cli = relative(target, join(root, "runtime", "main.ts")).split("\\").join("/");

  const files: Record<string, string> = {
    "slice.ts": sliceSource(coordinates, artifact),
    "slice_test.ts": testSource(),
    "deno.json": JSON.stringify(
      {
        imports: {
          "@aether/slices": `${sdkPath}/mod.ts`,
          "@aether/slices/testing": `${sdkPath}/testing.ts`,
          ...(await sdkImports(root)),
        },
        tasks: {
          test: "deno test",
          check: "deno check slice.ts slice_test.ts",
          build:
            `deno run --allow-read --allow-write --allow-run --allow-env ${cli} slice build slice.ts --out dist`,
        },
        fmt: { lineWidth: 110 },
      },
      null,
      2,
    ) + "\n",
    ".gitignore": "dist/\n",
  };

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
