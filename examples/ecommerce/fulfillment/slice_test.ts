import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { testSlice } from "@aether/slices/testing";
import fulfillment, { s10CheckDigit } from "./slice.ts";
import { newOrderId } from "../shared/mod.ts";
import { address, expectError, expectErrors, invalid } from "../_testing.ts";

const bad = (message: string) => invalid("InvalidShippingRequest", message);

Deno.test("fulfillment: quotes by weight and zone, cheapest first; OVERNIGHT only within the US", async () => {
  const t = await testSlice(fulfillment);
  // 2 × 2000 g + 100 g = 4100 g: 9 started half-kilos.
  const items = [{ productId: "LAPTOP-PRO", quantity: 2 }, { productId: "MOUSE-WIRELESS", quantity: 1 }];
  const domestic = await t.call("calculateShipping", { items, destination: address() as never });
  assertEquals([domestic.zone, domestic.weightGrams, domestic.currency], ["DOMESTIC", 4100, "USD"]);
  assertEquals(domestic.options, [
    { option: "STANDARD", costCents: 599 + 9 * 100, estimatedDays: 5 },
    { option: "EXPRESS", costCents: 1_499 + 9 * 200, estimatedDays: 2 },
    { option: "OVERNIGHT", costCents: 2_999 + 9 * 300, estimatedDays: 1 },
  ]);
  const validMs = Date.parse(domestic.validUntil) - Date.now();
  assert(validMs > 14 * 60_000 && validMs <= 15 * 60_000, domestic.validUntil);

  const germany = address({ country: "DE", postalCode: "10115", city: "Berlin", region: undefined });
  const europe = await t.call("calculateShipping", { items, destination: germany as never });
  assertEquals(europe.zone, "EUROPE");
  assertEquals(europe.options.map((o) => o.option), ["STANDARD", "EXPRESS"]);
  // Exactly 500 g is one half-kilo, 501 g two.
  const light = await t.call("calculateShipping", {
    items: [{ productId: "HEADSET-BT", quantity: 1 }, { productId: "MOUSE-WIRELESS", quantity: 2 }],
    destination: address() as never,
  });
  assertEquals([light.weightGrams, light.options[0].costCents], [500, 699]);
  await expectError(t, "calculateShipping", {
    items: [{ productId: "HOVERBOARD", quantity: 1 }],
    destination: address(),
  }, {
    name: "ProductNotFound",
    status: 404,
    message: "items[0].productId: HOVERBOARD is not in the catalog",
  });
});

Deno.test("fulfillment: a shipment gets a valid S10 tracking number, once per order", async () => {
  const t = await testSlice(fulfillment);
  const request = {
    orderId: newOrderId(),
    items: [{ productId: "MONITOR-4K", quantity: 1 }],
    destination: address(),
    option: "express",
  };
  const shipment = await t.call("createShipment", request as never);
  assert(/^AE\d{9}US$/.test(shipment.trackingNumber), shipment.trackingNumber);
  assertEquals(s10CheckDigit(shipment.trackingNumber.slice(2, 10)), Number(shipment.trackingNumber[10]));
  assertEquals(
    [
      shipment.orderId,
      shipment.option,
      shipment.costCents,
      shipment.weightGrams,
      shipment.status,
      shipment.carrier,
    ],
    [request.orderId, "EXPRESS", 1_499 + 13 * 200, 6_500, "LABEL_CREATED", "Aether Post"],
  );
  assertEquals(
    shipment.estimatedDelivery,
    new Date(Date.parse(shipment.createdAt) + 2 * 86_400_000).toISOString().slice(0, 10),
  );
  assertEquals(
    await t.call("createShipment", request as never),
    shipment,
    "a retried call is the same shipment",
  );
  await expectError(t, "createShipment", { ...request, option: "STANDARD" }, {
    name: "ShipmentAlreadyExists",
    status: 409,
    message: `order ${request.orderId} already has shipment ${shipment.trackingNumber} with other contents`,
  });
  await expectError(t, "createShipment", {
    ...request,
    orderId: newOrderId(),
    destination: address({ country: "JP", postalCode: "100-0001", region: "Tokyo" }),
    option: "OVERNIGHT",
  }, {
    name: "InvalidShippingOption",
    status: 400,
    message: "option: OVERNIGHT is not offered to JP (offered: STANDARD, EXPRESS)",
  });
});

