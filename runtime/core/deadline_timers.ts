/**
 * Many deadlines on one timer. Every call on the hot path has a deadline that almost never fires; a
 * `setTimeout` plus `clearTimeout` per call costs Deno 3.5 µs in a hot loop and 10 µs or more when calls come
 * one at a time (cold caches), a visible share of a call. Here a deadline is an entry in a binary min-heap and
 * one `setTimeout` is armed for the earliest one; a cancelled entry is only marked and dropped when it reaches
 * the top (or when dead entries outnumber live ones, the heap is rebuilt), so scheduling and cancelling are
 * O(log n) and O(1) without touching the timer.
 *
 * When the last live deadline goes, the timer stays armed but unreferenced (it no longer keeps the event
 * loop alive; when it fires it finds nothing), so a caller making one call after another does not pay for
 * arming a timer on each; the next deadline references it again. `settle()` clears it when nothing is live:
 * owners call it when they shut down, so test op sanitizers see no timer left behind.
 *
 * A deadline fires at its time or later, never earlier, like `setTimeout`. Callbacks run one after another in
 * deadline order; one that throws does not stop the others (the error is reported like an uncaught one).
 *
 * Times are epoch milliseconds from `now` (`Date.now` by default), the same clock the callers' deadlines use.
 */

import { heapPop, heapPush } from "./_timer_heap.ts";

export interface Deadline {
  /** Cancels the deadline; its callback will not run. Safe to call more than once or after it fired. */
  cancel(): void;
}

class Entry implements Deadline {
  dead = false;
  constructor(
    readonly owner: DeadlineTimers,
    readonly atMs: number,
    readonly seq: number,
    readonly fire: () => void,
  ) {}
  cancel(): void {
    if (this.dead) return;
    this.dead = true;
    this.owner._cancelled();
  }
}

/** How many dead entries to tolerate before a rebuild, beyond as many as there are live ones. */
const DEAD_SLACK = 1024;
const MAX_DELAY_MS = 2 ** 31 - 1;

export class DeadlineTimers {
  readonly #now: () => number;
  readonly #heap: Entry[] = [];
  #live = 0;
  #seq = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #armedAtMs = Infinity;
  /** The armed timer keeps the event loop alive (some deadline is live). */
  #referenced = false;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Live (scheduled, not cancelled, not fired) deadlines. */
  get size(): number {
    return this.#live;
  }

  /** Runs `fire` at `atMs` (epoch milliseconds) unless cancelled first. */
  schedule(atMs: number, fire: () => void): Deadline {
    const entry = new Entry(this, atMs, this.#seq++, fire);
    heapPush(this.#heap, entry);
    this.#live++;
    if (atMs < this.#armedAtMs) this.#arm(atMs);
    else if (!this.#referenced && this.#timer !== undefined) {
      Deno.refTimer(this.#timer);
      this.#referenced = true;
    }
    return entry;
  }

  /** @internal Called by an entry when it is cancelled. */
  _cancelled(): void {
    this.#live--;
    if (this.#live === 0) {
      this.#heap.length = 0;
      this.#idle();
    } else if (this.#heap.length - this.#live > this.#live + DEAD_SLACK) {
      this.#rebuild();
    }
  }

  /** Clears the timer if no deadline is live (for shutdown; otherwise an idle timer is harmless). */
  settle(): void {
    if (this.#live === 0) this.#disarm();
  }

  /** Nothing is live: the armed timer no longer keeps the event loop alive. */
  #idle(): void {
    if (this.#timer !== undefined && this.#referenced) Deno.unrefTimer(this.#timer);
    this.#referenced = false;
  }

  #arm(atMs: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedAtMs = atMs;
    this.#referenced = true;
    // Beyond 2^31-1 ms setTimeout fires at once; a far deadline re-arms when the shorter wait ends.
    const delayMs = Math.min(MAX_DELAY_MS, Math.max(0, atMs - this.#now()));
    this.#timer = setTimeout(() => this.#expire(), delayMs);
    if (this.#live === 0) this.#idle();
  }

  #disarm(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAtMs = Infinity;
    this.#referenced = false;
  }

  #expire(): void {
    this.#timer = undefined;
    this.#armedAtMs = Infinity;
    this.#referenced = false;
    const now = this.#now();
    const due: Entry[] = [];
    while (this.#heap.length > 0) {
      const top = this.#heap[0];
      if (top.dead) {
        heapPop(this.#heap);
        continue;
      }
      if (top.atMs > now) break;
      heapPop(this.#heap);
      top.dead = true;
      this.#live--;
      due.push(top);
    }
    if (this.#heap.length > 0) this.#arm(this.#heap[0].atMs);
    for (const entry of due) {
      try {
        entry.fire();
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #rebuild(): void {
    const live = this.#heap.filter((e) => !e.dead);
    this.#heap.length = 0;
    for (const entry of live) heapPush(this.#heap, entry);
    const top = this.#heap[0];
    if (top && top.atMs !== this.#armedAtMs) this.#arm(top.atMs);
  }
}

/** The process-wide instance the sandbox host and the invoker share. */
export const deadlineTimers: DeadlineTimers = new DeadlineTimers();
