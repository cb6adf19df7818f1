/**
 * Real partitions through Forge's link proxies, driven as a user drives them (`aether forge isolate|partition|
 * latency|heal`, each its own process) on a Forge running as a process in a directory of its own:
 *
 * 1. `isolate` a member: it reports no quorum and refuses writes; the other two keep serving writes; after
 *    `heal` all three converge (the same revision, the key written meanwhile readable everywhere).
 * 2. `partition` one link: both ends see each other disconnected but keep quorum through the third member;
 *    cutting a second link of the same member leaves it the minority; `heal` converges again.
 * 3. `latency` on a link: writes still succeed, `status` lists the fault, `heal` removes it.
 *
 *   deno test -A --unstable-worker-options tests/e2e/forge_partition_test.ts
 */

import { equal, match, ok } from "node:assert/strict";
import { agreedLeader, forgeAuth, type ForgeJson, ForgeProcess, health } from "./_forge_process.ts";

/** The running Forge's admin token header (set once it started). */
let auth: Record<string, string> = {};

async function put(api: string, key: string, value: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://${api}/api/v1/kv/${key}?timeoutMs=3000`, {
    method: "PUT",
    body: value,
    headers: auth,
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.text() };
}

async function get(api: string, key: string): Promise<string | null> {
  const response = await fetch(`http://${api}/api/v1/kv/${key}`, {
    headers: auth,
    signal: AbortSignal.timeout(3_000),
  });
  if (response.status !== 200) {
    await response.body?.cancel();
    return null;
  }
  return await response.text();
}

async function revision(api: string): Promise<number> {
  const response = await fetch(`http://${api}/api/v1/status`, {
    headers: auth,
    signal: AbortSignal.timeout(3_000),
  });
  return ((await response.json()) as { revision: number }).revision;
}

/** Every member healthy, one leader, the same revision and `key` = `value` on each. */
async function converged(forge: ForgeProcess, state: ForgeJson, key: string, value: string): Promise<void> {
  await forge.waitFor(`all three to converge on ${key}=${value}`, async () => {
    if (!(await agreedLeader(state))) return false;
    const values = await Promise.all(state.nodes.map((n) => get(n.api, key)));
    const revisions = await Promise.all(state.nodes.map((n) => revision(n.api)));
    return values.every((v) => v === value) && revisions.every((r) => r === revisions[0]);
  }, 30_000);
}

async function forgeOk(forge: ForgeProcess, ...args: string[]): Promise<string> {
  const result = await forge.command(...args);
  equal(result.code, 0, `aether forge ${args.join(" ")}: ${result.stderr}`);
  return result.stdout;
}

