/**
 * The example over HTTP: the built bundles in real sandboxes behind the node's application HTTP handler
 * (`_local_shop.ts`), every route called with fetch as the README's curl commands do, failures included.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { startLocalShop } from "./_local_shop.ts";
import { address, card, order, VISA_DECLINED } from "./_testing.ts";

const shop = await startLocalShop();

async function call(method: string, path: string, body?: unknown, raw?: string) {
  const response = await fetch(shop.url + path, {
    method,
    headers: body === undefined && raw === undefined ? {} : { "content-type": "application/json" },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    // deno-lint-ignore no-explicit-any
    json: (text === "" ? null : JSON.parse(text)) as any,
  };
}

/** A problem document's fields that matter to a client. */
function problem(r: Awaited<ReturnType<typeof call>>) {
  assertEquals(r.headers.get("content-type"), "application/problem+json");
  assertEquals(r.json.requestId, r.headers.get("x-request-id"));
  return { status: r.json.status, title: r.json.title, detail: r.json.detail };
}

Deno.test({
  name:
    "http: an order is placed with 201 and a location, then read back; the request id reaches every slice",
  async fn() {
    const response = await fetch(`${shop.url}/api/v1/orders`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "curl-demo-1" },
      body: JSON.stringify(order({ discountCode: "WELCOME10" })),
    });
    const confirmation = await response.json();
    assertEquals(response.status, 201);
    assertEquals(response.headers.get("location"), `/api/v1/orders/${confirmation.orderId}`);
    assertEquals(response.headers.get("x-request-id"), "curl-demo-1");
    assertEquals(confirmation.totals.totalCents, 6_434);
    const again = await call("GET", response.headers.get("location")!);
    assertEquals([again.status, again.json], [200, confirmation]);
    const tracked = await call(
      "GET",
      `/api/v1/fulfillment/shipments/${confirmation.shipment.trackingNumber}`,
    );
    assertEquals([tracked.status, tracked.json.orderId, tracked.json.status], [
      200,
      confirmation.orderId,
      "LABEL_CREATED",
    ]);
    const loggedBy = new Set(
      shop.logs.filter((l) => l.requestId === "curl-demo-1").map((l) => l.coordinates),
    );
    assertEquals(loggedBy.size, 5, [...loggedBy].join(", "));
  },
});

Deno.test("http: every refusal of an order is a problem document with the mapped status", async () => {
  const invalid = await call(
    "POST",
    "/api/v1/orders",
    order({ items: [{ productId: "USB-HUB", quantity: 0 }] }),
  );
  assertEquals(problem(invalid), {
    status: 400,
    title: "InvalidOrder",
    detail: "items[0].quantity must be an integer from 1 to 100, got 0",
  });
  assertEquals(invalid.json.details, {
    field: "items[0].quantity",
    reason: "must be an integer from 1 to 100, got 0",
  });
  assertEquals([invalid.json.slice, invalid.json.method, invalid.json.instance], [
    "org.example:place-order",
    "placeOrder",
    "/api/v1/orders",
  ]);

  const declined = await call(
    "POST",
    "/api/v1/orders",
    order({ paymentMethod: card({ cardNumber: VISA_DECLINED }) }),
  );
  assertEquals(problem(declined), {
    status: 402,
    title: "PaymentDeclined",
    detail: "the VISA card ending 0002 was declined (card_declined); $70.72 was not charged",
  });

  const stock = await call("GET", "/api/v1/inventory/MONITOR-4K");
  const tooMany = await call(
    "POST",
    "/api/v1/orders",
    order({
      items: [{ productId: "MONITOR-4K", quantity: stock.json.inStock + 1 }],
    }),
  );
  assertEquals(problem(tooMany).status, 409);
  assertEquals(tooMany.json.title, "InsufficientStock");

  const unknown = await call(
    "POST",
    "/api/v1/orders",
    order({ items: [{ productId: "JETPACK", quantity: 1 }] }),
  );
  assertEquals(problem(unknown), {
    status: 404,
    title: "ProductNotFound",
    detail: "items[0].productId: JETPACK is not in the catalog",
  });
  const notApplicable = await call("POST", "/api/v1/orders", order({ discountCode: "SAVE20" }));
  assertEquals(problem(notApplicable).status, 422);
  const missing = await call("GET", "/api/v1/orders/ORD-00000000-0000-4000-8000-000000000000");
  assertEquals([problem(missing).status, missing.json.title], [404, "OrderNotFound"]);

  // The HTTP layer's own refusals.
  const malformed = await call("POST", "/api/v1/orders", undefined, '{"customerId": ');
  assertEquals(problem(malformed).status, 400);
  assert(malformed.json.detail.startsWith("the request body is not valid JSON"), malformed.json.detail);
  const wrongMethod = await call("DELETE", "/api/v1/orders");
  assertEquals([wrongMethod.status, wrongMethod.headers.get("allow")], [405, "POST"]);
});

