/**
 * The replicated KV store: the pure state machine (`KvState`) and its commands, durable consensus storage on
 * SQLite, watches by prefix, and the typed key schema of the runtime's records.
 */
export * from "./commands.ts";
export { type BatchOutcome, KvState, type KvStateOptions } from "./state.ts";
export * from "./storage.ts";
export * from "./watch.ts";
export * from "./schema.ts";
