/** Line items: which product and how many. Every slice that takes items parses them with `parseLineItems`. */

import { type Field, parseArray, parseInteger, parseObject } from "./parse.ts";
import { parseProductId, type ProductId } from "./ids.ts";

/** One line of an order as it travels: a product and a quantity. */
export interface LineItem {
  productId: string;
  quantity: number;
}

/** A parsed line item. */
export interface ParsedLineItem {
  productId: ProductId;
  quantity: number;
}

export const MAX_QUANTITY = 100;
export const MAX_LINES = 20;

/** 1 to `MAX_QUANTITY` units. */
export function parseQuantity(value: unknown, field: Field): number {
  return parseInteger(value, field, 1, MAX_QUANTITY);
}

/**
 * 1 to `MAX_LINES` line items, each product at most once (two lines for one product are almost always a
 * client bug, and they would make stock checks count the product twice).
 */
export function parseLineItems(value: unknown, field: Field): ParsedLineItem[] {
  const seen = new Map<string, number>();
  return parseArray(value, field, 1, MAX_LINES).map((raw, i) => {
    const line = field.at(i);
    const item = parseObject(raw, line, ["productId", "quantity"]);
    const productId = parseProductId(item.productId, line.at("productId"));
    const quantity = parseQuantity(item.quantity, line.at("quantity"));
    const earlier = seen.get(productId);
    if (earlier !== undefined) {
      line.at("productId").fail(
        `repeats ${productId} from ${field.path}[${earlier}]; put the whole quantity on one line`,
      );
    }
    seen.set(productId, i);
    return { productId, quantity };
  });
}
