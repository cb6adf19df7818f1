/**
 * Inventory: stock levels of the demo catalog and reservations against them.
 *
 * A reservation takes stock off the shelf at once and can be released (the stock goes back) until it
 * expires; after that the stock counts as sold and a release is refused with 409. Place-order reserves before
 * it takes payment and releases when payment fails.
 *
 * State lives in this instance's memory: each instance has its own shelf and its own reservations (with the
 * `sharedState` setting on, in the cluster's kv service instead: one shelf for every node; off by default,
 * see blueprint.toml for why). So that
 * demos and load tests never run dry, a product whose stock falls below `restockBelowPercent` of its demo
 * level is refilled to that level (a supplier delivery); an order for more than is on the shelf is still
 * refused.
 */

import { defineSlice, type KvBatchResult, type KvOperation, SliceError } from "@aether/slices";
import {
  type Field,
  GroupCommit,
  KvBatcher,
  type LineItem,
  type OrderId,
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
// Shared state (`sharedState` on): the same operations on the cluster's kv service, so every
// instance on every node sees one shelf and every reservation. What an order writes is kept small, because
// every write is a replicated, fsynced store write (measured in /tmp/notes/issue20-rest.md):
//
// - stock: one atomic `add` per line that never goes below the floor (no oversell, no read first). A product's
//   entry holds its change from the demo level (absent = the demo level), so nothing is written to start it;
// - the reservation: one record, written only if absent. An order's first reservation has an id derived from
//   the order id (`RSV-` + the order's UUID), so a retried reserve finds it without an order → reservation
//   index; a later reservation of the same order (after a release or expiry) gets a random id and the first
//   record points to it (`latest`);
// - the units held by open reservations (the `reserved` of getStock): kept per instance in one of
//   HELD_SLOTS records and written once for all the reservations and releases that arrived while the previous
//   write was in flight (group commit), not once per line.
//
// Restocks read nothing extra: the add answers the new level.

/** How long a reservation is kept for answering releases after it expired (then the store drops it). */
const KEEP_EXPIRED_RESERVATION_MS = 3600_000;

type Ctx = Parameters<NonNullable<Parameters<typeof defineSlice>[0]["start"]>>[0];
type SharedCtx = Pick<Ctx, "infra" | "log" | "deadline"> & {
  config: { reservationTtlMs: number; restockBelowPercent: number };
};
type Kv = ReturnType<Ctx["infra"]["kv"]>;

/** Units held by open reservations of one product, by expiry (ms, rounded up to a second for long TTLs). */
type HeldByExpiry = Record<string, number>;
/** One slot's held units: productId -> HeldByExpiry. */
type HeldSlot = Record<string, HeldByExpiry>;

/** A reservation as stored: its first record may point to the order's latest reservation. */
interface StoredReservation extends Omit<Reservation, "items"> {
  items: LineItem[];
  latest?: string;
}

/** Compare-and-set rounds a restock tries while concurrent orders change the stock. */
const MAX_RESTOCK_ATTEMPTS = 10;
/** Restock-and-take rounds a short line gets (shared state) before the order is refused, and their spacing. */
const SHORT_LINE_ROUNDS = 5;
const SHORT_LINE_WAIT_MS = 50;
/** Expiry buckets kept per product in one slot; the oldest merge into the next beyond this. */
const MAX_HELD_BUCKETS = 2_000;
/** Records the held units are spread over (getStock reads them all; an instance writes one). */
const HELD_SLOTS = 8;
/** Reservations of one order followed through `latest` pointers before giving up (a bound, not a limit). */
const MAX_RESERVATION_CHAIN = 64;

/** One map, each operation sent through this instance's batcher (the same answers and errors as alone). */
interface KvView {
  get<T>(key: string): Promise<{ value: T; version: number } | null>;
  put(
    key: string,
    value: unknown,
    options?: { ifVersion?: number; ttlMs?: number },
  ): Promise<{ version: number }>;
  delete(key: string, options?: { ifVersion?: number }): Promise<boolean>;
  add(key: string, delta: number, options?: { min?: number }): Promise<{ value: number; version: number }>;
}

interface Stores {
  /** Operations of the shelf's map (or of another, named per operation) in as few service calls as may be. */
  batch(ops: readonly KvOperation[]): Promise<KvBatchResult[]>;
  /** productId -> units on the shelf minus the demo level (changed only by atomic adds and restocks). */
  shelf: KvView;
  /** reservationId -> StoredReservation. */
  reservations: KvView;
  /** `slot-{n}` -> HeldSlot. */
  held: KvView;
  /** productId -> units added by restocks, ever. */
  restocked: KvView;
}

/**
 * Concurrent requests of this instance share kv service calls (group commit, shared/kv_batcher.ts): under
 * load many orders' takes and records travel in one call.
 */
const batcher = new KvBatcher();

function viewOf(kv: Kv, map: string, deadlineMs: number): KvView {
  const one = async (op: KvOperation) => {
    const r = await batcher.run(kv, { ...op, map }, deadlineMs);
    if (!r.ok) throw batchError(r.error);
    return r.result;
  };
  return {
    get: (key) => one({ op: "get", key }),
    put: (key, value, options) =>
      one({
        op: "put",
        key,
        value,
        ...(options?.ifVersion === undefined ? {} : { ifVersion: options.ifVersion }),
        ...(options?.ttlMs === undefined ? {} : { ttlMs: options.ttlMs }),
      }),
    delete: (key, options) =>
      one({
        op: "delete",
        key,
        ...(options?.ifVersion === undefined ? {} : { ifVersion: options.ifVersion }),
      }),
    add: (key, delta, options) =>
      one({ op: "add", key, delta, ...(options?.min === undefined ? {} : { min: options.min }) }),
  };
}

/** The kv service's maps of the shared shelf. */
function storesOf(ctx: Pick<Ctx, "infra" | "deadline">): Stores {
  const kv = ctx.infra.kv(SHELF);
  return {
    batch: (ops) => batcher.all(kv, ops.map((op) => ({ ...op, map: op.map ?? SHELF })), ctx.deadline),
    shelf: viewOf(kv, SHELF, ctx.deadline),
    reservations: viewOf(kv, RESERVATIONS, ctx.deadline),
    held: viewOf(kv, HELD, ctx.deadline),
    restocked: viewOf(kv, RESTOCKED, ctx.deadline),
  };
}

const SHELF = "inventory.shelf";
const RESERVATIONS = "inventory.reservations";
const RESTOCKED = "inventory.restocked";
const HELD = "inventory.held";

/** A failed operation of a batch as the error its method alone would have thrown (same name and message). */
function batchError(error: { name: string; message: string }): Error {
  return Object.assign(new Error(error.message), { name: error.name });
}

/** Throws the first failure of a batch's answers. */
function throwFirstFailure(results: KvBatchResult[]): void {
  for (const r of results) if (!r.ok) throw batchError(r.error);
}

function isVersionMismatch(e: unknown): boolean {
  return (e as Error)?.name === "VersionMismatch";
}

/**
 * A write whose outcome the kv service could not know (its partition's primary died after it was sent): it
 * may or may not have been applied. The service sends adds and plain puts again itself; a compare-and-set is
 * the caller's to resolve.
 */
function outcomeUnknown(error: { name: string }): boolean {
  return error.name === "unavailable" || error.name === "timeout";
}

// Levels this instance saw lately (the answers of its takes, restocks and reads): checkStock answers a line
// from one when it says the shelf holds enough, without a read. The check is a snapshot anyway (another order
// may take the units before this one reserves them); the reservation's atomic take decides. A line the recent
// level calls short is read afresh (a refill may have landed).

/** How old a level checkStock answers from may be. */
const RECENT_LEVEL_MS = 1_000;
/** productId (of the catalog: at most its 8 entries) -> units on the shelf, and when that was seen. */
const recentLevels = new Map<string, { units: number; atMs: number }>();

function sawLevel(productId: string, units: number): void {
  recentLevels.set(productId, { units, atMs: Date.now() });
}

function recentLevel(productId: string): number | undefined {
  const seen = recentLevels.get(productId);
  return seen !== undefined && Date.now() - seen.atMs <= RECENT_LEVEL_MS ? seen.units : undefined;
}

function checkInCatalog(productId: ProductId, field: Field): void {
  if (!Object.hasOwn(DEMO_STOCK, productId)) {
    throw new ProductNotFound(`${field.path}: ${productId} is not in the catalog`, {
      details: { field: field.path, productId },
    });
  }
}

/** Units on the shelf. */
async function sharedOnShelf(stores: Stores, productId: ProductId, field: Field): Promise<number> {
  checkInCatalog(productId, field);
  const units = DEMO_STOCK[productId] + ((await stores.shelf.get<number>(productId))?.value ?? 0);
  sawLevel(productId, units);
  return units;
}

function sharedIsOpen(r: { releasedAtMs?: number; expiresAtMs: number }, nowMs: number): boolean {
  return r.releasedAtMs === undefined && nowMs < r.expiresAtMs;
}

function sharedBucketOf(r: { reservedAtMs: number; expiresAtMs: number }): string {
  const long = r.expiresAtMs - r.reservedAtMs >= 10_000;
  return String(long ? Math.ceil(r.expiresAtMs / 1000) * 1000 : r.expiresAtMs);
}

/**
 * Refills a product to its demo level when it is below the share (compare-and-set: one refill wins). For a
 * shelf found short: no take changes an empty shelf, so the compare-and-set is not raced there.
 */
async function sharedRestock(stores: Stores, productId: string, belowPercent: number): Promise<boolean> {
  const level = DEMO_STOCK[productId];
  // Concurrent orders change the stock between the read and the write: read again until the refill lands
  // or the stock is no longer below the share.
  for (let attempt = 0; attempt < MAX_RESTOCK_ATTEMPTS; attempt++) {
    const entry = await stores.shelf.get<number>(productId);
    const inStock = level + (entry?.value ?? 0);
    if (inStock * 100 >= level * belowPercent) return false;
    try {
      await stores.shelf.put(productId, 0, { ifVersion: entry?.version ?? 0 });
    } catch (e) {
      if (isVersionMismatch(e)) continue;
      throw e;
    }
    // Units delivered so far, per product: stock = demo level + restocked - reserved + released, always.
    await stores.restocked.add(productId, level - inStock);
    return true;
  }
  return false;
}

/**
 * The restock of the order whose take crossed below the share: adds are applied one after another, so exactly
 * one take per fall crosses it, and its add brings the shelf back to the demo level without a compare-and-set
 * round that concurrent orders would keep failing.
 */
async function restockAfterCrossing(
  stores: Stores,
  item: ParsedLineItem,
  levelAfter: number,
  belowPercent: number,
): Promise<boolean> {
  const level = DEMO_STOCK[item.productId];
  const below = (units: number) => units * 100 < level * belowPercent;
  if (!below(levelAfter) || below(levelAfter + item.quantity)) return false;
  // Units delivered so far, per product: stock = demo level + restocked - reserved + released, always. One
  // service call for both adds.
  const results = await stores.batch([
    { op: "add", key: item.productId, delta: level - levelAfter },
    { op: "add", key: item.productId, delta: level - levelAfter, map: RESTOCKED },
  ]);
  throwFirstFailure(results);
  if (results[0].ok) sawLevel(item.productId, level + (results[0].result as { value: number }).value);
  return true;
}

/** Takes one line off the shelf: the level after it, or undefined when the shelf holds too few. */
async function takeLine(stores: Stores, item: ParsedLineItem): Promise<number | undefined> {
  try {
    const { value } = await stores.shelf.add(item.productId, -item.quantity, {
      min: -DEMO_STOCK[item.productId],
    });
    sawLevel(item.productId, DEMO_STOCK[item.productId] + value);
    return DEMO_STOCK[item.productId] + value;
  } catch (e) {
    if ((e as Error).name !== "BelowMinimum") throw e;
    return undefined;
  }
}

/** Puts lines back on the shelf (a reservation refused or released). */
async function putBack(stores: Stores, items: ParsedLineItem[]): Promise<void> {
  if (items.length === 0) return;
  throwFirstFailure(
    await stores.batch(items.map((item) => ({ op: "add", key: item.productId, delta: item.quantity }))),
  );
}

/**
 * The usual reservation in one service call: a take (atomic add with the floor) per line and the reservation
 * record (written only if absent), run at the same time. A batch is not atomic, so when a line is short or an
 * operation fails, what landed is undone (one more call: the units taken go back, the record written is
 * removed at the version written) before answering `short` or throwing. `recorded: false`: the order already
 * had a record (the takes stand; the caller decides as for a retried reserve).
 */
async function takeAndRecord(
  stores: Stores,
  items: ParsedLineItem[],
  reservation: Reservation,
  ttlMs: number,
): Promise<{ short: true } | { short: false; levels: number[]; recorded: boolean }> {
  const results = await stores.batch([
    ...items.map((item) => ({
      op: "add" as const,
      key: item.productId,
      delta: -item.quantity,
      min: -DEMO_STOCK[item.productId],
    })),
    recordPut(reservation, ttlMs),
  ]);
  const takes = results.slice(0, items.length);
  for (const [i, r] of takes.entries()) {
    if (r.ok) {
      sawLevel(items[i].productId, DEMO_STOCK[items[i].productId] + (r.result as { value: number }).value);
    }
  }
  let record = results[items.length];
  if (!record.ok && outcomeUnknown(record.error)) record = await resolveRecord(stores, reservation, ttlMs);
  const failed = [...takes.filter((r) => !r.ok && r.error.name !== "BelowMinimum")];
  if (!record.ok && record.error.name !== "VersionMismatch") failed.push(record);
  const short = takes.some((r) => !r.ok);
  if (!short && failed.length === 0) {
    const levels = takes.map((r, i) =>
      DEMO_STOCK[items[i].productId] + (r.ok ? r.result.value as number : 0)
    );
    return { short: false, levels, recorded: record.ok };
  }
  const undo: KvOperation[] = items.flatMap((item, i) =>
    takes[i].ok ? [{ op: "add" as const, key: item.productId, delta: item.quantity }] : []
  );
  if (record.ok) {
    undo.push({
      op: "delete",
      map: RESERVATIONS,
      key: reservation.reservationId,
      ifVersion: record.result.version,
    });
  }
  if (undo.length > 0) await undoWrites(stores, undo);
  for (const r of failed) if (!r.ok) throw batchError(r.error);
  return { short: true };
}

/** Attempts of a give-back delete whose outcome was unknown. */
const MAX_UNDO_ATTEMPTS = 5;

/**
 * Runs the give-backs of a refused reservation (adds: the kv service resends them itself after an unknown
 * outcome) and the removal of the record it wrote (a delete at the version written). A delete whose outcome was
 * unknown (its primary died) is sent again; a version mismatch then means it landed (or the record is no longer
 * this reservation's to remove). Before, the unknown outcome failed the order with a 500.
 */
async function undoWrites(stores: Stores, undo: KvOperation[]): Promise<void> {
  const results = await stores.batch(undo);
  for (const [i, result] of results.entries()) {
    let r = result;
    for (let attempt = 1; !r.ok && undo[i].op === "delete" && outcomeUnknown(r.error); attempt++) {
      if (attempt >= MAX_UNDO_ATTEMPTS) break;
      [r] = await stores.batch([undo[i]]);
    }
    if (r.ok || (undo[i].op === "delete" && isMismatch(r.error))) continue;
    throw batchError(r.error);
  }
}

/** A compare-and-set that found another version (kv `put`: VersionMismatch; `delete`: compare_failed). */
function isMismatch(error: { name: string }): boolean {
  return error.name === "VersionMismatch" || error.name === "compare_failed";
}

/** Writes of a reservation record whose outcome was unknown, sent again before the reserve gives up. */
const MAX_RECORD_ATTEMPTS = 5;

/**
 * The reservation record's write-if-absent had an unknown outcome (its primary died): it is sent again, and
 * when the record is then found present, it is this reservation's own when it holds this reservation (same id,
 * same reservedAtMs): recorded, not a reservation of an earlier attempt. Without this the record's stock was
 * given back while the record that landed still held it (a later release would add it twice).
 */
async function resolveRecord(
  stores: Stores,
  reservation: Reservation,
  ttlMs: number,
): Promise<KvBatchResult> {
  let last: KvBatchResult = {
    ok: false,
    error: {
      name: "unavailable",
      code: "unavailable",
      message: "the reservation record's outcome is unknown",
    },
  };
  for (let attempt = 0; attempt < MAX_RECORD_ATTEMPTS; attempt++) {
    const [put] = await stores.batch([recordPut(reservation, ttlMs)]);
    if (put.ok) return put;
    last = put;
    if (put.error.name === "VersionMismatch") {
      const [read] = await stores.batch([{ op: "get", map: RESERVATIONS, key: reservation.reservationId }]);
      if (!read.ok) {
        last = read;
        continue;
      }
      const found = read.result as { value: StoredReservation; version: number } | null;
      if (found === null) continue;
      const ours = found.value.reservationId === reservation.reservationId &&
        found.value.reservedAtMs === reservation.reservedAtMs && found.value.latest === undefined;
      return ours ? { ok: true, result: { version: found.version } } : put;
    }
    if (!outcomeUnknown(put.error)) return put;
  }
  return last;
}

/**
 * Takes every line off the shelf, or none, one add per line at the same time. A line short of stock first
 * gets the restock a low shelf is due (so a shelf emptied by a burst of orders is refilled by the next order,
 * not stuck at 0) and is tried once more. Returns the short lines (all lines taken put back), or the levels
 * after each line.
 */
async function sharedTake(
  stores: Stores,
  items: ParsedLineItem[],
  belowPercent: number,
): Promise<{ short: ParsedLineItem[] } | { levels: number[] }> {
  const levels = await Promise.all(items.map((item) => takeLine(stores, item)));
  for (const [i, item] of items.entries()) {
    if (levels[i] !== undefined) continue;
    // Tried again whether this order refilled the shelf or another one's refill landed meanwhile (then this
    // restock finds the shelf above the share and does nothing): concurrent orders drain a shelf below the
    // share faster than the crossing take's refill lands, so a short line waits a little for it.
    for (let round = 0; round < SHORT_LINE_ROUNDS && levels[i] === undefined; round++) {
      if (round > 0) await new Promise((r) => setTimeout(r, SHORT_LINE_WAIT_MS * round));
      await sharedRestock(stores, item.productId, belowPercent);
      levels[i] = await takeLine(stores, item);
    }
  }
  const short = items.filter((_, i) => levels[i] === undefined);
  if (short.length === 0) return { levels: levels as number[] };
  await putBack(stores, items.filter((_, i) => levels[i] !== undefined));
  return { short };
}

// The held units, group-committed: the deltas of this instance wait in `pendingHeld`; one write at a time
// merges all of them into this instance's slot, and whoever added them awaits that write. A slot may hold
// negative units (a release through another instance than the reservation's): only the sum over the slots
// means something.

type HeldDeltas = Map<string, Map<string, number>>;

const heldSlot = `slot-${Math.floor(Math.random() * HELD_SLOTS)}`;

function addHeld(into: HeldSlot, deltas: HeldDeltas, nowMs: number): HeldSlot {
  const next: HeldSlot = {};
  const products = new Set([...Object.keys(into), ...deltas.keys()]);
  for (const productId of products) {
    const buckets: HeldByExpiry = {};
    for (const [expiry, units] of Object.entries(into[productId] ?? {})) {
      if (Number(expiry) > nowMs) buckets[expiry] = units;
    }
    for (const [expiry, units] of deltas.get(productId) ?? []) {
      if (Number(expiry) <= nowMs) continue;
      buckets[expiry] = (buckets[expiry] ?? 0) + units;
      if (buckets[expiry] === 0) delete buckets[expiry];
    }
    const keys = Object.keys(buckets).sort((a, b) => Number(a) - Number(b));
    while (keys.length > MAX_HELD_BUCKETS) {
      const oldest = keys.shift()!;
      buckets[keys[0]] += buckets[oldest];
      delete buckets[oldest];
    }
    if (keys.length > 0) next[productId] = buckets;
  }
  return next;
}

function mergeDeltas(into: HeldDeltas, from: HeldDeltas): void {
  for (const [productId, buckets] of from) {
    const target = into.get(productId) ?? new Map<string, number>();
    for (const [bucket, units] of buckets) target.set(bucket, (target.get(bucket) ?? 0) + units);
    into.set(productId, target);
  }
}

/** The slot as this instance last wrote it: the next write needs no read unless another instance wrote. */
let heldKnown: { value: HeldSlot; version: number } | undefined;

/** Merges `deltas` into this instance's slot (compare-and-set: another instance may share the slot). */
async function writeHeld(stores: Stores, deltas: HeldDeltas): Promise<void> {
  for (;;) {
    const entry = heldKnown ?? await stores.held.get<HeldSlot>(heldSlot);
    const value = addHeld(entry?.value ?? {}, deltas, Date.now());
    try {
      const { version } = await stores.held.put(heldSlot, value, { ifVersion: entry?.version ?? 0 });
      heldKnown = { value, version };
      return;
    } catch (e) {
      heldKnown = undefined;
      if (!isVersionMismatch(e)) throw e;
    }
  }
}

/**
 * This instance's held-units writes (shared/group_commit.ts): each goes with the newest waiting request's
 * stores (a request's client dies with its deadline). The held units are a figure for getStock, not the stock
 * itself: a failed write is kept for the next one, and an order does not fail for it.
 */
let heldLog: SharedCtx["log"] | undefined;
const heldCommit = new GroupCommit<Stores, HeldDeltas>({
  empty: () => new Map(),
  merge: mergeDeltas,
  write: writeHeld,
  onError: (e) =>
    heldLog?.warn("held units not written; kept for the next write", { error: (e as Error).message }),
});

/** Adds each line's units (sign -1: released) to the held units of `bucket`; resolves once written. */
function sharedHold(
  stores: Stores,
  log: SharedCtx["log"],
  items: ParsedLineItem[],
  bucket: string,
  sign: 1 | -1,
): Promise<void> {
  const deltas: HeldDeltas = new Map();
  for (const item of items) {
    const buckets = deltas.get(item.productId) ?? new Map<string, number>();
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + sign * item.quantity);
    deltas.set(item.productId, buckets);
  }
  heldLog = log;
  return heldCommit.add(stores, deltas);
}

