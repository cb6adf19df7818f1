/**
 * Errors that cross a boundary (HTTP, CLI, mesh) carry a stable machine-readable `code`, the HTTP status they
 * map to, and a human sentence that says what was wrong and where.
 */
export type ErrorCode =
  | "bad_request"
  | "invalid_flag"
  | "not_found"
  | "forbidden"
  | "unauthorized"
  | "conflict"
  | "gone"
  | "too_large"
  | "no_quorum"
  | "unavailable"
  | "timeout"
  | "overloaded"
  | "compare_failed"
  | "internal";

/** The HTTP status of each error code (problem documents, the OpenAPI document's problem types). */
export const STATUS_BY_CODE: Readonly<Record<ErrorCode, number>> = {
  bad_request: 400,
  invalid_flag: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  compare_failed: 409,
  gone: 410,
  too_large: 413,
  internal: 500,
  no_quorum: 503,
  unavailable: 503,
  overloaded: 503,
  timeout: 504,
};

export class AetherError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra fields that belong in a problem document (for example `field`, `line`, `revision`). */
  readonly extra: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, extra: Record<string, unknown> = {}) {
    super(message);
    this.name = "AetherError";
    this.code = code;
    this.status = STATUS_BY_CODE[code];
    this.extra = extra;
  }
}

/** True for a code AetherError knows (e.g. one that came over the wire). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(STATUS_BY_CODE, code);
}

export function isAetherError(e: unknown): e is AetherError {
  return e instanceof AetherError;
}

/** Turns anything thrown into an AetherError without losing the original message. */
export function toAetherError(e: unknown): AetherError {
  if (e instanceof AetherError) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new AetherError("internal", message);
}

/** Where every problem document's `type` starts (the error code, or `slice-error`, follows). */
export const PROBLEM_TYPE = "https://aether.dev/problems/";

/** RFC 7807 problem document. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  [field: string]: unknown;
}

export function problemOf(e: AetherError, extra: Record<string, unknown> = {}): Problem {
  return {
    type: `${PROBLEM_TYPE}${e.code}`,
    title: e.code.replaceAll("_", " "),
    status: e.status,
    detail: e.message,
    ...e.extra,
    ...extra,
  };
}

/** Fails fast on a broken invariant: these are bugs, never user errors. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
