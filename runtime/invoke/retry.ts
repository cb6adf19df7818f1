/**
 * Which failed call attempts are retried, how soon, and why that is safe.
 *
 * The runtime's contract with slice authors is "write slices as if every call eventually succeeds while the
 * cluster lives". The invoker keeps its side of it by retrying on another instance, and it assumes the
 * other side: **slice methods are idempotent** (the original Aether made the same demand: "design slices to
 * be idempotent"). Failures fall into three groups:
 *
 * 1. The callee never ran the method, so a retry cannot run it twice; always retried:
 *    - `not_sent`: the request never left this node (the peer was down at send time, or its queue refused it);
 *    - `not_active`: the instance refused before running anything (it is not ACTIVE: being replaced,
 *      deactivated, unknown on that node);
 *    - `overloaded`: the callee or the path to it refused the request at its flow-control bound;
 *    - `no_instance`: no live instance serves the method right now (nothing was sent anywhere).
 * 2. The outcome is unknown: the method may have run, partly or fully, and its answer was lost. Retried
 *    because of the idempotence contract, unless the caller says the call is not idempotent
 *    (`idempotent: false`), in which case the failure is returned as it is:
 *    - `node_departed`: the callee's node left the cluster (mesh connection lost) with the call in flight;
 *    - `instance_failed`: the instance was cut off (unloaded) during the call.
 * 2b. The instance's sandbox ended during the call (a crash, `Deno.exit`, its memory limit, it stopped
 *    answering): unlike a node departure, the call itself is the likely cause, and retrying it on the next
 *    instance would let one request kill every instance of the slice. So:
 *    - `crashed_by_call`: this call was the only one in flight on the instance: the call is to blame; never
 *      retried (the caller gets a 500 naming the crash);
 *    - `instance_crashed`: other calls were in flight too, and which of them is to blame cannot be told:
 *      not retried either (`MAX_CRASH_RETRIES` 0), a 500 naming the crash. Retrying them once let the guilty
 *      one kill a second instance before the first was replaced (1 of 3 ACTIVE under one crashing request a
 *      second); the innocent calls cut off with it are the price, a few per crash.
 * 3. Never retried:
 *    - the slice's own error (an outcome with `ok: false`) is an answer, not a failure: it goes back to the
 *      caller as it is, once;
 *    - `deadline`: the call's deadline passed (it is the caller's budget for every attempt together);
 *    - `rejected`: the request is wrong the same way on every instance (no such method, not serializable,
 *      too large).
 *
 * Timing: a retry after `not_sent`, `not_active` or `node_departed` goes at once to an instance not tried
 * yet (a departed node's calls are retried the moment the mesh reports it down, not at their deadline).
 * Otherwise, and whenever every instance has been tried, the retry waits an exponential backoff
 * (`baseBackoffMs * 2^(attempt-1)`, capped by `maxBackoffMs` and by the time left). At most `maxAttempts`
 * attempts are made; then the caller gets a 503 that names the slice, the method, the instances tried and
 * the last failure.
 *
 * Pure: no clock or IO.
 */

export type FailureKind =
  | "not_sent"
  | "not_active"
  | "overloaded"
  | "no_instance"
  | "node_departed"
  | "instance_failed"
  | "instance_crashed"
  | "crashed_by_call"
  | "deadline"
  | "rejected";

export const FAILURE_KINDS: readonly FailureKind[] = [
  "not_sent",
  "not_active",
  "overloaded",
  "no_instance",
  "node_departed",
  "instance_failed",
  "instance_crashed",
  "crashed_by_call",
  "deadline",
  "rejected",
];

export interface RetryPolicy {
  /** Attempts per call, the first included. */
  maxAttempts: number;
  baseBackoffMs: number;
  maxBackoffMs: number;
}

/** With these, a call keeps trying for about 1.5 s of backoff (50+100+200+400+800 ms) within its deadline. */
export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = Object.freeze({
  maxAttempts: 6,
  baseBackoffMs: 50,
  maxBackoffMs: 1_000,
});

/** The method certainly did not run. */
const NEVER_RAN: ReadonlySet<FailureKind> = new Set(["not_sent", "not_active", "overloaded", "no_instance"]);
/** The method may have run. */
const UNKNOWN_OUTCOME: ReadonlySet<FailureKind> = new Set(["node_departed", "instance_failed"]);
/** The instance crashed with the call in it. */
const CRASHED: ReadonlySet<FailureKind> = new Set(["instance_crashed", "crashed_by_call"]);
/** How often one call is retried after instances crashed with it in flight. */
export const MAX_CRASH_RETRIES = 0;

/** Whether an instance crashed (its sandbox ended) during the call. */
export function isCrash(kind: FailureKind): boolean {
  return CRASHED.has(kind);
}

/** Worth an immediate retry on an instance not tried yet. */
const IMMEDIATE: ReadonlySet<FailureKind> = new Set(["not_sent", "not_active", "node_departed"]);

export interface RetryInput {
  kind: FailureKind;
  /** Attempts made so far (1 after the first failed). */
  attempt: number;
  /** Unknown outcomes may be retried (default true: the runtime's contract). */
  idempotent: boolean;
  /** Instances that crashed with this call in flight so far, this failure included. */
  crashes?: number;
}

export type RetryDecision =
  | { retry: true; immediate: boolean }
  | { retry: false; why: string };

export function retryDecision(policy: RetryPolicy, input: RetryInput): RetryDecision {
  const { kind, attempt } = input;
  if (kind === "deadline") return { retry: false, why: "the call's deadline passed" };
  if (kind === "rejected") return { retry: false, why: "the request fails the same way on every instance" };
  if (kind === "crashed_by_call") {
    return { retry: false, why: "the instance crashed while this call was the only one it served" };
  }
  if (kind === "instance_crashed") {
    if (!input.idempotent) {
      return { retry: false, why: "the instance crashed and the call is not idempotent" };
    }
    if ((input.crashes ?? 1) > MAX_CRASH_RETRIES) {
      return { retry: false, why: `${input.crashes ?? 1} instance(s) crashed with this call in flight` };
    }
    if (attempt >= policy.maxAttempts) return { retry: false, why: `${attempt} attempts made` };
    return { retry: true, immediate: false };
  }
  if (UNKNOWN_OUTCOME.has(kind) && !input.idempotent) {
    return { retry: false, why: "its outcome is unknown and the call is not idempotent" };
  }
  if (!NEVER_RAN.has(kind) && !UNKNOWN_OUTCOME.has(kind)) return { retry: false, why: `unexpected ${kind}` };
  if (attempt >= policy.maxAttempts) return { retry: false, why: `${attempt} attempts made` };
  return { retry: true, immediate: IMMEDIATE.has(kind) };
}

/**
 * How long to wait before the next attempt: nothing for an immediate retry that has a fresh instance to go
 * to, else the exponential backoff, never beyond the time left (minus a margin for the attempt itself).
 */
export function retryDelayMs(
  policy: RetryPolicy,
  input: { attempt: number; immediate: boolean; freshInstance: boolean; remainingMs: number },
): number {
  if (input.immediate && input.freshInstance) return 0;
  const backoff = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** Math.max(0, input.attempt - 1));
  return Math.max(0, Math.min(backoff, input.remainingMs - 1));
}

/** True when the method certainly did not run (what `idempotent: false` callers may still retry). */
export function neverRan(kind: FailureKind): boolean {
  return NEVER_RAN.has(kind);
}
