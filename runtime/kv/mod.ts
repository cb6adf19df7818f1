/**
 * The replicated KV store: the pure state machine (`KvState`) and its commands, durable consensus storage on
 * SQLite, and watches by prefix. It knows no feature: keys are strings and values bytes; the cluster's records
 * and their typed keys live above it, in runtime/model.
 */
export * from "./commands.ts";
export { type BatchOutcome, KvState, type KvStateOptions } from "./state.ts";
export * from "./storage.ts";
export * from "./watch.ts";
