/**
 * Inventory: stock levels of the demo catalog and reservations against them.
 *
 * A reservation takes stock off the shelf at once and can be released (the stock goes back) until it
 * expires; after that the stock counts as sold and a release is refused with 409. Place-order reserves before
 * it takes payment and releases when payment fails.
 *
 * State lives in this instance's memory: each instance has its own shelf and its own reservations (with the
 * `sharedState` setting on, in the cluster's kv service instead: one shelf for every node). So that
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
// Shared state (`sharedState` on): the same operations on the cluster's kv service, so every instance on
// every node sees one shelf and every reservation. Stock is taken with atomic adds that never go below zero,
// so concurrent orders through any node never oversell; restocks are counted.

/** How long a reservation is kept for answering releases after it expired (then the store drops it). */
const KEEP_EXPIRED_RESERVATION_MS = 3600_000;

type Ctx = Parameters<NonNullable<Parameters<typeof defineSlice>[0]["start"]>>[0];
type SharedCtx = Pick<Ctx, "infra" | "log"> & {
  config: { reservationTtlMs: number; restockBelowPercent: number };
};
type Kv = ReturnType<Ctx["infra"]["kv"]>;

/** Units held by open reservations of one product, by expiry (ms, rounded up to a second for long TTLs). */
type HeldByExpiry = Record<string, number>;

/** Compare-and-set rounds a restock tries while concurrent orders change the stock. */
const MAX_RESTOCK_ATTEMPTS = 10;

/** Expiry buckets kept per product; the oldest merge into the next beyond this. */
const MAX_HELD_BUCKETS = 2_000;

interface Stores {
  /** productId -> units on the shelf (a number changed only by atomic adds, never below 0). */
  stock: Kv;
  /** reservationId -> Reservation. */
  reservations: Kv;
  /** orderId -> reservationId of its latest reservation. */
  byOrder: Kv;
  /** productId -> HeldByExpiry. */
  held: Kv;
  /** productId -> units added by restocks, ever. */
  restocked: Kv;
}

/** The kv service's maps of the shared shelf (`sharedState` on). */
function storesOf(ctx: { infra: Ctx["infra"] }): Stores {
  return {
    stock: ctx.infra.kv("inventory.stock"),
    reservations: ctx.infra.kv("inventory.reservations"),
    byOrder: ctx.infra.kv("inventory.by-order"),
    held: ctx.infra.kv("inventory.held"),
    restocked: ctx.infra.kv("inventory.restocked"),
  };
}

function isVersionMismatch(e: unknown): boolean {
  return (e as Error)?.name === "VersionMismatch";
}

/** Units on the shelf; the first read of a product puts its demo level there. */
async function sharedOnShelf(stores: Stores, productId: ProductId, field: Field): Promise<number> {
  if (!Object.hasOwn(DEMO_STOCK, productId)) {
    throw new ProductNotFound(`${field.path}: ${productId} is not in the catalog`, {
      details: { field: field.path, productId },
    });
  }
  const entry = await stores.stock.get<number>(productId);
  if (entry !== null) return entry.value;
  try {
    await stores.stock.put(productId, DEMO_STOCK[productId], { ifVersion: 0 });
  } catch (e) {
    if (!isVersionMismatch(e)) throw e;
  }
  return (await stores.stock.get<number>(productId))?.value ?? 0;
}

function sharedIsOpen(r: Reservation, nowMs: number): boolean {
  return r.releasedAtMs === undefined && nowMs < r.expiresAtMs;
}

function sharedBucketOf(r: Reservation): string {
  const long = r.expiresAtMs - r.reservedAtMs >= 10_000;
  return String(long ? Math.ceil(r.expiresAtMs / 1000) * 1000 : r.expiresAtMs);
}

/** Adds `units` (negative: removes) to a product's held units in `bucket`, dropping expired buckets. */
async function sharedHold(stores: Stores, productId: string, bucket: string, units: number): Promise<void> {
  for (;;) {
    const entry = await stores.held.get<HeldByExpiry>(productId);
    const nowMs = Date.now();
    const next: HeldByExpiry = {};
    for (const [expiry, held] of Object.entries(entry?.value ?? {})) {
      if (Number(expiry) > nowMs) next[expiry] = held;
    }
    next[bucket] = (next[bucket] ?? 0) + units;
    if (next[bucket] <= 0) delete next[bucket];
    const keys = Object.keys(next).sort((a, b) => Number(a) - Number(b));
    while (keys.length > MAX_HELD_BUCKETS) {
      const oldest = keys.shift()!;
      next[keys[0]] += next[oldest];
      delete next[oldest];
    }
    try {
      await stores.held.put(productId, next, { ifVersion: entry?.version ?? 0 });
      return;
    } catch (e) {
      if (!isVersionMismatch(e)) throw e;
    }
  }
}

