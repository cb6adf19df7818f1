/** Time source injected into every component that needs one, so the simulator can replace it. */
export interface Clock {
  /** Milliseconds; monotonic within one process. */
  now(): number;
}

export const systemClock: Clock = {
  now: () => performance.timeOrigin + performance.now(),
};

/** A clock the test or simulator moves by hand. */
export class ManualClock implements Clock {
  #nowMs: number;
  constructor(startMs = 0) {
    this.#nowMs = startMs;
  }
  now(): number {
    return this.#nowMs;
  }
  advance(ms: number): void {
    this.#nowMs += ms;
  }
  set(ms: number): void {
    this.#nowMs = ms;
  }
}
