/**
 * The least-recently-used index of one cache on one node: the keys put through this node, with their size in
 * bytes and the store version their put returned, in order of last use (a Map keeps insertion order, so a
 * touch is delete + set and the oldest key is the first). `admit` returns the keys that must leave to keep
 * the index within `maxEntries` and `maxBytes`; the caller deletes them from the store (at that version, so a
 * newer put of the key through another node survives).
 *
 * An unbounded cache (both limits 0) is indexed too, so its entries and bytes are known, but never evicts:
 * beyond `maxTrackedUnbounded` keys the least recently used ones are only forgotten (they stay in the store,
 * uncounted), which keeps the index's memory bounded.
 */

export interface CacheLimits {
  /** Most entries kept; 0: no bound by count. */
  maxEntries: number;
  /** Most bytes (key + JSON value, UTF-8) kept; 0: no bound by size. */
  maxBytes: number;
}

export interface Evicted {
  key: string;
  version: number;
}

interface Tracked {
  bytes: number;
  version: number;
}

export class LruIndex {
  readonly #entries = new Map<string, Tracked>();
  #bytes = 0;
  #limits: CacheLimits;
  readonly #maxTrackedUnbounded: number;

  constructor(limits: CacheLimits, maxTrackedUnbounded: number) {
    this.#limits = limits;
    this.#maxTrackedUnbounded = maxTrackedUnbounded;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  get limits(): CacheLimits {
    return this.#limits;
  }

  /** New limits; returns what must leave to meet them (shrinking a cache evicts at once). */
  setLimits(limits: CacheLimits): Evicted[] {
    this.#limits = limits;
    this.#forgetBeyondTracked(undefined);
    return this.#evict(undefined);
  }

  /** Records a put of `key` (now the most recently used); returns the keys evicted to make room. */
  admit(key: string, bytes: number, version: number): Evicted[] {
    this.forget(key);
    this.#entries.set(key, { bytes, version });
    this.#bytes += bytes;
    this.#forgetBeyondTracked(key);
    return this.#evict(key);
  }

  /** Marks `key` used (a hit); false when this node does not track it. */
  touch(key: string): boolean {
    const tracked = this.#entries.get(key);
    if (!tracked) return false;
    this.#entries.delete(key);
    this.#entries.set(key, tracked);
    return true;
  }

  /** Stops tracking `key` (removed, or found absent: expired or evicted elsewhere). */
  forget(key: string): void {
    const tracked = this.#entries.get(key);
    if (!tracked) return;
    this.#entries.delete(key);
    this.#bytes -= tracked.bytes;
  }

  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  /** Keys from least to most recently used (tests). */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  get #unbounded(): boolean {
    return this.#limits.maxEntries === 0 && this.#limits.maxBytes === 0;
  }

  /** An unbounded cache: the least recently used keys beyond the tracking bound leave the index only. */
  #forgetBeyondTracked(keep: string | undefined): void {
    if (!this.#unbounded) return;
    for (const key of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxTrackedUnbounded) break;
      if (key !== keep) this.forget(key);
    }
  }

  #over(): boolean {
    const { maxEntries, maxBytes } = this.#limits;
    return (maxEntries > 0 && this.#entries.size > maxEntries) || (maxBytes > 0 && this.#bytes > maxBytes);
  }

  /**
   * Drops least recently used keys while over a limit. The key just admitted is kept even when it alone is
   * over maxBytes (a put is never refused for the bound; the value limit refuses huge values).
   */
  #evict(keep: string | undefined): Evicted[] {
    const evicted: Evicted[] = [];
    for (const [key, tracked] of this.#entries) {
      if (!this.#over()) break;
      if (key === keep) continue;
      this.#entries.delete(key);
      this.#bytes -= tracked.bytes;
      evicted.push({ key, version: tracked.version });
    }
    return evicted;
  }
}