Deno.test("fulfillment: tracking moves one stage per stageSeconds", async () => {
  const t = await testSlice(fulfillment, { config: { stageSeconds: 1 } });
  const shipment = await t.call("createShipment", {
    orderId: newOrderId(),
    items: [{ productId: "USB-HUB", quantity: 1 }],
    destination: address() as never,
    option: "STANDARD",
  });
  const first = await t.call("trackShipment", { trackingNumber: shipment.trackingNumber.toLowerCase() });
  assertEquals([first.trackingNumber, first.orderId, first.status, first.events.map((e) => e.status)], [
    shipment.trackingNumber,
    shipment.orderId,
    "LABEL_CREATED",
    ["LABEL_CREATED"],
  ]);
  while (Date.now() < Date.parse(shipment.createdAt) + 1_000) await new Promise((r) => setTimeout(r, 50));
  const later = await t.call("trackShipment", { trackingNumber: shipment.trackingNumber });
  assertEquals(later.status, "PICKED_UP");
  assertEquals(later.events.map((e) => e.status), ["LABEL_CREATED", "PICKED_UP"]);

  const valid = `AE12345678${s10CheckDigit("12345678")}US`;
  await expectError(t, "trackShipment", { trackingNumber: valid }, {
    name: "ShipmentNotFound",
    status: 404,
    message:
      `shipment ${valid} is not known to this instance (shipments live in the memory of the instance ` +
      "that created them)",
  });
});

Deno.test("fulfillment: every malformed request is a 400 that names the field", async () => {
  const t = await testSlice(fulfillment);
  const items = [{ productId: "USB-HUB", quantity: 1 }];
  const digit = s10CheckDigit("12345678");
  await expectErrors(t, "calculateShipping", [
    [{ items }, bad("destination must be a JSON object, got nothing")],
    [{ items, destination: address({ name: "" }) }, bad("destination.name must not be empty")],
    [{ items, destination: address({ street: undefined }) }, bad("destination.street is missing")],
    [{ items, destination: address({ city: 12 }) }, bad("destination.city must be a string, got 12")],
    [
      { items, destination: address({ postalCode: "6270" }) },
      bad('destination.postalCode must be a United States postal code like 62701, got "6270"'),
    ],
    [
      { items, destination: address({ country: "NL", postalCode: "10115", region: undefined }) },
      bad('destination.postalCode must be a Netherlands postal code like 1012 AB, got "10115"'),
    ],
    [
      { items, destination: address({ country: "XX" }) },
      bad(
        "destination.country XX is not a country the shop ships to (US, CA, GB, DE, FR, NL, ES, IT, JP, AU)",
      ),
    ],
    [
      { items, destination: address({ region: undefined }) },
      bad("destination.region is missing (a US address needs its state, e.g. IL)"),
    ],
    [
      { items, destination: address({ street: "x".repeat(201) }) },
      bad("destination.street must have at most 200 characters, got 201"),
    ],
    [
      { items, destination: address({ floor: 3 }) },
      bad(
        'destination has an unknown field "floor" (known fields: name, street, city, postalCode, country, region)',
      ),
    ],
  ]);
  await expectErrors(t, "createShipment", [
    [{ items, destination: address(), option: "STANDARD" }, bad("orderId is missing")],
    [{ orderId: newOrderId(), items, destination: address() }, bad("option is missing")],
    [
      { orderId: newOrderId(), items, destination: address(), option: "TELEPORT" },
      bad('option must be one of STANDARD, EXPRESS, OVERNIGHT, got "TELEPORT"'),
    ],
  ]);
  await expectErrors(t, "trackShipment", [
    [{}, bad("trackingNumber is missing")],
    [
      { trackingNumber: "1Z999" },
      bad('trackingNumber must be a tracking number like AE123456785US, got "1Z999"'),
    ],
    [
      { trackingNumber: `AE12345678${(digit + 1) % 10}US` },
      bad(
        `trackingNumber AE12345678${
          (digit + 1) % 10
        }US is not a valid tracking number (its check digit is wrong)`,
      ),
    ],
  ]);
});

Deno.test("fulfillment: routes and error mapping", async () => {
  const t = await testSlice(fulfillment);
  assertEquals(t.manifest.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`), [
    "calculateShipping=POST /api/v1/fulfillment/shipping/calculate",
    "createShipment=POST /api/v1/fulfillment/shipments",
    "trackShipment=GET /api/v1/fulfillment/shipments/{trackingNumber}",
  ]);
  // The worked example of the UPU S10 standard: RR 47312482 9 GB.
  assertEquals(s10CheckDigit("47312482"), 9);
});
