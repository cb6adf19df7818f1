/**
 * Placement rules on real node processes (3 members, labelled n1 zone=a, n2 zone=a, n3 zone=b,disk=ssd):
 *
 * - a blueprint slice with `placement = { spread = "zone" }` and 2 instances gets one in each zone (without the
 *   rule the two lowest ids, both in zone a, would take them);
 * - `require = { disk = "ssd" }` puts every instance on n3;
 * - a slice whose new rule requires a label no node has keeps its instance, and the leader's status says why;
 * - a cordoned node gets no instance when a slice grows.
 */

import { equal, match, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import { deployFixture, GROUP, postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { runCli } from "../_support/cli.ts";

const LABELS: Record<string, string> = { n1: "zone=a", n2: "zone=a", n3: "zone=b,disk=ssd" };

const cli = (node: NodeProcess, ...args: string[]) =>
  runCli(["--connect", `127.0.0.1:${node.ready!.apiPort}`, "--token", node.options.token!, ...args]);

async function nodesOf(node: NodeProcess, slice: string): Promise<string[]> {
  const s = (await sliceStatuses(node)).find((x) => x.slice === slice);
  return (s?.instances ?? []).filter((i) => i.state === "ACTIVE").map((i) => i.node).sort();
}

const blueprint = (pricing: string, audit: string) =>
  `id = "org.example.place:app:1.0.0"

[[slices]]
artifact = "${GROUP}:pricing:1.0.0"
instances = 2
${pricing}

[[slices]]
artifact = "${GROUP}:audit:1.0.0"
instances = 1
${audit}
`;

Deno.test("placement rules on 3 labelled node processes: spread, require, unplaceable, cordon", async () => {
  const cluster = await TestCluster.start(3, {
    fsync: "never",
    argsFor: (id) => ["--labels", LABELS[id]],
  });
  try {
    const leaderId = await cluster.waitForLeader();
    const [n1] = cluster.nodes;
    const leader = cluster.node(leaderId);
    await cluster.waitFor("every member reaches the others and labels are published", async () => {
      const out = await cli(n1, "node", "list", "--json");
      if (out.code !== 0) return false;
      const items = JSON.parse(out.stdout).items as { connected: boolean; labels: Record<string, string> }[];
      return items.length === 3 && items.every((r) => r.connected && Object.keys(r.labels).length > 0);
    }, 30_000);
    // `aether status` shows each member's labels.
    const statusOut = await cli(n1, "status");
    equal(statusOut.code, 0, statusOut.stderr);
    match(statusOut.stdout, /MEMBER\s+CONNECTED\s+ROLE\s+LABELS/);
    match(statusOut.stdout, /n2\s+true\s+\S+\s+zone=a\n/);
    match(statusOut.stdout, /n3\s+true\s+\S+\s+(zone=b,disk=ssd|disk=ssd,zone=b)\n/);
    for (const name of ["pricing", "audit"] as const) await pushArtifact(n1, await deployFixture(name));

    const applied = await postBlueprint(n1, blueprint(`placement = { spread = "zone" }`, ""));
    ok(applied.status < 300, JSON.stringify(applied.body));
    await cluster.waitFor("pricing: one instance in zone a, one in zone b", async () => {
      const where = await nodesOf(n1, `${GROUP}:pricing`);
      return where.length === 2 && where.includes("n3");
    }, 60_000);
    const spread = await nodesOf(n1, `${GROUP}:pricing`);
    equal(spread.filter((n) => n === "n3").length, 1, `spread over zones: ${spread}`);

    const again = await postBlueprint(
      n1,
      blueprint(`placement = { require = { disk = "ssd" } }`, `placement = { require = { gpu = "yes" } }`),
    );
    ok(again.status < 300, JSON.stringify(again.body));
    await cluster.waitFor("pricing only on the ssd node", async () => {
      const where = await nodesOf(n1, `${GROUP}:pricing`);
      const s = (await sliceStatuses(n1)).find((x) => x.slice === `${GROUP}:pricing`);
      return s?.settled === true && where.join() === "n3,n3";
    }, 60_000);
    // audit already runs (placed before the rule): it keeps running where it is, and the leader says why it
    // cannot be moved to a node with the labels.
    let status = "";
    try {
      await cluster.waitFor("audit unplaceable, the leader says why", async () => {
        status = JSON.stringify((await leader.json("/api/v1/status")).body);
        return status.includes("no schedulable node has the labels gpu=yes") &&
          status.includes(`${GROUP}:audit: cannot move off`);
      }, 30_000);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${status.slice(0, 4_000)}`);
    }
    equal((await nodesOf(n1, `${GROUP}:audit`)).length, 1, "the unplaceable slice keeps its instance");
    // Every member's `slices` shows it pending with the leader's reason (a follower computes the same).
    for (const node of cluster.nodes) {
      const out = await cli(node, "slices");
      equal(out.code, 0, out.stderr);
      match(out.stdout, /org\.example\.\S*:audit +1\.0\.0 +1 +1 +PENDING/);
      match(out.stdout, /:audit pending: cannot move off n\d \(node n\d lacks gpu=yes\): .*gpu=yes/);
      const audit = (await sliceStatuses(node)).find((x) => x.slice === `${GROUP}:audit`) as
        | { pending?: string[] }
        | undefined;
      ok(audit?.pending?.some((r) => r.includes("no schedulable node has the labels gpu=yes")), node.id);
    }

    // Cordon n2, drop the rules, grow pricing to 4: nothing lands on n2.
    equal((await cli(n1, "node", "cordon", "n2")).code, 0);
    const grown = await postBlueprint(n1, blueprint("", "").replace("instances = 2", "instances = 4"));
    ok(grown.status < 300, JSON.stringify(grown.body));
    await cluster.waitFor("pricing at 4 on n1 and n3, audit placed", async () => {
      const where = await nodesOf(n1, `${GROUP}:pricing`);
      return where.length === 4 && (await nodesOf(n1, `${GROUP}:audit`)).length === 1;
    }, 60_000);
    ok(!(await nodesOf(n1, `${GROUP}:pricing`)).includes("n2"), "the cordoned node got no instance");
    ok(!(await nodesOf(n1, `${GROUP}:audit`)).includes("n2"));

    // Anti-affinity: a second audit instance may not go beside pricing (n1, n3); with n2 cordoned it waits,
    // saying why, and once n2 is uncordoned it lands there (pricing, named by the rule, is not rebalanced).
    const apart = await postBlueprint(
      n1,
      blueprint("", `placement = { antiAffinity = ["${GROUP}:pricing"] }`)
        .replace("instances = 2", "instances = 4").replace("instances = 1", "instances = 2"),
    );
    ok(apart.status < 300, JSON.stringify(apart.body));
    await cluster.waitFor("audit pending: no node without pricing", async () => {
      const audit = (await sliceStatuses(n1)).find((x) => x.slice === `${GROUP}:audit`) as
        | { pending?: string[] }
        | undefined;
      return audit?.pending?.some((r) => r.includes(`runs none of ${GROUP}:pricing (anti-affinity)`)) ===
        true;
    }, 30_000);
    equal((await cli(n1, "node", "uncordon", "n2")).code, 0);
    await cluster.waitFor("audit's second instance on n2, apart from pricing", async () => {
      const where = await nodesOf(n1, `${GROUP}:audit`);
      return where.length === 2 && where.includes("n2");
    }, 60_000);
    ok(!(await nodesOf(n1, `${GROUP}:pricing`)).includes("n2"), "pricing stays off the node audit took");
  } finally {
    await cluster.close();
  }
});
