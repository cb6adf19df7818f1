/** Consensus: the Rabia engine (pure), its message and effect contract, and the client-command batcher. */
export * from "./types.ts";
export { commonCoin, MAX_SYNC_DECISIONS, RabiaEngine } from "./rabia.ts";
export {
  Batcher,
  type BatcherConfig,
  DEFAULT_BATCH_LIMITS,
  type Outcome,
  type Ticket,
  unknownOutcome,
} from "./batcher.ts";
