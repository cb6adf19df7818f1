/**
 * Fulfillment: shipping quotes, shipments and tracking.
 *
 * A quote depends on the parcel's weight (catalog weights, charged per started 500 g) and the destination's
 * zone; OVERNIGHT exists only within the US. Shipments get a tracking number in the UPU S10 format
 * (`AE123456785US`: two letters, eight digits, a check digit, the destination country).
 *
 * Shipments live in this instance's memory; creating one is idempotent per order. Tracking is simulated: a
 * shipment moves one stage (picked up, in transit, out for delivery, delivered) every `stageSeconds`.
 */

import { defineSlice, SliceError } from "@aether/slices";
import {
  type Address,
  type Cents,
  CURRENCY,
  type Field,
  type LineItem,
  parseAddress,
  type ParsedAddress,
  type ParsedLineItem,
  parseLineItems,
  parseObject,
  parseOrderId,
  parseShippingOption,
  parseString,
  requestOf,
  type ShippingOption,
} from "../shared/mod.ts";

/** A request that is malformed; the message names the field. 400. */
export class InvalidShippingRequest extends SliceError {}
/** A shipping option the destination does not get. 400. */
export class InvalidShippingOption extends SliceError {}
/** A product without a weight (not in the catalog). 404. */
export class ProductNotFound extends SliceError {}
/** A tracking number this instance does not know. 404. */
export class ShipmentNotFound extends SliceError {}
/** The order already has a shipment with other contents. 409. */
export class ShipmentAlreadyExists extends SliceError {}

/** Shipping weight per unit, in grams. */
export const WEIGHTS_GRAMS: Readonly<Record<string, number>> = Object.freeze({
  "LAPTOP-PRO": 2_000,
  "MOUSE-WIRELESS": 100,
  "KEYBOARD-MECH": 900,
  "MONITOR-4K": 6_500,
  "HEADSET-BT": 300,
  "WEBCAM-HD": 150,
  "USB-HUB": 120,
  "CHARGER-65W": 250,
});

export type Zone = "DOMESTIC" | "NORTH_AMERICA" | "EUROPE" | "ASIA_PACIFIC";

const ZONE_OF: Readonly<Record<string, Zone>> = {
  US: "DOMESTIC",
  CA: "NORTH_AMERICA",
  GB: "EUROPE",
  DE: "EUROPE",
  FR: "EUROPE",
  NL: "EUROPE",
  ES: "EUROPE",
  IT: "EUROPE",
  JP: "ASIA_PACIFIC",
  AU: "ASIA_PACIFIC",
};

interface Rate {
  baseCents: Cents;
  /** Per started 500 g. */
  perHalfKiloCents: Cents;
  days: number;
}

/** What each option costs and takes, by zone; a missing option is not offered there. */
export const RATES: Readonly<Record<Zone, Partial<Record<ShippingOption, Rate>>>> = {
  DOMESTIC: {
    STANDARD: { baseCents: 599, perHalfKiloCents: 100, days: 5 },
    EXPRESS: { baseCents: 1_499, perHalfKiloCents: 200, days: 2 },
    OVERNIGHT: { baseCents: 2_999, perHalfKiloCents: 300, days: 1 },
  },
  NORTH_AMERICA: {
    STANDARD: { baseCents: 1_299, perHalfKiloCents: 200, days: 7 },
    EXPRESS: { baseCents: 2_999, perHalfKiloCents: 400, days: 3 },
  },
  EUROPE: {
    STANDARD: { baseCents: 1_999, perHalfKiloCents: 300, days: 10 },
    EXPRESS: { baseCents: 3_999, perHalfKiloCents: 500, days: 4 },
  },
  ASIA_PACIFIC: {
    STANDARD: { baseCents: 2_499, perHalfKiloCents: 400, days: 12 },
    EXPRESS: { baseCents: 4_999, perHalfKiloCents: 600, days: 5 },
  },
};

/** How long a quote's prices hold. */
const QUOTE_VALID_MS = 15 * 60_000;
const MAX_SHIPMENTS = 10_000;
const CARRIER = "Aether Post";
const STAGES = ["LABEL_CREATED", "PICKED_UP", "IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"] as const;
export type ShipmentStatus = typeof STAGES[number];

// ---------------------------------------------------------------------------------------------------------
// Requests and responses

export interface CalculateShippingRequest {
  items: LineItem[];
  destination: Address;
}

export interface ShippingQuoteOption {
  option: ShippingOption;
  costCents: Cents;
  estimatedDays: number;
}

