/**
 * `aether forge` with a bad option, as a user runs it: the process exits 2 at once with what was wrong (for
 * `--example`, the examples there are) and the usage, before it creates `.forge/` or starts any node (issue 14:
 * `--example nope` used to be checked only after three nodes had started).
 */

import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

async function forge(cwd: string, ...args: string[]) {
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}runtime/main.ts`, "forge", ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stderr: decode(out.stderr), ms: performance.now() - started };
}

Deno.test("forge: a bad option exits 2 at once, naming it, before .forge/ exists or any node starts", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "forge-options-" });
  try {
    const cases: [string[], RegExp][] = [
      [["--example", "nope"], /--example: "nope" is not an example .*available: .*\becommerce\b/],
      [["--nodes", "2"], /--nodes: "2" is not 1, 3 or 5/],
      [["--restart", "sometimes"], /--restart: "sometimes" is not always or never/],
      [["--example", "ecommerce", "--no-example"], /exclude each other/],
      [["--nodse", "3"], /--nodse/],
    ];
    for (const [args, pattern] of cases) {
      const run = await forge(cwd, ...args);
      equal(run.code, 2, `forge ${args.join(" ")}: ${run.stderr}`);
      match(run.stderr, pattern, args.join(" "));
      match(run.stderr, /usage: aether forge \[options\]/);
      // Generous for a loaded 2-core machine; starting three nodes and waiting for them takes far longer.
      ok(run.ms < 10_000, `forge ${args.join(" ")} took ${run.ms.toFixed(0)} ms`);
      const created = await Deno.stat(`${cwd}/.forge`).then(() => true, () => false);
      equal(created, false, `forge ${args.join(" ")} created .forge/ (and so started on its nodes)`);
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
