/**
 * Warm sandbox processes, so that loading an instance rarely waits for a Deno process to boot (about 30 ms of
 * CPU for Deno and 20-30 ms more for the memory watchdog's Worker; with several starting at once on a small
 * machine, hundreds of milliseconds). A warm child has loaded nothing and is identical to a fresh one; a child
 * is never reused after it hosted a slice. Children are kept per kind (the grant's `--allow-*` flags and the
 * memory limit), since those are fixed when the process starts.
 *
 * - **Depth follows demand.** Each kind keeps as many warm children as the largest burst of loads it has seen
 *   (loads less than BURST_GAP_MS apart), at least as many as it was pre-warmed with, and all kinds together
 *   at most `maxWarm` (the least recently used kind gives way).
 * - **Refills trickle.** A take that finds no warm child starts one at once (it is on the load's critical
 *   path). Refills start in the background one at a time: the next only once the previous has booted (it
 *   writes an empty line) and `refillGapMs` more have passed, so loads one after another find the child
 *   started after the previous one. Several takes at once that empty the pool mean a deployment: then
 *   refilling waits until `quietMs` after them, so that booting spares does not slow down the rest of the
 *   deployment (the children booting for it, the start hooks and the activations that follow).
 * - A warm child costs about 17-20 MiB of private memory and no CPU (its watchdog samples only once a bundle
 *   is being loaded).
 */

import { discard, spawnChild, type SpawnedChild } from "./_process_channel.ts";
import type { PermissionGrant } from "./policy.ts";

/** Takes less than this far apart (milliseconds) count as one burst (for how many to keep warm). */
const BURST_GAP_MS = 1_000;
/** Takes less than this far apart came in together (a deployment's LOADs), not one after another. */
const TOGETHER_MS = 10;
/** A background child that has not said it booted after this long no longer holds up the next one. */
const BOOT_WAIT_MS = 5_000;

export interface ProcessPoolOptions {
  /** The most warm children kept for all kinds together (default 4; 0 keeps none). */
  maxWarm?: number;
  /** Pause after a background child has booted before the next one starts (default 50 ms). */
  refillGapMs?: number;
  /** After takes that came together and found no warm child, no background start for this long (1 s). */
  quietMs?: number;
}

interface Kind {
  grant: PermissionGrant;
  memoryLimitMb: number;
  warm: SpawnedChild[];
  /** How many warm children this kind should have. */
  target: number;
  burst: number;
  lastTakeAt: number;
}

export class ProcessPool {
  /** By key, least recently used first. */
  readonly #kinds = new Map<string, Kind>();
  readonly #discarding = new Set<Promise<void>>();
  readonly #maxWarm: number;
  readonly #refillGapMs: number;
  readonly #quietMs: number;
  /** No background start before this (performance.now()): takes that came together emptied the pool. */
  #holdUntil = 0;
  #lastTakeAt = -Infinity;
  /** A refill step is scheduled or a background child is booting. */
  #refilling = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(options: ProcessPoolOptions = {}) {
    this.#maxWarm = Math.max(0, options.maxWarm ?? 4);
    this.#refillGapMs = options.refillGapMs ?? 50;
    this.#quietMs = options.quietMs ?? 1_000;
  }

  /** A started child for this grant: a warm one if there is one, else a new one (started now). */
  take(grant: PermissionGrant, memoryLimitMb: number): SpawnedChild {
    const now = performance.now();
    const kind = this.#use(grant, memoryLimitMb);
    kind.burst = now - kind.lastTakeAt < BURST_GAP_MS ? kind.burst + 1 : 1;
    kind.lastTakeAt = now;
    kind.target = Math.min(this.#maxWarm, Math.max(kind.target, kind.burst));
    let spawned: SpawnedChild | undefined;
    while ((spawned = kind.warm.shift()) && spawned.exited) this.#discard(spawned);
    if (!spawned && now - this.#lastTakeAt < TOGETHER_MS) this.#holdUntil = now + this.#quietMs;
    this.#lastTakeAt = now;
    this.#scheduleRefill();
    return spawned ?? spawnChild(grant, memoryLimitMb);
  }

  /** Keeps at least `count` warm children of this kind (started in the background). */
  prewarm(grant: PermissionGrant, memoryLimitMb: number, count: number): void {
    const kind = this.#use(grant, memoryLimitMb);
    kind.target = Math.min(this.#maxWarm, Math.max(kind.target, count));
    this.#scheduleRefill();
  }

  /** Process ids of the warm children waiting. */
  warmPids(): number[] {
    return [...this.#kinds.values()].flatMap((k) => k.warm.map((s) => s.child.pid));
  }

  /** Ends every warm child and stops refilling. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const kind of this.#kinds.values()) {
      for (const spawned of kind.warm.splice(0)) this.#discard(spawned);
    }
    await Promise.all([...this.#discarding]);
  }

  // ---------------------------------------------------------------------------------------------------------

  /** The kind for this grant, marked most recently used. */
  #use(grant: PermissionGrant, memoryLimitMb: number): Kind {
    const key = JSON.stringify([grant.net, grant.env, memoryLimitMb]);
    const kind = this.#kinds.get(key) ??
      { grant, memoryLimitMb, warm: [], target: 0, burst: 0, lastTakeAt: -Infinity };
    this.#kinds.delete(key);
    this.#kinds.set(key, kind);
    return kind;
  }

  /** Runs a refill step after `delayMs` unless one is scheduled or a background child is booting. */
  #scheduleRefill(delayMs = 0): void {
    if (this.#closed || this.#refilling || this.#maxWarm === 0) return;
    this.#refilling = true;
    // Even at 0 ms this waits for the current task: the takes of a burst all come first.
    this.#wait(delayMs, () => {
      this.#refilling = false;
      const heldMs = this.#holdUntil - performance.now();
      if (heldMs > 0) this.#scheduleRefill(heldMs);
      else this.#refillOne();
    });
  }

  /** A timer that never keeps the process alive (a warm child is no reason to); close() clears it. */
  #wait(delayMs: number, then: () => void): void {
    const timer = setTimeout(() => {
      this.#timer = undefined;
      then();
    }, delayMs);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /**
   * Starts one warm child where one is missing, most recently used kind first, and schedules the next step
   * for when it has booted.
   */
  #refillOne(): void {
    if (this.#closed) return;
    const kinds = [...this.#kinds.values()].reverse();
    let total = 0;
    for (const kind of kinds) {
      for (const spawned of kind.warm.filter((s) => s.exited)) {
        kind.warm.splice(kind.warm.indexOf(spawned), 1);
        this.#discard(spawned);
      }
      total += kind.warm.length;
    }
    const needy = kinds.find((k) => k.warm.length < k.target);
    if (!needy) return;
    if (total >= this.#maxWarm) {
      // Make room: the least recently used other kind gives up a child (and wants no more than it keeps).
      const donor = [...this.#kinds.values()].find((k) => k !== needy && k.warm.length > 0);
      if (!donor) return;
      this.#discard(donor.warm.pop()!);
      donor.target = donor.warm.length;
    }
    const spawned = spawnChild(needy.grant, needy.memoryLimitMb);
    needy.warm.push(spawned);
    this.#refilling = true;
    let done = false;
    const next = () => {
      if (done || this.#closed) return;
      done = true;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#refilling = false;
      this.#scheduleRefill(this.#refillGapMs);
    };
    spawned.ready.then(next);
    this.#wait(BOOT_WAIT_MS, next);
  }

  #discard(spawned: SpawnedChild): void {
    const done = discard(spawned).finally(() => this.#discarding.delete(done));
    this.#discarding.add(done);
  }
}
