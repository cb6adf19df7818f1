/** The Hono management API. */
export { createApiApp } from "./app.ts";
export type * from "./deps.ts";
export { DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT, parseSince } from "./logs.ts";
