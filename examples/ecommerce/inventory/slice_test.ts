import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { TestInfra, testSlice } from "@aether/slices/testing";
import inventory, { DEMO_STOCK } from "./slice.ts";
import { newOrderId } from "../shared/mod.ts";
import { expectError, expectErrors, invalid } from "../_testing.ts";

// The shelf is module state (one shelf per instance, as in a worker), shared by every test in this file:
// assertions compare levels before and after instead of assuming the demo levels.

const bad = (message: string) => invalid("InvalidStockRequest", message);

/**
 * Every test runs twice: with the shelf in the instance's memory (`sharedState` off, the default) and in the
 * kv service (`sharedState` on; testSlice's in-memory kv service has the cluster's semantics).
 */
let shared = false;
function inventoryTest(name: string, fn: () => Promise<void>): void {
  Deno.test(`${name} (in memory)`, async () => {
    shared = false;
    await fn();
  });
  Deno.test(`${name} (shared state)`, async () => {
    shared = true;
    await fn();
  });
}

function shelf(config: Record<string, unknown> = {}) {
  return testSlice(inventory, { config: { sharedState: shared, ...config } });
}

async function level(t: Awaited<ReturnType<typeof testSlice<typeof inventory>>>, productId: string) {
  return await t.call("getStock", { productId });
}

inventoryTest("inventory: the demo catalog and its levels", async () => {
  const t = await shelf({ restockBelowPercent: 0 });
  assertEquals(DEMO_STOCK, {
    "LAPTOP-PRO": 50,
    "MOUSE-WIRELESS": 200,
    "KEYBOARD-MECH": 100,
    "MONITOR-4K": 30,
    "HEADSET-BT": 75,
    "WEBCAM-HD": 60,
    "USB-HUB": 150,
    "CHARGER-65W": 120,
  });
  const webcam = await level(t, "webcam-hd");
  assertEquals([webcam.productId, webcam.demoLevel], ["WEBCAM-HD", 60]);
  await expectError(t, "getStock", { productId: "TOASTER-9000" }, {
    name: "ProductNotFound",
    status: 404,
    message: "productId: TOASTER-9000 is not in the catalog",
  });
});

inventoryTest(
  "inventory: checkStock says line by line whether the shelf holds enough, and reserves nothing",
  async () => {
    const t = await shelf();
    const monitors = (await level(t, "MONITOR-4K")).inStock;
    const result = await t.call("checkStock", {
      items: [{ productId: "MOUSE-WIRELESS", quantity: 1 }, {
        productId: "MONITOR-4K",
        quantity: monitors + 1,
      }],
    });
    assertEquals(result.available, false);
    assertEquals(result.items[1], {
      productId: "MONITOR-4K",
      requested: monitors + 1,
      inStock: monitors,
      sufficient: false,
    });
    assertEquals(result.items[0].sufficient, true);
    const fine = await t.call("checkStock", { items: [{ productId: "MONITOR-4K", quantity: monitors }] });
    assertEquals(fine.available, true);
    assertEquals((await level(t, "MONITOR-4K")).inStock, monitors, "checking must not take stock");
    await expectError(t, "checkStock", {
      items: [{ productId: "USB-HUB", quantity: 1 }, { productId: "FLUX-CAPACITOR", quantity: 1 }],
    }, {
      name: "ProductNotFound",
      status: 404,
      message: "items[1].productId: FLUX-CAPACITOR is not in the catalog",
    });
  },
);

