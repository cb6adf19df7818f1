/**
 * Place-order: the entry point of the shop. It owns no catalog data; it validates an order and drives the
 * other four slices through the runtime:
 *
 *   validate → inventory.checkStock → pricing.calculatePrice ∥ fulfillment.calculateShipping
 *     → pricing.applyDiscount → pricing.calculateTax → inventory.reserveStock → payment.processPayment
 *     → fulfillment.createShipment → 201 confirmation
 *
 * Compensation: when payment fails the stock reservation is released; when the shipment cannot be created
 * the payment is refunded and the reservation released. A compensation that fails is logged and does not
 * hide the original error (an unreleased reservation still expires on its own).
 *
 * Confirmed orders are kept for `GET /api/v1/orders/{orderId}` in this instance's memory, or with
 * `sharedState` in the cluster's kv service (one replicated write per order), where an order placed through
 * one node is read back through any other.
 */

import { type ApiOf, defineSlice, type KvClient, respond, slice, SliceError } from "@aether/slices";
import {
  type Address,
  type Cents,
  CURRENCY,
  type CustomerId,
  type Email,
  type Field,
  KvBatcher,
  type LineItem,
  newOrderId,
  optional,
  type OrderId,
  parseAddress,
  parseCustomerId,
  type ParsedAddress,
  type ParsedCard,
  type ParsedLineItem,
  parseEmail,
  parseLineItems,
  parseObject,
  parseOrderId,
  parsePaymentMethod,
  parseShippingOption,
  parseString,
  type PaymentMethod,
  requestOf,
  type ShippingOption,
} from "../shared/mod.ts";
import type inventory from "../inventory/slice.ts";
import type pricing from "../pricing/slice.ts";
import type payment from "../payment/slice.ts";
import type fulfillment from "../fulfillment/slice.ts";

/** The order is malformed; the message names the field. 400. */
export class InvalidOrder extends SliceError {}
/** Some line cannot be served from stock. 409; `details.shortages` lists them. */
export class InsufficientStock extends SliceError {}
/** No order with that id on this instance. 404. */
export class OrderNotFound extends SliceError {}

// ---------------------------------------------------------------------------------------------------------
// Requests and responses

export interface PlaceOrderRequest {
  customerId: string;
  email: string;
  items: LineItem[];
  shippingAddress: Address;
  paymentMethod: PaymentMethod;
  /** Default STANDARD. */
  shippingOption?: ShippingOption;
  discountCode?: string | null;
}

export interface ConfirmedLine {
  productId: string;
  quantity: number;
  unitPriceCents: Cents;
  lineTotalCents: Cents;
}

export interface OrderTotals {
  currency: string;
  subtotalCents: Cents;
  discountCents: Cents;
  shippingCents: Cents;
  taxCents: Cents;
  /** What was charged: subtotal - discount + shipping + tax. */
  totalCents: Cents;
}

export interface OrderConfirmation {
  orderId: string;
  status: "CONFIRMED";
  customerId: string;
  email: string;
  lines: ConfirmedLine[];
  totals: OrderTotals;
  discountCode: string | null;
  taxRatePercent: number;
  reservation: { reservationId: string; expiresAt: string };
  payment: { transactionId: string; cardBrand: string; cardLast4: string };
  shipment: {
    shipmentId: string;
    trackingNumber: string;
    carrier: string;
    option: ShippingOption;
    estimatedDelivery: string;
  };
  placedAt: string;
}

export interface GetOrderRequest {
  orderId: string;
}

// ---------------------------------------------------------------------------------------------------------
// Parsing an order

/** A fully parsed order: every field checked before any other slice is called. */
export interface Order {
  customerId: CustomerId;
  email: Email;
  items: ParsedLineItem[];
  shippingAddress: ParsedAddress;
  card: ParsedCard;
  shippingOption: ShippingOption;
  discountCode: string | null;
}

const ORDER_FIELDS = [
  "customerId",
  "email",
  "items",
  "shippingAddress",
  "paymentMethod",
  "shippingOption",
  "discountCode",
] as const;

export function parseOrder(value: unknown, now: Date = new Date()): Order {
  const root: Field = requestOf(InvalidOrder);
  const raw = parseObject(value, root, ORDER_FIELDS);
  return {
    customerId: parseCustomerId(raw.customerId, root.at("customerId")),
    email: parseEmail(raw.email, root.at("email")),
    items: parseLineItems(raw.items, root.at("items")),
    shippingAddress: parseAddress(raw.shippingAddress, root.at("shippingAddress")),
    card: parsePaymentMethod(raw.paymentMethod, root.at("paymentMethod"), now),
    shippingOption: optional(raw.shippingOption, (v) => parseShippingOption(v, root.at("shippingOption"))) ??
      "STANDARD",
    discountCode: optional(raw.discountCode, (v) =>
      parseString(v, root.at("discountCode"), {
        max: 32,
        pattern: /^[A-Za-z0-9_-]+$/,
        expected: "a discount code of letters and digits",
      }).toUpperCase()) ?? null,
  };
}

