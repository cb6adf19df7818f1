/** Helpers for the example's tests: expected failures, and valid requests to vary one field at a time. */

import { deepStrictEqual, ok } from "node:assert/strict";
import type { TestSlice } from "@aether/slices/testing";
import type { AnySliceDefinition } from "@aether/slices";

/** Any test slice: only its untyped `invoke` is used, so raw (malformed) requests can be sent. */
export type Invoker = Pick<TestSlice<AnySliceDefinition>, "invoke">;

export interface ExpectedError {
  name: string;
  status: number;
  message: string;
}

/** Calls `method` with a raw request and checks the error the caller (and so the HTTP layer) sees. */
export async function expectError(
  t: Invoker,
  method: string,
  request: unknown,
  expected: ExpectedError,
): Promise<{ details?: unknown }> {
  const outcome = await t.invoke(method, request);
  ok(!outcome.ok, `${method} succeeded but should fail with ${expected.name}: ${JSON.stringify(outcome)}`);
  const { name, status, message } = outcome.error;
  deepStrictEqual({ name, status, message }, expected, `${method}(${JSON.stringify(request)})`);
  return outcome.error;
}

/** Runs a table of `[request, expected]` cases against one method. */
export async function expectErrors(
  t: Invoker,
  method: string,
  cases: ReadonlyArray<readonly [unknown, ExpectedError]>,
): Promise<void> {
  for (const [request, expected] of cases) await expectError(t, method, request, expected);
}

/** An expiry date that is valid for years from now. */
export const EXPIRY_YEAR = new Date().getUTCFullYear() + 3;

export const VISA_OK = "4242424242424242";
export const VISA_DECLINED = "4000000000000002";

export function card(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cardNumber: "4242 4242 4242 4242",
    expiryMonth: 12,
    expiryYear: EXPIRY_YEAR,
    cvv: "123",
    holderName: "Ada Lovelace",
    ...overrides,
  };
}

export function address(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "Ada Lovelace",
    street: "1 Main St",
    city: "Springfield",
    postalCode: "62701",
    country: "US",
    region: "IL",
    ...overrides,
  };
}

/** A valid order for place-order; replace any field to test one problem at a time. */
export function order(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    customerId: "CUST-1001",
    email: "ada@example.com",
    items: [{ productId: "MOUSE-WIRELESS", quantity: 2 }],
    shippingAddress: address(),
    paymentMethod: card(),
    ...overrides,
  };
}

/** A 400 with a given message, for the `name` of a slice's invalid-request error. */
export function invalid(name: string, message: string): ExpectedError {
  return { name, status: 400, message };
}
