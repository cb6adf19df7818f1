/**
 * Liveness of the mesh's connections: heartbeats, round trips, dead and stalled peers.
 *
 * Both sides send a heartbeat every heartbeatMs and answer the other's with a pong (that gives RTT); any frame
 * counts as a sign of life; a connection silent for deadAfterMs is closed and the peer reported down. A peer
 * whose queue stays at or over its bound for stallTimeoutMs is cut off the same way. A tick that comes late
 * (blocked event loop, SIGSTOP) gives every peer a fresh window first: frames may be sitting unread.
 */

import { buildHeartbeat, FRAME_PING, FRAME_PONG, parseHeartbeat } from "./_frame.ts";
import type { MeshLogger } from "./_config.ts";
import { type Connection, errorText, type PeerState } from "./_peer.ts";

/** What liveness needs from the mesh. */
export interface LivenessHost {
  readonly self: string;
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  readonly stallTimeoutMs: number;
  readonly maxQueuedBytes: number;
  readonly log: MeshLogger;
  queuedBytes(peer: PeerState): number;
  lose(conn: Connection, reason: string): void;
}

export class Liveness {
  /** How often `tick` should run. */
  readonly tickMs: number;
  readonly #host: LivenessHost;
  #lastTickAt = 0;
  /** When the event loop last came back from a long block; peers get a fresh liveness window from then. */
  #resumedAt = 0;

  constructor(host: LivenessHost) {
    this.#host = host;
    this.tickMs = Math.max(10, Math.min(100, Math.min(host.heartbeatMs, host.deadAfterMs) / 2));
  }

  /** Ticks start now (the first gap is measured from here). */
  begin(now: number): void {
    this.#lastTickAt = now;
  }

  tick(peers: readonly PeerState[]): void {
    const now = performance.now();
    const gapMs = now - this.#lastTickAt;
    this.#lastTickAt = now;
    const { deadAfterMs, heartbeatMs } = this.#host;
    if (gapMs > 3 * this.tickMs && gapMs > deadAfterMs / 2) {
      // This process was not running (blocked event loop, SIGSTOP, suspended VM): frames may be sitting unread
      // in the sockets, so silence says nothing about the peers yet. Give them a fresh window.
      this.#resumedAt = now;
      this.#host.log.warn("mesh timers ran late; event loop was blocked", {
        self: this.#host.self,
        gapMs: Math.round(gapMs),
      });
    }
    for (const peer of peers) {
      const conn = peer.conn;
      if (!conn) continue;
      const silentMs = now - Math.max(conn.lastRxAt, this.#resumedAt);
      if (silentMs > deadAfterMs) {
        this.#host.lose(conn, `no frame for ${Math.round(silentMs)} ms (dead after ${deadAfterMs} ms)`);
        continue;
      }
      if (now - conn.lastPingAt >= heartbeatMs - this.tickMs / 2) this.ping(conn, now);
      if (peer.overLimitSince !== undefined) this.#checkStall(peer, conn, now);
    }
  }

  ping(conn: Connection, now: number): void {
    conn.lastPingAt = now;
    conn.pingSeq = (conn.pingSeq + 1) >>> 0;
    this.#sendControl(conn, buildHeartbeat(FRAME_PING, conn.pingSeq, now));
  }

  /** Answers a peer's ping; false for a malformed one. */
  onPing(conn: Connection, frame: Uint8Array): boolean {
    const beat = parseHeartbeat(frame);
    if (!beat) return false;
    this.#sendControl(conn, buildHeartbeat(FRAME_PONG, beat.seq, beat.sentAt));
    return true;
  }

  /** Takes the round trip from a pong; false for a malformed one (or one from the future). */
  onPong(peer: PeerState, frame: Uint8Array, now: number): boolean {
    const beat = parseHeartbeat(frame);
    if (!beat || beat.sentAt > now) return false;
    const rtt = now - beat.sentAt;
    peer.lastRttMs = rtt;
    peer.rttMs = peer.rttMs === undefined ? rtt : peer.rttMs + (rtt - peer.rttMs) / 8;
    return true;
  }

  #checkStall(peer: PeerState, conn: Connection, now: number): void {
    const { maxQueuedBytes, stallTimeoutMs } = this.#host;
    const queued = this.#host.queuedBytes(peer);
    if (queued < maxQueuedBytes / 2) {
      peer.overLimitSince = undefined;
      return;
    }
    const overMs = now - peer.overLimitSince!;
    if (overMs < stallTimeoutMs) return;
    peer.counters.stalls++;
    this.#host.lose(
      conn,
      `stalled: ${queued} bytes queued, over the ${maxQueuedBytes}-byte bound for ${Math.round(overMs)} ms`,
    );
  }

  /** Heartbeats bypass the queue bound: they are tiny and must flow even when data is backed up. */
  #sendControl(conn: Connection, frame: Uint8Array): void {
    if (conn.closed) return;
    try {
      conn.ws.send(frame);
    } catch (e) {
      this.#host.lose(conn, `send failed: ${errorText(e)}`);
      return;
    }
    conn.peer.counters.framesOut++;
    conn.peer.counters.bytesOut += frame.byteLength;
  }
}
