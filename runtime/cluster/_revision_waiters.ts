/**
 * Callers waiting for the applied revision to reach theirs (a forwarded write is acknowledged once the
 * forwarding member has applied it). Ordered by revision, so each applied batch releases exactly the waiters
 * it satisfies without looking at the others, and bounded: every waiter holds a client's request open.
 */

import sortedBtree from "sorted-btree";
import { AetherError, assert, type TimerHandle, type Timers } from "../core/mod.ts";

// sorted-btree is CommonJS with `exports.default = BTree`; Deno's default import is `module.exports`.
const BTree = sortedBtree.default;

/** Waiters at most, by default; beyond it waitFor refuses with overloaded. */
export const DEFAULT_MAX_REVISION_WAITERS = 100_000;

interface Waiter {
  resolve(applied: boolean): void;
  timer: TimerHandle;
}

export class RevisionWaiters {
  readonly #timers: Timers;
  readonly #maxWaiters: number;
  /** revision -> the waiters for it. */
  readonly #byRevision = new BTree<number, Set<Waiter>>();
  #size = 0;
  #refused = 0;

  constructor(timers: Timers, maxWaiters = DEFAULT_MAX_REVISION_WAITERS) {
    assert(Number.isSafeInteger(maxWaiters) && maxWaiters > 0, "maxWaiters must be a positive integer");
    this.#timers = timers;
    this.#maxWaiters = maxWaiters;
  }

  get stats(): { waiting: number; maxWaiting: number; refused: number } {
    return { waiting: this.#size, maxWaiting: this.#maxWaiters, refused: this.#refused };
  }

  /** Resolves true once release() reaches `revision`, false after `timeoutMs`. */
  waitFor(revision: number, timeoutMs: number): Promise<boolean> {
    if (this.#size >= this.#maxWaiters) {
      this.#refused++;
      return Promise.reject(
        new AetherError(
          "overloaded",
          `${this.#size} requests are already waiting for writes to be applied here (the limit); retry shortly`,
          { retryAfterSeconds: 1 },
        ),
      );
    }
    const { promise, resolve } = Promise.withResolvers<boolean>();
    let group = this.#byRevision.get(revision);
    if (!group) this.#byRevision.set(revision, group = new Set());
    const waiter: Waiter = {
      resolve,
      timer: this.#timers.schedule(timeoutMs, () => {
        if (this.#remove(revision, waiter)) resolve(false);
      }),
    };
    group.add(waiter);
    this.#size++;
    this.#checkInvariants();
    return promise;
  }

  /** The applied revision reached `revision`: every waiter at or below it resolves true. */
  release(revision: number): void {
    while (this.#size > 0) {
      const lowest = this.#byRevision.minKey()!;
      if (lowest > revision) break;
      const group = this.#byRevision.get(lowest)!;
      this.#byRevision.delete(lowest);
      this.#size -= group.size;
      for (const waiter of group) {
        waiter.timer.cancel();
        waiter.resolve(true);
      }
    }
    this.#checkInvariants();
  }

  #remove(revision: number, waiter: Waiter): boolean {
    const group = this.#byRevision.get(revision);
    if (!group?.delete(waiter)) return false;
    if (group.size === 0) this.#byRevision.delete(revision);
    this.#size--;
    this.#checkInvariants();
    return true;
  }

  #checkInvariants(): void {
    assert(
      this.#size >= 0 && this.#size <= this.#maxWaiters,
      `revision waiters: ${this.#size} out of bounds`,
    );
    assert(
      (this.#size === 0) === (this.#byRevision.size === 0),
      "revision waiters: count and groups disagree",
    );
  }
}
