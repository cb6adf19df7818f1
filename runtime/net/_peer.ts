/**
 * What the mesh keeps per peer (address, connection, outbound queue, counters) and the small socket helpers
 * its parts share.
 */

import type { NodeId } from "../core/mod.ts";
import type { MeshSocket } from "./_dialer.ts";

export interface PeerStats {
  id: NodeId;
  /** host:port this member dials, or where the peer's current connection comes from. */
  address: string;
  role: "dialer" | "acceptor";
  connected: boolean;
  /** Smoothed heartbeat round trip (EWMA, 1/8), undefined before the first pong. */
  rttMs: number | undefined;
  lastRttMs: number | undefined;
  queuedBytes: number;
  /** WebSocket frames after the handshake, heartbeats included. */
  framesIn: number;
  framesOut: number;
  /** Application messages (several travel in one data frame). */
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Messages refused because the peer was down. */
  droppedPeerDown: number;
  /** Messages refused because the peer's queue was full. */
  droppedQueueFull: number;
  malformedFrames: number;
  oversizeFrames: number;
  unknownChannelMessages: number;
  handlerErrors: number;
  connects: number;
  disconnects: number;
  /** Connections cut because the queue stayed over its bound for stallTimeoutMs. */
  stalls: number;
  /** `writable()` calls answered false at once because maxWaitersPerPeer writers already waited. */
  waitersRefused: number;
}

export type Counters = Omit<
  PeerStats,
  "id" | "address" | "role" | "connected" | "rttMs" | "lastRttMs" | "queuedBytes"
>;

export function newCounters(): Counters {
  return {
    framesIn: 0,
    framesOut: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    droppedPeerDown: 0,
    droppedQueueFull: 0,
    malformedFrames: 0,
    oversizeFrames: 0,
    unknownChannelMessages: 0,
    handlerErrors: 0,
    connects: 0,
    disconnects: 0,
    stalls: 0,
    waitersRefused: 0,
  };
}

export type Timer = ReturnType<typeof setTimeout>;

/** One authenticated, live WebSocket to a peer. */
export class Connection {
  closed = false;
  lastPingAt = 0;
  pingSeq = 0;
  constructor(
    readonly ws: MeshSocket,
    readonly peer: PeerState,
    readonly remote: string,
    public lastRxAt: number,
  ) {}
}

export interface DialAttempt {
  ws: MeshSocket;
  done: boolean;
  timer: Timer | undefined;
}

export interface Waiter {
  resolve: (writable: boolean) => void;
}

export interface PeerState {
  readonly id: NodeId;
  host: string;
  port: number;
  /** This member dials the peer (its id is lower). */
  readonly dialer: boolean;
  conn?: Connection;
  dialing?: DialAttempt;
  reconnectTimer?: Timer;
  /** Failed dials since the last successful connection (drives the backoff). */
  attempts: number;
  pending: Uint8Array[];
  pendingBytes: number;
  flushQueued: boolean;
  overLimitSince?: number;
  waiters: Set<Waiter>;
  rttMs?: number;
  lastRttMs?: number;
  lastRemote: string;
  lastComplaintAt: number;
  suppressedComplaints: number;
  counters: Counters;
}

export function newPeerState(id: NodeId, host: string, port: number, dialer: boolean): PeerState {
  return {
    id,
    host,
    port,
    dialer,
    attempts: 0,
    pending: [],
    pendingBytes: 0,
    flushQueued: false,
    waiters: new Set(),
    lastRemote: "",
    lastComplaintAt: -Infinity,
    suppressedComplaints: 0,
    counters: newCounters(),
  };
}

export function closeQuietly(ws: MeshSocket, code?: number): void {
  try {
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(code);
  } catch {
    // Already closing: nothing to do.
  }
}

/** Ends a dialed socket without the closing handshake; other sockets get a normal close. */
export function dropSocket(ws: MeshSocket): void {
  if (!ws.terminate) return closeQuietly(ws);
  if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

export function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
