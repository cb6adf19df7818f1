/**
 * Client commands on their way into consensus: a bounded queue, and at most one batch of this member in flight.
 *
 * One batch in flight keeps batches of one submitter incarnation decided in sequence order (what the KV state
 * machine's duplicate filter expects) and turns waiting time into batching: while a batch is being decided the
 * next one fills up. Pure and deterministic: tickets are plain callbacks run synchronously, so the simulator
 * replays exactly; `enqueueAsync` wraps one in a Promise for the node.
 */

import { AetherError, assert, type NodeId } from "../core/mod.ts";
import type { Batch } from "./types.ts";

export type Outcome<R> = { ok: true; result: R } | { ok: false; error: AetherError };

/** Called exactly once with the command's outcome. Must not throw. */
export type Ticket<R> = (outcome: Outcome<R>) => void;

export interface BatcherConfig {
  self: NodeId;
  /** Distinguishes this process lifetime's batches from earlier ones; no ':' allowed. */
  incarnation: string;
  /** A batch holds commands up to this total size (a single larger command still forms a batch alone). */
  maxBatchBytes: number;
  maxBatchCommands: number;
  /** Queued (not yet batched) commands up to this total size; beyond it `enqueue` refuses with "overloaded". */
  maxQueuedBytes: number;
}

export const DEFAULT_BATCH_LIMITS = {
  maxBatchBytes: 1024 * 1024,
  maxBatchCommands: 1024,
  maxQueuedBytes: 16 * 1024 * 1024,
} as const;

/** How long a client whose command met a full queue is told to wait (a batch is decided in milliseconds). */
const QUEUE_FULL_RETRY_AFTER_SECONDS = 1;

interface Queued<C, R> {
  command: C;
  sizeBytes: number;
  ticket: Ticket<R>;
}

interface InFlight<R> {
  batchId: string;
  tickets: Ticket<R>[];
}

export class Batcher<C, R> {
  readonly #config: BatcherConfig;
  #queue: Queued<C, R>[] = [];
  #head = 0;
  #queuedBytes = 0;
  #seq = 0;
  #inFlight?: InFlight<R>;
  #refusedQueueFull = 0;

  constructor(config: BatcherConfig) {
    checkConfig(config);
    this.#config = { ...config };
  }

  /** Id of this member's batch being decided, if any. */
  get inFlight(): string | undefined {
    return this.#inFlight?.batchId;
  }

  get queuedCommands(): number {
    return this.#queue.length - this.#head;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Commands refused with "overloaded" because the queue was full (since this batcher started). */
  get refusedQueueFull(): number {
    return this.#refusedQueueFull;
  }

  /** True when there is nothing queued and nothing in flight. */
  get idle(): boolean {
    return this.queuedCommands === 0 && this.#inFlight === undefined;
  }

  /** Queues a command. Throws "overloaded" when the queue is full, "too_large" when it could never fit. */
  enqueue(command: C, sizeBytes: number, ticket: Ticket<R>): void {
    // Whole bytes only, so the queue's byte count returns exactly to zero (an invariant checked below).
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) {
      throw new AetherError(
        "bad_request",
        `command size must be a positive whole number of bytes, got ${sizeBytes}`,
      );
    }
    if (sizeBytes > this.#config.maxQueuedBytes) {
      throw new AetherError(
        "too_large",
        `command of ${sizeBytes} bytes exceeds the consensus queue limit of ${this.#config.maxQueuedBytes} bytes`,
      );
    }
    if (this.#queuedBytes + sizeBytes > this.#config.maxQueuedBytes) {
      this.#refusedQueueFull++;
      throw new AetherError(
        "overloaded",
        `consensus queue on ${this.#config.self} is full (${this.#queuedBytes} bytes waiting); retry later`,
        { retryAfterSeconds: QUEUE_FULL_RETRY_AFTER_SECONDS },
      );
    }
    this.#queue.push({ command, sizeBytes, ticket });
    this.#queuedBytes += sizeBytes;
  }

