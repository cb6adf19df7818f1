/**
 * Payment: charges a card and refunds a charge. There is no card network behind it: a card is approved when
 * it parses (Luhn check digit, not expired, CVV of the brand's length), except the documented test numbers in
 * `DECLINED_TEST_CARDS`, which are always declined with 402 (`4000 0000 0000 0002`: card_declined,
 * `4000 0000 0000 9995`: insufficient_funds).
 *
 * Transactions live in this instance's memory. A charge is idempotent per order: a retried call for the same
 * order and amount returns the transaction already made instead of charging twice.
 */

import { defineSlice, SliceError } from "@aether/slices";
import {
  type Cents,
  CURRENCY,
  DECLINED_TEST_CARDS,
  formatCents,
  optional,
  parseCents,
  parseCustomerId,
  parseEnum,
  parseObject,
  parseOrderId,
  parsePaymentMethod,
  parseString,
  type PaymentMethod,
  requestOf,
} from "../shared/mod.ts";

/** A request that is malformed, including a card that fails validation. 400. */
export class InvalidPayment extends SliceError {}
/** A refund that does not fit the transaction (more than is left to refund). 400. */
export class InvalidRefund extends SliceError {}
/** The card was declined. 402; `details.declineCode` says why. */
export class PaymentDeclined extends SliceError {}
/** A transaction id this instance does not know. 404. */
export class TransactionNotFound extends SliceError {}
/** The order was already charged a different amount. 409. */
export class PaymentAlreadyExists extends SliceError {}

/** Transactions kept for idempotency and refunds; the oldest are forgotten beyond this. */
const MAX_TRANSACTIONS = 10_000;

// ---------------------------------------------------------------------------------------------------------
// Requests and responses

export interface ProcessPaymentRequest {
  orderId: string;
  customerId: string;
  amountCents: Cents;
  /** Only USD; optional. */
  currency?: string;
  paymentMethod: PaymentMethod;
}

export interface PaymentResult {
  transactionId: string;
  orderId: string;
  status: "CAPTURED";
  amountCents: Cents;
  currency: string;
  cardBrand: string;
  cardLast4: string;
  processedAt: string;
}

export interface ProcessRefundRequest {
  transactionId: string;
  /** Optional: without it, everything not yet refunded. */
  amountCents?: Cents;
  reason: string;
}

export interface RefundResult {
  refundId: string;
  transactionId: string;
  amountCents: Cents;
  /** Refunded so far on this transaction, this refund included. */
  refundedTotalCents: Cents;
  remainingCents: Cents;
  status: "REFUNDED" | "PARTIALLY_REFUNDED";
  reason: string;
  processedAt: string;
}

// ---------------------------------------------------------------------------------------------------------
// State of this instance

interface Transaction {
  result: PaymentResult;
  refundedCents: Cents;
}

const transactions = new Map<string, Transaction>();
const transactionByOrder = new Map<string, string>();

