/**
 * The example shop with shared state (`sharedState` of inventory and place-order, turned on live through the
 * config API the way an operator does with `aether config set`; 3 real nodes, the example's slices as Forge
 * builds them) keeps its state in the kv infrastructure service: an order placed through one node is read back
 * through every other, and concurrent orders from all three nodes against limited stock never oversell: every
 * unit is accounted for (demo level + restocked − units of confirmed orders = what is left, never below zero),
 * and the orders refused are 409 InsufficientStock.
 */

import { equal, ok } from "node:assert/strict";
import { TestCluster } from "../_support/cluster.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import { ORDER_BODY, SHOP_SLICES } from "./_metrics_shop.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";

type Json = Record<string, unknown>;

/** The shop's five slices, one instance per node, with sharedState on for inventory and place-order. */
async function deployShop(cluster: TestCluster): Promise<void> {
  const [n1] = cluster.nodes;
  await cluster.waitFor("every member connected to every other", async () => {
    const views = await Promise.all(
      cluster.nodes.map((n) => n.json<{ members: { id: string; connected: boolean }[] }>("/api/v1/status")),
    );
    return views.every((v) => v.status === 200 && v.body.members.every((m) => m.connected));
  }, 60_000);
  for (const slice of SHOP_SLICES) {
    const source = new URL(`../../examples/ecommerce/${slice}/slice.ts`, import.meta.url);
    await pushArtifact(n1, await buildSlice(source.pathname));
  }
  const blueprint = `id = "org.example:ecommerce-shared:1.0.0"\n` +
    SHOP_SLICES.map((s) => `[[slices]]\nartifact = "org.example:${s}:1.0.0"\ninstances = 3\n`).join("");
  const applied = await postBlueprint(n1, blueprint);
  ok(applied.status === 201, JSON.stringify(applied.body));
  await cluster.waitFor("the shop ACTIVE on every node", async () => {
    const slices = await sliceStatuses(n1);
    return SHOP_SLICES.every((name) =>
      (slices.find((s) => s.slice === `org.example:${name}`)?.instances ?? [])
        .filter((i) => i.state === "ACTIVE" && i.connected).length === 3
    );
  }, 90_000);
  for (const slice of ["org.example:inventory", "org.example:place-order"]) {
    const { status, body } = await n1.json(`/api/v1/config/${slice}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ values: { sharedState: true } }),
    });
    equal(status, 200, JSON.stringify(body));
  }
  for (const node of cluster.nodes) {
    await cluster.waitFor(`an order through ${node.id}`, async () => (await order(node, [])).status === 400);
    // Config changes reach every instance within a second (tests/integration/config_cluster_test.ts).
    await cluster.waitFor(`${node.id} reads orders from the kv service`, async () => {
      const unknown = "ORD-00000000-0000-4000-8000-000000000000";
      const response = await fetch(`${node.httpUrl}/api/v1/orders/${unknown}`);
      const problem = await response.json() as Json;
      return response.status === 404 && problem.detail === `order ${unknown} is not known`;
    });
  }
}

async function order(node: NodeProcess, items: unknown[]) {
  const body = { ...JSON.parse(ORDER_BODY), items };
  const response = await fetch(`${node.httpUrl}/api/v1/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() as Json };
}

async function stock(node: NodeProcess, productId: string): Promise<number> {
  const response = await fetch(`${node.httpUrl}/api/v1/inventory/${productId}`);
  const body = await response.json() as { inStock: number };
  equal(response.status, 200, JSON.stringify(body));
  return body.inStock;
}

/** Units restocks added to a product so far, read from the store behind the kv service. */
async function restocked(node: NodeProcess, productId: string): Promise<number> {
  const key = encodeURIComponent(`org.example/inventory.restocked/${productId}`);
  const { status, body } = await node.json<{ value: string }>(`/api/v1/stores/infra.kv/entries/${key}`);
  if (status === 404) return 0;
  equal(status, 200, JSON.stringify(body));
  const value = JSON.parse(body.value);
  return typeof value === "number" ? value : value.$n;
}

Deno.test("the shop on 3 nodes: orders visible through every node, concurrent orders never oversell", async (t) => {
  const cluster = await TestCluster.start(3, { fsync: "never" });
  try {
    await cluster.waitForLeader();
    await deployShop(cluster);
    const [n1, n2, n3] = cluster.nodes;

    await t.step("an order placed through n1 is read back through n2 and n3", async () => {
      const placed = await order(n1, [{ productId: "LAPTOP-PRO", quantity: 1 }]);
      equal(placed.status, 201, JSON.stringify(placed.body));
      for (const node of [n2, n3]) {
        const response = await fetch(`${node.httpUrl}/api/v1/orders/${placed.body.orderId}`);
        const body = await response.json();
        equal(response.status, 200, JSON.stringify(body));
        equal(body.orderId, placed.body.orderId);
      }
    });

    await t.step("45 concurrent orders of 4 monitors from 3 nodes: every unit accounted for", async () => {
      const product = "MONITOR-4K";
      const before = await stock(n2, product);
      const restockedBefore = await restocked(n1, product);
      const results = await Promise.all(
        Array.from(
          { length: 45 },
          (_, i) => order(cluster.nodes[i % 3], [{ productId: product, quantity: 4 }]),
        ),
      );
      const confirmed = results.filter((r) => r.status === 201).length;
      const refused = results.filter((r) => r.status === 409 && r.body.title === "InsufficientStock").length;
      equal(
        confirmed + refused,
        results.length,
        JSON.stringify(results.filter((r) => r.status !== 201 && r.status !== 409).map((r) => r.body)),
      );
      const after = await stock(n3, product);
      const added = (await restocked(n1, product)) - restockedBefore;
      console.log(
        `${product}: ${before} on the shelf, ${confirmed} orders of 4 confirmed, ${refused} refused, ` +
          `${added} restocked, ${after} left`,
      );
      ok(after >= 0);
      equal(before + added - 4 * confirmed, after, "no unit sold twice, none lost");
      ok(confirmed > 0);
    });
  } finally {
    await cluster.close();
  }
});
