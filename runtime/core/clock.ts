/**
 * The clock and timers port: every shell that needs the time, a timer or a deferral receives one, so the same
 * code runs on the system's clock in a node and on virtual time in the simulator.
 *
 *   - `Clock`: the time only.
 *   - `Timers`: the time, setTimeout-like scheduling with cancellation, and microtask-like deferral.
 *   - `systemClock`: Deno's (performance clock, setTimeout, queueMicrotask).
 *   - `VirtualTime` and `SimulatedTimers`: a deterministic agenda driven by the simulator, and one process's
 *     view of it (its own clock skew, seeded lateness, and everything dropped when the process dies).
 */

import { AetherError, assert } from "./errors.ts";
import type { Rng } from "./rng.ts";
import { heapPop, heapPush } from "./_timer_heap.ts";

/** Time source injected into every component that needs one, so the simulator can replace it. */
export interface Clock {
  /** Milliseconds; monotonic within one process. */
  now(): number;
}

/** A scheduled callback. */
export interface TimerHandle {
  /** Its callback will not run. Safe to call more than once, or after it ran. */
  cancel(): void;
}

/** Time, timers and deferral: what a shell needs to run both on the system and in the simulator. */
export interface Timers extends Clock {
  /** Runs `fn` once, `delayMs` from now or later (never earlier), unless cancelled first. Like setTimeout. */
  schedule(delayMs: number, fn: () => void): TimerHandle;
  /** Runs `fn` after the current task, before any timer or I/O callback. Like queueMicrotask. */
  defer(fn: () => void): void;
}

export const systemClock: Timers = {
  now: () => performance.timeOrigin + performance.now(),
  schedule(delayMs, fn) {
    const id = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(id) };
  },
  defer: (fn) => queueMicrotask(fn),
};

// ------------------------------------------------------------------------------------------ virtual time

class Entry implements TimerHandle {
  dead = false;
  constructor(readonly atMs: number, readonly seq: number, readonly run: () => void) {}
  cancel(): void {
    this.dead = true;
  }
}

/** Deferred tasks one `runDeferred` may run: beyond it, tasks that keep deferring more are a bug (a livelock). */
export const MAX_DEFERRED_PER_RUN = 1_000_000;

/**
 * The simulator's agenda: callbacks ordered by virtual time, then by scheduling order, so equal times replay
 * exactly; and a FIFO of deferred tasks, all run after each callback (like microtasks after a task). Time moves
 * only when `step` runs the next callback. Nothing here reads the system clock.
 */
export class VirtualTime {
  #nowMs: number;
  #seq = 0;
  readonly #heap: Entry[] = [];
  #deferred: (() => void)[] = [];
  #deferredHead = 0;

  constructor(startMs = 0) {
    this.#nowMs = startMs;
  }

  get nowMs(): number {
    return this.#nowMs;
  }

  /** Callbacks scheduled and not run yet (cancelled ones included until their time comes). */
  get scheduled(): number {
    return this.#heap.length;
  }

  /** Runs `run` at `atMs` (the current time when earlier), after everything already scheduled for that time. */
  at(atMs: number, run: () => void): TimerHandle {
    const entry = new Entry(Math.max(this.#nowMs, atMs), this.#seq++, run);
    heapPush(this.#heap, entry);
    return entry;
  }

  after(delayMs: number, run: () => void): TimerHandle {
    return this.at(this.#nowMs + clampDelay(delayMs), run);
  }

  defer(run: () => void): void {
    this.#deferred.push(run);
  }

  /** Runs every deferred task in order, including those they defer. A task that throws leaves the rest queued. */
  runDeferred(): void {
    let ran = 0;
    while (this.#deferredHead < this.#deferred.length) {
      if (++ran > MAX_DEFERRED_PER_RUN) {
        throw new AetherError(
          "internal",
          `virtual time: more than ${MAX_DEFERRED_PER_RUN} deferred tasks in a row`,
        );
      }
      const task = this.#deferred[this.#deferredHead++];
      task();
    }
    this.#deferred = [];
    this.#deferredHead = 0;
  }

  /** The time of the next live callback, or undefined when none is scheduled. */
  nextAtMs(): number | undefined {
    this.#dropDead();
    return this.#heap[0]?.atMs;
  }

  /**
   * Moves time to the next live callback, runs it, then runs the deferred tasks. False when nothing is
   * scheduled. Deferred tasks left from outside a callback run first, at the current time.
   */
  step(): boolean {
    this.runDeferred();
    this.#dropDead();
    const next = this.#heap[0];
    if (!next) return false;
    heapPop(this.#heap);
    assert(next.atMs >= this.#nowMs, "virtual time: a callback is scheduled in the past");
    this.#nowMs = next.atMs;
    next.dead = true;
    next.run();
    this.runDeferred();
    return true;
  }

  #dropDead(): void {
    while (this.#heap.length > 0 && this.#heap[0].dead) heapPop(this.#heap);
  }
}

/** Like setTimeout: a negative or non-finite delay means "as soon as possible". */
function clampDelay(delayMs: number): number {
  return Number.isFinite(delayMs) && delayMs > 0 ? delayMs : 0;
}

export interface SimulatedTimersOptions {
  /** This process's clock runs this far from virtual time (clock skew between processes). */
  offsetMs?: number;
  /** With `maxLateMs`: each timer fires up to that much late, drawn from `rng` (a busy event loop). */
  rng?: Rng;
  maxLateMs?: number;
  /** Where an exception thrown by a callback goes (in a process it would be an uncaught error). */
  onError(error: unknown): void;
}

/**
 * One simulated process's timers over the shared virtual time. `stop()` is the process dying: nothing it
 * scheduled or deferred runs any more, so a crashed member leaves no activity behind.
 */
export class SimulatedTimers implements Timers {
  readonly #time: VirtualTime;
  readonly #o: SimulatedTimersOptions;
  #stopped = false;

  constructor(time: VirtualTime, options: SimulatedTimersOptions) {
    this.#time = time;
    this.#o = options;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  now(): number {
    return this.#time.nowMs + (this.#o.offsetMs ?? 0);
  }

  schedule(delayMs: number, fn: () => void): TimerHandle {
    const { rng, maxLateMs } = this.#o;
    const lateMs = rng && maxLateMs ? rng.int(0, maxLateMs) : 0;
    return this.#time.after(clampDelay(delayMs) + lateMs, () => this.#run(fn));
  }

  defer(fn: () => void): void {
    this.#time.defer(() => this.#run(fn));
  }

  stop(): void {
    this.#stopped = true;
  }

  #run(fn: () => void): void {
    if (this.#stopped) return;
    try {
      fn();
    } catch (e) {
      this.#o.onError(e);
    }
  }
}