/** Says, line by line, whether the shelf holds enough; reserves nothing. */
async function sharedCheckStock(req: CheckStockRequest, ctx: SharedCtx): Promise<StockAvailability> {
  const body = parseObject(req, request, ["items"]);
  const itemsField = request.at("items");
  const stores = storesOf(ctx);
  const parsed = parseLineItems(body.items, itemsField);
  for (const [i, item] of parsed.entries()) checkInCatalog(item.productId, itemsField.at(i).at("productId"));
  // A line a recent level says is served needs no read; the others' levels in one service call.
  const recent = parsed.map((item) => {
    const units = recentLevel(item.productId);
    return units !== undefined && units >= item.quantity ? units : undefined;
  });
  const toRead = parsed.filter((_, i) => recent[i] === undefined);
  const entries = toRead.length === 0
    ? []
    : await stores.batch(toRead.map((item) => ({ op: "get", key: item.productId })));
  throwFirstFailure(entries);
  const read = new Map(toRead.map((item, i) => {
    const entry = entries[i].ok ? entries[i].result as { value: number } | null : null;
    const units = DEMO_STOCK[item.productId] + (entry?.value ?? 0);
    sawLevel(item.productId, units);
    return [item.productId, units];
  }));
  const lines = await Promise.all(parsed.map(async (item, i) => {
    const field = itemsField.at(i).at("productId");
    let inStock = recent[i] ?? read.get(item.productId)!;
    // A shelf that concurrent orders emptied before their restock landed gets it now, so it is never
    // left empty by orders that stop at this check; like a short take, a short line waits a little for a
    // refill (this order's or another's) before it is reported short.
    for (let round = 0; round < SHORT_LINE_ROUNDS && inStock < item.quantity; round++) {
      if (round > 0) await new Promise((r) => setTimeout(r, SHORT_LINE_WAIT_MS * round));
      await sharedRestock(stores, item.productId, ctx.config.restockBelowPercent);
      inStock = await sharedOnShelf(stores, item.productId, field);
    }
    return {
      productId: item.productId,
      requested: item.quantity,
      inStock,
      sufficient: inStock >= item.quantity,
    };
  }));
  return { available: lines.every((l) => l.sufficient), items: lines };
}

