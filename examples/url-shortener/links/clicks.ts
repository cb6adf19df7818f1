/**
 * Group commit of click counts for one instance of the links slice. Clicks that concurrent resolves count
 * while earlier batches are in flight travel together in one `kv.batch` call, and the clicks of one code in a
 * batch are one `add` of their number: under load many resolves share one service call and one store write
 * per code, instead of one call and one replicated write each. An idle instance sends a click at once, alone.
 *
 * Nothing is acknowledged early: `count` resolves only when the batch that carries the click has answered,
 * i.e. when the store acknowledged the add (on a write quorum of its partition's owners), so a resolve that
 * answered 302 has its click durably counted. Each add carries its id (the SDK's), kept by retries of the call,
 * so a batch retried after a kv instance or a store primary died is not counted twice (the kv add's
 * guarantee, runtime/infra-host/README.md). A batch that fails fails every resolve waiting on it: their clicks
 * are not acknowledged (and, for an unknown outcome, may or may not be counted, as a single add's would).
 */

import { type KvBatchResult, type KvClient, SliceError } from "@aether/slices";

/** The kv service's limit of operations per batch: codes per call. */
export const MAX_CODES_PER_BATCH = 64;
/**
 * Batches one instance keeps in flight; further clicks wait and go together in the next. Kept small on
 * purpose, and without the shop's "a slow batch stops counting" rule: while a partition's primary is down,
 * every batch in flight may hold an add of a hot code waiting to be retried, and a retried add is recognised
 * (not counted twice) only while fewer than ADD_IDS_KEPT (16) other adds of that key were applied since its
 * first attempt (runtime/infra-host/README.md). With 2 per instance, 3 instances leave at most 6 adds of one
 * code outstanding through a failover; the cost is that an instance's other clicks wait for that failover.
 */
export const MAX_BATCHES_IN_FLIGHT = 2;
/** Clicks waiting for a batch; beyond it a click is refused at once (a bound, not a target). */
export const MAX_WAITING_CLICKS = 10_000;

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

/** The clicks of one code waiting for the next batch. */
interface Pending {
  waiters: Waiter[];
  /** The client of the newest click's request, and when it came (a counter): see `#send`. */
  kv: KvClient;
  seq: number;
}

/** Error codes of an add that may succeed when sent again later: the resolve answers 503. */
const TRANSIENT = new Set(["unavailable", "overloaded", "timeout"]);

/** A click the kv service refused (the message says why); the resolve that waits for it fails with it. */
export class ClickNotCounted extends SliceError {
  constructor(code: string, error: { name: string; code?: string; message: string }) {
    super(`the click on ${code} was not counted: ${error.name}: ${error.message}`, {
      status: TRANSIENT.has(error.code ?? "") ? 503 : 500,
    });
  }
}

export class ClickCounter {
  readonly #pending = new Map<string, Pending>();
  #waiting = 0;
  #inFlight = 0;
  #scheduled = false;
  #seq = 0;
  /** Service calls sent and the clicks they carried (tests and logs). */
  calls = 0;
  clicks = 0;

  /** Counts one click on `code`; resolves once the store has acknowledged it. */
  count(kv: KvClient, code: string): Promise<void> {
    if (this.#waiting >= MAX_WAITING_CLICKS) {
      return Promise.reject(
        new SliceError(`click counter: ${MAX_WAITING_CLICKS} clicks already waiting; try again`, {
          status: 503,
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const seq = ++this.#seq;
      const pending = this.#pending.get(code);
      if (pending) {
        pending.waiters.push({ resolve, reject });
        pending.kv = kv;
        pending.seq = seq;
      } else {
        this.#pending.set(code, { waiters: [{ resolve, reject }], kv, seq });
      }
      this.#waiting++;
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= MAX_BATCHES_IN_FLIGHT || this.#pending.size === 0) return;
    // Clicks counted in the same turn of the event loop go together.
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  #send(): void {
    if (this.#inFlight >= MAX_BATCHES_IN_FLIGHT || this.#pending.size === 0) return;
    const batch: Array<[string, Pending]> = [];
    for (const entry of this.#pending) {
      if (batch.length >= MAX_CODES_PER_BATCH) break;
      batch.push(entry);
    }
    for (const [code] of batch) this.#pending.delete(code);
    const clicks = batch.reduce((sum, [, p]) => sum + p.waiters.length, 0);
    this.#waiting -= clicks;
    this.#inFlight++;
    this.calls++;
    this.clicks += clicks;
    // Sent with the client of the newest click: its request waits for this answer (so the client is live for
    // the whole call) and has the latest deadline of the batch's requests (an older one may be about to expire
    // and would fail the others' clicks with it).
    const newest = batch.reduce((a, b) => (b[1].seq > a[1].seq ? b : a))[1].kv;
    newest.batch(batch.map(([code, p]) => ({ op: "add", key: code, delta: p.waiters.length }))).then(
      (results) => batch.forEach(([code, p], i) => settle(code, p.waiters, results[i])),
      (error) => batch.forEach(([, p]) => p.waiters.forEach((w) => w.reject(error))),
    ).finally(() => {
      this.#inFlight--;
      this.#schedule();
    });
    this.#schedule();
  }
}

function settle(code: string, waiters: Waiter[], result: KvBatchResult | undefined): void {
  if (result?.ok) {
    for (const w of waiters) w.resolve();
    return;
  }
  const error = new ClickNotCounted(
    code,
    result?.error ??
      { name: "NoAnswer", code: "unavailable", message: "the batch answered no result for it" },
  );
  for (const w of waiters) w.reject(error);
}