/** Refills a product to its demo level when it fell below the share (compare-and-set: one refill wins). */
async function sharedRestock(stores: Stores, productId: string, belowPercent: number): Promise<boolean> {
  const level = DEMO_STOCK[productId];
  // Concurrent orders change the stock between the read and the write: read again until the refill lands
  // or the stock is no longer below the share.
  for (let attempt = 0; attempt < MAX_RESTOCK_ATTEMPTS; attempt++) {
    const entry = await stores.stock.get<number>(productId);
    if (entry === null || entry.value * 100 >= level * belowPercent) return false;
    try {
      await stores.stock.put(productId, level, { ifVersion: entry.version });
    } catch (e) {
      if (isVersionMismatch(e)) continue;
      throw e;
    }
    // Units delivered so far, per product: stock = demo level + restocked - reserved + released, always.
    await stores.restocked.add(productId, level - entry.value);
    return true;
  }
  return false;
}

/**
 * Takes every line off the shelf, or none: a line that cannot be taken puts the earlier ones back. A line
 * short of stock first gets the restock a low shelf is due (so a shelf emptied by a burst of orders is
 * refilled by the next order, not stuck at 0) and is tried once more. Returns the index of a short line.
 */
async function sharedTake(
  stores: Stores,
  items: ParsedLineItem[],
  belowPercent: number,
): Promise<number | undefined> {
  const takeOne = async (item: ParsedLineItem) => {
    try {
      await stores.stock.add(item.productId, -item.quantity, { min: 0 });
      return true;
    } catch (e) {
      if ((e as Error).name !== "BelowMinimum") throw e;
      return false;
    }
  };
  for (let i = 0; i < items.length; i++) {
    if (await takeOne(items[i])) continue;
    if (await sharedRestock(stores, items[i].productId, belowPercent) && await takeOne(items[i])) continue;
    for (const back of items.slice(0, i)) await stores.stock.add(back.productId, back.quantity);
    return i;
  }
  return undefined;
}

/** Says, line by line, whether the shelf holds enough; reserves nothing. */
async function sharedCheckStock(req: CheckStockRequest, ctx: SharedCtx): Promise<StockAvailability> {
  const body = parseObject(req, request, ["items"]);
  const itemsField = request.at("items");
  const stores = storesOf(ctx);
  const parsed = parseLineItems(body.items, itemsField);
  const lines = [];
  for (const [i, item] of parsed.entries()) {
    let inStock = await sharedOnShelf(stores, item.productId, itemsField.at(i).at("productId"));
    // A shelf that concurrent orders emptied before their restock landed gets it now, so it is never
    // left empty by orders that stop at this check.
    if (
      inStock < item.quantity && await sharedRestock(stores, item.productId, ctx.config.restockBelowPercent)
    ) {
      inStock = await sharedOnShelf(stores, item.productId, itemsField.at(i).at("productId"));
    }
    lines.push({
      productId: item.productId,
      requested: item.quantity,
      inStock,
      sufficient: inStock >= item.quantity,
    });
  }
  return { available: lines.every((l) => l.sufficient), items: lines };
}

/**
 * Takes every line off the shelf, or none (atomic adds that never go below 0: concurrent orders through
 * any node never oversell). Idempotent per order: reserving the same items for the same order again (a
 * retried call) returns the reservation already held.
 */
async function sharedReserveStock(req: ReserveStockRequest, ctx: SharedCtx): Promise<StockReservation> {
  const body = parseObject(req, request, ["orderId", "items"]);
  const orderId = parseOrderId(body.orderId, request.at("orderId"));
  const itemsField = request.at("items");
  const items = parseLineItems(body.items, itemsField);
  const stores = storesOf(ctx);
  const nowMs = Date.now();

  const heldId = (await stores.byOrder.get<string>(orderId))?.value;
  const held = heldId === undefined ? undefined : (await stores.reservations.get<Reservation>(heldId))?.value;
  if (held && sharedIsOpen(held, nowMs)) {
    if (sameItems(held.items, items)) return toWire(held);
    throw new ReservationAlreadyExists(
      `order ${orderId} already holds reservation ${held.reservationId} for other items; release it first`,
      { details: { reservationId: held.reservationId } },
    );
  }

  const levels: number[] = [];
  for (const [i, item] of items.entries()) {
    levels.push(await sharedOnShelf(stores, item.productId, itemsField.at(i).at("productId")));
  }
  const short = await sharedTake(stores, items, ctx.config.restockBelowPercent);
  if (short !== undefined) {
    const shortages = [];
    for (const [i, item] of items.entries()) {
      const inStock = i === short ? (await stores.stock.get<number>(item.productId))?.value ?? 0 : levels[i];
      if (inStock < item.quantity) {
        shortages.push({ productId: item.productId, requested: item.quantity, inStock });
      }
    }
    if (shortages.length === 0) {
      const item = items[short];
      shortages.push({ productId: item.productId, requested: item.quantity, inStock: 0 });
    }
    const what = shortages.map((s) => `${s.productId} has ${s.inStock}, ${s.requested} requested`);
    throw new InsufficientStock(`not enough stock: ${what.join("; ")}`, { details: { shortages } });
  }
  const reservation: Reservation = {
    reservationId: `RSV-${crypto.randomUUID()}`,
    orderId,
    items,
    reservedAtMs: nowMs,
    expiresAtMs: nowMs + ctx.config.reservationTtlMs,
  };
  const keep = { ttlMs: ctx.config.reservationTtlMs + KEEP_EXPIRED_RESERVATION_MS };
  await stores.reservations.put(reservation.reservationId, { ...reservation, items: wire(items) }, keep);
  await stores.byOrder.put(orderId, reservation.reservationId, keep);
  for (const item of items) {
    await sharedHold(stores, item.productId, sharedBucketOf(reservation), item.quantity);
  }
  for (const item of items) {
    if (await sharedRestock(stores, item.productId, ctx.config.restockBelowPercent)) {
      ctx.log.debug("restocked", { productId: item.productId, level: DEMO_STOCK[item.productId] });
    }
  }
  ctx.log.debug("stock reserved", { orderId, reservationId: reservation.reservationId });
  return toWire(reservation);
}

