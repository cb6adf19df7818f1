/**
 * Place-order with the real inventory, pricing, payment and fulfillment slices behind it (their definitions,
 * run by `testSlice` exactly as the sandbox runs them, each hop through JSON). Only the tests that need a
 * dependency to misbehave on purpose replace one with functions.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { testSlice } from "@aether/slices/testing";
import placeOrder from "./slice.ts";
import inventory from "../inventory/slice.ts";
import pricing from "../pricing/slice.ts";
import payment from "../payment/slice.ts";
import fulfillment from "../fulfillment/slice.ts";
import { address, card, expectError, expectErrors, invalid, order, VISA_DECLINED } from "../_testing.ts";

const real = { inventory, pricing, payment, fulfillment };
const bad = (message: string) => invalid("InvalidOrder", message);

/** The dependencies' state is module state, shared with these handles: they read what place-order did. */
const shelf = await testSlice(inventory);
const payments = await testSlice(payment);
const level = async (productId: string) => (await shelf.call("getStock", { productId })).inStock;

Deno.test("place-order: the full flow across the four real slices, with a 201 and a location", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  const laptopsBefore = await level("LAPTOP-PRO");
  const miceBefore = await level("MOUSE-WIRELESS");
  const outcome = await t.invoke(
    "placeOrder",
    order({
      items: [{ productId: "LAPTOP-PRO", quantity: 1 }, { productId: "mouse-wireless", quantity: 2 }],
      shippingOption: "express",
      discountCode: "welcome10",
    }),
    { requestId: "req-flow-1" },
  );
  assert(outcome.ok, JSON.stringify(outcome));
  const confirmation = outcome.value as Awaited<ReturnType<typeof t.call<"placeOrder">>>;
  assertEquals(outcome.status, 201);
  assertEquals(outcome.headers, { location: `/api/v1/orders/${confirmation.orderId}` });
  assert(/^ORD-[0-9a-f-]{36}$/.test(confirmation.orderId), confirmation.orderId);

  // 129999 + 2 × 2999 = 135997; WELCOME10 takes 13600 (13599.7 rounded half up) → 122397;
  // EXPRESS for 2200 g (5 half-kilos) is 1499 + 5 × 200 = 2499; Illinois 6.25 % of 122397 is 7650.
  assertEquals(confirmation.totals, {
    currency: "USD",
    subtotalCents: 135_997,
    discountCents: 13_600,
    shippingCents: 2_499,
    taxCents: 7_650,
    totalCents: 132_546,
  });
  assertEquals(confirmation.lines, [
    { productId: "LAPTOP-PRO", quantity: 1, unitPriceCents: 129_999, lineTotalCents: 129_999 },
    { productId: "MOUSE-WIRELESS", quantity: 2, unitPriceCents: 2_999, lineTotalCents: 5_998 },
  ]);
  assertEquals(
    [confirmation.status, confirmation.customerId, confirmation.email, confirmation.discountCode],
    ["CONFIRMED", "CUST-1001", "ada@example.com", "WELCOME10"],
  );
  assertEquals(confirmation.taxRatePercent, 6.25);
  assert(/^RSV-/.test(confirmation.reservation.reservationId));
  assertEquals([confirmation.payment.cardBrand, confirmation.payment.cardLast4], ["VISA", "4242"]);
  assert(/^TXN-/.test(confirmation.payment.transactionId));
  assert(/^AE\d{9}US$/.test(confirmation.shipment.trackingNumber), confirmation.shipment.trackingNumber);
  assertEquals(confirmation.shipment.option, "EXPRESS");

  // The calls, in order, each carrying the request id; pricing and fulfillment quoted side by side.
  assertEquals(t.outbound.map((c) => `${c.name}.${c.method}`), [
    "inventory.checkStock",
    "pricing.calculatePrice",
    "fulfillment.calculateShipping",
    "pricing.applyDiscount",
    "pricing.calculateTax",
    "inventory.reserveStock",
    "payment.processPayment",
    "fulfillment.createShipment",
  ]);
  assert(t.outbound.every((c) => c.requestId === "req-flow-1" && !c.fireAndForget));
  assertEquals(t.outbound[6].payload, {
    orderId: confirmation.orderId,
    customerId: "CUST-1001",
    amountCents: 132_546,
    currency: "USD",
    paymentMethod: card({ cardNumber: "4242424242424242" }),
  });

  // The stock was taken, the payment exists (it can be refunded), and the order can be read back.
  assertEquals([await level("LAPTOP-PRO"), await level("MOUSE-WIRELESS")], [
    laptopsBefore - 1,
    miceBefore - 2,
  ]);
  const refund = await payments.call("processRefund", {
    transactionId: confirmation.payment.transactionId,
    amountCents: 1,
    reason: "test: the charge exists",
  });
  assertEquals(refund.remainingCents, 132_545);
  assertEquals(await t.call("getOrder", { orderId: confirmation.orderId }), confirmation);
  assert(t.logs.some((l) => l.message === "order placed" && l.requestId === "req-flow-1"));
});

