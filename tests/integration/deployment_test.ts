/**
 * Deployment on real node processes (3 members on loopback, process-isolated slices built from
 * tests/fixtures/deployment and pushed through the repository API): blueprints with dependencies, activation
 * order, scaling, undeploy, ownership on delete, and every validation error over HTTP with its position.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import {
  describe,
  GROUP,
  instanceHistory,
  postBlueprint,
  postJson,
  publishFixtures,
  settledAs,
  sliceStatuses,
} from "../_support/deployment.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";

const SHOP = `# a shop: checkout calls orders, which calls inventory and pricing
id = "${GROUP}:shop:1.0.0"

[[slices]]
artifact = "${GROUP}:checkout:1.0.0"
instances = 3

[[slices]]
artifact = "${GROUP}:audit:1.0.0"
instances = 2
`;

const OPS = `id = "${GROUP}:ops:1.0.0"
[[slices]]
artifact = "${GROUP}:audit:1.0.0"
[[slices]]
artifact = "${GROUP}:inventory:1.0.0"
instances = 2
`;

/**
 * Waits until `node` shows exactly `want` ACTIVE and every running node's sandboxes are what the records say
 * runs there (a node that just restarted still has records of instances it no longer runs: those do not count
 * until they are replaced).
 */
async function waitSettled(
  cluster: TestCluster,
  node: NodeProcess,
  want: Record<string, number>,
  what: string,
) {
  let last = "";
  try {
    return await cluster.waitFor(what, async () => {
      const slices = await sliceStatuses(node);
      last = describe(slices);
      if (!settledAs(slices, want)) return null;
      for (const member of cluster.running()) {
        const recorded = slices.flatMap((s) =>
          s.instances.filter((i) => i.node === member.id).map((i) =>
            `${s.slice}:${i.version}/${i.n} ${i.state}`
          )
        ).sort();
        const running = await localInstances(member, false);
        if (recorded.join() !== running.join()) {
          last += `\n${member.id} runs [${running.join(", ")}], records say [${recorded.join(", ")}]`;
          return null;
        }
      }
      return slices;
    }, 60_000);
  } catch (e) {
    throw new Error(`${(e as Error).message}\nlast seen:\n${last}\n${cluster.logs().slice(-20_000)}`);
  }
}

