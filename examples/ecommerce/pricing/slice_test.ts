import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { testSlice } from "@aether/slices/testing";
import pricing, { COUNTRY_TAX, US_STATE_TAX } from "./slice.ts";
import { COUNTRIES, US_STATES } from "../shared/mod.ts";
import { expectError, expectErrors, invalid } from "../_testing.ts";

const bad = (message: string) => invalid("InvalidPricingRequest", message);

Deno.test("pricing: calculatePrice prices each line at the catalog price, in cents", async () => {
  const t = await testSlice(pricing);
  assertEquals(
    await t.call("calculatePrice", {
      items: [{ productId: "LAPTOP-PRO", quantity: 1 }, { productId: "usb-hub", quantity: 3 }],
    }),
    {
      currency: "USD",
      lines: [
        { productId: "LAPTOP-PRO", quantity: 1, unitPriceCents: 129_999, lineTotalCents: 129_999 },
        { productId: "USB-HUB", quantity: 3, unitPriceCents: 2_499, lineTotalCents: 7_497 },
      ],
      subtotalCents: 137_496,
    },
  );
  await expectError(t, "calculatePrice", { items: [{ productId: "TIME-MACHINE", quantity: 1 }] }, {
    name: "ProductNotFound",
    status: 404,
    message: "items[0].productId: TIME-MACHINE has no price (it is not in the catalog)",
  });
});

Deno.test("pricing: discount codes with percentages and minimum purchases", async () => {
  const t = await testSlice(pricing);
  const discount = (subtotalCents: number, code?: string | null) =>
    t.call("applyDiscount", { customerId: "CUST-1", subtotalCents, code });
  assertEquals(await discount(10_000), {
    code: null,
    percentOff: 0,
    subtotalCents: 10_000,
    discountCents: 0,
    totalCents: 10_000,
  });
  assertEquals(await discount(10_000, null), await discount(10_000));
  assertEquals(await discount(12_345, "welcome10"), {
    code: "WELCOME10",
    percentOff: 10,
    subtotalCents: 12_345,
    discountCents: 1_235, // 1234.5 rounds half up
    totalCents: 11_110,
  });
  assertEquals((await discount(50_000, "SAVE20")).discountCents, 10_000);
  assertEquals((await discount(100_000, "BULK15")).totalCents, 85_000);
  await expectError(t, "applyDiscount", { customerId: "CUST-1", subtotalCents: 49_999, code: "SAVE20" }, {
    name: "DiscountNotApplicable",
    status: 422,
    message: "SAVE20 needs a subtotal of at least $500.00; this one is $499.99",
  });
  await expectError(t, "applyDiscount", { customerId: "CUST-1", subtotalCents: 99_999, code: "BULK15" }, {
    name: "DiscountNotApplicable",
    status: 422,
    message: "BULK15 needs a subtotal of at least $1,000.00; this one is $999.99",
  });
  await expectError(t, "applyDiscount", { customerId: "CUST-1", subtotalCents: 100, code: "FREESTUFF" }, {
    name: "InvalidDiscountCode",
    status: 400,
    message: "code: FREESTUFF is not a discount code",
  });
  assertEquals(t.logs.filter((l) => l.message === "discount applied").length, 3);
});

Deno.test("pricing: tax by US state or by country, on integer cents", async () => {
  const t = await testSlice(pricing);
  assertEquals(await t.call("calculateTax", { amountCents: 10_000, country: "US", region: "ca" }), {
    country: "US",
    region: "CA",
    ratePercent: 7.25,
    amountCents: 10_000,
    taxCents: 725,
    totalCents: 10_725,
  });
  // 6.875 % of $99.99 is 687.43125 cents.
  assertEquals(
    (await t.call("calculateTax", { amountCents: 9_999, country: "US", region: "MN" })).taxCents,
    687,
  );
  assertEquals(
    (await t.call("calculateTax", { amountCents: 9_999, country: "US", region: "OR" })).taxCents,
    0,
  );
  assertEquals(await t.call("calculateTax", { amountCents: 10_000, country: "de" }), {
    country: "DE",
    ratePercent: 19,
    amountCents: 10_000,
    taxCents: 1_900,
    totalCents: 11_900,
  });
  assertEquals(
    (await t.call("calculateTax", { amountCents: 10_000, country: "GB", region: "England" })).region,
    "England",
  );
  // Every destination the shop ships to has a rate.
  assertEquals(Object.keys(US_STATE_TAX).sort(), [...US_STATES].sort());
  assertEquals(Object.keys(COUNTRY_TAX).sort(), Object.keys(COUNTRIES).filter((c) => c !== "US").sort());
});

Deno.test("pricing: every malformed request is a 400 that names the field", async () => {
  const t = await testSlice(pricing);
  await expectErrors(t, "calculatePrice", [
    ["items", bad('the request body must be a JSON object, got "items"')],
    [{ items: [] }, bad("items must not be empty")],
    [
      { items: [{ productId: "USB-HUB", quantity: -1 }] },
      bad("items[0].quantity must be an integer from 1 to 100, got -1"),
    ],
  ]);
  await expectErrors(t, "applyDiscount", [
    [{ subtotalCents: 100 }, bad("customerId is missing")],
    [
      { customerId: "C", subtotalCents: 100 },
      bad("customerId must have at least 3 characters"),
    ],
    [
      { customerId: "CUST 1", subtotalCents: 100 },
      bad(
        'customerId must be 3 to 64 letters, digits, - or _ (starting with a letter or digit), got "CUST 1"',
      ),
    ],
    [{ customerId: "CUST-1" }, bad("subtotalCents is missing")],
    [
      { customerId: "CUST-1", subtotalCents: 12.5 },
      bad("subtotalCents must be an integer number of cents from 0 to 100000000, got 12.5"),
    ],
    [
      { customerId: "CUST-1", subtotalCents: -1 },
      bad("subtotalCents must be an integer number of cents from 0 to 100000000, got -1"),
    ],
    [
      { customerId: "CUST-1", subtotalCents: 100, code: "10% OFF" },
      bad('code must be a discount code of letters and digits, got "10% OFF"'),
    ],
    [
      { customerId: "CUST-1", subtotalCents: 100, coupon: "X" },
      bad('the request body has an unknown field "coupon" (known fields: customerId, subtotalCents, code)'),
    ],
  ]);
  await expectErrors(t, "calculateTax", [
    [{ country: "US", region: "IL" }, bad("amountCents is missing")],
    [{ amountCents: 100 }, bad("country is missing")],
    [{ amountCents: 100, country: "USA" }, bad("country must have at most 2 characters, got 3")],
    [{ amountCents: 100, country: "B1" }, bad('country must be a two-letter code, got "B1"')],
    [
      { amountCents: 100, country: "BR" },
      bad("country BR is not a country the shop ships to (US, CA, GB, DE, FR, NL, ES, IT, JP, AU)"),
    ],
    [{ amountCents: 100, country: "US" }, bad("region is missing (a US address needs its state, e.g. IL)")],
    [
      { amountCents: 100, country: "US", region: "XX" },
      bad('region must be a US state code like IL, got "XX"'),
    ],
  ]);
});

Deno.test("pricing: routes and error mapping", async () => {
  const t = await testSlice(pricing);
  assertEquals(t.manifest.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`), [
    "calculatePrice=POST /api/v1/pricing/calculate",
    "applyDiscount=POST /api/v1/pricing/discount",
    "calculateTax=POST /api/v1/pricing/tax",
  ]);
});
