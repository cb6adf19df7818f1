/**
 * InvokeFailure: an AetherError that also says which kind of failure it was (retry.ts), so the invoker can
 * decide on a retry without reading messages, and the kind survives a hop over the mesh.
 */

import { AetherError, type ErrorCode } from "../core/mod.ts";
import { FAILURE_KINDS, type FailureKind } from "./retry.ts";

export class InvokeFailure extends AetherError {
  readonly kind: FailureKind;

  constructor(kind: FailureKind, code: ErrorCode, message: string, extra: Record<string, unknown> = {}) {
    super(code, message, extra);
    this.kind = kind;
  }
}

export function isFailureKind(value: unknown): value is FailureKind {
  return typeof value === "string" && (FAILURE_KINDS as readonly string[]).includes(value);
}

/**
 * The kind of a failure thrown by the local sandbox (SliceExecutor/SliceHost `invoke`) or anything else:
 * - 503 refused before anything ran → not_active: with `state` (the executor: the instance is not ACTIVE) or
 *   `sandbox` (the host: its sandbox is not running); other 503s (the instance failed or was unloaded with
 *   the call inside) → instance_failed, since the method may have run; a 503 with `failure` (the sandbox
 *   ended: crash, exit, memory, stuck) → crashed_by_call when the call was the only one in flight
 *   (`callsInFlight` 1), else instance_crashed;
 * - 504 → deadline; 503 "overloaded" → overloaded; 400/404/413 and the rest → rejected.
 */
export function failureKindOf(e: unknown): FailureKind {
  if (e instanceof InvokeFailure) return e.kind;
  if (!(e instanceof AetherError)) return "rejected";
  switch (e.code) {
    case "timeout":
      return "deadline";
    case "overloaded":
      return "overloaded";
    case "unavailable":
      if (e.extra.state !== undefined || e.extra.sandbox !== undefined) return "not_active";
      if (e.extra.failure !== undefined) {
        return e.extra.callsInFlight === 1 ? "crashed_by_call" : "instance_crashed";
      }
      return "instance_failed";
    default:
      return "rejected";
  }
}

/** Any error as an InvokeFailure (kind from `failureKindOf`). */
export function asInvokeFailure(e: unknown): InvokeFailure {
  if (e instanceof InvokeFailure) return e;
  const kind = failureKindOf(e);
  if (e instanceof AetherError) return new InvokeFailure(kind, e.code, e.message, e.extra);
  return new InvokeFailure(kind, "internal", e instanceof Error ? e.message : String(e));
}
