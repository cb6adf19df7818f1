/**
 * Shared building blocks: errors and problem responses, clock and deadline timers, seeded randomness, ids,
 * trace context, logging, and stop requests (signals, end of a piped standard input).
 */
export * from "./errors.ts";
export * from "./clock.ts";
export * from "./deadline_timers.ts";
export * from "./rng.ts";
export * from "./ids.ts";
export * from "./artifact.ts";
export * from "./trace.ts";
export * from "./problem.ts";
export * from "./log.ts";
export * from "./stop.ts";
export * from "./metrics.ts";