function remember(transaction: Transaction): void {
  const { transactionId, orderId } = transaction.result;
  transactions.set(transactionId, transaction);
  transactionByOrder.set(orderId, transactionId);
  for (const [id, old] of transactions) {
    if (transactions.size <= MAX_TRANSACTIONS) break;
    transactions.delete(id);
    if (transactionByOrder.get(old.result.orderId) === id) transactionByOrder.delete(old.result.orderId);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The slice

const request = requestOf(InvalidPayment);
const refundRequest = requestOf(InvalidRefund);

export default defineSlice({
  coordinates: "org.example:payment:1.0.0",
  http: {
    prefix: "/api/v1/payment",
    routes: { processPayment: "POST /process", processRefund: "POST /refund" },
    errors: {
      400: ["*Invalid*"],
      402: ["*Declined*", "*PaymentFailed*"],
      404: ["*NotFound*"],
      409: ["*AlreadyExists*"],
    },
  },
  methods: {
    /** Charges the card, once per order. */
    processPayment(req: ProcessPaymentRequest, ctx): PaymentResult {
      const body = parseObject(req, request, [
        "orderId",
        "customerId",
        "amountCents",
        "currency",
        "paymentMethod",
      ]);
      const orderId = parseOrderId(body.orderId, request.at("orderId"));
      const customerId = parseCustomerId(body.customerId, request.at("customerId"));
      const amountCents = parseCents(body.amountCents, request.at("amountCents"));
      optional(body.currency, (v) => parseEnum(v, request.at("currency"), [CURRENCY]));
      const card = parsePaymentMethod(body.paymentMethod, request.at("paymentMethod"));

      const earlierId = transactionByOrder.get(orderId);
      const earlier = earlierId === undefined ? undefined : transactions.get(earlierId);
      if (earlier) {
        if (earlier.result.amountCents === amountCents) return earlier.result;
        throw new PaymentAlreadyExists(
          `order ${orderId} was already charged ${formatCents(earlier.result.amountCents)} ` +
            `(transaction ${earlier.result.transactionId}); refusing a second charge of ${
              formatCents(amountCents)
            }`,
          { details: { transactionId: earlier.result.transactionId } },
        );
      }
      const declineCode = DECLINED_TEST_CARDS[card.number];
      if (declineCode !== undefined) {
        ctx.log.warn("payment declined", { orderId, customerId, declineCode, cardLast4: card.last4 });
        throw new PaymentDeclined(
          `the ${card.brand} card ending ${card.last4} was declined (${declineCode}); ` +
            `${formatCents(amountCents)} was not charged`,
          { details: { declineCode, cardLast4: card.last4 } },
        );
      }
      const result: PaymentResult = {
        transactionId: `TXN-${crypto.randomUUID()}`,
        orderId,
        status: "CAPTURED",
        amountCents,
        currency: CURRENCY,
        cardBrand: card.brand,
        cardLast4: card.last4,
        processedAt: new Date().toISOString(),
      };
      remember({ result, refundedCents: 0 });
      ctx.log.debug("payment captured", {
        orderId,
        customerId,
        transactionId: result.transactionId,
        amountCents,
      });
      return result;
    },

    /** Refunds all or part of a transaction; the total refunded never exceeds the charge. */
    processRefund(req: ProcessRefundRequest, ctx): RefundResult {
      const body = parseObject(req, refundRequest, ["transactionId", "amountCents", "reason"]);
      const transactionId = parseString(body.transactionId, refundRequest.at("transactionId"), {
        max: 64,
        pattern: /^TXN-[0-9a-f-]{36}$/,
        expected: "a transaction id like TXN-3f0b9c1e-7a2d-4e58-b6c4-1d9e8a7f2b30",
      });
      const amountField = refundRequest.at("amountCents");
      const requested = optional(body.amountCents, (v) => parseCents(v, amountField));
      const reason = parseString(body.reason, refundRequest.at("reason"), { max: 200 });
      const transaction = transactions.get(transactionId);
      if (!transaction) {
        throw new TransactionNotFound(
          `transaction ${transactionId} is not known to this instance (transactions live in the memory of ` +
            `the instance that made them)`,
        );
      }
      const remaining = transaction.result.amountCents - transaction.refundedCents;
      if (remaining === 0) {
        amountField.fail(`cannot be refunded: transaction ${transactionId} is fully refunded`);
      }
      const amountCents = requested ?? remaining;
      if (amountCents > remaining) {
        amountField.fail(
          `${amountCents} is more than the ${remaining} cents left to refund on ${transactionId}`,
        );
      }
      transaction.refundedCents += amountCents;
      const left = transaction.result.amountCents - transaction.refundedCents;
      ctx.log.info("refund made", { transactionId, amountCents, reason });
      return {
        refundId: `RFD-${crypto.randomUUID()}`,
        transactionId,
        amountCents,
        refundedTotalCents: transaction.refundedCents,
        remainingCents: left,
        status: left === 0 ? "REFUNDED" : "PARTIALLY_REFUNDED",
        reason,
        processedAt: new Date().toISOString(),
      };
    },
  },
});
