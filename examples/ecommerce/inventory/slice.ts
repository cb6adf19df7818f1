/**
 * Inventory: stock levels of the demo catalog and reservations against them.
 *
 * A reservation takes stock off the shelf at once and can be released (the stock goes back) until it
 * expires; after that the stock counts as sold and a release is refused with 409. Place-order reserves before
 * it takes payment and releases when payment fails.
 *
 * State lives in this instance's memory: each instance has its own shelf and its own reservations. So that
 * demos and load tests never run dry, a product whose stock falls below `restockBelowPercent` of its demo
 * level is refilled to that level (a supplier delivery); an order for more than is on the shelf is still
 * refused.
 */

import { defineSlice, SliceError } from "@aether/slices";
import {
  type Field,
  type LineItem,
  type ParsedLineItem,
  parseLineItems,
  parseObject,
  parseOrderId,
  parseProductId,
  parseString,
  type ProductId,
  requestOf,
} from "../shared/mod.ts";

/** A request that is malformed; the message names the field. 400. */
export class InvalidStockRequest extends SliceError {}
/** A product that is not in the catalog. 404. */
export class ProductNotFound extends SliceError {}
/** A reservation id this instance does not know. 404. */
export class ReservationNotFound extends SliceError {}
/** Not enough units on the shelf for a reservation. 409; `details.shortages` lists them. */
export class InsufficientStock extends SliceError {}
/** A release after the reservation expired: the stock is sold. 409. */
export class ReservationExpired extends SliceError {}
/** The order already holds a reservation for other items. 409. */
export class ReservationAlreadyExists extends SliceError {}

/** Units on the shelf when an instance starts. */
export const DEMO_STOCK: Readonly<Record<string, number>> = Object.freeze({
  "LAPTOP-PRO": 50,
  "MOUSE-WIRELESS": 200,
  "KEYBOARD-MECH": 100,
  "MONITOR-4K": 30,
  "HEADSET-BT": 75,
  "WEBCAM-HD": 60,
  "USB-HUB": 150,
  "CHARGER-65W": 120,
});

/** Reservations kept for answering releases; the oldest are forgotten beyond this. */
const MAX_RESERVATIONS = 10_000;

// ---------------------------------------------------------------------------------------------------------
// Requests and responses

export interface CheckStockRequest {
  items: LineItem[];
}

export interface StockLine {
  productId: string;
  requested: number;
  inStock: number;
  sufficient: boolean;
}

export interface StockAvailability {
  /** True when every line can be reserved right now. */
  available: boolean;
  items: StockLine[];
}

export interface ReserveStockRequest {
  orderId: string;
  items: LineItem[];
}

export interface StockReservation {
  reservationId: string;
  orderId: string;
  items: LineItem[];
  reservedAt: string;
  /** Until then the reservation can be released; after it the stock is sold. */
  expiresAt: string;
}

export interface ReleaseStockRequest {
  reservationId: string;
}

export interface StockRelease {
  reservationId: string;
  orderId: string;
  /** What went back on the shelf (with the first release; a repeated release returns the same). */
  released: LineItem[];
  releasedAt: string;
}

export interface GetStockRequest {
  productId: string;
}

export interface StockLevel {
  productId: string;
  inStock: number;
  /** Units held by reservations that can still be released. */
  reserved: number;
  /** The demo level a restock refills to. */
  demoLevel: number;
}

// ---------------------------------------------------------------------------------------------------------
// State of this instance

interface Reservation {
  reservationId: string;
  orderId: string;
  items: ParsedLineItem[];
  reservedAtMs: number;
  expiresAtMs: number;
  releasedAtMs?: number;
}

const shelf = new Map<string, number>(Object.entries(DEMO_STOCK));
const reservations = new Map<string, Reservation>();
const reservationByOrder = new Map<string, string>();