inventoryTest("inventory: every malformed request is a 400 that names the field", async () => {
  const t = await shelf();
  const line = { productId: "USB-HUB", quantity: 1 };
  const orderId = newOrderId();
  await expectErrors(t, "checkStock", [
    [[], bad("the request body must be a JSON object, got an array")],
    [null, bad("the request body must be a JSON object, got null")],
    [{ items: [line], extra: 1 }, bad('the request body has an unknown field "extra" (known fields: items)')],
    [{}, bad("items is missing")],
    [{ items: "USB-HUB" }, bad('items must be a JSON array, got "USB-HUB"')],
    [{ items: [] }, bad("items must not be empty")],
    [{ items: Array.from({ length: 21 }, () => line) }, bad("items must have at most 20 entries, got 21")],
    [{ items: [5] }, bad("items[0] must be a JSON object, got 5")],
    [{ items: [line, { productId: "USB-HUB" }] }, bad("items[1].quantity is missing")],
    [{ items: [{ ...line, quantity: 0 }] }, bad("items[0].quantity must be an integer from 1 to 100, got 0")],
    [
      { items: [{ ...line, quantity: 1.5 }] },
      bad("items[0].quantity must be an integer from 1 to 100, got 1.5"),
    ],
    [
      { items: [{ ...line, quantity: "2" }] },
      bad('items[0].quantity must be an integer from 1 to 100, got "2"'),
    ],
    [
      { items: [{ ...line, quantity: 101 }] },
      bad("items[0].quantity must be an integer from 1 to 100, got 101"),
    ],
    [{ items: [{ quantity: 1 }] }, bad("items[0].productId is missing")],
    [{ items: [{ productId: 7, quantity: 1 }] }, bad("items[0].productId must be a string, got 7")],
    [{ items: [{ productId: "  ", quantity: 1 }] }, bad("items[0].productId must not be empty")],
    [
      { items: [{ productId: "USB HUB", quantity: 1 }] },
      bad(
        'items[0].productId must be a product id like LAPTOP-PRO (letters and digits joined by -), got "USB HUB"',
      ),
    ],
    [
      { items: [{ ...line, sku: "x" }] },
      bad('items[0] has an unknown field "sku" (known fields: productId, quantity)'),
    ],
    [
      { items: [line, { productId: "usb-hub", quantity: 2 }] },
      bad("items[1].productId repeats USB-HUB from items[0]; put the whole quantity on one line"),
    ],
  ]);
  await expectErrors(t, "reserveStock", [
    [{ items: [line] }, bad("orderId is missing")],
    [
      { orderId: "12345", items: [line] },
      bad('orderId must be an order id like ORD-0b7c5f0e-8d0a-4a53-9a3e-3f4f8d2a1c9b, got "12345"'),
    ],
    [{ orderId }, bad("items is missing")],
    [
      { orderId, items: [line], note: "gift" },
      bad('the request body has an unknown field "note" (known fields: orderId, items)'),
    ],
  ]);
  await expectErrors(t, "releaseStock", [
    [{}, bad("reservationId is missing")],
    [
      { reservationId: "R-1" },
      bad('reservationId must be a reservation id like RSV-5b0c1e4f-2a8d-4c3e-9f71-0d6a2b9e8c47, got "R-1"'),
    ],
  ]);
  await expectErrors(t, "getStock", [
    [{}, bad("productId is missing")],
    [
      { productId: "no/such" },
      bad('productId must be a product id like LAPTOP-PRO (letters and digits joined by -), got "NO/SUCH"'),
    ],
  ]);
});

inventoryTest(
  "inventory: a reservation takes the stock at once; the same order reserving again gets the same one",
  async () => {
    const t = await shelf({ restockBelowPercent: 0 });
    const before = await level(t, "KEYBOARD-MECH");
    const orderId = newOrderId();
    const items = [{ productId: "KEYBOARD-MECH", quantity: 3 }];
    const reservation = await t.call("reserveStock", { orderId, items });
    assert(/^RSV-[0-9a-f-]{36}$/.test(reservation.reservationId), reservation.reservationId);
    assertEquals([reservation.orderId, reservation.items], [orderId, items]);
    const ttlMs = Date.parse(reservation.expiresAt) - Date.parse(reservation.reservedAt);
    assertEquals(ttlMs, 900_000, "the default release window is 15 minutes");
    const after = await level(t, "KEYBOARD-MECH");
    assertEquals([after.inStock, after.reserved], [before.inStock - 3, before.reserved + 3]);

    // A retried call (same order, same items) must not take the stock twice.
    const again = await t.call("reserveStock", {
      orderId,
      items: [{ productId: "keyboard-mech", quantity: 3 }],
    });
    assertEquals(again, reservation);
    assertEquals((await level(t, "KEYBOARD-MECH")).inStock, before.inStock - 3);

    await expectError(t, "reserveStock", { orderId, items: [{ productId: "KEYBOARD-MECH", quantity: 4 }] }, {
      name: "ReservationAlreadyExists",
      status: 409,
      message: `order ${orderId} already holds reservation ${reservation.reservationId} for other items; ` +
        "release it first",
    });
  },
);

