import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { testSlice } from "@aether/slices/testing";
import payment from "./slice.ts";
import { luhnValid, newOrderId } from "../shared/mod.ts";
import { card, expectError, expectErrors, EXPIRY_YEAR, invalid } from "../_testing.ts";

const bad = (message: string) => invalid("InvalidPayment", message);
const badRefund = (message: string) => invalid("InvalidRefund", message);

function charge(overrides: Record<string, unknown> = {}) {
  return {
    orderId: newOrderId(),
    customerId: "CUST-1001",
    amountCents: 12_345,
    paymentMethod: card(),
    ...overrides,
  };
}

Deno.test("payment: a valid card is charged once per order", async () => {
  const t = await testSlice(payment);
  const request = charge();
  const result = await t.call("processPayment", request as never);
  assert(/^TXN-[0-9a-f-]{36}$/.test(result.transactionId), result.transactionId);
  assertEquals(
    [result.orderId, result.status, result.amountCents, result.currency, result.cardBrand, result.cardLast4],
    [request.orderId, "CAPTURED", 12_345, "USD", "VISA", "4242"],
  );
  // A retried call for the same order and amount is the same transaction, not a second charge.
  assertEquals(await t.call("processPayment", request as never), result);
  await expectError(t, "processPayment", { ...request, amountCents: 999 }, {
    name: "PaymentAlreadyExists",
    status: 409,
    message: `order ${request.orderId} was already charged $123.45 (transaction ${result.transactionId}); ` +
      "refusing a second charge of $9.99",
  });
  for (const [number, brand] of [["5555555555554444", "MASTERCARD"], ["378282246310005", "AMEX"]]) {
    const cvv = brand === "AMEX" ? "1234" : "123";
    const paid = await t.call(
      "processPayment",
      charge({ paymentMethod: card({ cardNumber: number, cvv }) }) as never,
    );
    assertEquals([paid.cardBrand, paid.cardLast4], [brand, number.slice(-4)]);
  }
});

Deno.test("payment: the documented test cards are declined with 402", async () => {
  const t = await testSlice(payment);
  const declined = await expectError(
    t,
    "processPayment",
    charge({ paymentMethod: card({ cardNumber: "4000 0000 0000 0002" }) }),
    {
      name: "PaymentDeclined",
      status: 402,
      message: "the VISA card ending 0002 was declined (card_declined); $123.45 was not charged",
    },
  );
  assertEquals(declined.details, { declineCode: "card_declined", cardLast4: "0002" });
  await expectError(
    t,
    "processPayment",
    charge({ paymentMethod: card({ cardNumber: "4000000000009995" }) }),
    {
      name: "PaymentDeclined",
      status: 402,
      message: "the VISA card ending 9995 was declined (insufficient_funds); $123.45 was not charged",
    },
  );
  assert(t.logs.some((l) => l.level === "warn" && l.message === "payment declined"));
});

Deno.test("payment: refunds, in full or in parts, never more than was charged", async () => {
  const t = await testSlice(payment);
  const paid = await t.call("processPayment", charge({ amountCents: 10_000 }) as never);
  const part = await t.call("processRefund", {
    transactionId: paid.transactionId,
    amountCents: 2_500,
    reason: "damaged box",
  });
  assertEquals(
    [part.amountCents, part.refundedTotalCents, part.remainingCents, part.status, part.reason],
    [2_500, 2_500, 7_500, "PARTIALLY_REFUNDED", "damaged box"],
  );
  await expectError(t, "processRefund", {
    transactionId: paid.transactionId,
    amountCents: 7_501,
    reason: "x",
  }, {
    name: "InvalidRefund",
    status: 400,
    message: `amountCents 7501 is more than the 7500 cents left to refund on ${paid.transactionId}`,
  });
  const rest = await t.call("processRefund", {
    transactionId: paid.transactionId,
    reason: "order cancelled",
  });
  assertEquals([rest.amountCents, rest.refundedTotalCents, rest.remainingCents, rest.status], [
    7_500,
    10_000,
    0,
    "REFUNDED",
  ]);
  await expectError(t, "processRefund", { transactionId: paid.transactionId, reason: "again" }, {
    name: "InvalidRefund",
    status: 400,
    message: `amountCents cannot be refunded: transaction ${paid.transactionId} is fully refunded`,
  });
  const unknown = "TXN-00000000-0000-4000-8000-000000000000";
  await expectError(t, "processRefund", { transactionId: unknown, reason: "x" }, {
    name: "TransactionNotFound",
    status: 404,
    message: `transaction ${unknown} is not known to this instance (transactions live in the memory of the ` +
      "instance that made them)",
  });
});

