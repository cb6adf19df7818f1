/**
 * The mesh's outbound side: per-peer queues, batching into frames, backpressure and `writable` waiters.
 *
 * Batching: `enqueue` takes an encoded entry and queues its bytes; a microtask at the end of the current task
 * packs everything queued for a peer into frames of at most BATCH_TARGET_BYTES (a bigger message travels
 * alone, up to maxFrameBytes).
 *
 * Backpressure: a peer's queue is what is not yet flushed plus the socket's `bufferedAmount`. `enqueue`
 * refuses (returns false) an entry that would take it over maxQueuedBytes. `canSend` is true below half of the
 * limit, so writers that wait for it (`writable`) leave the other half for traffic that does not (consensus).
 * The waiters themselves are bounded per peer (maxWaitersPerPeer): beyond it `writable` answers false at once
 * and counts the refusal (`waitersRefused`), as it does for a peer that is down.
 */

import { assert } from "../core/mod.ts";
import { buildDataFrame, DATA_HEADER_BYTES, entryBodyBytes } from "./_frame.ts";
import { type Connection, errorText, type PeerState, type Timer, type Waiter } from "./_peer.ts";

/** Frames are filled with small messages up to this size before a new one starts. */
const BATCH_TARGET_BYTES = 64 * 1024;
/** How often `writable` waiters re-check `bufferedAmount` (WebSocket has no drain event). */
const DRAIN_POLL_MS = 5;

/** What the outbox needs from the mesh. */
export interface OutboxHost {
  readonly codecId: number;
  /** The largest frame a peer accepts: frames are filled up to BATCH_TARGET_BYTES only when that fits. */
  readonly maxFrameBytes: number;
  readonly maxQueuedBytes: number;
  readonly maxWaitersPerPeer: number;
  running(): boolean;
  /** Takes a connection whose socket failed out of service. */
  lose(conn: Connection, reason: string): void;
}

export class Outbox {
  readonly #host: OutboxHost;
  readonly #peers: readonly PeerState[];
  #dirty: PeerState[] = [];
  #flushScheduled = false;
  #drainTimer?: Timer;

  constructor(host: OutboxHost, peers: readonly PeerState[]) {
    this.#host = host;
    this.#peers = peers;
  }

  /** Bytes queued for a peer: not flushed yet, plus the socket's buffer. */
  queuedBytes(peer: PeerState): number {
    return peer.pendingBytes + (peer.conn?.ws.bufferedAmount ?? 0);
  }

  /** True when the peer is connected and its queue is below half its bound. */
  canSend(peer: PeerState): boolean {
    return peer.conn !== undefined && this.queuedBytes(peer) < this.#host.maxQueuedBytes / 2;
  }

  /** Queues one encoded entry; false when the peer is down or its queue is full. */
  enqueue(peer: PeerState, entry: Uint8Array): boolean {
    if (!peer.conn) {
      peer.counters.droppedPeerDown++;
      return false;
    }
    if (this.queuedBytes(peer) + entry.byteLength > this.#host.maxQueuedBytes) {
      peer.counters.droppedQueueFull++;
      peer.overLimitSince ??= performance.now();
      return false;
    }
    peer.pending.push(entry);
    peer.pendingBytes += entry.byteLength;
    if (!peer.flushQueued) {
      peer.flushQueued = true;
      this.#dirty.push(peer);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(() => this.#flushAll());
      }
    }
    return true;
  }

  /**
   * Resolves true once `canSend(peer)` holds, false when the peer goes down, the mesh stops or the signal
   * aborts. The caller has checked that the mesh runs and the peer is connected.
   */
  writable(peer: PeerState, signal?: AbortSignal): Promise<boolean> {
    if (this.canSend(peer)) return Promise.resolve(true);
    if (peer.waiters.size >= this.#host.maxWaitersPerPeer) {
      peer.counters.waitersRefused++;
      return Promise.resolve(false);
    }
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = {
        resolve: (writable) => {
          peer.waiters.delete(waiter);
          signal?.removeEventListener("abort", onAbort);
          resolve(writable);
        },
      };
      const onAbort = () => waiter.resolve(false);
      signal?.addEventListener("abort", onAbort, { once: true });
      peer.waiters.add(waiter);
      assert(
        peer.waiters.size <= this.#host.maxWaitersPerPeer,
        "mesh: more writers wait than maxWaitersPerPeer",
      );
      this.#scheduleDrainPoll();
    });
  }

  resolveWaiters(peer: PeerState, writable: boolean): void {
    for (const waiter of [...peer.waiters]) waiter.resolve(writable);
  }

  /** The peer's connection is gone: what was queued for it is dropped (nothing survives a reconnect). */
  discard(peer: PeerState): void {
    peer.pending = [];
    peer.pendingBytes = 0;
    peer.overLimitSince = undefined;
  }

  stop(): void {
    clearTimeout(this.#drainTimer);
  }

  #flushAll(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const peer of dirty) {
      peer.flushQueued = false;
      this.#flush(peer);
    }
  }

  #flush(peer: PeerState): void {
    const entries = peer.pending;
    assert(
      peer.pendingBytes >= 0 && (peer.pendingBytes === 0) === (entries.length === 0),
      "mesh: a peer's queued bytes disagree with its queued messages",
    );
    peer.pending = [];
    peer.pendingBytes = 0;
    const conn = peer.conn;
    if (!conn || entries.length === 0) return;
    // A frame of several messages never outgrows what the peer accepts (it would refuse the whole frame).
    const fillBytes = Math.min(BATCH_TARGET_BYTES, this.#host.maxFrameBytes - DATA_HEADER_BYTES);
    let from = 0;
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const size = entryBodyBytes(entries[i]);
      if (i > from && bytes + size > fillBytes) {
        if (!this.#sendFrame(conn, buildDataFrame(this.#host.codecId, entries, from, i, bytes), i - from)) {
          return;
        }
        from = i;
        bytes = 0;
      }
      bytes += size;
    }
    this.#sendFrame(
      conn,
      buildDataFrame(this.#host.codecId, entries, from, entries.length, bytes),
      entries.length - from,
    );
  }

  #sendFrame(conn: Connection, frame: Uint8Array, messages: number): boolean {
    if (conn.closed) return false;
    try {
      conn.ws.send(frame);
    } catch (e) {
      this.#host.lose(conn, `send failed: ${errorText(e)}`);
      return false;
    }
    const c = conn.peer.counters;
    c.framesOut++;
    c.bytesOut += frame.byteLength;
    c.messagesOut += messages;
    return true;
  }

  #scheduleDrainPoll(): void {
    if (this.#drainTimer !== undefined || !this.#host.running()) return;
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      let waiting = false;
      for (const peer of this.#peers) {
        if (peer.waiters.size === 0) continue;
        if (peer.conn && this.queuedBytes(peer) < this.#host.maxQueuedBytes / 2) {
          this.resolveWaiters(peer, true);
        } else waiting = true;
      }
      if (waiting) this.#scheduleDrainPoll();
    }, DRAIN_POLL_MS);
  }
}