Deno.test("deployment on 3 nodes: blueprints, dependency order, scaling, ownership, validation", async (t) => {
  const cluster = await TestCluster.start(3);
  try {
    await cluster.waitForLeader();
    const [n1, n2, n3] = cluster.nodes;
    await publishFixtures(n1, ["inventory", "pricing", "orders", "checkout", "audit", "cycle_a", "cycle_b"]);

    await t.step(
      "every blueprint problem is a 400 problem document pointing at its line and column",
      async () => {
        const cases: [string, number, number, string, RegExp][] = [
          [
            `id = "${GROUP}:x:1.0.0"\n[[slices]]\nartifact = "${GROUP}:audit:1.0.0\n`,
            3,
            43,
            "",
            /TOML syntax/,
          ],
          [
            `id = "${GROUP}:x:1.0.0"\ncolour = "red"\n[[slices]]\nartifact = "${GROUP}:audit:1.0.0"\n`,
            2,
            1,
            "colour",
            /unknown key "colour"/,
          ],
          [
            `id = "${GROUP}:x:1.0.0"\n[[slices]]\nartifact = "${GROUP}:audit:1.0.0"\ninstances = "two"\n`,
            4,
            13,
            "slices[0].instances",
            /instances/,
          ],
          [
            `id = "${GROUP}:x:1.0.0"\n[[slices]]\nartifact = "${GROUP}:audit:9.9.9"\n`,
            3,
            12,
            "slices[0].artifact",
            /audit:9\.9\.9 is not published \(published versions: 1\.0\.0\)/,
          ],
          [
            `id = "${GROUP}:x:1.0.0"\n\n[[slices]]\nartifact = "${GROUP}:cycle-a:1.0.0"\n`,
            4,
            12,
            "slices[0].artifact",
            /cycle.*cycle-a.*cycle-b.*cycle-a/,
          ],
        ];
        for (const [toml, line, column, field, pattern] of cases) {
          for (const query of ["?dryRun=true", ""]) {
            const answer = await postBlueprint(n2, toml, query);
            equal(answer.status, 400, `${toml}\n${JSON.stringify(answer.body)}`);
            equal(answer.contentType, "application/problem+json");
            match(String(answer.body.detail), pattern);
            deepStrictEqual(
              [answer.body.line, answer.body.column, answer.body.field],
              [line, column, field],
              toml,
            );
          }
        }
        const dry = await postBlueprint(n2, SHOP, "?dryRun=true");
        equal(dry.status, 200);
        deepStrictEqual(
          (dry.body.slices as { artifact: string; transitive: boolean }[]).map((s) =>
            `${s.artifact.split(":")[1]}${s.transitive ? "*" : ""}`
          ),
          ["inventory*", "pricing*", "orders*", "checkout", "audit"],
          "expanded with what checkout calls, every slice after the slices it calls",
        );
        const listed = await n3.json<{ blueprints: unknown[] }>("/api/v1/blueprints");
        deepStrictEqual(
          listed.body.blueprints,
          [],
          "neither a dry run nor a refused blueprint stored anything",
        );
        equal((await sliceStatuses(n3)).length, 0);
      },
    );

    await t.step(
      "apply: every instance ACTIVE, spread over the nodes, each after the slices it calls",
      async () => {
        const applied = await postBlueprint(n2, SHOP);
        equal(applied.status, 201, JSON.stringify(applied.body));
        const want = { checkout: 3, audit: 2, orders: 1, inventory: 1, pricing: 1 };
        const slices = await waitSettled(cluster, n3, want, "the shop settled");
        const checkout = slices.find((s) => s.slice === `${GROUP}:checkout`)!;
        deepStrictEqual(checkout.instances.map((i) => i.node).sort(), ["n1", "n2", "n3"], "one per node");
        deepStrictEqual(checkout.owners, [`${GROUP}:shop:1.0.0`]);

        const history = await instanceHistory(n3);
        const first = (slice: string, state: string) =>
          history.find((e) => e.key.includes(`/${GROUP}:${slice}:`) && e.state === state)?.revision ??
            Infinity;
        const calls: Record<string, string[]> = { checkout: ["orders"], orders: ["inventory", "pricing"] };
        for (const [caller, callees] of Object.entries(calls)) {
          for (const callee of callees) {
            ok(
              first(caller, "ACTIVATE") > first(callee, "ACTIVE"),
              `${caller} was told to activate (revision ${
                first(caller, "ACTIVATE")
              }) after ${callee} was ACTIVE ` +
                `(revision ${first(callee, "ACTIVE")})`,
            );
          }
        }
        const status = await n1.json<{ settled: boolean; slices: unknown[] }>(
          `/api/v1/blueprints/${GROUP}:shop:1.0.0/status`,
        );
        deepStrictEqual([status.body.settled, status.body.slices.length], [true, 5]);
        // checkout 1 method x3, audit 1 x2, orders 1, inventory 2, pricing 1: every node's registry has them all.
        for (const node of cluster.nodes) {
          await cluster.waitFor(`${node.id}'s endpoint registry`, async () => {
            type Status = { deployment: { endpoints: number; instances: { state: string }[] } };
            const { body } = await node.json<Status>("/api/v1/status");
            return body.deployment.endpoints === 3 + 2 + 1 + 2 + 1 &&
              body.deployment.instances.every((i) => i.state === "ACTIVE");
          }, 10_000);
        }
      },
    );

    await t.step(
      "scale up and down: spread evenly, several per node when instances exceed nodes",
      async () => {
        const up = await postJson(n1, "/api/v1/scale", { artifact: `${GROUP}:checkout`, instances: 5 });
        equal(up.status, 200, JSON.stringify(up.body));
        const slices = await waitSettled(
          cluster,
          n1,
          { checkout: 5, audit: 2, orders: 1, inventory: 1, pricing: 1 },
          "checkout at 5",
        );
        const perNode = new Map<string, number>();
        for (const i of slices.find((s) => s.slice === `${GROUP}:checkout`)!.instances) {
          perNode.set(i.node, (perNode.get(i.node) ?? 0) + 1);
        }
        deepStrictEqual([...perNode.values()].sort(), [1, 2, 2]);
        const down = await postJson(n3, "/api/v1/scale", { artifact: `${GROUP}:checkout`, instances: 1 });
        equal(down.status, 200);
        await waitSettled(
          cluster,
          n2,
          { checkout: 1, audit: 2, orders: 1, inventory: 1, pricing: 1 },
          "checkout at 1",
        );
      },
    );

    await t.step(
      "blueprint delete removes only what it owns; deploy and undeploy a slice directly",
      async () => {
        equal((await postBlueprint(n1, OPS)).status, 201);
        await waitSettled(
          cluster,
          n1,
          { checkout: 1, audit: 2, orders: 1, inventory: 2, pricing: 1 },
          "ops applied",
        );
        const owned = await postJson(n1, "/api/v1/undeploy", { artifact: `${GROUP}:inventory` });
        equal(owned.status, 409);
        match(String(owned.body.detail), /belongs to blueprint\(s\) .*ops/);

        const deleted = await n2.json<{ targets: { slice: string; action: string }[] }>(
          `/api/v1/blueprints/${GROUP}:shop:1.0.0`,
          { method: "DELETE" },
        );
        equal(deleted.status, 200);
        deepStrictEqual(
          Object.fromEntries(deleted.body.targets.map((e) => [e.slice.split(":")[1], e.action])),
          { audit: "release", checkout: "remove", inventory: "release", orders: "remove", pricing: "remove" },
        );
        await waitSettled(cluster, n3, { audit: 2, inventory: 2 }, "only what ops owns is left");

        const deployed = await postJson(n3, "/api/v1/deploy", {
          artifact: `${GROUP}:pricing:1.0.0`,
          instances: 2,
        });
        equal(deployed.status, 201, JSON.stringify(deployed.body));
        await waitSettled(cluster, n1, { audit: 2, inventory: 2, pricing: 2 }, "pricing deployed directly");
        equal((await postJson(n1, "/api/v1/undeploy", { artifact: `${GROUP}:pricing` })).status, 200);
        await waitSettled(cluster, n1, { audit: 2, inventory: 2 }, "pricing undeployed");
        const gone = await n1.json(`/api/v1/blueprints/${GROUP}:ops:1.0.0`, { method: "DELETE" });
        equal(gone.status, 200);
        await waitSettled(cluster, n2, {}, "nothing left");
        deepStrictEqual((await n2.json<{ blueprints: unknown[] }>("/api/v1/blueprints")).body.blueprints, []);
      },
    );
  } finally {
    await cluster.close();
  }
});