function onShelf(productId: ProductId, field: Field): number {
  const units = shelf.get(productId);
  if (units === undefined) {
    throw new ProductNotFound(`${field.path}: ${productId} is not in the catalog`, {
      details: { field: field.path, productId },
    });
  }
  return units;
}

function isOpen(r: Reservation, nowMs: number): boolean {
  return r.releasedAtMs === undefined && nowMs < r.expiresAtMs;
}

function remember(reservation: Reservation): void {
  reservations.set(reservation.reservationId, reservation);
  reservationByOrder.set(reservation.orderId, reservation.reservationId);
  // Map iteration is insertion order: the first entries are the oldest.
  for (const [id, old] of reservations) {
    if (reservations.size <= MAX_RESERVATIONS) break;
    reservations.delete(id);
    if (reservationByOrder.get(old.orderId) === id) reservationByOrder.delete(old.orderId);
  }
}

function restock(productId: string, belowPercent: number): boolean {
  const level = DEMO_STOCK[productId];
  if ((shelf.get(productId) ?? 0) * 100 >= level * belowPercent) return false;
  shelf.set(productId, level);
  return true;
}

const wire = (items: ParsedLineItem[]): LineItem[] => items.map((i) => ({ ...i }));

function toWire(r: Reservation): StockReservation {
  return {
    reservationId: r.reservationId,
    orderId: r.orderId,
    items: wire(r.items),
    reservedAt: new Date(r.reservedAtMs).toISOString(),
    expiresAt: new Date(r.expiresAtMs).toISOString(),
  };
}

function sameItems(a: ParsedLineItem[], b: ParsedLineItem[]): boolean {
  const key = (items: ParsedLineItem[]) => items.map((i) => `${i.productId}*${i.quantity}`).sort().join(",");
  return key(a) === key(b);
}

// ---------------------------------------------------------------------------------------------------------
// The slice

const request = requestOf(InvalidStockRequest);