/** Puts a reservation's stock back on the shelf. Releasing twice is harmless (same answer). */
async function sharedReleaseStock(req: ReleaseStockRequest, ctx: SharedCtx): Promise<StockRelease> {
  const body = parseObject(req, request, ["reservationId"]);
  const reservationId = parseString(body.reservationId, request.at("reservationId"), {
    max: 64,
    pattern: /^RSV-[0-9a-f-]{36}$/,
    expected: "a reservation id like RSV-5b0c1e4f-2a8d-4c3e-9f71-0d6a2b9e8c47",
  });
  const stores = storesOf(ctx);
  for (;;) {
    const entry = await stores.reservations.get<Reservation>(reservationId);
    if (!entry) {
      throw new ReservationNotFound(`reservation ${reservationId} is not known`);
    }
    const reservation = entry.value;
    const nowMs = Date.now();
    if (reservation.releasedAtMs === undefined) {
      if (nowMs >= reservation.expiresAtMs) {
        throw new ReservationExpired(
          `reservation ${reservationId} expired at ${new Date(reservation.expiresAtMs).toISOString()}; ` +
            `its stock is sold and can no longer be released`,
        );
      }
      // Marked released first (compare-and-set): of two concurrent releases, one puts the stock back.
      try {
        await stores.reservations.put(reservationId, { ...reservation, releasedAtMs: nowMs }, {
          ifVersion: entry.version,
          ttlMs: KEEP_EXPIRED_RESERVATION_MS,
        });
      } catch (e) {
        if (isVersionMismatch(e)) continue;
        throw e;
      }
      for (const item of reservation.items) {
        await stores.stock.add(item.productId, item.quantity);
        await sharedHold(stores, item.productId, sharedBucketOf(reservation), -item.quantity);
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
  }
}

/** `GET /api/v1/inventory/{productId}`: the shelf of one product, as every node sees it. */
async function sharedGetStock(req: GetStockRequest, ctx: SharedCtx): Promise<StockLevel> {
  const productField = request.at("productId");
  const productId = parseProductId(req?.productId, productField);
  const stores = storesOf(ctx);
  const inStock = await sharedOnShelf(stores, productId, productField);
  const nowMs = Date.now();
  let reserved = 0;
  const held = (await stores.held.get<HeldByExpiry>(productId))?.value ?? {};
  for (const [expiry, units] of Object.entries(held)) if (Number(expiry) > nowMs) reserved += units;
  return { productId, inStock, reserved, demoLevel: DEMO_STOCK[productId] };
}

// ---------------------------------------------------------------------------------------------------------
// The slice

const request = requestOf(InvalidStockRequest);

export default defineSlice({
  coordinates: "org.example:inventory:1.0.0",
  requires: ["kv"],
  config: {
    sharedState: {
      type: "boolean",
      default: false,
      description: "Keep stock and reservations in the cluster's kv service (one shelf for every node) " +
        "instead of this instance's memory",
    },
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
    checkStock(req: CheckStockRequest, ctx): StockAvailability | Promise<StockAvailability> {
      if (ctx.config.sharedState) return sharedCheckStock(req, ctx);
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
    reserveStock(req: ReserveStockRequest, ctx): StockReservation | Promise<StockReservation> {
      if (ctx.config.sharedState) return sharedReserveStock(req, ctx);
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
    releaseStock(req: ReleaseStockRequest, ctx): StockRelease | Promise<StockRelease> {
      if (ctx.config.sharedState) return sharedReleaseStock(req, ctx);
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
    getStock(req: GetStockRequest, ctx): StockLevel | Promise<StockLevel> {
      if (ctx.config.sharedState) return sharedGetStock(req, ctx);
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