Deno.test("http: the inventory routes", async () => {
  const before = await call("GET", "/api/v1/inventory/laptop-pro");
  assertEquals([before.status, before.json.productId, before.json.demoLevel], [200, "LAPTOP-PRO", 50]);
  const items = [{ productId: "LAPTOP-PRO", quantity: 2 }];
  const check = await call("POST", "/api/v1/inventory/check", { items });
  assertEquals([check.status, check.json.available], [200, true]);
  const orderId = "ORD-7d0c9e2a-1b3f-4c5d-8e6f-a1b2c3d4e5f6";
  const reserved = await call("POST", "/api/v1/inventory/reserve", { orderId, items });
  assertEquals([reserved.status, reserved.json.orderId], [200, orderId]);
  assertEquals((await call("GET", "/api/v1/inventory/LAPTOP-PRO")).json.reserved, before.json.reserved + 2);
  const released = await call("POST", "/api/v1/inventory/release", {
    reservationId: reserved.json.reservationId,
  });
  assertEquals([released.status, released.json.released], [200, items]);
  assertEquals(problem(await call("GET", "/api/v1/inventory/FLUX-CAPACITOR")).status, 404);
  assertEquals(
    problem(await call("POST", "/api/v1/inventory/check", { items: [] })).detail,
    "items must not be empty",
  );
});

Deno.test("http: the pricing, payment and fulfillment routes", async () => {
  const price = await call("POST", "/api/v1/pricing/calculate", {
    items: [{ productId: "USB-HUB", quantity: 2 }],
  });
  assertEquals([price.status, price.json.subtotalCents], [200, 4_998]);
  const discount = await call("POST", "/api/v1/pricing/discount", {
    customerId: "CUST-1001",
    subtotalCents: 60_000,
    code: "SAVE20",
  });
  assertEquals(discount.json.totalCents, 48_000);
  const tax = await call("POST", "/api/v1/pricing/tax", { amountCents: 10_000, country: "US", region: "NY" });
  assertEquals(tax.json.taxCents, 400);
  assertEquals(
    problem(
      await call("POST", "/api/v1/pricing/discount", {
        customerId: "CUST-1001",
        subtotalCents: 100,
        code: "BULK15",
      }),
    ).status,
    422,
  );

  const orderId = "ORD-1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
  const paid = await call("POST", "/api/v1/payment/process", {
    orderId,
    customerId: "CUST-1001",
    amountCents: 4_998,
    paymentMethod: card(),
  });
  assertEquals([paid.status, paid.json.status], [200, "CAPTURED"]);
  const refund = await call("POST", "/api/v1/payment/refund", {
    transactionId: paid.json.transactionId,
    reason: "changed mind",
  });
  assertEquals([refund.status, refund.json.status], [200, "REFUNDED"]);
  const declined = await call("POST", "/api/v1/payment/process", {
    orderId: "ORD-2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
    customerId: "CUST-1001",
    amountCents: 4_998,
    paymentMethod: card({ cardNumber: "4000000000009995" }),
  });
  assertEquals([problem(declined).status, declined.json.details], [402, {
    declineCode: "insufficient_funds",
    cardLast4: "9995",
  }]);

  const quote = await call("POST", "/api/v1/fulfillment/shipping/calculate", {
    items: [{ productId: "MONITOR-4K", quantity: 1 }],
    destination: address({ country: "GB", postalCode: "SW1A 1AA", city: "London", region: undefined }),
  });
  assertEquals([quote.status, quote.json.zone, quote.json.options.length], [200, "EUROPE", 2]);
  const shipment = await call("POST", "/api/v1/fulfillment/shipments", {
    orderId,
    items: [{ productId: "MONITOR-4K", quantity: 1 }],
    destination: address(),
    option: "OVERNIGHT",
  });
  assertEquals([shipment.status, shipment.json.option], [200, "OVERNIGHT"]);
  const malformed = await call("GET", "/api/v1/fulfillment/shipments/AE000000000US");
  assertEquals(problem(malformed).status, 400, "a tracking number whose check digit is wrong is malformed");
  const unknown = await call("GET", "/api/v1/fulfillment/shipments/AE000000005US");
  assertEquals([problem(unknown).status, unknown.json.title], [404, "ShipmentNotFound"]);
});

Deno.test("http: stop the local shop", () => shop.close());
