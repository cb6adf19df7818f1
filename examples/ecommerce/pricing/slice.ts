/**
 * Pricing: catalog prices, discount codes and sales tax, all in integer cents.
 *
 * Tax rates are demo data (US state base rates without local additions, national VAT/GST elsewhere), not
 * tax advice. Tax applies to the goods after discount; shipping is not taxed.
 */

import { defineSlice, SliceError } from "@aether/slices";
import {
  applyRate,
  type Cents,
  type CountryCode,
  CURRENCY,
  formatCents,
  type LineItem,
  optional,
  parseCents,
  parseCountry,
  parseCustomerId,
  parseLineItems,
  parseObject,
  parseRegion,
  parseString,
  requestOf,
} from "../shared/mod.ts";

/** A request that is malformed; the message names the field. 400. */
export class InvalidPricingRequest extends SliceError {}
/** A discount code that does not exist. 400. */
export class InvalidDiscountCode extends SliceError {}
/** A product without a price. 404. */
export class ProductNotFound extends SliceError {}
/** A real code whose conditions the purchase does not meet (minimum purchase). 422. */
export class DiscountNotApplicable extends SliceError {}

/** Catalog prices in cents. */
export const PRICES_CENTS: Readonly<Record<string, Cents>> = Object.freeze({
  "LAPTOP-PRO": 129_999,
  "MOUSE-WIRELESS": 2_999,
  "KEYBOARD-MECH": 8_999,
  "MONITOR-4K": 44_999,
  "HEADSET-BT": 7_999,
  "WEBCAM-HD": 5_999,
  "USB-HUB": 2_499,
  "CHARGER-65W": 3_999,
});

export interface DiscountCode {
  percentOff: number;
  minimumPurchaseCents: Cents;
  description: string;
}

/** Codes are matched case-insensitively. */
export const DISCOUNT_CODES: Readonly<Record<string, DiscountCode>> = Object.freeze({
  WELCOME10: { percentOff: 10, minimumPurchaseCents: 0, description: "10% off any order" },
  SAVE20: { percentOff: 20, minimumPurchaseCents: 50_000, description: "20% off orders of $500.00 or more" },
  BULK15: {
    percentOff: 15,
    minimumPurchaseCents: 100_000,
    description: "15% off orders of $1,000.00 or more",
  },
});

/** Sales tax in thousandths of a percent (7.25 % is 7250): US by state, elsewhere by country. */
// deno-fmt-ignore
export const US_STATE_TAX: Readonly<Record<string, number>> = Object.freeze({
  AL: 4000, AK: 0, AZ: 5600, AR: 6500, CA: 7250, CO: 2900, CT: 6350, DE: 0, DC: 6000, FL: 6000, GA: 4000,
  HI: 4000, ID: 6000, IL: 6250, IN: 7000, IA: 6000, KS: 6500, KY: 6000, LA: 4450, ME: 5500, MD: 6000,
  MA: 6250, MI: 6000, MN: 6875, MS: 7000, MO: 4225, MT: 0, NE: 5500, NV: 6850, NH: 0, NJ: 6625, NM: 4875,
  NY: 4000, NC: 4750, ND: 5000, OH: 5750, OK: 4500, OR: 0, PA: 6000, RI: 7000, SC: 6000, SD: 4200, TN: 7000,
  TX: 6250, UT: 6100, VT: 6000, VA: 5300, WA: 6500, WV: 6000, WI: 5000, WY: 4000,
});

export const COUNTRY_TAX: Readonly<Record<Exclude<CountryCode, "US">, number>> = Object.freeze({
  CA: 5000,
  GB: 20000,
  DE: 19000,
  FR: 20000,
  NL: 21000,
  ES: 21000,
  IT: 22000,
  JP: 10000,
  AU: 10000,
});

// ---------------------------------------------------------------------------------------------------------
// Requests and responses

export interface CalculatePriceRequest {
  items: LineItem[];
}

export interface PricedLine {
  productId: string;
  quantity: number;
  unitPriceCents: Cents;
  lineTotalCents: Cents;
}

export interface PriceQuote {
  currency: string;
  lines: PricedLine[];
  subtotalCents: Cents;
}

export interface ApplyDiscountRequest {
  customerId: string;
  subtotalCents: Cents;
  /** Optional; without one the discount is zero. */
  code?: string | null;
}

export interface AppliedDiscount {
  code: string | null;
  percentOff: number;
  subtotalCents: Cents;
  discountCents: Cents;
  /** `subtotalCents - discountCents`. */
  totalCents: Cents;
}