inventoryTest(
  "inventory: a reservation is all or nothing; a shortage is a 409 listing every short line",
  async () => {
    const t = await shelf({ restockBelowPercent: 0 });
    const hubs = (await level(t, "USB-HUB")).inStock;
    const monitors = (await level(t, "MONITOR-4K")).inStock;
    const error = await expectError(t, "reserveStock", {
      orderId: newOrderId(),
      items: [{ productId: "USB-HUB", quantity: 1 }, { productId: "MONITOR-4K", quantity: monitors + 2 }],
    }, {
      name: "InsufficientStock",
      status: 409,
      message: `not enough stock: MONITOR-4K has ${monitors}, ${monitors + 2} requested`,
    });
    assertEquals(error.details, {
      shortages: [{ productId: "MONITOR-4K", requested: monitors + 2, inStock: monitors }],
    });
    assertEquals((await level(t, "USB-HUB")).inStock, hubs, "the line that fitted was not taken either");
    await expectError(t, "reserveStock", {
      orderId: newOrderId(),
      items: [{ productId: "NOPE-1", quantity: 1 }],
    }, { name: "ProductNotFound", status: 404, message: "items[0].productId: NOPE-1 is not in the catalog" });
  },
);

inventoryTest("inventory: release puts the stock back once, however often it is called", async () => {
  const t = await shelf({ restockBelowPercent: 0 });
  const before = await level(t, "HEADSET-BT");
  const reservation = await t.call("reserveStock", {
    orderId: newOrderId(),
    items: [{ productId: "HEADSET-BT", quantity: 5 }],
  });
  assertEquals((await level(t, "HEADSET-BT")).inStock, before.inStock - 5);
  const released = await t.call("releaseStock", { reservationId: reservation.reservationId });
  assertEquals([released.reservationId, released.orderId, released.released], [
    reservation.reservationId,
    reservation.orderId,
    [{ productId: "HEADSET-BT", quantity: 5 }],
  ]);
  assertEquals(await level(t, "HEADSET-BT"), before);
  assertEquals(await t.call("releaseStock", { reservationId: reservation.reservationId }), released);
  assertEquals(await level(t, "HEADSET-BT"), before, "a second release must not add the stock again");

  const unknown = "RSV-00000000-0000-4000-8000-000000000000";
  await expectError(t, "releaseStock", { reservationId: unknown }, {
    name: "ReservationNotFound",
    status: 404,
    message: shared ? `reservation ${unknown} is not known` : `reservation ${unknown} is not known to this ` +
      "instance (reservations live in the memory of the instance that made them)",
  });
});

inventoryTest("inventory: after the release window the stock is sold and a release is a 409", async () => {
  const t = await shelf({ reservationTtlMs: 30, restockBelowPercent: 0 });
  const before = await level(t, "CHARGER-65W");
  const orderId = newOrderId();
  const items = [{ productId: "CHARGER-65W", quantity: 2 }];
  const reservation = await t.call("reserveStock", { orderId, items });
  while (Date.now() < Date.parse(reservation.expiresAt)) await new Promise((r) => setTimeout(r, 10));
  await expectError(t, "releaseStock", { reservationId: reservation.reservationId }, {
    name: "ReservationExpired",
    status: 409,
    message: `reservation ${reservation.reservationId} expired at ${reservation.expiresAt}; ` +
      "its stock is sold and can no longer be released",
  });
  const after = await level(t, "CHARGER-65W");
  assertEquals([after.inStock, after.reserved], [before.inStock - 2, before.reserved]);
  // The expired reservation no longer blocks the order: a new one is made.
  const second = await t.call("reserveStock", { orderId, items });
  assert(second.reservationId !== reservation.reservationId);
});

inventoryTest(
  "inventory: a product falling below the restock share is refilled to its demo level",
  async () => {
    const refilling = await shelf({ restockBelowPercent: 100 });
    const before = (await level(refilling, "LAPTOP-PRO")).inStock;
    await refilling.call("reserveStock", {
      orderId: newOrderId(),
      items: [{ productId: "LAPTOP-PRO", quantity: 1 }],
    });
    const after = (await level(refilling, "LAPTOP-PRO")).inStock;
    assertEquals(after, before > 50 ? before - 1 : 50, "below 100 % of 50 means refilled to 50");
    assert(refilling.logs.some((l) => l.message === "restocked" && l.fields?.productId === "LAPTOP-PRO"));

    const never = await shelf({ restockBelowPercent: 0 });
    await never.call("reserveStock", {
      orderId: newOrderId(),
      items: [{ productId: "LAPTOP-PRO", quantity: 2 }],
    });
    assertEquals((await level(never, "LAPTOP-PRO")).inStock, after - 2);
    assert(!never.logs.some((l) => l.message === "restocked"));
  },
);

