/**
 * The messages of remote invocation on the mesh channel "i" (encoded by the mesh's codec, msgpack by
 * default; chosen by measurement in runtime/net/README.md). Short field names: they travel with every call.
 *
 * - request  `{t:"q", c, i, m, p?, r, tp, b, f?}`: correlation id, instance id, method, payload, request id,
 *   traceparent, budget (ms left until the caller's deadline; a budget rather than a time, so clock skew
 *   between nodes does not matter), fire-and-forget flag (the answer then carries no value).
 * - answer   `{t:"a", c, o}`: the callee's outcome (value or the slice's own error).
 * - failure  `{t:"e", c, k, code, msg, ra?}`: the call could not be made or answered on the callee (kind,
 *   code, and for an overloaded callee the seconds after which to retry, so the client gets its retry-after).
 *
 * Everything arriving here comes from an authenticated peer but is still checked: a malformed message is
 * dropped (and answered with a failure when its correlation id can be read).
 */

import type { ErrorCode } from "../core/mod.ts";
import type { InvokeOutcome } from "../sandbox/mod.ts";
import { isFailureKind } from "./failure.ts";
import type { FailureKind } from "./retry.ts";

export const INVOKE_CHANNEL = "i";

export interface WireRequest {
  t: "q";
  c: number;
  i: string;
  m: string;
  p?: unknown;
  r: string;
  tp: string;
  b: number;
  f?: 1;
  /** The calling slice's coordinates, as its node's sandbox host took them from the caller's manifest. */
  cl?: string;
}

export interface WireAnswer {
  t: "a";
  c: number;
  o: InvokeOutcome;
}

export interface WireFailure {
  t: "e";
  c: number;
  k: FailureKind;
  code: ErrorCode;
  msg: string;
  /** Seconds after which a retry may succeed (overloaded). */
  ra?: number;
}

/** The largest retry-after a failure may carry, in seconds. */
const MAX_RETRY_AFTER_SECONDS = 3_600;

export type WireMessage = WireRequest | WireAnswer | WireFailure;

const ERROR_CODES: ReadonlySet<string> = new Set([
  "bad_request",
  "not_found",
  "forbidden",
  "conflict",
  "too_large",
  "unavailable",
  "timeout",
  "overloaded",
  "internal",
]);

function isCorrelation(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isShortString(value: unknown, max = 512): value is string {
  return typeof value === "string" && value.length > 0 && value.length <= max;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
}

function checkOutcome(value: unknown): InvokeOutcome | string {
  if (!isRecord(value)) return "outcome is not an object";
  if (value.ok === true) {
    if (value.status !== undefined && !(Number.isInteger(value.status))) {
      return "outcome.status is not an integer";
    }
    if (value.headers !== undefined) {
      if (!isRecord(value.headers)) return "outcome.headers is not an object";
      for (const v of Object.values(value.headers)) {
        if (typeof v !== "string") return "a header is not a string";
      }
    }
    return value as InvokeOutcome;
  }
  if (value.ok !== false || !isRecord(value.error)) return "outcome is neither ok nor an error";
  const error = value.error;
  if (typeof error.name !== "string" || typeof error.message !== "string") {
    return "error without name or message";
  }
  if (error.status !== undefined && !Number.isInteger(error.status)) return "error.status is not an integer";
  return value as InvokeOutcome;
}

/** The message, or a string saying what is wrong with it (and its correlation id when readable). */
export function parseWire(value: unknown): WireMessage | { problem: string; c?: number } {
  if (!isRecord(value)) return { problem: "not an object" };
  const c = isCorrelation(value.c) ? value.c : undefined;
  if (c === undefined) return { problem: "no correlation id" };
  switch (value.t) {
    case "q": {
      if (!isShortString(value.i)) return { problem: "request without an instance id", c };
      if (!isShortString(value.m, 128)) return { problem: "request without a method", c };
      if (!isShortString(value.r, 256)) return { problem: "request without a request id", c };
      if (!isShortString(value.tp, 128)) return { problem: "request without a traceparent", c };
      if (typeof value.b !== "number" || !Number.isFinite(value.b)) {
        return { problem: "request without a budget", c };
      }
      if (value.f !== undefined && value.f !== 1) {
        return { problem: "request with a bad fire-and-forget flag", c };
      }
      if (value.cl !== undefined && !isShortString(value.cl, 256)) {
        return { problem: "request with a bad caller", c };
      }
      return value as unknown as WireRequest;
    }
    case "a": {
      const outcome = checkOutcome(value.o);
      if (typeof outcome === "string") return { problem: outcome, c };
      return { t: "a", c, o: outcome };
    }
    case "e": {
      if (!isFailureKind(value.k)) return { problem: "failure without a known kind", c };
      if (typeof value.code !== "string" || !ERROR_CODES.has(value.code)) {
        return { problem: "failure without a known code", c };
      }
      if (typeof value.msg !== "string") return { problem: "failure without a message", c };
      if (
        value.ra !== undefined &&
        !(typeof value.ra === "number" && value.ra > 0 && value.ra <= MAX_RETRY_AFTER_SECONDS)
      ) {
        return { problem: `failure with a retry-after that is not 0-${MAX_RETRY_AFTER_SECONDS} seconds`, c };
      }
      return value as unknown as WireFailure;
    }
    default:
      return { problem: `unknown message type ${JSON.stringify(value.t)}`, c };
  }
}
