/**
 * The sandbox under the permissions a real node runs with (no -A): read access to its code, npm packages and
 * data directory, write to the data directory, net, and run for the Deno binary. Slices must still be unable
 * to import or read what the node itself may read, in both isolation modes.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { writeBuiltSlice } from "../authoring/mod.ts";
import { fixture } from "./_testing.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** The narrow flags a node needs for the sandbox (see the README's sandbox section). */
export function sandboxNodeFlags(dataDir: string): string[] {
  return [
    "--unstable-worker-options",
    `--allow-read=${
      [
        join(ROOT, "runtime"),
        join(ROOT, "slices"),
        join(ROOT, "node_modules"),
        join(ROOT, "deno.json"),
        join(ROOT, "deno.lock"),
        dataDir,
      ].join(",")
    }`,
    `--allow-write=${dataDir}`,
    "--allow-net",
    `--allow-run=${Deno.execPath()}`,
    "--allow-env=NO_COLOR,DENO_DIR,HOME,XDG_CACHE_HOME",
  ];
}

Deno.test("narrow node permissions: slices serve, and cannot import or read what the node can", async () => {
  const dataDir = await Deno.makeTempDir();
  try {
    await writeBuiltSlice(dataDir, await fixture("hostile"));
    await writeBuiltSlice(dataDir, await fixture("pricing"));
    const secret = join(dataDir, "node-secret.js");
    await Deno.writeTextFile(secret, 'export const secret = "node-only";');
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        ...sandboxNodeFlags(dataDir),
        fileURLToPath(new URL("./fixtures/narrow_node.ts", import.meta.url)),
        dataDir,
        secret,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, stderr);
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!);
    for (const mode of ["worker", "process"]) {
      assertEquals(report[`${mode}.pricing`], "allowed");
      for (const attack of ["importNodeReadable", "importOwnCode", "readNodeReadable", "readPasswd"]) {
        const result = String(report[`${mode}.${attack}`]);
        assert(
          result !== "allowed" && /Requires read access|NotCapable/.test(result),
          `${mode}.${attack}: ${result}`,
        );
      }
    }
    assert(!stdout.includes("node-only"));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
