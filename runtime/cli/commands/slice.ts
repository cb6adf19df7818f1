/** `slice build` and `slice init`: local commands for slice authors (no node needed). */

import { dirname, join, resolve } from "node:path";
import { AetherError, parseArtifactBase, parseCoordinates } from "../../core/mod.ts";
import { CliError, EXIT_USAGE } from "../client.ts";
import { parseCommandArgs } from "../_args.ts";
import type { CliCommand } from "../command.ts";

/** Runs a local step, turning its AetherError into a CLI failure with the same words. */
export async function local<T>(what: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
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
    args: "<entry.ts> [--out DIR] [--version V] [--check]",
    summary: "bundle a slice into one module and write its manifest (default --out: dist/ beside the entry)",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("slice build", args, {
        out: { type: "string" },
        version: { type: "string" },
        check: { type: "boolean" },
      }, { min: 1, max: 1, names: "<entry.ts>" });
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
    args: "<name|group:artifact:version> [--dir DIR] [--group G] [--version V]",
    summary: "scaffold a slice project (slice.ts, slice_test.ts, deno.json) in DIR (default ./<name>)",
    async run(ctx, args) {
      const { values, positionals } = parseCommandArgs("slice init", args, {
        dir: { type: "string" },
        group: { type: "string" },
        version: { type: "string" },
      }, { min: 1, max: 1, names: "<name>" });
      const name = positionals[0];
      let artifact: string;
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
      ctx.out(`next: cd ${dir} && deno task test && deno task build`);
    },
  },
];
