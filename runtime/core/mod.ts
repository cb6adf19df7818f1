/**
 * Shared building blocks: errors and problem responses, clock, seeded randomness, ids, trace context, logging,
 * and stop requests (signals, end of a piped standard input).
 */
export * from "./errors.ts";
export * from "./clock.ts";
export * from "./rng.ts";
export * from "./ids.ts";
export * from "./artifact.ts";
export * from "./trace.ts";
export * from "./problem.ts";
export * from "./log.ts";
export * from "./stop.ts";
