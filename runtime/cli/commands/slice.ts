/** `slice build` and `slice init`: local commands for slice authors (no node needed). */

import { dirname, join, resolve } from "node:path";
import { CliError, EXIT_USAGE } from "../client.ts";
import { parseFor } from "../_args.ts";
import type { CliCommand } from "../command.ts";

/** Runs a local step, turning its AetherError into a CLI failure with the same words. */
export async function local<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    // Loaded on use: the core module brings the semver package, which a plain `aether status` need not load.
    const { AetherError } = await import("../../core/mod.ts");
    if (e instanceof AetherError) {
      throw new CliError(`${what}: ${e.message.replace(/^slice (build|init): /, "")}`);
    }
    if (e instanceof Deno.errors.NotCapable) {
      // `deno task cli` grants these; a hand-written `deno run` line may not.
      throw new CliError(`${what}: ${(e as Error).message} (slice build runs deno bundle and a sandbox)`);
    }
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`${what}: ${(e as Error).message}`);
    }
    throw e;
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

export const sliceCommands: CliCommand[] = [
  {
    name: "slice build",
    args: "<entry.ts>",
    summary: "bundle a slice into one module and write its manifest",
    description: "Bundle a slice into one module and write it with its manifest (methods, routes, calls, " +
      "permissions) for artifact push.",
    flags: [
      { name: "out", value: "DIR", description: "where to write (default: dist/ beside the entry)" },
      { name: "version", value: "V", description: "the version to build (default: the one in the slice)" },
      { name: "check", description: "type-check the slice first" },
    ],
    positionals: { min: 1, max: 1 },
    examples: ["aether slice build greeter/slice.ts"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const positionals = parsed.positionals;
      const values = {
        out: parsed.string("out"),
        version: parsed.string("version"),
        check: parsed.boolean("check"),
      };
      // Loaded on use: the sandbox code is only needed by the build commands, not by every CLI start.
      const { buildSlice, writeBuiltSlice } = await import("../../authoring/mod.ts");
      const entry = resolve(positionals[0]);
      const outDir = resolve(values.out ?? join(dirname(entry), "dist"));
      const built = await local(
        "slice build",
        () => buildSlice(entry, { version: values.version, check: values.check }),
      );
      const paths = await local("slice build", () => writeBuiltSlice(outDir, built));
      const m = built.manifest;
      if (ctx.json) {
        return ctx.out(JSON.stringify({
          coordinates: m.coordinates,
          sha256: m.sha256,
          sizeBytes: m.sizeBytes,
          bundle: paths.bundlePath,
          manifest: paths.manifestPath,
        }));
      }
      ctx.out(`built     ${m.coordinates}`);
      ctx.out(`size      ${formatBytes(m.sizeBytes)} (${m.sizeBytes} bytes)`);
      ctx.out(`sha256    ${m.sha256}`);
      ctx.out(`methods   ${m.methods.join(", ")}`);
      ctx.out(`bundle    ${paths.bundlePath}`);
      ctx.out(`manifest  ${paths.manifestPath}`);
      ctx.out(`publish:  aether artifact push ${paths.manifestPath}`);
    },
  },
  {
    name: "slice init",
    args: "<name|group:artifact:version>",
    summary: "scaffold a slice project",
    description: "Scaffold a slice project (slice.ts, slice_test.ts, deno.json) in a new directory.",
    flags: [
      { name: "dir", value: "DIR", description: "where to create it (default ./<name>)" },
      { name: "group", value: "G", description: "the artifact group (default org.example)" },
      { name: "version", value: "V", description: "the first version (default 0.1.0)" },
    ],
    positionals: { min: 1, max: 1 },
    examples: ["aether slice init greeter"],
    async run(ctx, args) {
      const parsed = parseFor(this, args);
      const values = {
        dir: parsed.string("dir"),
        group: parsed.string("group"),
        version: parsed.string("version"),
      };
      const name = parsed.positionals[0];
      let artifact: string;
      const { parseArtifactBase, parseCoordinates } = await import("../../core/mod.ts");
      try {
        artifact = name.includes(":")
          ? parseCoordinates(name, "slice init").artifact
          : parseArtifactBase(`${values.group ?? "org.example"}:${name}`, "slice init").artifact;
      } catch (e) {
        throw new CliError((e as Error).message, EXIT_USAGE);
      }
      const dir = resolve(values.dir ?? artifact);
      const { initSlice } = await import("../../authoring/mod.ts");
      const files = await local(
        "slice init",
        () => initSlice(dir, name, { group: values.group, version: values.version }),
      );
      if (ctx.json) return ctx.out(JSON.stringify({ dir, files }));
      ctx.out(`created a slice project in ${dir}:`);
      for (const file of files) ctx.out(`  ${file}`);
      ctx.out("");
      ctx.out(`next: cd ${dir} && npx -y deno@2.9.6 test && aether slice build slice.ts`);
    },
  },
];