/** The write of a reservation's record: only if absent, so a second write of it is a VersionMismatch. */
function recordPut(reservation: Reservation, ttlMs: number) {
  return {
    op: "put" as const,
    map: RESERVATIONS,
    key: reservation.reservationId,
    value: storedOf(reservation),
    ifVersion: 0,
    ttlMs,
  };
}

function storedOf(r: Reservation): StoredReservation {
  return { ...r, items: wire(r.items) };
}

function reservationOf(s: StoredReservation, orderId: OrderId): Reservation {
  const field = request.at("items");
  return {
    reservationId: s.reservationId,
    orderId,
    items: parseLineItems(s.items, field),
    reservedAtMs: s.reservedAtMs,
    expiresAtMs: s.expiresAtMs,
    ...(s.releasedAtMs === undefined ? {} : { releasedAtMs: s.releasedAtMs }),
  };
}

/** The first reservation id of an order: `RSV-` and the order's UUID. */
function firstReservationId(orderId: OrderId): string {
  return `RSV-${orderId.slice("ORD-".length)}`;
}

/** The order's latest reservation (following the first record's pointer) with its record's version. */
async function latestReservation(
  stores: Stores,
  orderId: OrderId,
): Promise<{ head: { value: StoredReservation; version: number } | null; latest?: StoredReservation }> {
  const head = await stores.reservations.get<StoredReservation>(firstReservationId(orderId));
  if (!head) return { head };
  let latest = head.value;
  for (let i = 0; latest.latest && i < MAX_RESERVATION_CHAIN; i++) {
    const next = await stores.reservations.get<StoredReservation>(latest.latest);
    if (!next) break;
    latest = next.value;
  }
  return { head, latest };
}

