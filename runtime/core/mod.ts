/** Shared building blocks: errors, clock, seeded randomness, ids, trace context. */
export * from "./errors.ts";
export * from "./clock.ts";
export * from "./rng.ts";
export * from "./ids.ts";
export * from "./artifact.ts";
export * from "./trace.ts";
export * from "./problem.ts";
