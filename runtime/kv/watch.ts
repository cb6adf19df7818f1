/**
 * Watches by key prefix over the KV state machine's change stream.
 *
 * The node publishes the events of every applied batch; the hub keeps a bounded history of recent revisions
 * so a watcher can start from an earlier revision (a client resuming after a reconnect), then follows live
 * changes. Every watcher sees its prefix's changes in revision order, each exactly once, with the events of one
 * revision delivered together. Replay reads the shared history in place; only changes published after the
 * watch began are queued per watcher, and that queue is bounded: a consumer that falls too far behind is ended
 * with an error telling it from which revision to resume, instead of growing memory.
 *
 * Synchronous publish + single-threaded JavaScript make the seam between replay and live exact: a watch takes
 * the hub's revision when it starts; replay covers revisions up to it, the queue everything after it.
 */

import { AetherError, assert } from "../core/mod.ts";
import type { KvEvent } from "./commands.ts";

/** The changes of one revision under a watcher's prefix. Shared between watchers: do not mutate. */
export interface WatchBatch {
  revision: number;
  events: readonly KvEvent[];
}

export interface WatchHubOptions {
  /** Revision of the state the hub starts from; history covers only later revisions. Default 0. */
  revision?: number;
  /** History kept for replay, in events and in bytes (the first limit reached trims the oldest revisions). */
  historyEvents?: number;
  historyBytes?: number;
  /** Default bound of each watcher's queue of undelivered live changes. */
  queueEvents?: number;
  queueBytes?: number;
  /** Watches open at once; beyond it `watch()` refuses with "overloaded". Default 10,000. */
  maxWatchers?: number;
}

export interface WatchOptions {
  /** Overrides the hub's per-watcher queue bounds for this watch. */
  queueEvents?: number;
  queueBytes?: number;
  /** Cancels the watch when aborted (for example when an HTTP client disconnects). */
  signal?: AbortSignal;
}

export const WATCH_DEFAULTS = {
  historyEvents: 10_000,
  historyBytes: 16 * 1024 * 1024,
  queueEvents: 1_000,
  queueBytes: 4 * 1024 * 1024,
  maxWatchers: 10_000,
} as const;

/** How long a client refused for too many watchers is told to wait before trying again. */
const WATCHERS_FULL_RETRY_AFTER_SECONDS = 1;

/** The hub's load and limits, for the node's status. */
export interface WatchHubStats {
  /** Watches open now, and the bound on them. */
  watchers: number;
  maxWatchers: number;
  /** `watch()` calls refused because `maxWatchers` watches were open (since the hub started). */
  watchersRefused: number;
  /** History retained for replay. */
  historyRevisions: number;
  historyEvents: number;
  historyBytes: number;
}

interface Group {
  revision: number;
  events: KvEvent[];
  bytes: number;
}

/** Approximate memory held by one event, used for every byte bound here. */
export function eventBytes(event: KvEvent): number {
  return 48 + event.key.length * 2 + (event.value?.byteLength ?? 0);
}

// Hub <-> watch protocol; the symbols are not exported, so consumers cannot call these.
const OFFER = Symbol("offer");
const END = Symbol("end");
const SCAN = Symbol("scan");
const DETACH = Symbol("detach");

type ScanResult = { gone: true; oldestRevision: number } | { gone: false; group?: WatchBatch; next: number };

export class WatchHub {
  #revision: number;
  /** Highest revision whose events are no longer retained. */
  #compactedThrough: number;
  #groups: Group[] = [];
  #head = 0;
  #historyEvents = 0;
  #historyBytes = 0;
  #watches = new Set<Watch>();
  #watchersRefused = 0;
  #closed = false;
  readonly #limits: Required<Omit<WatchHubOptions, "revision">>;