export interface CalculateTaxRequest {
  amountCents: Cents;
  country: string;
  /** The state, for US addresses. */
  region?: string;
}

export interface TaxAssessment {
  country: string;
  region?: string;
  /** For display: 7.25 means 7.25 %. */
  ratePercent: number;
  amountCents: Cents;
  taxCents: Cents;
  /** `amountCents + taxCents`. */
  totalCents: Cents;
}

// ---------------------------------------------------------------------------------------------------------
// The slice

const request = requestOf(InvalidPricingRequest);

function parseDiscountCode(value: unknown): string | undefined {
  const field = request.at("code");
  return optional(value, (v) =>
    parseString(v, field, {
      max: 32,
      pattern: /^[A-Za-z0-9_-]+$/,
      expected: "a discount code of letters and digits",
    }).toUpperCase());
}

export default defineSlice({
  coordinates: "org.example:pricing:1.0.0",
  http: {
    prefix: "/api/v1/pricing",
    routes: {
      calculatePrice: "POST /calculate",
      applyDiscount: "POST /discount",
      calculateTax: "POST /tax",
    },
    errors: {
      400: ["*Invalid*"],
      404: ["*NotFound*"],
      422: ["*NotApplicable*"],
    },
  },
  methods: {
    /** Prices every line at the catalog price. */
    calculatePrice(req: CalculatePriceRequest): PriceQuote {
      const body = parseObject(req, request, ["items"]);
      const itemsField = request.at("items");
      const lines = parseLineItems(body.items, itemsField).map((item, i): PricedLine => {
        const unitPriceCents = PRICES_CENTS[item.productId];
        if (unitPriceCents === undefined) {
          const path = itemsField.at(i).at("productId").path;
          throw new ProductNotFound(`${path}: ${item.productId} has no price (it is not in the catalog)`, {
            details: { field: path, productId: item.productId },
          });
        }
        return { ...item, unitPriceCents, lineTotalCents: unitPriceCents * item.quantity };
      });
      return {
        currency: CURRENCY,
        lines,
        subtotalCents: lines.reduce((sum, l) => sum + l.lineTotalCents, 0),
      };
    },

    /** Applies a discount code to a subtotal; no code means no discount. */
    applyDiscount(req: ApplyDiscountRequest, ctx): AppliedDiscount {
      const body = parseObject(req, request, ["customerId", "subtotalCents", "code"]);
      const customerId = parseCustomerId(body.customerId, request.at("customerId"));
      const subtotalCents = parseCents(body.subtotalCents, request.at("subtotalCents"), { allowZero: true });
      const code = parseDiscountCode(body.code);
      if (code === undefined) {
        return { code: null, percentOff: 0, subtotalCents, discountCents: 0, totalCents: subtotalCents };
      }
      const discount = DISCOUNT_CODES[code];
      if (!discount) {
        throw new InvalidDiscountCode(`code: ${code} is not a discount code`, { details: { field: "code" } });
      }
      if (subtotalCents < discount.minimumPurchaseCents) {
        throw new DiscountNotApplicable(
          `${code} needs a subtotal of at least ${formatCents(discount.minimumPurchaseCents)}; ` +
            `this one is ${formatCents(subtotalCents)}`,
          { details: { code, minimumPurchaseCents: discount.minimumPurchaseCents, subtotalCents } },
        );
      }
      const discountCents = applyRate(subtotalCents, discount.percentOff * 1000);
      ctx.log.debug("discount applied", { customerId, code, discountCents });
      return {
        code,
        percentOff: discount.percentOff,
        subtotalCents,
        discountCents,
        totalCents: subtotalCents - discountCents,
      };
    },

    /** Sales tax on an amount, by the destination's state (US) or country. */
    calculateTax(req: CalculateTaxRequest): TaxAssessment {
      const body = parseObject(req, request, ["amountCents", "country", "region"]);
      const amountCents = parseCents(body.amountCents, request.at("amountCents"), { allowZero: true });
      const country = parseCountry(body.country, request.at("country"));
      const region = parseRegion(body.region, request.at("region"), country);
      const milliPercent = country === "US" ? US_STATE_TAX[region!] : COUNTRY_TAX[country];
      const taxCents = applyRate(amountCents, milliPercent);
      const assessment: TaxAssessment = {
        country,
        ...(region === undefined ? {} : { region }),
        ratePercent: milliPercent / 1000,
        amountCents,
        taxCents,
        totalCents: amountCents + taxCents,
      };
      return assessment;
    },
  },
});
