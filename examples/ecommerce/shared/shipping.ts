/** Shipping speeds the fulfillment slice offers; which ones a destination gets is its business. */

import { type Field, parseEnum } from "./parse.ts";

export const SHIPPING_OPTIONS = ["STANDARD", "EXPRESS", "OVERNIGHT"] as const;
export type ShippingOption = typeof SHIPPING_OPTIONS[number];

export function parseShippingOption(value: unknown, field: Field): ShippingOption {
  return parseEnum(value, field, SHIPPING_OPTIONS);
}
