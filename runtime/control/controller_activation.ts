/**
 * Scale to zero, the activation half: a slice with `min = 0` that the controller scaled to zero keeps its
 * routes (runtime/deployment/node_manager.ts), so a request (or a call from another slice) still reaches the
 * invoker, which finds no instance and asks `activate` here before giving up. This node then:
 *
 * 1. holds the call, at most `maxHeld` calls at once on this node (beyond: 503 `overloaded` with retry-after);
 * 2. asks for one instance by a compare-and-set of the target from 0 to 1 (any node may: the write goes
 *    through consensus, and of several nodes asking at once exactly one write applies; the others see the
 *    count already raised and just wait);
 * 3. wakes the call as soon as an endpoint of the slice is published (KV events), or answers 503 with
 *    retry-after after `maxWaitMs` or the call's own deadline, whichever comes first.
 *
 * The time from the first held call to the endpoint is the cold start, kept per node (status and /metrics).
 */

import { AetherError, type Clock, type Logger } from "../core/mod.ts";
import type { KvEvent } from "../kv/mod.ts";
import type { KvAccess } from "../cluster/mod.ts";
import { decodeValue, encodeValue, KEY_PREFIXES, kvPrefixes, type TargetRecord } from "../model/mod.ts";
import type { KvReader } from "../deployment/mod.ts";

/** Calls held on one node at most, over every slice. */
export const DEFAULT_MAX_HELD_CALLS = 1_000;
/** How long a held call waits for an instance at most (ms). */
export const DEFAULT_ACTIVATION_WAIT_MS = 30_000;
/** Cold starts remembered for the percentiles. */
const COLD_START_SAMPLES = 256;

export interface ActivatorOptions {
  kv: Pick<KvAccess, "write">;
  state(): KvReader;
  onEvents(listener: (events: readonly KvEvent[]) => void): () => void;
  clock: Clock;
  log: Logger;
  maxHeld?: number;
  maxWaitMs?: number;
}

export interface ActivationStats {
  held: number;
  maxHeld: number;
  /** Targets this node raised from zero. */
  activations: number;
  /** Calls refused because `maxHeld` were held already. */
  refused: number;
  /** Calls answered 503 because no instance came up in time. */
  timedOut: number;
  coldStarts: { count: number; lastMs?: number; p50Ms?: number; maxMs?: number };
}

interface Waiter {
  startedAt: number;
  resolve(served: boolean): void;
  timer: ReturnType<typeof setTimeout>;
}

export class Activator {
  readonly #o: ActivatorOptions;
  readonly #maxHeld: number;
  readonly #maxWaitMs: number;
  readonly #waiting = new Map<string, Set<Waiter>>();
  readonly #stopEvents: () => void;
  readonly #coldStartsMs: number[] = [];
  #held = 0;
  #activations = 0;
  #refused = 0;
  #timedOut = 0;
  #coldStartCount = 0;
  #lastColdStartMs: number | undefined;

  constructor(options: ActivatorOptions) {
    this.#o = options;
    this.#maxHeld = options.maxHeld ?? DEFAULT_MAX_HELD_CALLS;
    this.#maxWaitMs = options.maxWaitMs ?? DEFAULT_ACTIVATION_WAIT_MS;
    this.#stopEvents = options.onEvents((events) => this.#onEvents(events));
  }