Deno.test("aether forge isolate, partition, latency and heal on a running Forge", async (t) => {
  const { forge } = await ForgeProcess.start(["--clean", "--free-ports", "--no-example"]);
  auth = forgeAuth(forge.cwd);
  try {
    const state = await forge.waitFor("a leader", async () => {
      const s = await forge.state();
      return (await agreedLeader(s)) ? s : null;
    });
    const api = (id: string) => state.nodes.find((n) => n.id === id)!.api;
    const leader = (await agreedLeader(state))!;
    const others = state.nodes.map((n) => n.id).filter((id) => id !== leader);

    await t.step(
      "isolate: the minority has no quorum, the majority keeps writing, heal converges",
      async () => {
        const minority = others[0];
        const majority = state.nodes.map((n) => n.id).filter((id) => id !== minority);
        match(await forgeOk(forge, "isolate", minority), new RegExp(`isolate ${minority}`));
        const cut = await forge.waitFor(`${minority} to report no quorum`, async () => {
          const h = await health(api(minority));
          return h && h.status === 503 && h.body.quorum === false ? h : null;
        }, 20_000);
        console.log(`  ${minority} isolated: ${JSON.stringify(cut.body)}`);
        for (const id of majority) {
          const h = await health(api(id));
          ok(h?.body.quorum, `${id} keeps quorum: ${JSON.stringify(h?.body)}`);
        }
        const written = await put(api(majority[0]), "app/partition", "written-by-majority");
        equal(written.status, 200, `a write through the majority: ${written.body}`);
        const refused = await put(api(minority), "app/partition", "written-by-minority");
        ok(
          refused.status >= 500,
          `a write through the minority is refused: ${refused.status} ${refused.body}`,
        );
        match(refused.body, /quorum/);
        match(await forgeOk(forge, "status"), new RegExp(`faults: isolate ${minority}`));

        match(await forgeOk(forge, "heal"), /healed 1 fault/);
        await converged(forge, state, "app/partition", "written-by-majority");
      },
    );

    await t.step(
      "partition: one link cut keeps quorum through the third; two cut leave a minority",
      async () => {
        const [a, b] = others;
        await forgeOk(forge, "partition", a, b);
        await forge.waitFor(`${a} and ${b} to see each other disconnected`, async () => {
          const [ha, hb] = await Promise.all([health(api(a)), health(api(b))]);
          return ha?.body.members.find((m) => m.id === b)?.connected === false &&
            hb?.body.members.find((m) => m.id === a)?.connected === false &&
            ha.body.quorum && hb.body.quorum;
        }, 20_000);
        equal((await put(api(a), "app/partition", "through-one-cut-link")).status, 200);
        equal((await put(api(b), "app/partition", "through-the-other-end")).status, 200);

        await forgeOk(forge, "partition", a, leader);
        await forge.waitFor(
          `${a} to report no quorum`,
          async () => (await health(api(a)))?.body.quorum === false,
        );
        equal((await put(api(leader), "app/partition", "after-two-cuts")).status, 200);
        const status = await forgeOk(forge, "status", "--json");
        equal((JSON.parse(status) as ForgeJson).faults.length, 2);

        match(await forgeOk(forge, "heal"), /healed 2 fault/);
        await converged(forge, state, "app/partition", "after-two-cuts");
      },
    );

    await t.step("latency: writes still succeed over a slow link; heal removes it", async () => {
      const [a] = others;
      match(await forgeOk(forge, "latency", a, leader, "150"), new RegExp(`latency ${a} ${leader} 150ms`));
      const started = performance.now();
      equal((await put(api(a), "app/partition", "slow-link")).status, 200);
      console.log(
        `  a write through ${a} with 150 ms each way to the leader: ${
          (performance.now() - started).toFixed(0)
        } ms`,
      );
      match(await forgeOk(forge, "status"), new RegExp(`faults: latency ${a} ${leader} 150ms`));
      await forgeOk(forge, "heal");
      await converged(forge, state, "app/partition", "slow-link");
      match(await forgeOk(forge, "status"), /faults: none/);
    });

    await t.step("bad chaos commands are refused with what was wrong", async () => {
      const unknown = await forge.command("partition", "n1", "n9");
      equal(unknown.code, 1);
      match(unknown.stderr, /no member "n9"; the members are n1, n2, n3/);
      const typo = await forge.command("partiton", "n1", "n2");
      equal(typo.code, 2);
      match(typo.stderr, /did you mean "partition"/);
      const badMs = await forge.command("latency", "n1", "n2", "soon");
      equal(badMs.code, 2);
      match(badMs.stderr, /"soon" is not a whole number of milliseconds/);
      const help = await forge.command("isolate", "--help");
      equal(help.code, 0);
      match(help.stdout, /usage: aether forge isolate <node>/);
    });

    await t.step("a second Forge in the same directory fails at once naming the running one", async () => {
      const started = performance.now();
      const second = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--config",
          new URL("../../deno.json", import.meta.url).pathname,
          new URL("../../runtime/main.ts", import.meta.url).pathname,
          "forge",
          "--no-example",
        ],
        cwd: forge.cwd,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(second.stderr);
      equal(second.code, 1, stderr);
      match(
        stderr,
        new RegExp(`a Forge already runs in this directory \\(pid ${state.pid}, control ${state.control}\\)`),
      );
      ok(performance.now() - started < 10_000, "at once, not after a node timed out");
    });
  } finally {
    await forge.close();
  }
});
