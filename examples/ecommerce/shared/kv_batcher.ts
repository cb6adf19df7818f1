/**
 * Group commit of kv operations for one slice instance: operations that concurrent requests of the instance
 * ask for while earlier batches are in flight travel together in one `kv.batch` call (at most
 * MAX_OPS_PER_BATCH), so under load many orders share one service call. The service call, not the store, is
 * what bounds the shop's rate with shared state (each crosses the kv service slice); an idle instance sends an
 * operation at once, alone.
 *
 * A batch is not atomic (runtime/infra-host/kv_service.ts): each operation answers for itself, exactly as it
 * would alone, so batching changes no guarantee. Two writes of one key (adds apart) never share a batch (the
 * service refuses that): the second waits for the next one.
 */

import type { KvBatchResult, KvClient, KvOperation } from "@aether/slices";

/** The service's limit of operations per batch. */
export const MAX_OPS_PER_BATCH = 64;
/**
 * Batches one instance keeps in flight; more operations wait and go together in the next. 4, not 2: a cold
 * start at 100 orders/s queued behind 2 (measured in /tmp/notes/shop-shared.md). Not more, and no batches
 * exempted while they wait for a failover: every batch in flight may hold a stock take awaiting its retry, and
 * a retried add is recognised only within the last 16 adds of its key (runtime/infra-host/store_node.ts).
 */
const MAX_BATCHES_IN_FLIGHT = 4;
/** Operations waiting for a batch; beyond it an operation is refused at once (a bound, not a target). */
const MAX_WAITING_OPS = 10_000;

interface Waiting {
  op: KvOperation;
  /** The client of the request waiting for this operation (its deadline and request id travel with it). */
  kv: KvClient;
  /** That request's deadline (epoch ms; Infinity: unknown). */
  deadlineMs: number;
  done: (result: KvBatchResult) => void;
  fail: (error: unknown) => void;
}

export class KvBatcher {
  #waiting: Waiting[] = [];
  #inFlight = 0;
  #scheduled = false;
  /** Service calls sent and operations they carried (for logs and tests). */
  calls = 0;
  operations = 0;

  /**
   * Runs one operation in the next batch; answers its own result (`ok: false` for its own failure, also when
   * `deadlineMs`, the deadline of the request waiting for it, passes before it is sent: work nobody waits for is
   * dropped, not added to a backlog).
   */
  run(kv: KvClient, op: KvOperation, deadlineMs = Infinity): Promise<KvBatchResult> {
    if (this.#waiting.length >= MAX_WAITING_OPS) {
      return Promise.reject(new Error(`kv batcher: ${MAX_WAITING_OPS} operations already waiting`));
    }
    return new Promise((done, fail) => {
      this.#waiting.push({ op, kv, deadlineMs, done, fail });
      this.#schedule();
    });
  }

  /** Several operations (they may travel in different batches); answers in the order given. */
  all(kv: KvClient, ops: readonly KvOperation[], deadlineMs = Infinity): Promise<KvBatchResult[]> {
    return Promise.all(ops.map((op) => this.run(kv, op, deadlineMs)));
  }

  #full(): boolean {
    return this.#inFlight >= MAX_BATCHES_IN_FLIGHT;
  }

  #schedule(): void {
    if (this.#scheduled || this.#full() || this.#waiting.length === 0) return;
    // Operations asked for in the same turn of the event loop go together.
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  #send(): void {
    if (this.#full() || this.#waiting.length === 0) return;
    const batch: Waiting[] = [];
    const rest: Waiting[] = [];
    const written = new Map<string, string>();
    const nowMs = Date.now();
    for (const w of this.#waiting) {
      if (w.deadlineMs <= nowMs) {
        w.done(expired(w.op));
        continue;
      }
      const key = `${w.op.map ?? ""}\u0000${w.op.key}`;
      const other = written.get(key);
      const clash = w.op.op !== "get" && other !== undefined && !(other === "add" && w.op.op === "add");
      if (batch.length >= MAX_OPS_PER_BATCH || clash) {
        rest.push(w);
        continue;
      }
      batch.push(w);
      if (w.op.op !== "get") written.set(key, w.op.op);
    }
    this.#waiting = rest;
    if (batch.length === 0) return this.#schedule();
    this.#inFlight++;
    this.calls++;
    this.operations += batch.length;
    // Sent with the client of the request with the latest deadline: it waits for the answer (so the client is
    // live for the whole call), and an earlier one may be about to expire and would fail the others' operations
    // with it (the newest operation is not always the latest deadline: an old request's give-back or retry).
    const latest = batch.reduce((a, b) => (b.deadlineMs >= a.deadlineMs ? b : a));
    latest.kv.batch(batch.map((w) => w.op)).then(
      (results) => batch.forEach((w, i) => w.done(results[i])),
      (error) => batch.forEach((w) => w.fail(error)),
    ).finally(() => {
      this.#inFlight--;
      this.#schedule();
    });
    this.#schedule();
  }
}

/** The answer of an operation whose request's deadline passed before it was sent. */
function expired(op: KvOperation): KvBatchResult {
  return {
    ok: false,
    error: {
      name: "DeadlineExceeded",
      code: "timeout",
      message: `kv ${op.op} of ${JSON.stringify(op.key)} not sent: the request's deadline had passed`,
    },
  };
}