Deno.test("place-order: without options, shipping is STANDARD and there is no discount", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  const confirmation = await t.call("placeOrder", order() as never);
  // 2 mice: 5998; 200 g is one half-kilo: 599 + 100; Illinois 6.25 % of 5998 is 374.875 → 375.
  assertEquals(confirmation.totals, {
    currency: "USD",
    subtotalCents: 5_998,
    discountCents: 0,
    shippingCents: 699,
    taxCents: 375,
    totalCents: 7_072,
  });
  assertEquals([confirmation.shipment.option, confirmation.discountCode], ["STANDARD", null]);
});

Deno.test("place-order: a declined payment releases the reservation (compensation) and answers 402", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  const before = await level("WEBCAM-HD");
  const error = await expectError(
    t,
    "placeOrder",
    order({
      items: [{ productId: "WEBCAM-HD", quantity: 3 }],
      paymentMethod: card({ cardNumber: VISA_DECLINED }),
    }),
    {
      name: "PaymentDeclined",
      status: 402,
      message: "the VISA card ending 0002 was declined (card_declined); $198.21 was not charged",
    },
  );
  assertEquals(error.details, { declineCode: "card_declined", cardLast4: "0002" });
  const calls = t.outbound.map((c) => `${c.name}.${c.method}`);
  assertEquals(calls.slice(-3), [
    "inventory.reserveStock",
    "payment.processPayment",
    "inventory.releaseStock",
  ]);
  assert(!calls.includes("fulfillment.createShipment"), "no shipment for an unpaid order");
  const reserved = t.outbound.find((c) => c.method === "reserveStock")!;
  const released = t.outbound.find((c) => c.method === "releaseStock")!;
  assertEquals(
    (released.payload as { reservationId: string }).reservationId,
    t.logs.find((l) => l.message === "reservation released")?.fields?.reservationId,
  );
  assertEquals((reserved.payload as { items: unknown }).items, [{ productId: "WEBCAM-HD", quantity: 3 }]);
  assertEquals(await level("WEBCAM-HD"), before, "the reserved webcams are back on the shelf");
  assert(t.logs.some((l) => l.level === "warn" && l.message === "payment failed; releasing the stock"));
});

Deno.test("place-order: not enough stock is a 409 before anything is reserved or charged", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  const monitors = await level("MONITOR-4K");
  const error = await expectError(
    t,
    "placeOrder",
    order({
      items: [{ productId: "USB-HUB", quantity: 1 }, { productId: "MONITOR-4K", quantity: monitors + 1 }],
    }),
    {
      name: "InsufficientStock",
      status: 409,
      message: `not enough stock: MONITOR-4K has ${monitors}, ${monitors + 1} requested`,
    },
  );
  assertEquals(error.details, {
    shortages: [{ productId: "MONITOR-4K", requested: monitors + 1, inStock: monitors }],
  });
  assertEquals(t.outbound.map((c) => `${c.name}.${c.method}`), ["inventory.checkStock"]);
  assertEquals(await level("MONITOR-4K"), monitors);
});

Deno.test("place-order: the other slices' refusals keep their names and statuses; nothing is reserved", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  await expectError(t, "placeOrder", order({ items: [{ productId: "JETPACK", quantity: 1 }] }), {
    name: "ProductNotFound",
    status: 404,
    message: "items[0].productId: JETPACK is not in the catalog",
  });
  await expectError(t, "placeOrder", order({ discountCode: "SAVE20" }), {
    name: "DiscountNotApplicable",
    status: 422,
    message: "SAVE20 needs a subtotal of at least $500.00; this one is $59.98",
  });
  await expectError(t, "placeOrder", order({ discountCode: "FREE100" }), {
    name: "InvalidDiscountCode",
    status: 400,
    message: "code: FREE100 is not a discount code",
  });
  await expectError(
    t,
    "placeOrder",
    order({
      shippingAddress: address({ country: "DE", postalCode: "10115", city: "Berlin", region: undefined }),
      shippingOption: "OVERNIGHT",
    }),
    bad("shippingOption OVERNIGHT is not offered to DE (offered: STANDARD, EXPRESS)"),
  );
  assert(
    !t.outbound.some((c) => c.method === "reserveStock"),
    JSON.stringify(t.outbound.map((c) => c.method)),
  );
});