inventoryTest("inventory: routes and error mapping", async () => {
  const t = await shelf();
  assertEquals(t.manifest.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`), [
    "checkStock=POST /api/v1/inventory/check",
    "reserveStock=POST /api/v1/inventory/reserve",
    "releaseStock=POST /api/v1/inventory/release",
    "getStock=GET /api/v1/inventory/{productId}",
  ]);
  assertEquals(t.manifest.calls, {});
});

/** A kv whose first reservation record write lands but answers "unavailable" (its primary died after it). */
class RecordOutcomeLost extends TestInfra {
  lost = 0;
  override serve(service: string, method: string, payload: Record<string, unknown>) {
    const outcome = super.serve(service, method, payload);
    if (service !== "kv" || method !== "batch" || !outcome.ok || this.lost > 0) return outcome;
    const ops = payload.ops as Array<{ op: string; map?: string; ifVersion?: number }>;
    const i = ops.findIndex((o) => o.op === "put" && o.map === "inventory.reservations" && o.ifVersion === 0);
    if (i < 0) return outcome;
    this.lost++;
    const results = [...(outcome.value as unknown[])];
    results[i] = {
      ok: false,
      error: { name: "unavailable", code: "unavailable", message: "may or may not have been applied" },
    };
    return { ...outcome, value: results as never };
  }
}

Deno.test("inventory (shared state): a reservation record whose write landed with an unknown outcome is the order's own", async () => {
  const infra = new RecordOutcomeLost();
  const t = await testSlice(inventory, { infra, config: { sharedState: true, restockBelowPercent: 0 } });
  const before = (await t.call("getStock", { productId: "HEADSET-BT" })).inStock;
  const orderId = newOrderId();
  // Before, the reserve failed and gave the units back while the record that landed still held them (a
  // release would then have put them back a second time).
  const reservation = await t.call("reserveStock", {
    orderId,
    items: [{ productId: "HEADSET-BT", quantity: 3 }],
  });
  assertEquals(infra.lost, 1);
  assertEquals(reservation.reservationId, `RSV-${orderId.slice(4)}`);
  assertEquals((await t.call("getStock", { productId: "HEADSET-BT" })).inStock, before - 3, "taken once");
  await t.call("releaseStock", { reservationId: reservation.reservationId });
  assertEquals((await t.call("getStock", { productId: "HEADSET-BT" })).inStock, before, "given back once");
});

/** A kv whose first removal of a reservation record lands but answers "unavailable" (its primary died). */
class DeleteOutcomeLost extends TestInfra {
  lost = 0;
  override serve(service: string, method: string, payload: Record<string, unknown>) {
    const outcome = super.serve(service, method, payload);
    if (service !== "kv" || method !== "batch" || !outcome.ok || this.lost > 0) return outcome;
    const ops = payload.ops as Array<{ op: string; map?: string }>;
    const i = ops.findIndex((o) => o.op === "delete" && o.map === "inventory.reservations");
    if (i < 0) return outcome;
    this.lost++;
    const results = [...(outcome.value as unknown[])];
    results[i] = {
      ok: false,
      error: { name: "unavailable", code: "unavailable", message: "may or may not have been applied" },
    };
    return { ...outcome, value: results as never };
  }
}

Deno.test("inventory (shared state): a short reservation whose record removal had an unknown outcome is still a 409", async () => {
  const infra = new DeleteOutcomeLost();
  const t = await testSlice(inventory, { infra, config: { sharedState: true, restockBelowPercent: 0 } });
  const before = (await t.call("getStock", { productId: "WEBCAM-HD" })).inStock;
  // The take is short, the record was written: both are undone, the record's delete answers "unavailable"
  // although it landed. Before, that failed the reserve with it (a 500), not the 409 the order deserves.
  const outcome = await t.invoke("reserveStock", {
    orderId: newOrderId(),
    items: [{ productId: "WEBCAM-HD", quantity: before + 1 }],
  });
  assert(!outcome.ok && outcome.error.name === "InsufficientStock", JSON.stringify(outcome));
  assertEquals(infra.lost, 1);
  assertEquals((await t.call("getStock", { productId: "WEBCAM-HD" })).inStock, before, "nothing taken");
});