/**
 * Takes every line off the shelf, or none (atomic adds that never go below the floor: concurrent orders
 * through any node never oversell), then writes the reservation. Idempotent per order: reserving the same items
 * for the same order again (a retried call) returns the reservation already held.
 */
async function sharedReserveStock(req: ReserveStockRequest, ctx: SharedCtx): Promise<StockReservation> {
  const body = parseObject(req, request, ["orderId", "items"]);
  const orderId = parseOrderId(body.orderId, request.at("orderId"));
  const itemsField = request.at("items");
  const items = parseLineItems(body.items, itemsField);
  for (const [i, item] of items.entries()) checkInCatalog(item.productId, itemsField.at(i).at("productId"));
  const stores = storesOf(ctx);
  const nowMs = Date.now();
  const reservation: Reservation = {
    reservationId: firstReservationId(orderId),
    orderId,
    items,
    reservedAtMs: nowMs,
    expiresAtMs: nowMs + ctx.config.reservationTtlMs,
  };
  const keep = { ttlMs: ctx.config.reservationTtlMs + KEEP_EXPIRED_RESERVATION_MS };

  // Usually one service call; a short line (everything undone) goes the slow way: the restock a low shelf is
  // due and the lines taken one by one, then the record.
  const first = await takeAndRecord(stores, items, reservation, keep.ttlMs);
  const taken = first.short
    ? await sharedTake(stores, items, ctx.config.restockBelowPercent)
    : { levels: first.levels };
  if ("short" in taken) {
    // The level read now (orders and releases go on meanwhile: never more than would have fitted).
    const shortages = await Promise.all(taken.short.map(async (item) => ({
      productId: item.productId,
      requested: item.quantity,
      inStock: Math.min(await sharedOnShelf(stores, item.productId, itemsField), item.quantity - 1),
    })));
    const what = shortages.map((s) => `${s.productId} has ${s.inStock}, ${s.requested} requested`);
    throw new InsufficientStock(`not enough stock: ${what.join("; ")}`, { details: { shortages } });
  }
  let recorded = !first.short && first.recorded;
  if (first.short) {
    try {
      await stores.reservations.put(reservation.reservationId, storedOf(reservation), {
        ...keep,
        ifVersion: 0,
      });
      recorded = true;
    } catch (e) {
      if (!isVersionMismatch(e)) {
        await putBack(stores, items);
        throw e;
      }
    }
  }
  if (!recorded) {
    // The order has reserved before: a retry gets that reservation; after a release or expiry, a new one.
    let again: Reservation;
    try {
      again = await reserveAgain(stores, reservation, keep.ttlMs);
    } catch (e) {
      await putBack(stores, items);
      throw e;
    }
    if (again !== reservation) {
      await putBack(stores, items);
      return toWire(again);
    }
  }
  await Promise.all([
    sharedHold(stores, ctx.log, items, sharedBucketOf(reservation), 1),
    ...items.map(async (item, i) => {
      try {
        if (await restockAfterCrossing(stores, item, taken.levels[i], ctx.config.restockBelowPercent)) {
          ctx.log.debug("restocked", { productId: item.productId, level: DEMO_STOCK[item.productId] });
        }
      } catch (e) {
        // The reservation stands; an order finding the shelf short refills it (sharedTake).
        ctx.log.warn("restock failed", { productId: item.productId, error: (e as Error).message });
      }
    }),
  ]);
  ctx.log.debug("stock reserved", { orderId, reservationId: reservation.reservationId });
  return toWire(reservation);
}

