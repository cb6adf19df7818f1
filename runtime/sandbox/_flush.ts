/**
 * When a sandbox channel sends what it has queued. A message to a sandbox costs far more than its contents (a
 * postMessage, or a write system call plus a wakeup of the child), so messages travel in batches:
 *
 * - while calls are in flight in the sandbox (load), a batch closes at the end of the event loop turn
 *   (`setImmediate`, after the I/O that is ready has been handled): the HTTP server hands over one request
 *   per task, so closing a batch at the end of the task would send one message per request;
 * - otherwise at the end of the current task (a microtask), so a lone call does not wait for the loop turn.
 */

export class FlushScheduler {
  readonly #flush: () => void;
  #scheduled = false;
  /** Calls and hooks sent and not answered yet. */
  #inFlight = 0;

  constructor(flush: () => void) {
    this.#flush = flush;
  }

  /** A message was queued; `call` when it starts a call or hook the sandbox will answer with `done`. */
  queued(call: boolean): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      if (this.#inFlight > 0) setImmediate(this.#run);
      else queueMicrotask(this.#run);
    }
    if (call) this.#inFlight++;
  }

  /** The sandbox answered a call or hook. */
  answered(): void {
    if (this.#inFlight > 0) this.#inFlight--;
  }

  /** A write finished with messages left over: send them in the next turn. */
  again(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(this.#run);
  }

  readonly #run = (): void => {
    this.#scheduled = false;
    this.#flush();
  };
}