Deno.test("place-order: every malformed order is a 400 naming the field, before any other slice is called", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  const year = new Date().getUTCFullYear();
  await expectErrors(t, "placeOrder", [
    ["order", bad('the request body must be a JSON object, got "order"')],
    [
      order({ coupon: "X" }),
      bad(
        'the request body has an unknown field "coupon" (known fields: customerId, email, items, shippingAddress, ' +
          "paymentMethod, shippingOption, discountCode)",
      ),
    ],
    [order({ customerId: undefined }), bad("customerId is missing")],
    [
      order({ customerId: "-x1" }),
      bad('customerId must be 3 to 64 letters, digits, - or _ (starting with a letter or digit), got "-x1"'),
    ],
    [order({ email: undefined }), bad("email is missing")],
    [order({ email: "ada" }), bad('email must be an e-mail address like ada@example.com, got "ada"')],
    [
      order({ email: "ada@localhost" }),
      bad('email must be an e-mail address like ada@example.com, got "ada@localhost"'),
    ],
    [
      order({ email: "a da@example.com" }),
      bad('email must be an e-mail address like ada@example.com, got "a da@example.com"'),
    ],
    [order({ items: [] }), bad("items must not be empty")],
    [
      order({ items: [{ productId: "USB-HUB", quantity: 0 }] }),
      bad("items[0].quantity must be an integer from 1 to 100, got 0"),
    ],
    [
      order({ items: [{ productId: "USB-HUB", quantity: 1 }, { productId: "USB-HUB", quantity: 1 }] }),
      bad("items[1].productId repeats USB-HUB from items[0]; put the whole quantity on one line"),
    ],
    [order({ shippingAddress: undefined }), bad("shippingAddress must be a JSON object, got nothing")],
    [order({ shippingAddress: address({ city: "" }) }), bad("shippingAddress.city must not be empty")],
    [
      order({ shippingAddress: address({ postalCode: "ABCDE" }) }),
      bad('shippingAddress.postalCode must be a United States postal code like 62701, got "ABCDE"'),
    ],
    [
      order({ shippingAddress: address({ country: "MX" }) }),
      bad(
        "shippingAddress.country MX is not a country the shop ships to (US, CA, GB, DE, FR, NL, ES, IT, JP, AU)",
      ),
    ],
    [
      order({ shippingAddress: address({ region: "Illinois" }) }),
      bad('shippingAddress.region must be a US state code like IL, got "Illinois"'),
    ],
    [order({ paymentMethod: undefined }), bad("paymentMethod must be a JSON object, got nothing")],
    [
      order({ paymentMethod: card({ cardNumber: "4242424242424243" }) }),
      bad("paymentMethod.cardNumber is not a valid card number (its check digit is wrong)"),
    ],
    [
      order({ paymentMethod: card({ expiryYear: year - 2 }) }),
      bad(`paymentMethod.expiryYear must be an integer from ${year} to ${year + 20}, got ${year - 2}`),
    ],
    [
      order({ paymentMethod: card({ cvv: "1" }) }),
      bad("paymentMethod.cvv must be a string of 3 digits for this VISA card"),
    ],
    [order({ paymentMethod: card({ holderName: undefined }) }), bad("paymentMethod.holderName is missing")],
    [
      order({ shippingOption: "DRONE" }),
      bad('shippingOption must be one of STANDARD, EXPRESS, OVERNIGHT, got "DRONE"'),
    ],
    [
      order({ discountCode: "SAVE 20" }),
      bad('discountCode must be a discount code of letters and digits, got "SAVE 20"'),
    ],
    [order({ discountCode: 20 }), bad("discountCode must be a string, got 20")],
  ]);
  assertEquals(t.outbound, [], "a malformed order never reaches another slice");
});

