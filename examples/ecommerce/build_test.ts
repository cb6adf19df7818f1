/**
 * The example builds the way an operator builds it (`slice build`: `deno bundle`, then the definition read in
 * a sandbox without permissions), and the manifests and the blueprint fit together: every slice place-order
 * calls is in the blueprint at a version its range accepts.
 */

import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { BuiltSlice } from "../../runtime/authoring/mod.ts";
import { parseBlueprint } from "../../runtime/deployment/blueprint.ts";
import { satisfies } from "../../runtime/core/artifact.ts";
import { validateManifest } from "../../slices/manifest.ts";
import { buildExampleSlice, SLICES } from "./_local_shop.ts";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Builds all five once for the tests below, one after the other (the machine is shared). */
const built = new Map<string, BuiltSlice>();
async function builtSlices(): Promise<Map<string, BuiltSlice>> {
  for (const name of SLICES) {
    if (!built.has(name)) built.set(name, await buildExampleSlice(name));
  }
  return built;
}

const routesOf = (b: BuiltSlice) =>
  b.manifest.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`);

Deno.test("every slice of the example builds into one self-contained module with a valid manifest", async () => {
  const slices = await builtSlices();
  for (const [name, slice] of slices) {
    const text = new TextDecoder().decode(slice.bundle);
    assert(!/^\s*import\s/m.test(text) && !/\bfrom\s+["']/.test(text), `${name}: the bundle still imports`);
    assertEquals(slice.manifest.coordinates, `org.example:${name}:1.0.0`);
    assertEquals(validateManifest(JSON.parse(JSON.stringify(slice.manifest))), slice.manifest);
    // Inventory and place-order may keep their state in the cluster's kv service (config sharedState).
    const requires = name === "inventory" || name === "place-order" ? ["kv"] : [];
    assertEquals([slice.manifest.requires, slice.manifest.permissions], [requires, { net: [], env: [] }]);
  }
  // Error classes keep their names in the bundle: the HTTP error mapping matches on them.
  const payment = new TextDecoder().decode(slices.get("payment")!.bundle);
  assert(payment.includes("PaymentDeclined") && payment.includes("InvalidPayment"));
  // place-order imports the other slices' types only: their code is not in its bundle.
  const placeOrder = new TextDecoder().decode(slices.get("place-order")!.bundle);
  assert(!placeOrder.includes("DEMO_STOCK") && !placeOrder.includes("PRICES_CENTS"), "no other slice's code");
});

Deno.test("the manifests declare the methods, routes, error mapping and calls of each slice", async () => {
  const slices = await builtSlices();
  const m = (name: string) => slices.get(name)!.manifest;
  assertEquals(m("place-order").methods, ["placeOrder", "getOrder"]);
  assertEquals(routesOf(slices.get("place-order")!), [
    "placeOrder=POST /api/v1/orders",
    "getOrder=GET /api/v1/orders/{orderId}",
  ]);
  assertEquals(m("place-order").routes?.errors, [
    { status: 400, patterns: ["*Invalid*"] },
    { status: 402, patterns: ["*Declined*", "*PaymentFailed*"] },
    { status: 404, patterns: ["*NotFound*"] },
    { status: 409, patterns: ["*Insufficient*", "*Expired*", "*AlreadyExists*"] },
    { status: 422, patterns: ["*NotApplicable*"] },
  ]);
  assertEquals(m("place-order").calls, {
    inventory: { artifact: "org.example:inventory", range: "^1.0.0" },
    pricing: { artifact: "org.example:pricing", range: "^1.0.0" },
    payment: { artifact: "org.example:payment", range: "^1.0.0" },
    fulfillment: { artifact: "org.example:fulfillment", range: "^1.0.0" },
  });
  assertEquals(m("place-order").config.defaults, {
    callTimeoutMs: 10_000,
    sharedState: false,
    maxStoredOrders: 10_000,
  });

  assertEquals(m("inventory").methods, ["checkStock", "reserveStock", "releaseStock", "getStock"]);
  assertEquals(routesOf(slices.get("inventory")!), [
    "checkStock=POST /api/v1/inventory/check",
    "reserveStock=POST /api/v1/inventory/reserve",
    "releaseStock=POST /api/v1/inventory/release",
    "getStock=GET /api/v1/inventory/{productId}",
  ]);
  assertEquals(m("inventory").config.defaults, {
    sharedState: false,
    reservationTtlMs: 900_000,
    restockBelowPercent: 20,
  });

  assertEquals(routesOf(slices.get("pricing")!), [
    "calculatePrice=POST /api/v1/pricing/calculate",
    "applyDiscount=POST /api/v1/pricing/discount",
    "calculateTax=POST /api/v1/pricing/tax",
  ]);
  assertEquals(routesOf(slices.get("payment")!), [
    "processPayment=POST /api/v1/payment/process",
    "processRefund=POST /api/v1/payment/refund",
  ]);
  assertEquals(routesOf(slices.get("fulfillment")!), [
    "calculateShipping=POST /api/v1/fulfillment/shipping/calculate",
    "createShipment=POST /api/v1/fulfillment/shipments",
    "trackShipment=GET /api/v1/fulfillment/shipments/{trackingNumber}",
  ]);
  for (const name of ["inventory", "pricing", "payment", "fulfillment"]) {
    assertEquals(m(name).calls, {}, name);
  }
});

Deno.test("the blueprint parses and deploys exactly the five slices at versions the calls accept", async () => {
  const slices = await builtSlices();
  const blueprint = parseBlueprint(await Deno.readTextFile(here("./blueprint.toml")));
  assertEquals(blueprint.id, "org.example:ecommerce:1.0.0");
  assertEquals(
    blueprint.slices.map((s) => [s.artifact, s.instances]),
    SLICES.map((n) => [`org.example:${n}:1.0.0`, 3]),
  );
  const listed = new Map(blueprint.slices.map((s) => {
    const [group, artifact, version] = s.artifact.split(":");
    return [`${group}:${artifact}`, version];
  }));
  for (const [client, ref] of Object.entries(slices.get("place-order")!.manifest.calls)) {
    const version = listed.get(ref.artifact);
    assert(
      version !== undefined && satisfies(version, ref.range),
      `calls.${client}: ${ref.artifact} ${ref.range}`,
    );
  }
});
