/**
 * Drives a level-triggered reducer from events: `schedule()` asks for a run soon (many calls in the same turn
 * become one run), runs never overlap, and the run's answer is the time it wants to run again even if nothing
 * happens (its `wakeAtMs`), which replaces the previous wake-up: the reducer recomputes it every time.
 */

import type { Clock } from "../core/mod.ts";

export class StepLoop {
  readonly #run: () => number | undefined;
  readonly #clock: Clock;
  readonly #onError: (error: unknown) => void;
  #scheduled: ReturnType<typeof setTimeout> | undefined;
  #wake: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  /** `run` returns its wakeAtMs; when it throws, `onError` gets the error and the loop tries again in 1 s. */
  constructor(run: () => number | undefined, clock: Clock, onError: (error: unknown) => void) {
    this.#run = run;
    this.#clock = clock;
    this.#onError = onError;
  }

  schedule(): void {
    if (this.#stopped || this.#scheduled !== undefined) return;
    // A macrotask, not a microtask: everything that arrives in this turn (a batch's events, several settled
    // operations) is seen by one run.
    this.#scheduled = setTimeout(() => this.#tick(), 0);
  }

  /** Drops the pending wake-up (the reducer stopped caring, e.g. leadership ended). */
  clearWake(): void {
    clearTimeout(this.#wake);
    this.#wake = undefined;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#scheduled);
    this.clearWake();
  }

  #tick(): void {
    this.#scheduled = undefined;
    if (this.#stopped) return;
    let wakeAtMs: number | undefined;
    try {
      wakeAtMs = this.#run();
    } catch (e) {
      this.#onError(e);
      wakeAtMs = this.#clock.now() + 1_000;
    }
    this.clearWake();
    if (wakeAtMs === undefined || this.#stopped) return;
    const delayMs = Math.max(0, Math.ceil(wakeAtMs - this.#clock.now()));
    this.#wake = setTimeout(() => {
      this.#wake = undefined;
      this.schedule();
    }, delayMs);
  }
}