  /**
   * For the invoker: true once the slice (scaled to zero) serves again, false when it is not a slice with
   * `min = 0`; throws a 503 problem with retry-after when too many calls wait or none came up in time.
   */
  async activate(slice: string, deadlineMs: number): Promise<boolean> {
    const base = slice.split(":").slice(0, 2).join(":");
    const target = this.#target(base);
    if (!target || target.record.min !== 0) return false;
    if (this.#served(base)) return true;
    if (this.#held >= this.#maxHeld) {
      this.#refused++;
      throw new AetherError(
        "overloaded",
        `${base} is starting from zero and ${this.#held} calls already wait on this node (at most ${this.#maxHeld})`,
        { slice: base, retryAfterSeconds: 1 },
      );
    }
    if (target.record.instances === 0) await this.#raise(base, target);
    const waitMs = Math.max(0, Math.min(deadlineMs - this.#now(), this.#maxWaitMs));
    const started = this.#now();
    const served = await this.#wait(base, waitMs);
    if (!served) {
      this.#timedOut++;
      throw new AetherError(
        "unavailable",
        `${base} is scaled to zero and no instance started within ${Math.round(this.#now() - started)} ms`,
        { slice: base, retryAfterSeconds: 1 },
      );
    }
    return true;
  }

  stats(): ActivationStats {
    const sorted = [...this.#coldStartsMs].sort((a, b) => a - b);
    return {
      held: this.#held,
      maxHeld: this.#maxHeld,
      activations: this.#activations,
      refused: this.#refused,
      timedOut: this.#timedOut,
      coldStarts: {
        count: this.#coldStartCount,
        ...(this.#lastColdStartMs === undefined ? {} : { lastMs: this.#lastColdStartMs }),
        ...(sorted.length === 0
          ? {}
          : { p50Ms: sorted[Math.floor(sorted.length / 2)], maxMs: sorted.at(-1)! }),
      },
    };
  }

  close(): void {
    this.#stopEvents();
    for (const waiters of this.#waiting.values()) {
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.resolve(false);
      }
    }
    this.#waiting.clear();
  }

  #now(): number {
    return this.#o.clock.now();
  }

  #target(base: string): { record: TargetRecord; modRevision: number } | undefined {
    const entry = this.#o.state().get(`${KEY_PREFIXES.targets}${base}`);
    if (!entry) return undefined;
    return { record: decodeValue("target", entry.value, entry.key), modRevision: entry.modRevision };
  }

  /** Any version of the slice has a published endpoint (an ACTIVE instance). */
  #served(base: string): boolean {
    return this.#o.state().range(kvPrefixes.endpointsOfSlice(base)).length > 0;
  }

  /** Target 0 → 1, if nobody raised it first. */
  async #raise(base: string, target: { record: TargetRecord; modRevision: number }): Promise<void> {
    const key = `${KEY_PREFIXES.targets}${base}`;
    try {
      const outcome = await this.#o.kv.write({
        type: "txn",
        compare: [{ key, modRevision: target.modRevision }],
        success: [{
          op: "put",
          key,
          value: encodeValue("target", {
            ...target.record,
            instances: 1,
            updatedAt: Math.floor(this.#now()),
          }),
        }],
        failure: [],
      });
      if (outcome.succeeded !== false) {
        this.#activations++;
        this.#o.log.info("slice activated from zero", { slice: base });
      }
    } catch (e) {
      // Without quorum nothing can start it; the wait below ends in a 503 with retry-after.
      this.#o.log.warn("could not activate a slice from zero", { slice: base, error: (e as Error).message });
    }
  }

  #wait(base: string, waitMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      let waiters = this.#waiting.get(base);
      if (!waiters) this.#waiting.set(base, waiters = new Set());
      const set = waiters;
      this.#held++;
      const waiter: Waiter = {
        startedAt: this.#now(),
        resolve: (served) => {
          this.#held--;
          set.delete(waiter);
          if (set.size === 0) this.#waiting.delete(base);
          resolve(served);
        },
        timer: setTimeout(() => waiter.resolve(false), waitMs),
      };
      set.add(waiter);
    });
  }

  #onEvents(events: readonly KvEvent[]): void {
    if (this.#waiting.size === 0) return;
    if (!events.some((e) => e.key.startsWith(KEY_PREFIXES.endpoints))) return;
    for (const [base, waiters] of [...this.#waiting]) {
      const target = this.#target(base);
      if (!target || !this.#served(base)) continue;
      const first = Math.min(...[...waiters].map((w) => w.startedAt));
      this.#recordColdStart(this.#now() - first);
      for (const w of [...waiters]) {
        clearTimeout(w.timer);
        w.resolve(true);
      }
    }
  }

  #recordColdStart(ms: number): void {
    this.#coldStartCount++;
    this.#lastColdStartMs = Math.round(ms);
    this.#coldStartsMs.push(Math.round(ms));
    if (this.#coldStartsMs.length > COLD_START_SAMPLES) this.#coldStartsMs.shift();
  }
}
