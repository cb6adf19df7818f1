/** Identifiers and contact details, parsed into branded strings so a raw string cannot pass for one. */

import { type Field, parseString } from "./parse.ts";

declare const BRAND: unique symbol;
/** `T` marked as parsed: only the parser below returns one. Still a plain `T` on the wire. */
export type Brand<T, Name extends string> = T & { readonly [BRAND]: Name };

export type CustomerId = Brand<string, "CustomerId">;
export type ProductId = Brand<string, "ProductId">;
export type OrderId = Brand<string, "OrderId">;
export type Email = Brand<string, "Email">;

/** `CUST-1001`, `ada_lovelace`: 3 to 64 letters, digits, `-` and `_`, starting with a letter or digit. */
export function parseCustomerId(value: unknown, field: Field): CustomerId {
  return parseString(value, field, {
    max: 64,
    min: 3,
    pattern: /^[A-Za-z0-9][A-Za-z0-9_-]*$/,
    expected: "3 to 64 letters, digits, - or _ (starting with a letter or digit)",
  }) as CustomerId;
}

/** `LAPTOP-PRO`: upper-case letters and digits in groups joined by `-`; lower case is accepted and raised. */
export function parseProductId(value: unknown, field: Field): ProductId {
  const text = parseString(value, field, { max: 40 }).toUpperCase();
  if (!/^[A-Z0-9]+(?:-[A-Z0-9]+)*$/.test(text)) {
    field.fail(`must be a product id like LAPTOP-PRO (letters and digits joined by -), got "${text}"`);
  }
  return text as ProductId;
}

const ORDER_ID = /^ORD-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A new order id: `ORD-` and a random UUID. */
export function newOrderId(): OrderId {
  return `ORD-${crypto.randomUUID()}` as OrderId;
}

/** An order id as `newOrderId` makes them (`ORD-` and a lower-case UUID). */
export function parseOrderId(value: unknown, field: Field): OrderId {
  return parseString(value, field, {
    max: 64,
    pattern: ORDER_ID,
    expected: "an order id like ORD-0b7c5f0e-8d0a-4a53-9a3e-3f4f8d2a1c9b",
  }) as OrderId;
}

/**
 * An e-mail address: one `@`, a local part of up to 64 characters without spaces, and a domain with at least
 * one dot. Deliverability is the mail system's business; this catches typos. The domain is lower-cased.
 */
export function parseEmail(value: unknown, field: Field): Email {
  const text = parseString(value, field, { max: 254 });
  const at = text.lastIndexOf("@");
  const local = text.slice(0, at);
  const domain = text.slice(at + 1).toLowerCase();
  const valid = at > 0 && local.length <= 64 && !/[\s@"<>(),;:\\[\]]/.test(local) &&
    /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$/.test(domain);
  if (!valid) field.fail(`must be an e-mail address like ada@example.com, got "${text}"`);
  return `${local}@${domain}` as Email;
}
