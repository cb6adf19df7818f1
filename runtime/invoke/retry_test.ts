import { deepStrictEqual, equal } from "node:assert/strict";
import { AetherError } from "../core/mod.ts";
import { DEFAULT_RETRY_POLICY, FAILURE_KINDS, neverRan, retryDecision, retryDelayMs } from "./retry.ts";
import { failureKindOf, InvokeFailure } from "./failure.ts";

const policy = DEFAULT_RETRY_POLICY;

Deno.test("failures where the method never ran are retried, idempotent or not", () => {
  for (const kind of ["not_sent", "not_active", "overloaded", "no_instance"] as const) {
    equal(neverRan(kind), true);
    for (const idempotent of [true, false]) {
      equal(
        retryDecision(policy, { kind, attempt: 1, idempotent }).retry,
        true,
        `${kind} idempotent=${idempotent}`,
      );
    }
  }
});

Deno.test("unknown outcomes are retried only for idempotent calls", () => {
  for (const kind of ["node_departed", "instance_failed"] as const) {
    equal(neverRan(kind), false);
    equal(retryDecision(policy, { kind, attempt: 1, idempotent: true }).retry, true);
    const no = retryDecision(policy, { kind, attempt: 1, idempotent: false });
    deepStrictEqual(no, { retry: false, why: "its outcome is unknown and the call is not idempotent" });
  }
});

Deno.test("deadlines and requests that fail everywhere are never retried; attempts are bounded", () => {
  equal(retryDecision(policy, { kind: "deadline", attempt: 1, idempotent: true }).retry, false);
  equal(retryDecision(policy, { kind: "rejected", attempt: 1, idempotent: true }).retry, false);
  equal(
    retryDecision(policy, { kind: "not_sent", attempt: policy.maxAttempts, idempotent: true }).retry,
    false,
  );
  equal(
    retryDecision(policy, { kind: "not_sent", attempt: policy.maxAttempts - 1, idempotent: true }).retry,
    true,
  );
  deepStrictEqual([...FAILURE_KINDS].sort(), [
    "crashed_by_call",
    "deadline",
    "instance_crashed",
    "instance_failed",
    "no_instance",
    "node_departed",
    "not_active",
    "not_sent",
    "overloaded",
    "rejected",
  ]);
});

Deno.test("a departed node's calls go at once to a fresh instance; other failures back off exponentially", () => {
  const departed = retryDecision(policy, { kind: "node_departed", attempt: 1, idempotent: true });
  deepStrictEqual(departed, { retry: true, immediate: true });
  equal(retryDelayMs(policy, { attempt: 1, immediate: true, freshInstance: true, remainingMs: 10_000 }), 0);
  // Immediate, but every instance was tried already: back off.
  equal(retryDelayMs(policy, { attempt: 1, immediate: true, freshInstance: false, remainingMs: 10_000 }), 50);
  const failed = retryDecision(policy, { kind: "instance_failed", attempt: 1, idempotent: true });
  deepStrictEqual(failed, { retry: true, immediate: false });
  const delays = [1, 2, 3, 4, 5, 6, 7].map((attempt) =>
    retryDelayMs(policy, { attempt, immediate: false, freshInstance: true, remainingMs: 10_000 })
  );
  deepStrictEqual(delays, [50, 100, 200, 400, 800, 1000, 1000]);
  equal(retryDelayMs(policy, { attempt: 5, immediate: false, freshInstance: true, remainingMs: 120 }), 119);
  equal(retryDelayMs(policy, { attempt: 5, immediate: false, freshInstance: true, remainingMs: 0 }), 0);
});

Deno.test("sandbox errors are classified without reading their messages", () => {
  equal(
    failureKindOf(new AetherError("unavailable", "x is loaded, not active", { state: "loaded" })),
    "not_active",
  );
  equal(
    failureKindOf(new AetherError("unavailable", "instance failed", { failure: "crash" })),
    "instance_crashed",
  );
  equal(
    failureKindOf(new AetherError("unavailable", "instance failed", { failure: "exit", callsInFlight: 1 })),
    "crashed_by_call",
  );
  equal(
    failureKindOf(new AetherError("unavailable", "instance failed", { failure: "memory", callsInFlight: 3 })),
    "instance_crashed",
  );
  equal(failureKindOf(new AetherError("unavailable", "was cut off: unloaded")), "instance_failed");
  equal(failureKindOf(new AetherError("timeout", "deadline")), "deadline");
  equal(failureKindOf(new AetherError("not_found", "no method")), "rejected");
  equal(failureKindOf(new AetherError("bad_request", "not serializable")), "rejected");
  equal(failureKindOf(new AetherError("overloaded", "busy")), "overloaded");
  equal(failureKindOf(new InvokeFailure("node_departed", "unavailable", "gone")), "node_departed");
  equal(failureKindOf(new Error("plain")), "rejected");
});

Deno.test("a crash during a call is not a node departure: never retried, alone on the instance or not", () => {
  deepStrictEqual(
    retryDecision(policy, { kind: "crashed_by_call", attempt: 1, idempotent: true, crashes: 1 }),
    {
      retry: false,
      why: "the instance crashed while this call was the only one it served",
    },
  );
  deepStrictEqual(
    retryDecision(policy, { kind: "instance_crashed", attempt: 1, idempotent: true, crashes: 1 }),
    { retry: false, why: "1 instance(s) crashed with this call in flight" },
  );
  equal(
    retryDecision(policy, { kind: "instance_crashed", attempt: 1, idempotent: false, crashes: 1 }).retry,
    false,
  );
  // A departure before the crash does not make it retried.
  equal(
    retryDecision(policy, { kind: "instance_crashed", attempt: 3, idempotent: true, crashes: 1 }).retry,
    false,
  );
});