function cardOnTheWire(card: ParsedCard): PaymentMethod {
  return {
    cardNumber: card.number,
    expiryMonth: card.expiryMonth,
    expiryYear: card.expiryYear,
    cvv: card.cvv,
    holderName: card.holderName,
  };
}

function describeError(e: unknown): { name: string; message: string } {
  return { name: (e as Error)?.name ?? "Error", message: (e as Error)?.message ?? String(e) };
}

type Infra = { infra: { kv(name: string): KvClient }; deadline: number };

/** How long a confirmed order can be read back with `sharedState`. */
const KEEP_ORDER_MS = 7 * 24 * 3600_000;

/** Orders stored by concurrent requests of this instance travel together (shared/kv_batcher.ts). */
const batcher = new KvBatcher();

/** Confirmed orders kept in this instance's memory for `getOrder` (without `sharedState`). */
const orders = new Map<string, OrderConfirmation>();

interface StoreConfig {
  sharedState: boolean;
  maxStoredOrders: number;
}

/**
 * Keeps a confirmed order for `getOrder`: with `sharedState` in the cluster's kv service for a week (any
 * instance on any node answers; one replicated write per order), else in this instance's memory (the oldest
 * forgotten beyond `maxStoredOrders`).
 */
async function store(ctx: Infra, config: StoreConfig, confirmation: OrderConfirmation): Promise<void> {
  if (config.maxStoredOrders === 0) return;
  if (config.sharedState) {
    // Concurrent orders of this instance share one kv service call (group commit).
    const [r] = await batcher.all(ctx.infra.kv("orders"), [
      { op: "put", key: confirmation.orderId, value: confirmation, ttlMs: KEEP_ORDER_MS },
    ], ctx.deadline);
    if (!r.ok) throw Object.assign(new Error(r.error.message), { name: r.error.name });
    return;
  }
  orders.set(confirmation.orderId, confirmation);
  for (const id of orders.keys()) {
    if (orders.size <= config.maxStoredOrders) break;
    orders.delete(id);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The slice

export default defineSlice({
  coordinates: "org.example:place-order:1.0.0",
  requires: ["kv"],
  config: {
    callTimeoutMs: {
      type: "integer",
      default: 10_000,
      minimum: 100,
      maximum: 120_000,
      description: "Deadline of each call to another slice (never later than the request's own deadline)",
    },
    sharedState: {
      type: "boolean",
      default: false,
      description: "Keep confirmed orders in the cluster's kv service (readable through every node) " +
        "instead of this instance's memory",
    },
    maxStoredOrders: {
      type: "integer",
      default: 10_000,
      minimum: 0,
      description:
        "Confirmed orders kept for GET (in the cluster's kv service); the oldest are forgotten first",
    },
  },
  calls: {
    inventory: slice<ApiOf<typeof inventory>>("org.example:inventory", "^1.0.0"),
    pricing: slice<ApiOf<typeof pricing>>("org.example:pricing", "^1.0.0"),
    payment: slice<ApiOf<typeof payment>>("org.example:payment", "^1.0.0"),
    fulfillment: slice<ApiOf<typeof fulfillment>>("org.example:fulfillment", "^1.0.0"),
  },
  http: {
    prefix: "/api/v1/orders",
    routes: { placeOrder: "POST /", getOrder: "GET /{orderId}" },
    // Errors of the slices called keep the status their own slice gave them; these patterns cover the names
    // this slice throws and, by the same names, theirs.
    errors: {
      400: ["*Invalid*"],
      402: ["*Declined*", "*PaymentFailed*"],
      404: ["*NotFound*"],
      409: ["*Insufficient*", "*Expired*", "*AlreadyExists*"],
      422: ["*NotApplicable*"],
    },
  },
  methods: {
    async placeOrder(req: PlaceOrderRequest, ctx) {
      const order = parseOrder(req);
      const { inventory, pricing, payment, fulfillment } = ctx.slices;
      const call = { timeoutMs: ctx.config.callTimeoutMs };
      const items: LineItem[] = order.items;
      const destination: Address = order.shippingAddress;
      const orderId: OrderId = newOrderId();
      ctx.log.debug("placing order", { orderId, customerId: order.customerId, lines: items.length });

      const stock = await inventory.checkStock({ items }, call);
      if (!stock.available) {
        const shortages = stock.items.filter((l) => !l.sufficient);
        const what = shortages.map((s) => `${s.productId} has ${s.inStock}, ${s.requested} requested`);
        throw new InsufficientStock(`not enough stock: ${what.join("; ")}`, {
          details: {
            shortages: shortages.map(({ productId, requested, inStock }) => ({
              productId,
              requested,
              inStock,
            })),
          },
        });
      }

      const [price, quote] = await Promise.all([
        pricing.calculatePrice({ items }, call),
        fulfillment.calculateShipping({ items, destination }, call),
      ]);
      const shipping = quote.options.find((o) => o.option === order.shippingOption);
      if (!shipping) {
        throw new InvalidOrder(
          `shippingOption ${order.shippingOption} is not offered to ${destination.country} (offered: ${
            quote.options.map((o) => o.option).join(", ")
          })`,
          { details: { field: "shippingOption" } },
        );
      }
      const discount = await pricing.applyDiscount(
        { customerId: order.customerId, subtotalCents: price.subtotalCents, code: order.discountCode },
        call,
      );
      const tax = await pricing.calculateTax(
        { amountCents: discount.totalCents, country: destination.country, region: destination.region },
        call,
      );
      const totals: OrderTotals = {
        currency: CURRENCY,
        subtotalCents: price.subtotalCents,
        discountCents: discount.discountCents,
        shippingCents: shipping.costCents,
        taxCents: tax.taxCents,
        totalCents: discount.totalCents + shipping.costCents + tax.taxCents,
      };

      const reservation = await inventory.reserveStock({ orderId, items }, call);
      const releaseStock = async (why: string) => {
        try {
          await inventory.releaseStock({ reservationId: reservation.reservationId }, call);
          ctx.log.info("reservation released", { orderId, reservationId: reservation.reservationId, why });
        } catch (e) {
          ctx.log.error("could not release the reservation; it expires on its own", {
            orderId,
            reservationId: reservation.reservationId,
            expiresAt: reservation.expiresAt,
            error: describeError(e),
          });
        }
      };

      let paid;
      try {
        paid = await payment.processPayment({
          orderId,
          customerId: order.customerId,
          amountCents: totals.totalCents,
          currency: CURRENCY,
          paymentMethod: cardOnTheWire(order.card),
        }, call);
      } catch (e) {
        ctx.log.warn("payment failed; releasing the stock", { orderId, error: describeError(e) });
        await releaseStock("payment failed");
        throw e;
      }

      let shipment;
      try {
        shipment = await fulfillment.createShipment(
          { orderId, items, destination, option: order.shippingOption },
          call,
        );
      } catch (e) {
        ctx.log.warn("shipment failed; refunding and releasing the stock", {
          orderId,
          error: describeError(e),
        });
        try {
          await payment.processRefund(
            { transactionId: paid.transactionId, reason: `shipment for ${orderId} could not be created` },
            call,
          );
        } catch (refundError) {
          ctx.log.error("could not refund the payment", {
            orderId,
            transactionId: paid.transactionId,
            error: describeError(refundError),
          });
        }
        await releaseStock("shipment failed");
        throw e;
      }

      const confirmation: OrderConfirmation = {
        orderId,
        status: "CONFIRMED",
        customerId: order.customerId,
        email: order.email,
        lines: price.lines,
        totals,
        discountCode: discount.code,
        taxRatePercent: tax.ratePercent,
        reservation: { reservationId: reservation.reservationId, expiresAt: reservation.expiresAt },
        payment: { transactionId: paid.transactionId, cardBrand: paid.cardBrand, cardLast4: paid.cardLast4 },
        shipment: {
          shipmentId: shipment.shipmentId,
          trackingNumber: shipment.trackingNumber,
          carrier: shipment.carrier,
          option: shipment.option,
          estimatedDelivery: shipment.estimatedDelivery,
        },
        placedAt: new Date().toISOString(),
      };
      await store(ctx, ctx.config, confirmation);
      ctx.log.debug("order placed", { orderId, totalCents: totals.totalCents });
      return respond({ status: 201, headers: { location: `/api/v1/orders/${orderId}` }, body: confirmation });
    },

    /** `GET /api/v1/orders/{orderId}`: a confirmed order (with `sharedState`, placed through any node). */
    async getOrder(req: GetOrderRequest, ctx): Promise<OrderConfirmation> {
      const orderId = parseOrderId(req?.orderId, requestOf(InvalidOrder).at("orderId"));
      const order = ctx.config.sharedState
        ? (await ctx.infra.kv("orders").get<OrderConfirmation>(orderId))?.value
        : orders.get(orderId);
      if (!order) {
        throw new OrderNotFound(
          ctx.config.sharedState
            ? `order ${orderId} is not known`
            : `order ${orderId} is not known to this instance (orders live in the memory of the instance that ` +
              `placed them)`,
        );
      }
      return order;
    },
  },
});
