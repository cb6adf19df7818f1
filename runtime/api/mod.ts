/** The Hono management API. */
export { createApiApp } from "./app.ts";
export type * from "./deps.ts";
