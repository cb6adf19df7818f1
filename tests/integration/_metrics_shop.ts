/**
 * The example shop (examples/ecommerce) on a 3-node test cluster for the metrics tests: its five slices built
 * and pushed, every slice with one instance per node, ACTIVE and routed on every node.
 */

import { equal, ok } from "node:assert/strict";
import type { TestCluster } from "../_support/cluster.ts";
import { postBlueprint, pushArtifact, sliceStatuses } from "../_support/deployment.ts";
import { buildSlice } from "../../runtime/authoring/mod.ts";
import type { NodeProcess } from "../../runtime/forge/mod.ts";
import type { ClusterSnapshot } from "../../runtime/metrics/mod.ts";

const EXAMPLE = new URL("../../examples/ecommerce/", import.meta.url);
export const SHOP_SLICES = ["place-order", "inventory", "pricing", "payment", "fulfillment"];
export const ORDER_BODY = await Deno.readTextFile(new URL("order.json", EXAMPLE));
export const PLACE_ORDER = "org.example:place-order";

const BLUEPRINT = `id = "org.example:ecommerce-metrics:1.0.0"
${
  SHOP_SLICES.map((s) => `
[[slices]]
artifact = "org.example:${s}:1.0.0"
instances = 3
`).join("")
}`;

/** Deploys the shop and waits until an order goes through every node's app port. */
export async function deployShop(cluster: TestCluster): Promise<void> {
  const [n1] = cluster.nodes;
  // A push needs every member reachable: on a busy machine the mesh may still be connecting.
  await cluster.waitFor("every member connected to every other", async () => {
    const views = await Promise.all(
      cluster.nodes.map((n) => n.json<{ members: { id: string; connected: boolean }[] }>("/api/v1/status")),
    );
    return views.every((v) => v.status === 200 && v.body.members.every((m) => m.connected));
  }, 60_000);
  for (const slice of SHOP_SLICES) {
    await pushArtifact(n1, await buildSlice(new URL(`${slice}/slice.ts`, EXAMPLE).pathname));
  }
  const applied = await postBlueprint(n1, BLUEPRINT);
  ok(applied.status === 200 || applied.status === 201, JSON.stringify(applied.body));
  await cluster.waitFor("the shop ACTIVE on every node", async () => {
    const slices = await sliceStatuses(n1);
    return SHOP_SLICES.every((name) =>
      (slices.find((s) => s.slice === `org.example:${name}`)?.instances ?? [])
        .filter((i) => i.state === "ACTIVE" && i.connected).length === 3
    );
  }, 90_000);
  for (const node of cluster.nodes) {
    await cluster.waitFor(`an order through ${node.id}'s app port`, async () => {
      const response = await placeOrder(node);
      return response === 201;
    });
  }
}

export async function placeOrder(node: NodeProcess): Promise<number> {
  const response = await fetch(`${node.httpUrl}/api/v1/orders`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: ORDER_BODY,
  });
  await response.body?.cancel();
  return response.status;
}

export async function snapshotOf(node: NodeProcess): Promise<ClusterSnapshot> {
  const { status, body } = await node.json<ClusterSnapshot>("/api/v1/metrics");
  equal(status, 200, JSON.stringify(body));
  return body;
}

/** place-order's calls summed over the cluster snapshot's live nodes (every version). */
export function placeOrderCalls(snapshot: ClusterSnapshot): number {
  return snapshot.slices
    .filter((s) => s.artifact === PLACE_ORDER)
    .flatMap((s) => s.methods.filter((m) => m.method === "placeOrder"))
    .reduce((sum, m) => sum + m.calls, 0);
}

/** Application requests to the orders route summed over the snapshot's live nodes. */
export function orderRequests(snapshot: ClusterSnapshot): number {
  let total = 0;
  for (const node of snapshot.nodes) {
    if (node.stale) continue;
    for (const r of node.routes) {
      if (r.httpMethod === "POST" && r.route.includes("orders")) {
        total += Object.values(r.requests).reduce((a, b) => a + b, 0);
      }
    }
  }
  return total;
}
