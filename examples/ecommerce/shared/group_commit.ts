/**
 * Group commit of deltas to one record: deltas added while a write is in flight are merged and written together
 * by the next one (one write at a time), and whoever added them waits for that write.
 *
 * Each write goes with the client of the newest request waiting for it. A client belongs to a request and dies
 * with its deadline; under steady load writes follow one another without a pause, so the request that started
 * the first one is long gone when later ones run (they failed with "the deadline of @infra.batch had passed",
 * and, sharing a kv batch with other orders' operations, failed those too).
 */

/** Deltas waiting for a write; beyond it `add` is refused at once (a bound, not a target). */
const MAX_WAITERS = 10_000;

export interface GroupCommitOptions<C, D> {
  /** Adds `more` into `into` (mutating it). */
  merge(into: D, more: D): void;
  empty(): D;
  /** Writes the merged deltas with the given client. */
  write(client: C, deltas: D): Promise<void>;
  /** A failed write: its deltas are kept for the next write; the waiters are answered (not failed). */
  onError(error: unknown): void;
}

export class GroupCommit<C, D> {
  readonly #o: GroupCommitOptions<C, D>;
  #pending: D;
  #waiters: Array<() => void> = [];
  #client: C | undefined;
  #writing = false;

  constructor(options: GroupCommitOptions<C, D>) {
    this.#o = options;
    this.#pending = options.empty();
  }

  /** Merges `deltas` into the next write, made with `client` unless a newer request adds before it starts. */
  add(client: C, deltas: D): Promise<void> {
    if (this.#waiters.length >= MAX_WAITERS) {
      return Promise.reject(new Error(`group commit: ${MAX_WAITERS} writers already waiting`));
    }
    this.#o.merge(this.#pending, deltas);
    this.#client = client;
    return new Promise((resolve) => {
      this.#waiters.push(resolve);
      if (!this.#writing) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#waiters.length > 0) {
        const waiters = this.#waiters;
        const deltas = this.#pending;
        const client = this.#client!;
        this.#waiters = [];
        this.#pending = this.#o.empty();
        try {
          await this.#o.write(client, deltas);
        } catch (e) {
          this.#o.merge(this.#pending, deltas);
          this.#o.onError(e);
        }
        for (const done of waiters) done();
      }
    } finally {
      this.#writing = false;
    }
  }
}