/**
 * The order already has a reservation record. Returns the open one when it holds the same items (a retried
 * call), refuses other items, and otherwise writes `wanted` under a new id that the first record points to
 * (then returns `wanted` itself, with its new id).
 */
async function reserveAgain(stores: Stores, wanted: Reservation, ttlMs: number): Promise<Reservation> {
  for (;;) {
    const { head, latest } = await latestReservation(stores, wanted.orderId as OrderId);
    if (!head || !latest) {
      // Gone meanwhile (its TTL): the first id is free again.
      try {
        await stores.reservations.put(wanted.reservationId, storedOf(wanted), { ttlMs, ifVersion: 0 });
        return wanted;
      } catch (e) {
        if (isVersionMismatch(e)) continue;
        throw e;
      }
    }
    if (sharedIsOpen(latest, Date.now())) {
      const held = reservationOf(latest, wanted.orderId as OrderId);
      if (sameItems(held.items, wanted.items)) return held;
      throw new ReservationAlreadyExists(
        `order ${wanted.orderId} already holds reservation ${held.reservationId} for other items; ` +
          "release it first",
        { details: { reservationId: held.reservationId } },
      );
    }
    wanted.reservationId = `RSV-${crypto.randomUUID()}`;
    await stores.reservations.put(wanted.reservationId, storedOf(wanted), { ttlMs, ifVersion: 0 });
    try {
      await stores.reservations.put(
        head.value.reservationId,
        { ...head.value, latest: wanted.reservationId },
        {
          ttlMs,
          ifVersion: head.version,
        },
      );
      return wanted;
    } catch (e) {
      await stores.reservations.delete(wanted.reservationId);
      if (!isVersionMismatch(e)) throw e;
    }
  }
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
    const entry = await stores.reservations.get<StoredReservation>(reservationId);
    if (!entry) {
      throw new ReservationNotFound(`reservation ${reservationId} is not known`);
    }
    const stored = entry.value;
    const nowMs = Date.now();
    let releasedAtMs = stored.releasedAtMs;
    if (releasedAtMs === undefined) {
      if (nowMs >= stored.expiresAtMs) {
        throw new ReservationExpired(
          `reservation ${reservationId} expired at ${new Date(stored.expiresAtMs).toISOString()}; ` +
            `its stock is sold and can no longer be released`,
        );
      }
      // Marked released first (compare-and-set): of two concurrent releases, one puts the stock back.
      try {
        await stores.reservations.put(reservationId, { ...stored, releasedAtMs: nowMs }, {
          ifVersion: entry.version,
          ttlMs: KEEP_EXPIRED_RESERVATION_MS,
        });
      } catch (e) {
        if (isVersionMismatch(e)) continue;
        throw e;
      }
      const items = parseLineItems(stored.items, request.at("items"));
      await putBack(stores, items);
      await sharedHold(stores, ctx.log, items, sharedBucketOf(stored), -1);
      releasedAtMs = nowMs;
      ctx.log.debug("stock released", { orderId: stored.orderId, reservationId });
    }
    return {
      reservationId,
      orderId: stored.orderId,
      released: stored.items.map((i) => ({ ...i })),
      releasedAt: new Date(releasedAtMs).toISOString(),
    };
  }
}

/** `GET /api/v1/inventory/{productId}`: the shelf of one product, as every node sees it. */
async function sharedGetStock(req: GetStockRequest, ctx: SharedCtx): Promise<StockLevel> {
  const productField = request.at("productId");
  const productId = parseProductId(req?.productId, productField);
  checkInCatalog(productId, productField);
  // The shelf and every held slot in one service call.
  const results = await storesOf(ctx).batch([
    { op: "get", key: productId },
    ...Array.from({ length: HELD_SLOTS }, (_, n) => ({ op: "get" as const, map: HELD, key: `slot-${n}` })),
  ]);
  throwFirstFailure(results);
  const [shelfEntry, ...slots] = results.map((r) => (r.ok ? r.result : null)) as [
    { value: number } | null,
    ...Array<{ value: HeldSlot } | null>,
  ];
  const inStock = DEMO_STOCK[productId] + (shelfEntry?.value ?? 0);
  sawLevel(productId, inStock);
  const nowMs = Date.now();
  let reserved = 0;
  for (const slot of slots) {
    for (const [expiry, units] of Object.entries(slot?.value[productId] ?? {})) {
      if (Number(expiry) > nowMs) reserved += units;
    }
  }
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