export default defineSlice({
  coordinates: "org.example:inventory:1.0.0",
  config: {
    reservationTtlMs: {
      type: "integer",
      default: 900_000,
      minimum: 10,
      description: "How long a reservation can be released before its stock counts as sold",
    },
    restockBelowPercent: {
      type: "integer",
      default: 20,
      minimum: 0,
      maximum: 100,
      description:
        "Refill a product to its demo level when its stock falls below this share of it (0: never)",
    },
  },
  http: {
    prefix: "/api/v1/inventory",
    routes: {
      checkStock: "POST /check",
      reserveStock: "POST /reserve",
      releaseStock: "POST /release",
      getStock: "GET /{productId}",
    },
    errors: {
      400: ["*Invalid*"],
      404: ["*NotFound*"],
      409: ["*Insufficient*", "*Expired*", "*AlreadyExists*"],
    },
  },
  methods: {
    /** Says, line by line, whether the shelf holds enough; reserves nothing. */
    checkStock(req: CheckStockRequest): StockAvailability {
      const body = parseObject(req, request, ["items"]);
      const itemsField = request.at("items");
      const lines = parseLineItems(body.items, itemsField).map((item, i) => {
        const inStock = onShelf(item.productId, itemsField.at(i).at("productId"));
        return { ...item, requested: item.quantity, inStock, sufficient: inStock >= item.quantity };
      });
      return {
        available: lines.every((l) => l.sufficient),
        items: lines.map(({ productId, requested, inStock, sufficient }) => ({
          productId,
          requested,
          inStock,
          sufficient,
        })),
      };
    },

    /**
     * Takes every line off the shelf, or none. Idempotent per order: reserving the same items for the same
     * order again (a retried call) returns the reservation already held.
     */
    reserveStock(req: ReserveStockRequest, ctx): StockReservation {
      const body = parseObject(req, request, ["orderId", "items"]);
      const orderId = parseOrderId(body.orderId, request.at("orderId"));
      const itemsField = request.at("items");
      const items = parseLineItems(body.items, itemsField);
      const nowMs = Date.now();

      const heldId = reservationByOrder.get(orderId);
      const held = heldId === undefined ? undefined : reservations.get(heldId);
      if (held && isOpen(held, nowMs)) {
        if (sameItems(held.items, items)) return toWire(held);
        throw new ReservationAlreadyExists(
          `order ${orderId} already holds reservation ${held.reservationId} for other items; release it first`,
          { details: { reservationId: held.reservationId } },
        );
      }

      const shortages = items.flatMap((item, i) => {
        const inStock = onShelf(item.productId, itemsField.at(i).at("productId"));
        return inStock < item.quantity
          ? [{ productId: item.productId, requested: item.quantity, inStock }]
          : [];
      });
      if (shortages.length > 0) {
        const what = shortages.map((s) => `${s.productId} has ${s.inStock}, ${s.requested} requested`);
        throw new InsufficientStock(`not enough stock: ${what.join("; ")}`, { details: { shortages } });
      }
      for (const item of items) shelf.set(item.productId, shelf.get(item.productId)! - item.quantity);
      const reservation: Reservation = {
        reservationId: `RSV-${crypto.randomUUID()}`,
        orderId,
        items,
        reservedAtMs: nowMs,
        expiresAtMs: nowMs + ctx.config.reservationTtlMs,
      };
      remember(reservation);
      for (const item of items) {
        if (restock(item.productId, ctx.config.restockBelowPercent)) {
          ctx.log.debug("restocked", { productId: item.productId, level: DEMO_STOCK[item.productId] });
        }
      }
      ctx.log.debug("stock reserved", { orderId, reservationId: reservation.reservationId });
      return toWire(reservation);
    },

    /** Puts a reservation's stock back on the shelf. Releasing twice is harmless (same answer). */
    releaseStock(req: ReleaseStockRequest, ctx): StockRelease {
      const body = parseObject(req, request, ["reservationId"]);
      const reservationId = parseString(body.reservationId, request.at("reservationId"), {
        max: 64,
        pattern: /^RSV-[0-9a-f-]{36}$/,
        expected: "a reservation id like RSV-5b0c1e4f-2a8d-4c3e-9f71-0d6a2b9e8c47",
      });
      const reservation = reservations.get(reservationId);
      if (!reservation) {
        throw new ReservationNotFound(
          `reservation ${reservationId} is not known to this instance (reservations live in the memory of ` +
            `the instance that made them)`,
        );
      }
      const nowMs = Date.now();
      if (reservation.releasedAtMs === undefined) {
        if (nowMs >= reservation.expiresAtMs) {
          throw new ReservationExpired(
            `reservation ${reservationId} expired at ${new Date(reservation.expiresAtMs).toISOString()}; ` +
              `its stock is sold and can no longer be released`,
          );
        }
        for (const item of reservation.items) {
          shelf.set(item.productId, (shelf.get(item.productId) ?? 0) + item.quantity);
        }
        reservation.releasedAtMs = nowMs;
        ctx.log.debug("stock released", { orderId: reservation.orderId, reservationId });
      }
      return {
        reservationId,
        orderId: reservation.orderId,
        released: wire(reservation.items),
        releasedAt: new Date(reservation.releasedAtMs).toISOString(),
      };
    },

    /** `GET /api/v1/inventory/{productId}`: this instance's shelf for one product. */
    getStock(req: GetStockRequest): StockLevel {
      const productField = request.at("productId");
      const productId = parseProductId(req?.productId, productField);
      const inStock = onShelf(productId, productField);
      const nowMs = Date.now();
      let reserved = 0;
      for (const r of reservations.values()) {
        if (!isOpen(r, nowMs)) continue;
        for (const item of r.items) if (item.productId === productId) reserved += item.quantity;
      }
      return { productId, inStock, reserved, demoLevel: DEMO_STOCK[productId] };
    },
  },
});