  constructor(options: WatchHubOptions = {}) {
    const revision = options.revision ?? 0;
    checkCount("revision", revision, 0);
    this.#revision = revision;
    this.#compactedThrough = revision;
    this.#limits = {
      historyEvents: options.historyEvents ?? WATCH_DEFAULTS.historyEvents,
      historyBytes: options.historyBytes ?? WATCH_DEFAULTS.historyBytes,
      queueEvents: options.queueEvents ?? WATCH_DEFAULTS.queueEvents,
      queueBytes: options.queueBytes ?? WATCH_DEFAULTS.queueBytes,
      maxWatchers: options.maxWatchers ?? WATCH_DEFAULTS.maxWatchers,
    };
    for (const [name, value] of Object.entries(this.#limits)) checkCount(name, value, 1);
  }

  /** The last published revision. */
  get revision(): number {
    return this.#revision;
  }

  /** The oldest revision a new watch may start from. */
  get oldestRevision(): number {
    return this.#compactedThrough + 1;
  }

  get watcherCount(): number {
    return this.#watches.size;
  }

  get historyStats(): { revisions: number; events: number; bytes: number } {
    return {
      revisions: this.#groups.length - this.#head,
      events: this.#historyEvents,
      bytes: this.#historyBytes,
    };
  }

  get stats(): WatchHubStats {
    return {
      watchers: this.#watches.size,
      maxWatchers: this.#limits.maxWatchers,
      watchersRefused: this.#watchersRefused,
      historyRevisions: this.#groups.length - this.#head,
      historyEvents: this.#historyEvents,
      historyBytes: this.#historyBytes,
    };
  }

  /**
   * Watches keys starting with `prefix` from `fromRevision` on (default: changes after the current revision).
   * Throws `gone` when history before `fromRevision` is no longer retained; the error names the oldest
   * revision still available (`extra.oldestRevision`). Throws `overloaded` (HTTP 503, `extra.retryAfterSeconds`)
   * when `maxWatchers` watches are open already.
   */
  watch(prefix: string, fromRevision?: number, options: WatchOptions = {}): Watch {
    if (this.#closed) throw new AetherError("unavailable", "the watch hub is closed");
    if (typeof prefix !== "string") throw new AetherError("bad_request", "watch: prefix must be a string");
    if (fromRevision !== undefined) checkCount("fromRevision", fromRevision, 0);
    const from = fromRevision === undefined ? this.#revision + 1 : Math.max(1, fromRevision);
    if (from <= this.#compactedThrough) throw goneError(prefix, from, this.oldestRevision);
    const queueEvents = options.queueEvents ?? this.#limits.queueEvents;
    const queueBytes = options.queueBytes ?? this.#limits.queueBytes;
    checkCount("queueEvents", queueEvents, 1);
    checkCount("queueBytes", queueBytes, 1);
    if (this.#watches.size >= this.#limits.maxWatchers) {
      this.#watchersRefused++;
      throw new AetherError(
        "overloaded",
        `watch of "${prefix}" refused: ${this.#watches.size} watches are open, the limit is ` +
          `${this.#limits.maxWatchers}; retry in ${WATCHERS_FULL_RETRY_AFTER_SECONDS} s`,
        { retryAfterSeconds: WATCHERS_FULL_RETRY_AFTER_SECONDS, maxWatchers: this.#limits.maxWatchers },
      );
    }
    const watch = new Watch(this, prefix, from, this.#revision, queueEvents, queueBytes);
    this.#watches.add(watch);
    assert(this.#watches.size <= this.#limits.maxWatchers, "watch hub: more watches than maxWatchers");
    if (options.signal) {
      if (options.signal.aborted) watch.cancel();
      else options.signal.addEventListener("abort", () => watch.cancel(), { once: true });
    }
    return watch;
  }

  /** Adds the events of one applied batch: revisions after the hub's, in non-decreasing order. */
  publish(events: readonly KvEvent[]): void {
    if (this.#closed) return;
    let i = 0;
    while (i < events.length) {
      const revision = events[i].revision;
      if (!Number.isSafeInteger(revision) || revision <= this.#revision) {
        throw new AetherError(
          "internal",
          `watch hub: event revision ${revision} does not follow revision ${this.#revision} (key "${
            events[i].key
          }")`,
        );
      }
      const group: Group = { revision, events: [], bytes: 0 };
      for (; i < events.length && events[i].revision === revision; i++) {
        group.events.push(events[i]);
        group.bytes += eventBytes(events[i]);
      }
      const last = this.#groups.length > this.#head ? this.#groups[this.#groups.length - 1] : undefined;
      assert(last === undefined || last.revision < revision, "watch hub: history revisions not increasing");
      this.#groups.push(group);
      this.#historyEvents += group.events.length;
      this.#historyBytes += group.bytes;
      this.#revision = revision;
      for (const watch of this.#watches) watch[OFFER](group);
    }
    this.#trim();
    this.#checkCounters();
  }

  /**
   * The state machine jumped to `revision` (a snapshot was installed): history is gone, and every watch that
   * still needed a revision up to it ends with `gone`.
   */
  reset(revision: number): void {
    checkCount("revision", revision, 0);
    const backwards = revision < this.#revision;
    this.#groups = [];
    this.#head = 0;
    this.#historyEvents = 0;
    this.#historyBytes = 0;
    this.#revision = revision;
    this.#compactedThrough = revision;
    for (const watch of [...this.#watches]) {
      if (backwards || watch.resumeRevision <= revision) {
        watch[END](
          goneError(watch.prefix, watch.resumeRevision, revision + 1, "a snapshot replaced the state"),
        );
      }
    }
    this.#checkCounters();
  }

  /** Ends every watch (without error) and refuses new ones. */
  close(): void {
    this.#closed = true;
    for (const watch of [...this.#watches]) watch.cancel();
  }

  /** The first group at or after `cursor` (up to `until`) with events under `prefix`. */
  [SCAN](prefix: string, cursor: number, until: number): ScanResult {
    if (cursor <= this.#compactedThrough) return { gone: true, oldestRevision: this.oldestRevision };
    for (let i = this.#indexOf(cursor); i < this.#groups.length; i++) {
      const group = this.#groups[i];
      if (group.revision > until) break;
      const events = matching(group.events, prefix);
      if (events.length > 0) {
        return { gone: false, group: { revision: group.revision, events }, next: group.revision + 1 };
      }
    }
    return { gone: false, next: until + 1 };
  }

  [DETACH](watch: Watch): void {
    this.#watches.delete(watch);
  }

  /** Index of the first retained group with revision >= `revision`. */
  #indexOf(revision: number): number {
    let low = this.#head;
    let high = this.#groups.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (this.#groups[mid].revision < revision) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /**
   * Cheap invariants, checked after every change: the history counters stay within their bounds and agree with
   * the retained groups at their ends (summing every group would cost a scan per publish).
   */
  #checkCounters(): void {
    const retained = this.#groups.length - this.#head;
    assert(retained >= 0, "watch hub: history head past its end");
    assert(this.#historyEvents >= retained, "watch hub: fewer history events than retained revisions");
    assert(this.#historyBytes >= 0, "watch hub: negative history bytes");
    if (retained === 0) {
      assert(this.#historyEvents === 0 && this.#historyBytes === 0, "watch hub: counters without history");
      return;
    }
    const oldest = this.#groups[this.#head];
    const newest = this.#groups[this.#groups.length - 1];
    assert(oldest.revision > this.#compactedThrough, "watch hub: a retained revision is marked compacted");
    assert(newest.revision === this.#revision, "watch hub: the newest retained revision is not the hub's");
    assert(
      this.#historyEvents <= this.#limits.historyEvents && this.#historyBytes <= this.#limits.historyBytes,
      "watch hub: history over its bounds after trimming",
    );
  }

  #trim(): void {
    const { historyEvents, historyBytes } = this.#limits;
    while (
      this.#head < this.#groups.length &&
      (this.#historyEvents > historyEvents || this.#historyBytes > historyBytes)
    ) {
      const oldest = this.#groups[this.#head++];
      this.#historyEvents -= oldest.events.length;
      this.#historyBytes -= oldest.bytes;
      this.#compactedThrough = oldest.revision;
    }
    // Drop trimmed slots now and then, so trimming stays O(1) per group on average.
    if (this.#head > 1024 && this.#head * 2 > this.#groups.length) {
      this.#groups = this.#groups.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * One watch: an async iterator of `WatchBatch`es. Ends (`done`) when cancelled (`cancel()`, `break` out of
 * `for await`, the abort signal) or when the hub closes. Throws an `AetherError` when it cannot go on without a
 * gap or a duplicate:
 *   - `overloaded`: the consumer fell behind; `extra.resumeRevision` is where a new watch continues exactly;
 *   - `gone`: the history it still needed is compacted or replaced by a snapshot; `extra.oldestRevision` names
 *     the oldest revision still available (read the range again, then watch from its revision + 1).
 */
export class Watch implements AsyncIterableIterator<WatchBatch> {
  readonly prefix: string;
  readonly fromRevision: number;
  #hub: WatchHub;
  /** Replay covers [cursor, replayUntil] from the hub's history; later revisions arrive through the queue. */
  #cursor: number;
  #replayUntil: number;
  #queue: { batch: WatchBatch; bytes: number }[] = [];
  #queueHead = 0;
  #queuedEvents = 0;
  #queuedBytes = 0;
  #maxEvents: number;
  #maxBytes: number;
  #lastDelivered = 0;
  #finished = false;
  #error: AetherError | undefined;
  #waiters: { resolve: (r: IteratorResult<WatchBatch>) => void; reject: (e: unknown) => void }[] = [];

  constructor(
    hub: WatchHub,
    prefix: string,
    from: number,
    replayUntil: number,
    maxEvents: number,
    maxBytes: number,
  ) {
    this.#hub = hub;
    this.prefix = prefix;
    this.fromRevision = from;
    this.#cursor = from;
    this.#replayUntil = replayUntil;
    this.#maxEvents = maxEvents;
    this.#maxBytes = maxBytes;
  }

  /** Where a new watch continues this one without a gap or a duplicate. */
  get resumeRevision(): number {
    return Math.max(this.fromRevision, this.#lastDelivered + 1);
  }

  /** True once the watch has ended (cancelled, closed or failed). */
  get finished(): boolean {
    return this.#finished;
  }

  next(): Promise<IteratorResult<WatchBatch>> {
    if (this.#error) {
      const error = this.#error;
      this.#error = undefined;
      return Promise.reject(error);
    }
    if (this.#finished) return Promise.resolve({ done: true, value: undefined });
    const batch = this.#take();
    if (batch) return Promise.resolve({ done: false, value: batch });
    if (this.#error) return this.next();
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Called by `for await` on `break`: cancels the watch. */
  return(): Promise<IteratorResult<WatchBatch>> {
    this.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<WatchBatch> {
    return this;
  }

  /** Ends the watch; a pending `next()` resolves as done. Idempotent. */
  cancel(): void {
    if (this.#finished) return;
    this.#finish();
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ done: true, value: undefined });
  }

  [OFFER](group: Group): void {
    if (this.#finished || group.revision < this.fromRevision) return;
    const events = matching(group.events, this.prefix);
    if (events.length === 0) return;
    const batch = { revision: group.revision, events };
    const waiter = this.#waiters.shift();
    if (waiter) {
      // A waiter exists only when replay is over and the queue is empty: hand the batch over directly.
      this.#lastDelivered = batch.revision;
      waiter.resolve({ done: false, value: batch });
      return;
    }
    const bytes = events === group.events ? group.bytes : events.reduce((n, e) => n + eventBytes(e), 0);
    this.#queue.push({ batch, bytes });
    this.#queuedEvents += events.length;
    this.#queuedBytes += bytes;
    if (this.#queuedEvents > this.#maxEvents || this.#queuedBytes > this.#maxBytes) {
      this[END](
        new AetherError(
          "overloaded",
          `watch of "${this.prefix}" fell behind: more than ${this.#maxEvents} events or ${this.#maxBytes} bytes ` +
            `waited for the consumer; resume from revision ${this.resumeRevision}`,
          { resumeRevision: this.resumeRevision },
        ),
      );
    }
  }

  /** Ends the watch with an error: the next `next()` rejects with it. */
  [END](error: AetherError): void {
    if (this.#finished) return;
    this.#finish();
    const waiter = this.#waiters.shift();
    if (waiter) waiter.reject(error);
    else this.#error = error;
    for (const other of this.#waiters.splice(0)) other.resolve({ done: true, value: undefined });
  }

  #take(): WatchBatch | undefined {
    while (this.#cursor <= this.#replayUntil) {
      const scan = this.#hub[SCAN](this.prefix, this.#cursor, this.#replayUntil);
      if (scan.gone) {
        this[END](goneError(this.prefix, this.resumeRevision, scan.oldestRevision, "the watch fell behind"));
        return undefined;
      }
      this.#cursor = scan.next;
      if (scan.group) return this.#delivered(scan.group);
    }
    if (this.#queueHead < this.#queue.length) {
      const { batch, bytes } = this.#queue[this.#queueHead++];
      if (this.#queueHead === this.#queue.length) {
        this.#queue = [];
        this.#queueHead = 0;
      } else if (this.#queueHead > 1024 && this.#queueHead * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#queueHead);
        this.#queueHead = 0;
      }
      this.#queuedEvents -= batch.events.length;
      this.#queuedBytes -= bytes;
      return this.#delivered(batch);
    }
    return undefined;
  }

  #delivered(batch: WatchBatch): WatchBatch {
    this.#lastDelivered = batch.revision;
    return batch;
  }

  #finish(): void {
    this.#finished = true;
    this.#queue = [];
    this.#queueHead = 0;
    this.#queuedEvents = 0;
    this.#queuedBytes = 0;
    this.#hub[DETACH](this);
  }
}

function matching(events: KvEvent[], prefix: string): KvEvent[] {
  if (prefix === "") return events;
  let all = true;
  for (const e of events) {
    if (!e.key.startsWith(prefix)) {
      all = false;
      break;
    }
  }
  return all ? events : events.filter((e) => e.key.startsWith(prefix));
}

function goneError(
  prefix: string,
  requested: number,
  oldest: number,
  why = "history is compacted",
): AetherError {
  return new AetherError(
    "gone",
    `watch of "${prefix}" from revision ${requested}: ${why}; the oldest revision still available is ${oldest}`,
    { requestedRevision: requested, oldestRevision: oldest },
  );
}

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new AetherError("bad_request", `watch: ${name} must be an integer >= ${min}, got ${value}`);
  }
}