  /** `enqueue` with a Promise: resolves with the result, rejects with the AetherError outcome. */
  enqueueAsync(command: C, sizeBytes: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.enqueue(command, sizeBytes, (o) => o.ok ? resolve(o.result) : reject(o.error));
    });
  }

  /** The next batch to submit, or null when one is in flight or nothing is queued. */
  takeBatch(nowMs: number): Batch<C> | null {
    if (this.#inFlight || this.queuedCommands === 0) return null;
    const commands: C[] = [];
    const tickets: Ticket<R>[] = [];
    let bytes = 0;
    while (this.#head < this.#queue.length && commands.length < this.#config.maxBatchCommands) {
      const next = this.#queue[this.#head];
      if (commands.length > 0 && bytes + next.sizeBytes > this.#config.maxBatchBytes) break;
      commands.push(next.command);
      tickets.push(next.ticket);
      bytes += next.sizeBytes;
      this.#head++;
    }
    this.#queuedBytes -= bytes;
    assert(
      this.#queuedBytes >= 0 && (this.#queuedBytes === 0) === (this.queuedCommands === 0),
      "batcher: queued bytes disagree with the queued commands",
    );
    this.#compact();
    const id = `${this.#config.self}:${this.#config.incarnation}:${++this.#seq}`;
    this.#inFlight = { batchId: id, tickets };
    return { id, submitter: this.#config.self, createdAt: nowMs, commands };
  }

  /**
   * The batch `batchId` was decided. `results` holds one result per command, or null when the state machine
   * skipped it as a duplicate (its outcome was delivered to nobody, so the tickets learn "outcome unknown").
   * Returns false when the batch is not this member's batch in flight (for example a re-decision).
   */
  onDecided(batchId: string, results: R[] | null): boolean {
    const flight = this.#inFlight;
    if (!flight || flight.batchId !== batchId) return false;
    if (results !== null && results.length !== flight.tickets.length) {
      throw new Error(
        `assertion failed: batch ${batchId} has ${flight.tickets.length} commands but ${results.length} results`,
      );
    }
    this.#inFlight = undefined;
    if (results === null) settle(flight.tickets, () => unknownOutcome(batchId, "was applied as a duplicate"));
    else settle(flight.tickets, (i) => ({ ok: true, result: results[i] }));
    return true;
  }

  /**
   * The engine refused the batch `batchId` when it was submitted (for example overloaded): it never entered
   * consensus, so its commands definitely did not run, and each fails with `error`. Returns false when it is
   * not the batch in flight.
   */
  onRefused(batchId: string, error: AetherError): boolean {
    const flight = this.#inFlight;
    if (!flight || flight.batchId !== batchId) return false;
    this.#inFlight = undefined;
    settle(flight.tickets, () => ({ ok: false, error }));
    return true;
  }

  /** Consensus dropped these batches without deciding them: their commands may or may not be applied later. */
  onDropped(batchIds: string[]): void {
    const flight = this.#inFlight;
    if (!flight || !batchIds.includes(flight.batchId)) return;
    this.#inFlight = undefined;
    settle(flight.tickets, () => unknownOutcome(flight.batchId, "was dropped by consensus"));
  }

  /**
   * Fails everything: queued commands definitely never ran (`queuedError`), the batch in flight has an
   * unknown outcome. For shutdown, or a crash in the simulator.
   */
  failAll(queuedError: AetherError): void {
    const queued = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    const flight = this.#inFlight;
    this.#inFlight = undefined;
    if (flight) settle(flight.tickets, () => unknownOutcome(flight.batchId, "was interrupted"));
    settle(queued.map((q) => q.ticket), () => ({ ok: false, error: queuedError }));
  }

  /** Drops consumed entries once they are the larger part of the array, keeping shifts amortized O(1). */
  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}

export function unknownOutcome<R>(batchId: string, what: string): Outcome<R> {
  return {
    ok: false,
    error: new AetherError(
      "unavailable",
      `outcome unknown: batch ${batchId} ${what}; the command may have applied`,
      {
        outcome: "unknown",
      },
    ),
  };
}

/** Runs every ticket even if one throws, then rethrows the first error. */
function settle<R>(tickets: Ticket<R>[], outcomeOf: (index: number) => Outcome<R>): void {
  let failure: unknown;
  tickets.forEach((ticket, i) => {
    try {
      ticket(outcomeOf(i));
    } catch (e) {
      failure ??= e;
    }
  });
  if (failure !== undefined) throw failure;
}

function checkConfig(config: BatcherConfig): void {
  const where = "batcher config";
  if (
    typeof config.incarnation !== "string" || config.incarnation.length === 0 ||
    config.incarnation.includes(":")
  ) {
    throw new AetherError("bad_request", `${where}: incarnation must be a non-empty string without ':'`);
  }
  for (const key of ["maxBatchBytes", "maxBatchCommands", "maxQueuedBytes"] as const) {
    if (!Number.isSafeInteger(config[key]) || config[key] < 1) {
      throw new AetherError("bad_request", `${where}: ${key} must be a positive integer, got ${config[key]}`);
    }
  }
}
