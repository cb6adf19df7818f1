/**
 * Money is an integer number of US cents everywhere in this example (`subtotalCents: 129999` is $1,299.99):
 * integers add, compare and cross JSON exactly, where floating-point dollars would not.
 */

import { describe, type Field } from "./parse.ts";

/** An integer amount of cents. */
export type Cents = number;

/** The one currency the demo shop sells in. */
export const CURRENCY = "USD";

/** The largest amount one order may reach: $1,000,000.00. */
export const MAX_CENTS: Cents = 100_000_000;

/** A positive integer amount of cents up to `MAX_CENTS` (zero too when `allowZero`). */
export function parseCents(value: unknown, field: Field, options: { allowZero?: boolean } = {}): Cents {
  if (value === undefined) field.fail("is missing");
  const min = options.allowZero ? 0 : 1;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > MAX_CENTS) {
    field.fail(`must be an integer number of cents from ${min} to ${MAX_CENTS}, got ${describe(value)}`);
  }
  return value;
}

/** `123456` → `"$1,234.56"`. */
export function formatCents(cents: Cents): string {
  const sign = cents < 0 ? "-" : "";
  const abs = Math.abs(cents);
  const dollars = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${sign}$${dollars}.${String(abs % 100).padStart(2, "0")}`;
}

/**
 * `amount × rate`, where the rate is given in thousandths of a percent (6.875 % is 6875), rounded half up to
 * a whole cent. Integer arithmetic throughout: rates like 6.875 % are exact.
 */
export function applyRate(amount: Cents, milliPercent: number): Cents {
  return Math.floor((amount * milliPercent + 50_000) / 100_000);
}
