/**
 * Payment cards. The demo never talks to a card network: a card is accepted when its number passes the Luhn
 * check, it has not expired and its CVV has the brand's length. Two documented test numbers are declined by
 * the payment slice (see `DECLINED_TEST_CARDS`).
 */

import { describe, type Field, parseInteger, parseObject, parseString } from "./parse.ts";

/** A card as it travels in a request. The number may contain spaces or dashes. */
export interface PaymentMethod {
  cardNumber: string;
  expiryMonth: number;
  expiryYear: number;
  cvv: string;
  holderName: string;
}

export type CardBrand = "VISA" | "MASTERCARD" | "AMEX" | "DISCOVER" | "OTHER";

/** A parsed card: digits only, a known brand, not expired. */
export interface ParsedCard {
  number: string;
  brand: CardBrand;
  last4: string;
  expiryMonth: number;
  expiryYear: number;
  cvv: string;
  holderName: string;
}

/** Test numbers the payment slice always declines, with the reason it gives (Stripe uses the same ones). */
export const DECLINED_TEST_CARDS: Readonly<Record<string, string>> = {
  "4000000000000002": "card_declined",
  "4000000000009995": "insufficient_funds",
};

/** Test numbers that are always approved. */
export const APPROVED_TEST_CARDS = ["4242424242424242", "5555555555554444", "378282246310005"] as const;

/** The Luhn (mod 10) check digit test every card number passes. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

export function cardBrand(digits: string): CardBrand {
  if (/^4/.test(digits)) return "VISA";
  if (/^(5[1-5]|2(2[2-9]|[3-6]\d|7[01]|720))/.test(digits)) return "MASTERCARD";
  if (/^3[47]/.test(digits)) return "AMEX";
  if (/^6(011|5)/.test(digits)) return "DISCOVER";
  return "OTHER";
}

const CARD_FIELDS = ["cardNumber", "expiryMonth", "expiryYear", "cvv", "holderName"] as const;

/** Parses a card; `now` decides expiry (a card is valid through the last day of its expiry month). */
export function parsePaymentMethod(value: unknown, field: Field, now: Date = new Date()): ParsedCard {
  const raw = parseObject(value, field, CARD_FIELDS);
  const numberField: Field = field.at("cardNumber");
  if (typeof raw.cardNumber !== "string") {
    numberField.fail(
      raw.cardNumber === undefined
        ? "is missing"
        : `must be a string of digits, got ${describe(raw.cardNumber)}`,
    );
  }
  const number = raw.cardNumber.replace(/[\s-]/g, "");
  if (!/^\d{12,19}$/.test(number)) {
    numberField.fail("must have 12 to 19 digits (spaces and dashes are ignored)");
  }
  if (!luhnValid(number)) numberField.fail("is not a valid card number (its check digit is wrong)");
  const brand = cardBrand(number);

  const thisYear = now.getUTCFullYear();
  const expiryMonth = parseInteger(raw.expiryMonth, field.at("expiryMonth"), 1, 12);
  const expiryYear = parseInteger(raw.expiryYear, field.at("expiryYear"), thisYear, thisYear + 20);
  if (expiryYear === thisYear && expiryMonth < now.getUTCMonth() + 1) {
    field.at("expiryMonth").fail(
      `${String(expiryMonth).padStart(2, "0")}/${expiryYear} is in the past: the card has expired`,
    );
  }
  const cvvLength = brand === "AMEX" ? 4 : 3;
  // Neither the number nor the CVV is ever echoed in a message: they end up in logs.
  const cvvField = field.at("cvv");
  if (raw.cvv === undefined) cvvField.fail("is missing");
  const cvv = typeof raw.cvv === "string" ? raw.cvv.trim() : "";
  if (!new RegExp(`^\\d{${cvvLength}}$`).test(cvv)) {
    cvvField.fail(`must be a string of ${cvvLength} digits for this ${brand} card`);
  }
  const holderName = parseString(raw.holderName, field.at("holderName"), { max: 100 });
  return { number, brand, last4: number.slice(-4), expiryMonth, expiryYear, cvv, holderName };
}
