/**
 * Forge keeps what the operator changed, and `--restart never` leaves a dead node down until asked:
 *
 * 1. Forge with the ecommerce example; the operator scales a slice; `aether forge stop`.
 * 2. Forge again in the same directory (no --clean, `--restart never`): the example's blueprint is already in
 *    the cluster, so it is not applied again and the scale survives; the restart's start time is printed.
 * 3. `aether forge kill` leaves the node down (reported, not restarted); `aether forge restart` starts it.
 *
 *   deno test -A --unstable-worker-options tests/e2e/forge_restart_test.ts
 */

import { equal, match, ok } from "node:assert/strict";
import { forgeAuth, ForgeProcess } from "./_forge_process.ts";

interface SliceView {
  slice: string;
  desired: number;
  settled: boolean;
}

async function slices(api: string, auth: Record<string, string>): Promise<SliceView[]> {
  const response = await fetch(`http://${api}/api/v1/slices`, {
    headers: auth,
    signal: AbortSignal.timeout(3_000),
  });
  return ((await response.json()) as { slices: SliceView[] }).slices;
}

Deno.test("a restarted Forge keeps the operator's scale; --restart never leaves a killed node down", async () => {
  const { forge: first, startMs } = await ForgeProcess.start(["--clean", "--free-ports"]);
  const cwd = first.cwd;
  let second: ForgeProcess | null = null;
  try {
    console.log(`  first start (--clean, build, publish, apply): ${(startMs / 1000).toFixed(1)} s`);
    const api = (await first.state()).nodes[0].api;
    const scaled = await fetch(`http://${api}/api/v1/scale`, {
      method: "POST",
      headers: { ...forgeAuth(cwd), "content-type": "application/json" },
      body: JSON.stringify({ artifact: "org.example:pricing", instances: 2 }),
    });
    equal(scaled.status, 200, await scaled.text());
    await first.waitFor("pricing at 2 instances, settled", async () => {
      const pricing = (await slices(api, forgeAuth(cwd))).find((s) => s.slice === "org.example:pricing");
      return pricing?.desired === 2 && pricing.settled;
    });
    const stopped = await first.command("stop");
    equal(stopped.code, 0, stopped.stderr);
    equal((await first.status).code, 0);
  } finally {
    await first.close({ keepDir: true });
  }
  try {
    const restarted = await ForgeProcess.start(["--free-ports", "--restart", "never"], 120_000, cwd);
    second = restarted.forge;
    console.log(`  restart (data kept, blueprint kept): ${(restarted.startMs / 1000).toFixed(1)} s`);
    match(second.output, /Blueprint org\.example:ecommerce:1\.0\.0 is already in the cluster: kept as it is/);
    ok(!/Applying examples/.test(second.output), "the blueprint was not applied again");
    let state = await second.state();
    const pricing = (await slices(state.nodes[0].api, forgeAuth(cwd))).find((s) =>
      s.slice === "org.example:pricing"
    );
    equal(pricing?.desired, 2, "the operator's scale survived the restart");

    const victim = state.nodes[2];
    equal((await second.command("kill", victim.id)).code, 0);
    await second.waitForOutput(
      new RegExp(`${victim.id} exited \\(signal SIGKILL\\).*not restarted \\(--restart never\\)`),
      20_000,
    );
    state = await second.state();
    const down = state.nodes.find((n) => n.id === victim.id)!;
    equal(down.running, false);
    equal(down.pid, null);
    const status = await second.command("status");
    match(status.stdout, new RegExp(`${victim.id}\\s+-\\s+.*\\s+no\\s+0`));
    const again = await second.command("kill", victim.id);
    equal(again.code, 1);
    match(again.stderr, new RegExp(`${victim.id} is not running`));

    equal((await second.command("restart", victim.id)).code, 0);
    await second.waitFor(`${victim.id} running again`, async () => {
      const node = (await second!.state()).nodes.find((n) => n.id === victim.id)!;
      return node.running && node.restarts === 1 && node.pid !== null;
    });
  } finally {
    await second?.close();
    await Deno.remove(cwd, { recursive: true }).catch(() => {});
  }
});
