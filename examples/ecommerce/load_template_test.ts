/**
 * `load-order.json.tmpl`, the body the load generator sends to `POST /api/v1/orders` (Forge and the e2e tests
 * use it): every expansion is a valid order, and hundreds in a row all succeed against the real slices, so a
 * load test measures the cluster, not the stock running out or a malformed body.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { testSlice } from "@aether/slices/testing";
import { compileTemplate } from "../../runtime/loadgen/mod.ts";
import { Rng } from "../../runtime/core/rng.ts";
import placeOrder, { parseOrder } from "./place-order/slice.ts";
import inventory from "./inventory/slice.ts";
import pricing from "./pricing/slice.ts";
import payment from "./payment/slice.ts";
import fulfillment from "./fulfillment/slice.ts";

const path = fileURLToPath(new URL("./load-order.json.tmpl", import.meta.url));

Deno.test("load template: every expansion is a different, valid order", async () => {
  const template = compileTemplate(await Deno.readTextFile(path), "load-order.json.tmpl");
  const rng = new Rng(1);
  const orders = Array.from({ length: 500 }, () => JSON.parse(template.expand(rng)));
  for (const order of orders) parseOrder(order);
  assertEquals(new Set(orders.map((o) => o.email)).size, 500);
  assertEquals(new Set(orders.map((o) => o.shippingOption)), new Set(["STANDARD", "EXPRESS", "OVERNIGHT"]));
  assertEquals(new Set(orders.map((o) => o.discountCode)), new Set([null, "WELCOME10"]));
  assert(new Set(orders.map((o) => o.items[0].productId)).size === 4);
  assert(
    orders[0].paymentMethod.expiryYear > new Date().getUTCFullYear(),
    "the template's card has expired: raise expiryYear in load-order.json.tmpl",
  );
});

Deno.test("load template: 400 orders in a row all succeed against the real slices (stock is refilled)", async () => {
  const template = compileTemplate(await Deno.readTextFile(path), "load-order.json.tmpl");
  const rng = new Rng(2);
  const t = await testSlice(placeOrder, { calls: { inventory, pricing, payment, fulfillment } });
  const statuses = new Map<number | string, number>();
  for (let i = 0; i < 400; i++) {
    const outcome = await t.invoke("placeOrder", JSON.parse(template.expand(rng)));
    const key = outcome.ok
      ? outcome.status!
      : `${outcome.error.status} ${outcome.error.name}: ${outcome.error.message}`;
    statuses.set(key, (statuses.get(key) ?? 0) + 1);
  }
  assertEquals([...statuses], [[201, 400]]);
});
