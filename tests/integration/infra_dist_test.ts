/**
 * The committed bundled infrastructure services (infra/dist) are what infra/build.ts builds from
 * infra/<service>/slice.ts now: a source change without a rebuild fails here, like dashboard/dist's test. The
 * node trusts exactly the digests in these manifests (runtime/infra-host/bundled.ts), so they must not drift.
 */

import { ok } from "node:assert/strict";
import { readBundledRepository } from "../../runtime/infra-host/mod.ts";

const BUILD = new URL("../../infra/build.ts", import.meta.url).pathname;

Deno.test("infra/dist is what infra/build.ts builds from the sources", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", BUILD, "--check"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  ok(output.success, `infra/dist is stale or the build failed:\n${text}`);
});

Deno.test("every bundled service reads back with its digest, in group aether.infra", async () => {
  const { services, problems } = await readBundledRepository();
  ok(problems.length === 0, problems.join("\n"));
  for (const name of ["cache", "kv", "lock"]) {
    const service = services.get(name);
    ok(service, `${name} is bundled`);
    ok(service.coordinates.startsWith(`aether.infra:${name}:`), service.coordinates);
    ok(/^[0-9a-f]{64}$/.test(service.sha256));
  }
});
