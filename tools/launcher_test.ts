/**
 * One permission table: the deno.json tasks that run runtime/main.ts grant exactly what runtime/launch.ts's
 * commandPermissions gives the installed launcher and dist/aether, and the launcher texts are valid sh.
 */

import { deepStrictEqual, equal, match } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { commandPermissions } from "../runtime/launch.ts";
import { execCase, installedLauncher, shellQuote } from "./launcher.ts";
import { selfContainedHeader } from "./compile.ts";

const DENO_JSON = fileURLToPath(new URL("../deno.json", import.meta.url));

/** The permission flags of a `deno run ... runtime/main.ts` task. */
function taskFlags(task: string): string[] {
  const words = task.split(/\s+/);
  equal(words[0], "deno");
  equal(words[1], "run");
  const main = words.indexOf("runtime/main.ts");
  return words.slice(2, main).filter((w) => w.startsWith("--allow-"));
}

Deno.test("deno.json tasks node, forge and cli grant what the launcher grants", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(DENO_JSON)) as { tasks: Record<string, string> };
  match(tasks.node, /runtime\/main\.ts node$/);
  match(tasks.forge, /runtime\/main\.ts forge$/);
  match(tasks.cli, /runtime\/main\.ts$/);
  // A task runs in the project's directory (".") and cannot name the Deno binary that will run it; the
  // launcher can, and does.
  const at = { deno: "DENO", root: "." };
  deepStrictEqual(taskFlags(tasks.node), commandPermissions("node", at).map((f) => f.replace(/=DENO$/, "")));
  deepStrictEqual(taskFlags(tasks.forge), commandPermissions("forge", at));
  deepStrictEqual(taskFlags(tasks.cli), commandPermissions("cli", at));
});

Deno.test("shellQuote keeps every character literal", () => {
  equal(shellQuote("/a b/it's"), `'/a b/it'"'"'s'`);
});

Deno.test("launcher texts: one exec per permission set, valid sh", async () => {
  const launcher = installedLauncher({ deno: "/opt/deno it's/deno", root: "/src/aether" });
  match(launcher, /^DENO='\/opt\/deno it'"'"'s\/deno'$/m);
  // node, forge, cli, and the CLI again for `aether node drain|cordon|uncordon|list` (CLI commands).
  equal(launcher.match(/exec "\$DENO" run --cached-only --config "\$ROOT\/deno\.json"/g)?.length, 4);
  const header = selfContainedHeader({ sha256: "ab".repeat(32), offset: 1234, built: "test" });
  match(header, /^PAYLOAD_OFFSET=1234 +$/m);
  match(header, new RegExp(execCase().replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
  for (const text of [launcher, header]) {
    const check = await new Deno.Command("sh", { args: ["-n"], stdin: "piped", stderr: "piped" }).spawn();
    const writer = check.stdin.getWriter();
    await writer.write(new TextEncoder().encode(text));
    await writer.close();
    const out = await check.output();
    equal(out.code, 0, new TextDecoder().decode(out.stderr));
  }
});