Deno.test("payment: every malformed charge is a 400 that names the field, never echoing the card", async () => {
  const t = await testSlice(payment);
  const thisYear = new Date().getUTCFullYear();
  const thisMonth = new Date().getUTCMonth() + 1;
  const expiredCases: Array<[unknown, ReturnType<typeof bad>]> = thisMonth === 1 ? [] : [[
    charge({ paymentMethod: card({ expiryMonth: thisMonth - 1, expiryYear: thisYear }) }),
    bad(
      `paymentMethod.expiryMonth ${String(thisMonth - 1).padStart(2, "0")}/${thisYear} is in the past: ` +
        "the card has expired",
    ),
  ]];
  await expectErrors(t, "processPayment", [
    [charge({ orderId: undefined }), bad("orderId is missing")],
    [charge({ customerId: "" }), bad("customerId must have at least 3 characters")],
    [
      charge({ amountCents: 0 }),
      bad("amountCents must be an integer number of cents from 1 to 100000000, got 0"),
    ],
    [
      charge({ amountCents: 100_000_001 }),
      bad("amountCents must be an integer number of cents from 1 to 100000000, got 100000001"),
    ],
    [
      charge({ amountCents: "12.34" }),
      bad('amountCents must be an integer number of cents from 1 to 100000000, got "12.34"'),
    ],
    [charge({ currency: "EUR" }), bad('currency must be one of USD, got "EUR"')],
    [charge({ paymentMethod: undefined }), bad("paymentMethod must be a JSON object, got nothing")],
    [
      charge({ paymentMethod: { ...card(), type: "card" } }),
      bad(
        'paymentMethod has an unknown field "type" (known fields: cardNumber, expiryMonth, expiryYear, cvv, holderName)',
      ),
    ],
    [charge({ paymentMethod: card({ cardNumber: undefined }) }), bad("paymentMethod.cardNumber is missing")],
    [
      charge({ paymentMethod: card({ cardNumber: 4242424242424242 }) }),
      bad("paymentMethod.cardNumber must be a string of digits, got 4242424242424242"),
    ],
    [
      charge({ paymentMethod: card({ cardNumber: "4242 4242" }) }),
      bad("paymentMethod.cardNumber must have 12 to 19 digits (spaces and dashes are ignored)"),
    ],
    [
      charge({ paymentMethod: card({ cardNumber: "4242 4242 4242 4241" }) }),
      bad("paymentMethod.cardNumber is not a valid card number (its check digit is wrong)"),
    ],
    [
      charge({ paymentMethod: card({ expiryMonth: 13 }) }),
      bad("paymentMethod.expiryMonth must be an integer from 1 to 12, got 13"),
    ],
    [
      charge({ paymentMethod: card({ expiryYear: thisYear - 1 }) }),
      bad(
        `paymentMethod.expiryYear must be an integer from ${thisYear} to ${thisYear + 20}, got ${
          thisYear - 1
        }`,
      ),
    ],
    ...expiredCases,
    [charge({ paymentMethod: card({ cvv: undefined }) }), bad("paymentMethod.cvv is missing")],
    [
      charge({ paymentMethod: card({ cvv: "12" }) }),
      bad("paymentMethod.cvv must be a string of 3 digits for this VISA card"),
    ],
    [
      charge({ paymentMethod: card({ cvv: 123 }) }),
      bad("paymentMethod.cvv must be a string of 3 digits for this VISA card"),
    ],
    [
      charge({ paymentMethod: card({ cardNumber: "378282246310005", cvv: "123" }) }),
      bad("paymentMethod.cvv must be a string of 4 digits for this AMEX card"),
    ],
    [charge({ paymentMethod: card({ holderName: " " }) }), bad("paymentMethod.holderName must not be empty")],
  ]);
  await expectErrors(t, "processRefund", [
    [{ reason: "x" }, badRefund("transactionId is missing")],
    [
      { transactionId: "T-1", reason: "x" },
      badRefund(
        'transactionId must be a transaction id like TXN-3f0b9c1e-7a2d-4e58-b6c4-1d9e8a7f2b30, got "T-1"',
      ),
    ],
    [{ transactionId: "TXN-00000000-0000-4000-8000-000000000000" }, badRefund("reason is missing")],
    [
      { transactionId: "TXN-00000000-0000-4000-8000-000000000000", reason: "x", amountCents: 0 },
      badRefund("amountCents must be an integer number of cents from 1 to 100000000, got 0"),
    ],
  ]);
  // No message or log line carries a full card number or a CVV.
  const text = JSON.stringify(t.logs);
  assert(!text.includes("4242424242424242") && !text.includes('"123"'), text);
});

Deno.test("payment: the Luhn check and the test cards", () => {
  for (const number of ["4242424242424242", "5555555555554444", "378282246310005", "4000000000000002"]) {
    assert(luhnValid(number), number);
  }
  for (const number of ["4242424242424241", "1234567812345678"]) assert(!luhnValid(number), number);
  assert(EXPIRY_YEAR > new Date().getUTCFullYear());
});

Deno.test("payment: routes and error mapping", async () => {
  const t = await testSlice(payment);
  assertEquals(t.manifest.routes?.entries.map((e) => `${e.method}=${e.httpMethod} ${e.fullPath}`), [
    "processPayment=POST /api/v1/payment/process",
    "processRefund=POST /api/v1/payment/refund",
  ]);
  assertEquals(t.manifest.routes?.errors.find((r) => r.status === 402)?.patterns, [
    "*Declined*",
    "*PaymentFailed*",
  ]);
});
