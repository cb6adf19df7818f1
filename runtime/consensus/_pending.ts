/**
 * The engine's pending batches: kept in proposal order (oldest first by the submitter's clock, then by id, so
 * every member agrees), bounded in number.
 *
 * Order. A phase proposes the oldest pending batch, so the set is a sorted array: the oldest is its first
 * element, insertion and removal find their place by binary search. It holds a handful of batches in normal
 * running (one in flight per member incarnation), so the array's moves cost less than a tree's bookkeeping.
 *
 * Bound. Only gossip and proposals of other members can grow the set beyond that handful (a peer that restarts
 * often, or misbehaves). When the set is full:
 *   - another member's batch that would be the newest is not kept; a batch older than the newest other
 *     member's batch takes that one's place. So the set always holds the oldest batches it has heard of, which
 *     are the ones phases propose: proposals are the same as with an unbounded set, and agreement on "the
 *     oldest batch" is kept.
 *   - a batch submitted here evicts the newest batch of another member; when every kept batch is this
 *     member's (`fullOfOwn`), the engine refuses the submission with "overloaded".
 * Safety does not depend on what is kept: deciding a batch never needs it pending (its content also travels in
 * proposals and decisions, and a member that lacks it waits for it). Liveness is kept because nothing is lost
 * for good: a batch's submitter never drops its own batches and proposes them, which brings them back here as
 * soon as they are among the oldest.
 */

import { assert } from "../core/mod.ts";
import type { Batch } from "./types.ts";

export const DEFAULT_MAX_PENDING_BATCHES = 1024;

export type AddOutcome = "added" | "known" | "refused";

export class PendingBatches<C> {
  readonly maxBatches: number;
  /** Oldest first. */
  readonly #sorted: Batch<C>[] = [];
  readonly #byId = new Map<string, Batch<C>>();
  /** Ids of the pending batches submitted to this engine instance. */
  readonly #own = new Set<string>();
  /** Other members' batches not kept (or evicted) because the set was full. */
  #foreignRefused = 0;

  constructor(maxBatches: number) {
    assert(Number.isSafeInteger(maxBatches) && maxBatches >= 1, "pending batches: bad limit");
    this.maxBatches = maxBatches;
  }

  get size(): number {
    return this.#sorted.length;
  }

  get foreignRefused(): number {
    return this.#foreignRefused;
  }

  /** True when a batch submitted here finds no place: every kept batch is this member's own. */
  get fullOfOwn(): boolean {
    return this.#sorted.length >= this.maxBatches && this.#own.size === this.#sorted.length;
  }

  has(id: string): boolean {
    return this.#byId.has(id);
  }

  get(id: string): Batch<C> | undefined {
    return this.#byId.get(id);
  }

  isOwn(id: string): boolean {
    return this.#own.has(id);
  }

  /** The batch a phase proposes: the oldest. */
  oldest(): Batch<C> | undefined {
    return this.#sorted[0];
  }

  /**
   * Adds a batch (see the module comment for what happens when the set is full). An own batch must find a
   * place: the caller checks `fullOfOwn` first.
   */
  add(batch: Batch<C>, own: boolean): AddOutcome {
    if (this.#byId.has(batch.id)) return "known";
    if (this.#sorted.length >= this.maxBatches && !this.#makeRoomFor(batch, own)) {
      assert(!own, `pending batches: no place for own batch ${batch.id}`);
      this.#foreignRefused++;
      return "refused";
    }
    this.#sorted.splice(this.#indexOf(batch), 0, batch);
    this.#byId.set(batch.id, batch);
    if (own) this.#own.add(batch.id);
    this.#check();
    return "added";
  }

  delete(id: string): boolean {
    const batch = this.#byId.get(id);
    if (!batch) return false;
    const index = this.#indexOf(batch);
    assert(this.#sorted[index] === batch, "pending batches: a batch is not where its order puts it");
    this.#sorted.splice(index, 1);
    this.#byId.delete(id);
    this.#own.delete(id);
    this.#check();
    return true;
  }

  /** Removes every batch of other members; returns their ids. */
  dropForeign(): string[] {
    const dropped = this.#sorted.filter((b) => !this.#own.has(b.id)).map((b) => b.id);
    for (const id of dropped) this.delete(id);
    return dropped;
  }

  /** Evicts the newest other member's batch when `batch` deserves its place more; false when it does not. */
  #makeRoomFor(batch: Batch<C>, own: boolean): boolean {
    for (let i = this.#sorted.length - 1; i >= 0; i--) {
      const candidate = this.#sorted[i];
      if (this.#own.has(candidate.id)) continue;
      if (!own && !olderThan(batch, candidate)) return false;
      this.#foreignRefused++;
      this.delete(candidate.id);
      return true;
    }
    return false;
  }

  /** Index of the first kept batch not older than `batch` (its place, or where it is). */
  #indexOf(batch: Batch<C>): number {
    let low = 0;
    let high = this.#sorted.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (olderThan(this.#sorted[mid], batch)) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  #check(): void {
    assert(this.#sorted.length === this.#byId.size, "pending batches: order and index disagree");
    assert(this.#own.size <= this.#byId.size, "pending batches: more own batches than batches");
    assert(this.#sorted.length <= this.maxBatches, "pending batches: over the limit");
  }
}

/** Orders pending batches: oldest first by the submitter's clock, then by id so every member agrees. */
export function olderThan(a: Batch<unknown>, b: Batch<unknown>): boolean {
  return a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);
}