export interface ShippingQuote {
  zone: Zone;
  weightGrams: number;
  currency: string;
  /** Cheapest first. */
  options: ShippingQuoteOption[];
  validUntil: string;
}

export interface CreateShipmentRequest {
  orderId: string;
  items: LineItem[];
  destination: Address;
  option: ShippingOption;
}

export interface Shipment {
  shipmentId: string;
  orderId: string;
  trackingNumber: string;
  carrier: string;
  option: ShippingOption;
  costCents: Cents;
  weightGrams: number;
  status: ShipmentStatus;
  createdAt: string;
  /** `YYYY-MM-DD`. */
  estimatedDelivery: string;
}

export interface TrackShipmentRequest {
  trackingNumber: string;
}

export interface TrackingEvent {
  status: ShipmentStatus;
  at: string;
}

export interface TrackingInfo {
  trackingNumber: string;
  orderId: string;
  carrier: string;
  status: ShipmentStatus;
  estimatedDelivery: string;
  /** Oldest first. */
  events: TrackingEvent[];
}

// ---------------------------------------------------------------------------------------------------------
// Pure helpers

const request = requestOf(InvalidShippingRequest);

function weightOf(items: ParsedLineItem[], itemsField: Field): number {
  return items.reduce((sum, item, i) => {
    const grams = WEIGHTS_GRAMS[item.productId];
    if (grams === undefined) {
      const path = itemsField.at(i).at("productId").path;
      throw new ProductNotFound(`${path}: ${item.productId} is not in the catalog`, {
        details: { field: path, productId: item.productId },
      });
    }
    return sum + grams * item.quantity;
  }, 0);
}

function quoteOptions(zone: Zone, weightGrams: number): ShippingQuoteOption[] {
  const halfKilos = Math.ceil(weightGrams / 500);
  return Object.entries(RATES[zone])
    .map(([option, rate]) => ({
      option: option as ShippingOption,
      costCents: rate.baseCents + halfKilos * rate.perHalfKiloCents,
      estimatedDays: rate.days,
    }))
    .sort((a, b) => a.costCents - b.costCents);
}

/** UPU S10 check digit over eight digits. */
export function s10CheckDigit(digits: string): number {
  const weights = [8, 6, 4, 2, 3, 5, 9, 7];
  const sum = weights.reduce((s, w, i) => s + w * Number(digits[i]), 0);
  const check = 11 - (sum % 11);
  return check === 10 ? 0 : check === 11 ? 5 : check;
}

/** A fresh tracking number; eight random digits collide now and then, so a taken one is drawn again. */
function newTrackingNumber(country: string): string {
  while (true) {
    const digits = String(crypto.getRandomValues(new Uint32Array(1))[0] % 100_000_000).padStart(8, "0");
    const number = `AE${digits}${s10CheckDigit(digits)}${country}`;
    if (!shipments.has(number)) return number;
  }
}

function parseTrackingNumber(value: unknown, field: Field): string {
  const text = parseString(value, field, {
    max: 13,
    pattern: /^[A-Za-z]{2}\d{9}[A-Za-z]{2}$/,
    expected: "a tracking number like AE123456785US",
  }).toUpperCase();
  if (s10CheckDigit(text.slice(2, 10)) !== Number(text[10])) {
    field.fail(`${text} is not a valid tracking number (its check digit is wrong)`);
  }
  return text;
}

function addDays(ms: number, days: number): string {
  return new Date(ms + days * 86_400_000).toISOString().slice(0, 10);
}

// ---------------------------------------------------------------------------------------------------------
// State of this instance

interface StoredShipment {
  shipment: Shipment;
  createdAtMs: number;
  contents: string;
}

const shipments = new Map<string, StoredShipment>();
const shipmentByOrder = new Map<string, string>();

function remember(stored: StoredShipment): void {
  const { trackingNumber, orderId } = stored.shipment;
  shipments.set(trackingNumber, stored);
  shipmentByOrder.set(orderId, trackingNumber);
  for (const [id, old] of shipments) {
    if (shipments.size <= MAX_SHIPMENTS) break;
    shipments.delete(id);
    if (shipmentByOrder.get(old.shipment.orderId) === id) shipmentByOrder.delete(old.shipment.orderId);
  }
}

function contentsKey(items: ParsedLineItem[], destination: ParsedAddress, option: ShippingOption): string {
  const lines = items.map((i) => `${i.productId}*${i.quantity}`).sort().join(",");
  return `${lines}|${JSON.stringify(destination)}|${option}`;
}

// ---------------------------------------------------------------------------------------------------------
// The slice