Deno.test("place-order: pricing and fulfillment are asked in parallel", async () => {
  // Each quote waits until the other has been asked for: sequential calls would never get past the first.
  let bothAsked: () => void;
  const asked = new Promise<void>((resolve) => bothAsked = resolve);
  let count = 0;
  const meet = () => {
    if (++count === 2) bothAsked();
    return Promise.race([
      asked,
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error("the other quote was never asked")), 2_000)
      ),
    ]);
  };
  const pricingHandle = await testSlice(pricing);
  const fulfillmentHandle = await testSlice(fulfillment);
  const t = await testSlice(placeOrder, {
    calls: {
      inventory,
      payment,
      pricing: {
        calculatePrice: async (r: never) => (await meet(), pricingHandle.call("calculatePrice", r)),
        applyDiscount: (r: never) => pricingHandle.call("applyDiscount", r),
        calculateTax: (r: never) => pricingHandle.call("calculateTax", r),
      },
      fulfillment: {
        calculateShipping: async (r: never) => (await meet(), fulfillmentHandle.call("calculateShipping", r)),
        createShipment: (r: never) => fulfillmentHandle.call("createShipment", r),
      },
    },
  });
  const confirmation = await t.call("placeOrder", order() as never);
  assertEquals(confirmation.status, "CONFIRMED");
});

Deno.test("place-order: a failed shipment refunds the payment and releases the stock", async () => {
  const fulfillmentHandle = await testSlice(fulfillment);
  class CarrierUnavailable extends Error {
    override name = "CarrierUnavailable";
  }
  const t = await testSlice(placeOrder, {
    calls: {
      inventory,
      pricing,
      payment,
      fulfillment: {
        calculateShipping: (r: never) => fulfillmentHandle.call("calculateShipping", r),
        createShipment: () => {
          throw new CarrierUnavailable("no carrier accepts parcels right now");
        },
      },
    },
  });
  const before = await level("KEYBOARD-MECH");
  await expectError(t, "placeOrder", order({ items: [{ productId: "KEYBOARD-MECH", quantity: 1 }] }), {
    name: "CarrierUnavailable",
    status: 500,
    message: "no carrier accepts parcels right now",
  });
  const calls = t.outbound.map((c) => `${c.name}.${c.method}`);
  assertEquals(calls.slice(-3), [
    "fulfillment.createShipment",
    "payment.processRefund",
    "inventory.releaseStock",
  ]);
  const charged = t.outbound.find((c) => c.method === "processPayment")!;
  const refund = t.outbound.find((c) => c.method === "processRefund")!.payload as { transactionId: string };
  // The refund went through: the transaction has nothing left to refund.
  await expectError(payments, "processRefund", { transactionId: refund.transactionId, reason: "again" }, {
    name: "InvalidRefund",
    status: 400,
    message: `amountCents cannot be refunded: transaction ${refund.transactionId} is fully refunded`,
  });
  const { orderId } = charged.payload as { orderId: string };
  assertEquals(t.outbound.find((c) => c.method === "processRefund")!.payload, {
    transactionId: refund.transactionId,
    reason: `shipment for ${orderId} could not be created`,
  });
  assertEquals(await level("KEYBOARD-MECH"), before);
});

Deno.test("place-order: getOrder answers 404 for an unknown order and 400 for a malformed id", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  const unknown = "ORD-00000000-0000-4000-8000-000000000000";
  await expectError(t, "getOrder", { orderId: unknown }, {
    name: "OrderNotFound",
    status: 404,
    message:
      `order ${unknown} is not known to this instance (orders live in the memory of the instance that ` +
      "placed them)",
  });
  const shared = await testSlice(placeOrder, { calls: real, config: { sharedState: true } });
  await expectError(shared, "getOrder", { orderId: unknown }, {
    name: "OrderNotFound",
    status: 404,
    message: `order ${unknown} is not known`,
  });
  await expectError(
    t,
    "getOrder",
    { orderId: "42" },
    bad('orderId must be an order id like ORD-0b7c5f0e-8d0a-4a53-9a3e-3f4f8d2a1c9b, got "42"'),
  );
});

Deno.test("place-order: its manifest declares the four slices it calls, with version ranges", async () => {
  const t = await testSlice(placeOrder, { calls: real });
  assertEquals(t.manifest.calls, {
    inventory: { artifact: "org.example:inventory", range: "^1.0.0" },
    pricing: { artifact: "org.example:pricing", range: "^1.0.0" },
    payment: { artifact: "org.example:payment", range: "^1.0.0" },
    fulfillment: { artifact: "org.example:fulfillment", range: "^1.0.0" },
  });
  assertEquals(t.manifest.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`), [
    "placeOrder=POST /api/v1/orders",
    "getOrder=GET /api/v1/orders/{orderId}",
  ]);
});