/** Slices that have their desired count of ACTIVE instances on nodes `node` reaches (others may linger). */
function allActive(slices: { desired: number; active: number }[], count: number): boolean {
  return slices.length === count && slices.every((s) => s.active === s.desired);
}

type Status = { deployment: { instances: { instance: string; state: string; pid?: number }[] } };

/** What the node's executor runs: `g:a:v/n STATE pid P` (without the pid when `pids` is false). */
async function localInstances(node: NodeProcess, pids = true): Promise<string[]> {
  const { body } = await node.json<Status>("/api/v1/status");
  return body.deployment.instances.map((i) => `${i.instance} ${i.state}${pids ? ` pid ${i.pid}` : ""}`)
    .sort();
}

Deno.test("deployment on 3 nodes survives node death, leader death, quorum loss and a full restart", async (t) => {
  const cluster = await TestCluster.start(3);
  const want = { checkout: 3, audit: 2, orders: 1, inventory: 1, pricing: 1 };
  try {
    let leader = await cluster.waitForLeader();
    await publishFixtures(cluster.nodes[0], ["inventory", "pricing", "orders", "checkout", "audit"]);
    equal((await postBlueprint(cluster.nodes[1], SHOP)).status, 201);
    await waitSettled(cluster, cluster.nodes[2], want, "the shop settled");

    await t.step("kill -9 a node: its instances are replaced on the others", async () => {
      const victim = cluster.nodes.find((n) => n.id !== leader)!;
      const observer = cluster.nodes.find((n) => n.id !== leader && n !== victim)!;
      const before = (await sliceStatuses(observer)).flatMap((s) => s.instances).filter((i) =>
        i.node === victim.id
      );
      ok(before.length >= 2, `${victim.id} runs ${before.length} instances`);
      const killedAt = Date.now();
      await victim.kill();
      await cluster.waitFor("every slice ACTIVE again on the live nodes", async () => {
        const slices = await sliceStatuses(observer);
        // Until the observer sees the node gone, its instances still count as ACTIVE.
        const victimSeen = slices.some((s) => s.instances.some((i) => i.node === victim.id && i.connected));
        return !victimSeen && allActive(slices, 5);
      }, 30_000);
      const replacedMs = Date.now() - killedAt;
      const slices = await waitSettled(cluster, observer, want, `${victim.id}'s instances gone and replaced`);
      ok(slices.every((s) => s.instances.every((i) => i.node !== victim.id)));
      console.log(`  ${before.length} instances of a killed node ACTIVE elsewhere after ${replacedMs} ms`);

      await victim.start();
      await waitSettled(cluster, victim, want, `${victim.id} back`);
    });

    await t.step("kill the leader in the middle of a deployment: the new leader finishes it", async () => {
      leader = await cluster.waitForLeader();
      const old = cluster.node(leader);
      const follower = cluster.nodes.find((n) => n !== old)!;
      equal(
        (await postJson(follower, "/api/v1/scale", { artifact: `${GROUP}:audit`, instances: 5 })).status,
        200,
      );
      await cluster.waitFor("the scale-up under way", async () => {
        const audit = (await sliceStatuses(follower)).find((s) => s.slice === `${GROUP}:audit`)!;
        return audit.instances.length > 2 && audit.active < 5;
      }, 10_000);
      await old.kill();
      const next = await cluster.waitForLeader();
      ok(next !== leader, `a new leader (${next}) took over from ${leader}`);
      await waitSettled(cluster, follower, { ...want, audit: 5 }, "the scale-up finished by the new leader");
      await old.start();
      await waitSettled(cluster, old, { ...want, audit: 5 }, `${leader} back`);
      equal(
        (await postJson(follower, "/api/v1/scale", { artifact: `${GROUP}:audit`, instances: 2 })).status,
        200,
      );
      await waitSettled(cluster, follower, want, "audit back to 2");
    });

    await t.step(
      "a node without quorum keeps serving its instances; they survive the quorum's return",
      async () => {
        const [survivor, ...others] = cluster.nodes;
        const running = await localInstances(survivor);
        ok(running.length >= 2 && running.every((i) => / ACTIVE pid \d+$/.test(i)), running.join("\n"));
        // When an instance record was created: a number n can be used again by a later instance on the node.
        const createdAt = async (instance: string) => {
          const key = `instances/${survivor.id}/${instance.split(" ")[0]}`;
          const response = await survivor.api(`/api/v1/kv/${key}`);
          await response.body?.cancel();
          return response.headers.get("x-aether-create-revision");
        };
        const created = new Map(
          await Promise.all(running.map(async (i) => [i, await createdAt(i)] as const)),
        );
        await Promise.all(others.map((n) => n.kill()));
        await cluster.waitFor("the survivor to notice it has no quorum", async () => {
          return (await survivor.json("/api/v1/health")).status === 503;
        });
        // Well past the mesh's dead-peer detection and the leader's departure grace: nothing was stopped.
        await new Promise((r) => setTimeout(r, 6_000));
        deepStrictEqual(await localInstances(survivor), running, "the same sandboxes, still ACTIVE");
        await Promise.all(others.map((n) => n.start()));
        await waitSettled(cluster, survivor, want, "settled again with quorum");
        // The leader may move an instance to restore the spread once everyone is back (and a new instance may
        // reuse a retired one's number); nothing whose record stayed is restarted in place.
        const after = await localInstances(survivor);
        const kept = after.filter((i) => running.includes(i));
        ok(kept.length >= 1, `kept ${kept.length}`);
        for (const instance of after) {
          const id = instance.split(" ")[0];
          const was = running.find((i) => i.startsWith(`${id} `));
          if (was === undefined || was === instance) continue;
          const [before, now] = [created.get(was), await createdAt(instance)];
          ok(
            before !== now,
            `${id} restarted in place (record created at ${before}): was ${was}, now ${instance}`,
          );
        }
      },
    );

    await t.step("stop and start the whole cluster: the deployment comes back by itself", async () => {
      const before = (await Promise.all(cluster.nodes.map((n) => localInstances(n)))).flat();
      await Promise.all(cluster.nodes.map((n) => n.stop("SIGTERM")));
      const stoppedAt = Date.now();
      await cluster.startAll();
      await cluster.waitForLeader();
      await waitSettled(cluster, cluster.nodes[0], want, "the shop back after a full restart");
      const after = (await Promise.all(cluster.nodes.map((n) => localInstances(n)))).flat();
      equal(after.length, before.length);
      ok(after.every((i) => !before.includes(i)), "every instance runs in a new sandbox");
      console.log(`  the whole deployment back ${Date.now() - stoppedAt} ms after every node stopped`);
      const slices = await sliceStatuses(cluster.nodes[1]);
      ok(slices.every((s) => s.backoff === undefined), `a restart is no failure: ${describe(slices)}`);
    });
  } finally {
    await cluster.close();
  }
});