export default defineSlice({
  coordinates: "org.example:fulfillment:1.0.0",
  config: {
    stageSeconds: {
      type: "integer",
      default: 60,
      minimum: 1,
      description: "Simulated time a shipment spends in each tracking stage",
    },
  },
  http: {
    prefix: "/api/v1/fulfillment",
    routes: {
      calculateShipping: "POST /shipping/calculate",
      createShipment: "POST /shipments",
      trackShipment: "GET /shipments/{trackingNumber}",
    },
    errors: {
      400: ["*Invalid*"],
      404: ["*NotFound*"],
      409: ["*AlreadyExists*"],
    },
  },
  methods: {
    /** The options, costs and delivery times for a parcel to a destination. */
    calculateShipping(req: CalculateShippingRequest): ShippingQuote {
      const body = parseObject(req, request, ["items", "destination"]);
      const itemsField = request.at("items");
      const items = parseLineItems(body.items, itemsField);
      const destination = parseAddress(body.destination, request.at("destination"));
      const weightGrams = weightOf(items, itemsField);
      const zone = ZONE_OF[destination.country];
      return {
        zone,
        weightGrams,
        currency: CURRENCY,
        options: quoteOptions(zone, weightGrams),
        validUntil: new Date(Date.now() + QUOTE_VALID_MS).toISOString(),
      };
    },

    /** Books the shipment and its tracking number, once per order. */
    createShipment(req: CreateShipmentRequest, ctx): Shipment {
      const body = parseObject(req, request, ["orderId", "items", "destination", "option"]);
      const orderId = parseOrderId(body.orderId, request.at("orderId"));
      const itemsField = request.at("items");
      const items = parseLineItems(body.items, itemsField);
      const destination = parseAddress(body.destination, request.at("destination"));
      const option = parseShippingOption(body.option, request.at("option"));
      const weightGrams = weightOf(items, itemsField);
      const zone = ZONE_OF[destination.country];
      const offered = quoteOptions(zone, weightGrams);
      const chosen = offered.find((o) => o.option === option);
      if (!chosen) {
        throw new InvalidShippingOption(
          `option: ${option} is not offered to ${destination.country} (offered: ${
            offered.map((o) => o.option).join(", ")
          })`,
          { details: { field: "option" } },
        );
      }

      const contents = contentsKey(items, destination, option);
      const earlier = shipments.get(shipmentByOrder.get(orderId) ?? "");
      if (earlier) {
        if (earlier.contents === contents) return earlier.shipment;
        throw new ShipmentAlreadyExists(
          `order ${orderId} already has shipment ${earlier.shipment.trackingNumber} with other contents`,
          { details: { trackingNumber: earlier.shipment.trackingNumber } },
        );
      }
      const nowMs = Date.now();
      const shipment: Shipment = {
        shipmentId: `SHP-${crypto.randomUUID()}`,
        orderId,
        trackingNumber: newTrackingNumber(destination.country),
        carrier: CARRIER,
        option,
        costCents: chosen.costCents,
        weightGrams,
        status: "LABEL_CREATED",
        createdAt: new Date(nowMs).toISOString(),
        estimatedDelivery: addDays(nowMs, chosen.estimatedDays),
      };
      remember({ shipment, createdAtMs: nowMs, contents });
      ctx.log.debug("shipment created", { orderId, trackingNumber: shipment.trackingNumber, option });
      return shipment;
    },

    /** `GET /api/v1/fulfillment/shipments/{trackingNumber}`: where the parcel is. */
    trackShipment(req: TrackShipmentRequest, ctx): TrackingInfo {
      const trackingNumber = parseTrackingNumber(req?.trackingNumber, request.at("trackingNumber"));
      const stored = shipments.get(trackingNumber);
      if (!stored) {
        throw new ShipmentNotFound(
          `shipment ${trackingNumber} is not known to this instance (shipments live in the memory of the ` +
            `instance that created them)`,
        );
      }
      const stageMs = ctx.config.stageSeconds * 1000;
      const reached = Math.min(STAGES.length - 1, Math.floor((Date.now() - stored.createdAtMs) / stageMs));
      const events = STAGES.slice(0, reached + 1).map((status, i) => ({
        status,
        at: new Date(stored.createdAtMs + i * stageMs).toISOString(),
      }));
      return {
        trackingNumber,
        orderId: stored.shipment.orderId,
        carrier: CARRIER,
        status: STAGES[reached],
        estimatedDelivery: stored.shipment.estimatedDelivery,
        events,
      };
    },
  },
});
