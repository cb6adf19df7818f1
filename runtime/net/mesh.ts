/**
 * The cluster mesh: one authenticated WebSocket connection per pair of members, carrying messages of every
 * higher layer (consensus "c", invocation "i", metrics "m", ...) in both directions.
 *
 * Connection rule: the member with the lower id (plain string order) dials the higher one, which only accepts.
 * So two members never dial each other at once. The one race left is a dialer that re-dials while the acceptor
 * still holds the previous connection (it has not noticed that it died): the newer authenticated connection
 * wins, the acceptor closes the older one and reports the peer down and up again, so a higher layer sees a
 * clean break. A connection from a member with a higher id, an unknown id, or a wrong MAC is refused.
 *
 * Delivery: at most once, in send order per pair, for as long as one connection lives. Nothing survives a
 * reconnect: messages queued on a connection that dies are gone, and messages to a peer that is down are not
 * queued at all (`send` returns false). Consensus retransmits; invocation retries elsewhere.
 *
 * Batching: `send` encodes at once (so the caller learns about a bad message and its exact size), queues the
 * bytes, and a microtask at the end of the current task packs everything queued for a peer into frames of at
 * most BATCH_TARGET_BYTES (a bigger message travels alone, up to maxFrameBytes).
 *
 * Backpressure: a peer's queue is what is not yet flushed plus the socket's `bufferedAmount`. `send` refuses
 * (returns false) a message that would take it over maxQueuedBytesPerPeer. `canSend` is true below half of the
 * limit, so writers that wait for it (`writable`) leave the other half for traffic that does not (consensus).
 * A peer that stays at or over its limit for stallTimeoutMs is cut off: the connection is closed, its queue
 * discarded, and it reconnects and resynchronises like after any other failure. Nothing queues without bound.
 *
 * Liveness: both sides send a heartbeat every heartbeatMs and answer the other's with a pong (that gives RTT);
 * any frame counts as a sign of life; a connection silent for deadAfterMs is closed and the peer reported down.
 * The dialer re-dials with exponential backoff and jitter; the acceptor waits to be dialed.
 *
 * Sockets: the acceptor's come from Deno.serve + Deno.upgradeWebSocket. The dialer's come from _dialer.ts
 * (the npm `ws` client with TCP_NODELAY), because Deno's client WebSocket leaves Nagle's algorithm on and so
 * delays a message sent shortly after an unanswered one by about 40 ms. A dialed socket can also be dropped
 * at once (`terminate`), which the mesh does when the peer is dead, stalled or failed the handshake, and in
 * stop() for a peer that does not answer the closing handshake within one heartbeat interval.
 */

import { AetherError } from "../core/errors.ts";
import { isNodeId, type NodeId } from "../core/ids.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { CODEC_NAMES, type CodecName, createCodec, type MeshCodec } from "./codec.ts";
import { dialWebSocket, type MeshSocket } from "./_dialer.ts";
import {
  buildDataFrame,
  buildEntry,
  buildHeartbeat,
  entryBodyBytes,
  FRAME_DATA,
  FRAME_PING,
  FRAME_PONG,
  isChannel,
  parseHeartbeat,
  splitEntries,
} from "./_frame.ts";
import {
  computeMac,
  importSecret,
  newNonce,
  parseAccept,
  parseAuth,
  parseChallenge,
  PROTOCOL_VERSION,
  type Transcript,
  verifyMac,
} from "./_handshake.ts";

/** The URL path of the mesh endpoint on the cluster port. */
export const MESH_PATH = "/aether/mesh/1";

/** Chosen by measurement: see runtime/net/README.md and tests/bench/mesh_bench.ts. */
export const DEFAULT_CODEC: CodecName = "msgpack";

export const MESH_DEFAULTS = {
  clusterName: "aether",
  heartbeatMs: 200,
  deadAfterMs: 1000,
  reconnectMinMs: 100,
  reconnectMaxMs: 2000,
  handshakeTimeoutMs: 2000,
  maxFrameBytes: 8 * 1024 * 1024,
  maxQueuedBytesPerPeer: 16 * 1024 * 1024,
  stallTimeoutMs: 2000,
  closeTimeoutMs: 2000,
} as const;

/** Deno's WebSocket message size limit (accepting side); the dialer's client is allowed at least as much. */
const DENO_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Frames are filled with small messages up to this size before a new one starts. */
const BATCH_TARGET_BYTES = 64 * 1024;
/** Connections still in their handshake; beyond this new ones get 503 (a cheap guard against floods). */
const MAX_PENDING_HANDSHAKES = 64;
const MIN_SECRET_BYTES = 16;
/** How often `writable` waiters re-check `bufferedAmount` (WebSocket has no drain event). */
const DRAIN_POLL_MS = 5;
/** Malformed-input warnings per peer are limited to one per this interval (the rest are counted). */
const COMPLAINT_INTERVAL_MS = 1000;

export interface MeshPeerAddress {
  id: NodeId;
  host: string;
  /** 0 for self: bind an ephemeral port. 0 for another member: address not known yet (see setPeerAddress). */
  port: number;
}

/** The part of core's Logger the mesh uses; any `Logger` from runtime/core/log.ts fits. */
export type MeshLogger = Pick<Logger, "debug" | "info" | "warn" | "error">;

export interface MeshConfig {
  self: NodeId;
  /** Every member, self included; self's entry gives the host and port to listen on. */
  peers: MeshPeerAddress[];
  /** The cluster secret, at least 16 bytes. */
  secret: Uint8Array;
  clusterName?: string;
  codec?: CodecName;
  heartbeatMs?: number;
  deadAfterMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  handshakeTimeoutMs?: number;
  /** Largest frame sent or accepted; a single message must fit in one frame. */
  maxFrameBytes?: number;
  /** Bound of a peer's outbound queue (unflushed messages plus the socket's bufferedAmount). */
  maxQueuedBytesPerPeer?: number;
  /** A peer whose queue stays at or over its bound this long is disconnected. */
  stallTimeoutMs?: number;
  /** stop() waits this long for sockets to finish closing, then gives up on the stragglers. */
  closeTimeoutMs?: number;
  logger?: MeshLogger;
}

export type MessageHandler = (from: NodeId, message: unknown, channel: string) => void;
export type PeerUpHandler = (id: NodeId) => void;
export type PeerDownHandler = (id: NodeId, reason: string) => void;

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
}

export interface MeshStats {
  self: NodeId;
  port: number;
  codec: CodecName;
  /** Incoming connections refused during the handshake (bad secret, unknown id, protocol error, timeout). */
  refusedHandshakes: number;
  peers: PeerStats[];
}

type Counters = Omit<
  PeerStats,
  "id" | "address" | "role" | "connected" | "rttMs" | "lastRttMs" | "queuedBytes"
>;

function newCounters(): Counters {
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
  };
}

type Timer = ReturnType<typeof setTimeout>;

/** One authenticated, live WebSocket to a peer. */
class Connection {
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

interface DialAttempt {
  ws: MeshSocket;
  done: boolean;
  timer: Timer | undefined;
}

interface Waiter {
  resolve: (writable: boolean) => void;
}

interface PeerState {
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

type MeshState = "new" | "starting" | "running" | "stopping" | "stopped";

export class Mesh {
  readonly self: NodeId;
  readonly clusterName: string;
  readonly codecName: CodecName;

  readonly #secret: Uint8Array;
  readonly #log: MeshLogger;
  readonly #listenHost: string;
  readonly #listenPort: number;
  readonly #heartbeatMs: number;
  readonly #deadAfterMs: number;
  readonly #reconnectMinMs: number;
  readonly #reconnectMaxMs: number;
  readonly #handshakeTimeoutMs: number;
  readonly #maxFrameBytes: number;
  readonly #maxQueuedBytes: number;
  readonly #stallTimeoutMs: number;
  readonly #closeTimeoutMs: number;
  readonly #tickMs: number;

  readonly #codec: MeshCodec;
  readonly #codecsById = new Map<number, MeshCodec>();
  readonly #peers = new Map<NodeId, PeerState>();
  readonly #peerList: PeerState[] = [];
  readonly #handlers = new Map<string, Set<MessageHandler>>();
  readonly #upHandlers = new Set<PeerUpHandler>();
  readonly #downHandlers = new Set<PeerDownHandler>();
  /** Every socket not yet closed (live, handshaking or closing), so stop() can wait for them. */
  readonly #sockets = new Set<MeshSocket>();
  readonly #unknownChannelsLogged = new Set<string>();
  /** Handshake crypto in flight; stop() waits for it so nothing outlives the mesh. */
  readonly #cryptoOps = new Set<Promise<unknown>>();

  #state: MeshState = "new";
  #key?: CryptoKey;
  #server?: Deno.HttpServer<Deno.NetAddr>;
  #port = 0;
  #tickTimer?: ReturnType<typeof setInterval>;
  #drainTimer?: Timer;
  #lastTickAt = 0;
  /** When the event loop last came back from a long block; peers get a fresh liveness window from then. */
  #resumedAt = 0;
  #pendingHandshakes = 0;
  #refusedHandshakes = 0;
  #dirty: PeerState[] = [];
  #flushScheduled = false;
  #socketsClosed?: () => void;
  #stopped?: Promise<void>;

  constructor(config: MeshConfig) {
    const c = validateConfig(config);
    this.self = c.self;
    this.clusterName = c.clusterName;
    this.codecName = c.codec;
    this.#secret = c.secret.slice();
    this.#log = c.logger;
    this.#heartbeatMs = c.heartbeatMs;
    this.#deadAfterMs = c.deadAfterMs;
    this.#reconnectMinMs = c.reconnectMinMs;
    this.#reconnectMaxMs = c.reconnectMaxMs;
    this.#handshakeTimeoutMs = c.handshakeTimeoutMs;
    this.#maxFrameBytes = c.maxFrameBytes;
    this.#maxQueuedBytes = c.maxQueuedBytesPerPeer;
    this.#stallTimeoutMs = c.stallTimeoutMs;
    this.#closeTimeoutMs = c.closeTimeoutMs;
    this.#tickMs = Math.max(10, Math.min(100, Math.min(c.heartbeatMs, c.deadAfterMs) / 2));

    // Frames name their codec, so this member decodes either one whatever it sends with.
    this.#codec = createCodec(c.codec);
    for (const name of CODEC_NAMES) {
      const codec = name === c.codec ? this.#codec : createCodec(name);
      this.#codecsById.set(codec.id, codec);
    }

    const selfEntry = c.peers.find((p) => p.id === c.self)!;
    this.#listenHost = selfEntry.host;
    this.#listenPort = selfEntry.port;
    for (const p of c.peers) {
      if (p.id === c.self) continue;
      const state: PeerState = {
        id: p.id,
        host: p.host,
        port: p.port,
        dialer: c.self < p.id,
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
      this.#peers.set(p.id, state);
      this.#peerList.push(state);
    }
  }

  // ----------------------------------------------------------------------------------------------------- life

  /** Binds the cluster port and starts dialing the members with higher ids. */
  async start(): Promise<void> {
    if (this.#state !== "new" || this.#stopped) {
      throw new AetherError("conflict", `mesh ${this.self}: start() is allowed once, before stop()`);
    }
    this.#state = "starting";
    this.#key = await importSecret(this.#secret);
    if (this.#stopped) return; // stop() was called while the key was imported
    try {
      this.#server = Deno.serve({
        hostname: this.#listenHost,
        port: this.#listenPort,
        onListen: () => {},
        onError: (e) => {
          this.#log.error("mesh request handler failed", { error: errorText(e) });
          return new Response("internal error", { status: 500 });
        },
      }, (request, info) => this.#handleRequest(request, info));
    } catch (e) {
      throw new AetherError(
        "unavailable",
        `mesh ${this.self}: cannot listen on ${this.#listenHost}:${this.#listenPort}: ${errorText(e)}`,
      );
    }
    this.#port = this.#server.addr.port;
    this.#state = "running";
    this.#lastTickAt = performance.now();
    this.#tickTimer = setInterval(() => this.#tick(), this.#tickMs);
    this.#log.info("mesh listening", { self: this.self, host: this.#listenHost, port: this.#port });
    for (const peer of this.#peerList) if (peer.dialer) this.#dial(peer);
  }

  /**
   * Closes every connection and the listener; resolves when every socket has closed (or, for sockets whose
   * peer does not answer the close, after closeTimeoutMs). Peers still connected are reported down.
   */
  stop(): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopped = this.#shutdown();
    return this.#stopped;
  }

  async #shutdown(): Promise<void> {
    const wasRunning = this.#state === "running";
    this.#state = "stopping";
    clearInterval(this.#tickTimer);
    clearTimeout(this.#drainTimer);
    for (const peer of this.#peerList) {
      clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = undefined;
      if (peer.dialing) this.#abandonDial(peer.dialing, peer);
      if (peer.conn) this.#lose(peer.conn, "mesh stopping", "close");
      this.#resolveWaiters(peer, false);
    }
    if (this.#server) await this.#server.shutdown();
    await Promise.allSettled([...this.#cryptoOps]);
    const deadline = performance.now() + this.#closeTimeoutMs;
    // A live peer answers the closing handshake within milliseconds. One that has not within a heartbeat
    // interval is frozen or cut off: drop its socket rather than wait for TCP to give up. (Sockets the server
    // accepted were already force-closed by shutdown(); only dialed ones can be left.)
    let closed = await this.#socketsClosedWithin(Math.min(this.#closeTimeoutMs, this.#heartbeatMs));
    if (!closed) {
      for (const ws of this.#sockets) dropSocket(ws);
      closed = await this.#socketsClosedWithin(deadline - performance.now());
    }
    if (!closed) {
      this.#log.warn("mesh stopped with sockets still closing (their peers do not answer)", {
        self: this.self,
        sockets: this.#sockets.size,
      });
    }
    this.#state = "stopped";
    if (wasRunning) this.#log.info("mesh stopped", { self: this.self });
  }

  /** Resolves true once every tracked socket has closed, false if that takes longer than timeoutMs. */
  async #socketsClosedWithin(timeoutMs: number): Promise<boolean> {
    if (this.#sockets.size === 0) return true;
    if (timeoutMs <= 0) return false;
    const allClosed = new Promise<boolean>((resolve) => this.#socketsClosed = () => resolve(true));
    let timer: Timer | undefined;
    const timedOut = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs));
    const outcome = await Promise.race([allClosed, timedOut]);
    clearTimeout(timer);
    this.#socketsClosed = undefined;
    return outcome;
  }

  /** The bound cluster port (after start). */
  get port(): number {
    if (this.#state === "new" || this.#state === "starting") {
      throw new AetherError("conflict", `mesh ${this.self}: port is known after start()`);
    }
    return this.#port;
  }

  /**
   * Changes where a member is dialed (for example after it restarted on a new ephemeral port). Dials at once
   * when this member dials it and has no connection; a live connection is left alone.
   */
  setPeerAddress(id: NodeId, host: string, port: number): void {
    const peer = this.#peerFor(id);
    validateAddress(host, port, `mesh setPeerAddress(${id})`);
    peer.host = host;
    peer.port = port;
    if (peer.dialer && this.#state === "running" && !peer.conn) {
      clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = undefined;
      peer.attempts = 0;
      if (peer.dialing) this.#abandonDial(peer.dialing, peer);
      this.#dial(peer);
    }
  }

  // ---------------------------------------------------------------------------------------------------- events

  /** Registers a handler for a channel; messages on channels without a handler are counted and dropped. */
  onMessage(channel: string, handler: MessageHandler): () => void {
    checkChannel(channel);
    let set = this.#handlers.get(channel);
    if (!set) this.#handlers.set(channel, set = new Set());
    set.add(handler);
    return () => set.delete(handler);
  }

  onPeerUp(handler: PeerUpHandler): () => void {
    this.#upHandlers.add(handler);
    return () => this.#upHandlers.delete(handler);
  }

  onPeerDown(handler: PeerDownHandler): () => void {
    this.#downHandlers.add(handler);
    return () => this.#downHandlers.delete(handler);
  }

  // ------------------------------------------------------------------------------------------------------ send

  /**
   * Queues one message for a peer. Returns false when it was not queued: the peer is down, its queue is full,
   * or the mesh is not running. Throws AetherError for a caller's mistake: unknown or own id, bad channel, a
   * message the codec cannot encode ("bad_request"), one bigger than a frame ("too_large").
   */
  send(to: NodeId, channel: string, message: unknown): boolean {
    const peer = this.#peerFor(to);
    const entry = this.#encode(channel, message);
    if (this.#state !== "running") return false;
    return this.#enqueue(peer, entry);
  }

  /** Queues one message for every connected peer; returns the ids it was queued for. */
  broadcast(channel: string, message: unknown): NodeId[] {
    const entry = this.#encode(channel, message);
    const reached: NodeId[] = [];
    if (this.#state !== "running") return reached;
    for (const peer of this.#peerList) if (this.#enqueue(peer, entry)) reached.push(peer.id);
    return reached;
  }

  /** True when the peer is connected and its queue is below half its bound. */
  canSend(id: NodeId): boolean {
    const peer = this.#peerFor(id);
    return peer.conn !== undefined && this.#queuedBytes(peer) < this.#maxQueuedBytes / 2;
  }

  /**
   * Resolves true as soon as `canSend(id)` holds, false when the peer is (or goes) down, the mesh stops, or
   * the signal aborts. For writers that do flow control (remote invocation).
   */
  writable(id: NodeId, signal?: AbortSignal): Promise<boolean> {
    const peer = this.#peerFor(id);
    if (this.#state !== "running" || !peer.conn || signal?.aborted) return Promise.resolve(false);
    if (this.canSend(id)) return Promise.resolve(true);
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
      this.#scheduleDrainPoll();
    });
  }

  // ---------------------------------------------------------------------------------------------------- status

  isConnected(id: NodeId): boolean {
    return this.#peerFor(id).conn !== undefined;
  }

  connectedPeers(): NodeId[] {
    return this.#peerList.filter((p) => p.conn !== undefined).map((p) => p.id);
  }

  /** Bytes queued for a peer (not flushed yet, plus the socket's buffer): `peerStats(id).queuedBytes`, cheaper. */
  queuedBytes(id: NodeId): number {
    return this.#queuedBytes(this.#peerFor(id));
  }

  peerStats(id: NodeId): PeerStats {
    const peer = this.#peerFor(id);
    return {
      id: peer.id,
      address: peer.dialer ? `${peer.host}:${peer.port}` : peer.conn?.remote ?? peer.lastRemote,
      role: peer.dialer ? "dialer" : "acceptor",
      connected: peer.conn !== undefined,
      rttMs: peer.rttMs,
      lastRttMs: peer.lastRttMs,
      queuedBytes: this.#queuedBytes(peer),
      ...peer.counters,
    };
  }

  stats(): MeshStats {
    return {
      self: this.self,
      port: this.#port,
      codec: this.codecName,
      refusedHandshakes: this.#refusedHandshakes,
      peers: this.#peerList.map((p) => this.peerStats(p.id)),
    };
  }

  // ----------------------------------------------------------------------------------------- outbound internals

  #peerFor(id: NodeId): PeerState {
    const peer = this.#peers.get(id);
    if (peer) return peer;
    if (id === this.self) throw new AetherError("bad_request", `mesh ${this.self}: cannot send to itself`);
    throw new AetherError("bad_request", `mesh ${this.self}: "${id}" is not a cluster member`);
  }

  #encode(channel: string, message: unknown): Uint8Array {
    checkChannel(channel);
    const payload = this.#codec.encodeShared(message);
    const entry = buildEntry(channel, payload);
    // The entry's reserved bytes are the frame header, so its length is the frame it needs when alone.
    if (entry.byteLength > this.#maxFrameBytes) {
      throw new AetherError(
        "too_large",
        `mesh message on channel "${channel}" needs a ${entry.byteLength}-byte frame; the limit is ${this.#maxFrameBytes}`,
      );
    }
    return entry;
  }

  #queuedBytes(peer: PeerState): number {
    return peer.pendingBytes + (peer.conn?.ws.bufferedAmount ?? 0);
  }

  #enqueue(peer: PeerState, entry: Uint8Array): boolean {
    if (!peer.conn) {
      peer.counters.droppedPeerDown++;
      return false;
    }
    if (this.#queuedBytes(peer) + entry.byteLength > this.#maxQueuedBytes) {
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
    peer.pending = [];
    peer.pendingBytes = 0;
    const conn = peer.conn;
    if (!conn || entries.length === 0) return;
    let from = 0;
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const size = entryBodyBytes(entries[i]);
      if (i > from && bytes + size > BATCH_TARGET_BYTES) {
        if (!this.#sendFrame(conn, buildDataFrame(this.#codec.id, entries, from, i, bytes), i - from)) return;
        from = i;
        bytes = 0;
      }
      bytes += size;
    }
    this.#sendFrame(
      conn,
      buildDataFrame(this.#codec.id, entries, from, entries.length, bytes),
      entries.length - from,
    );
  }

  #sendFrame(conn: Connection, frame: Uint8Array, messages: number): boolean {
    if (conn.closed) return false;
    try {
      conn.ws.send(frame);
    } catch (e) {
      this.#lose(conn, `send failed: ${errorText(e)}`);
      return false;
    }
    const c = conn.peer.counters;
    c.framesOut++;
    c.bytesOut += frame.byteLength;
    c.messagesOut += messages;
    return true;
  }

  #scheduleDrainPoll(): void {
    if (this.#drainTimer !== undefined || this.#state !== "running") return;
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      let waiting = false;
      for (const peer of this.#peerList) {
        if (peer.waiters.size === 0) continue;
        if (peer.conn && this.#queuedBytes(peer) < this.#maxQueuedBytes / 2) this.#resolveWaiters(peer, true);
        else waiting = true;
      }
      if (waiting) this.#scheduleDrainPoll();
    }, DRAIN_POLL_MS);
  }

  #resolveWaiters(peer: PeerState, writable: boolean): void {
    for (const waiter of [...peer.waiters]) waiter.resolve(writable);
  }

  // ------------------------------------------------------------------------------------------- dialing (lower id)

  #dial(peer: PeerState): void {
    if (this.#state !== "running" || peer.conn || peer.dialing || peer.port === 0) return;
    peer.reconnectTimer = undefined;
    const address = `${peer.host}:${peer.port}`;
    let ws: MeshSocket;
    try {
      ws = dialWebSocket(`ws://${urlHost(peer.host)}:${peer.port}${MESH_PATH}`, {
        // Oversized frames up to Deno's own 64 MiB limit are counted and dropped (see #onFrame), as on the
        // accepting side; only beyond that does the client close the connection.
        maxMessageBytes: Math.max(DENO_MAX_MESSAGE_BYTES, 2 * this.#maxFrameBytes),
      });
    } catch (e) {
      this.#dialFailed(peer, `cannot dial ${address}: ${errorText(e)}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    this.#track(ws);
    const attempt: DialAttempt = { ws, done: false, timer: undefined };
    peer.dialing = attempt;
    const fail = (reason: string) => {
      if (attempt.done) return;
      this.#abandonDial(attempt, peer);
      this.#dialFailed(peer, reason);
    };
    attempt.timer = setTimeout(
      () => fail(`handshake with ${peer.id} at ${address} took longer than ${this.#handshakeTimeoutMs} ms`),
      this.#handshakeTimeoutMs,
    );

    let step: "challenge" | "accept" | "verifying" = "challenge";
    let transcript: Transcript | undefined;
    // Frames after `accept` are application frames; they wait here until the acceptor's MAC has been checked.
    const held: unknown[] = [];
    let heldBytes = 0;
    ws.onmessage = (event) => {
      if (attempt.done) return;
      if (step === "challenge") {
        const challenge = parseChallenge(event.data);
        if (typeof challenge === "string") return fail(`${peer.id} at ${address}: ${challenge}`);
        step = "accept";
        const t: Transcript = {
          cluster: this.clusterName,
          dialer: this.self,
          acceptor: peer.id,
          acceptorNonce: challenge.nonce,
          dialerNonce: newNonce(),
        };
        transcript = t;
        this.#crypto(computeMac(this.#key!, "dialer", t)).then((mac) => {
          if (attempt.done) return;
          ws.send(
            JSON.stringify({
              t: "auth",
              v: PROTOCOL_VERSION,
              id: this.self,
              to: peer.id,
              nonce: t.dialerNonce,
              mac,
            }),
          );
        }).catch((e) => fail(`handshake with ${peer.id} failed: ${errorText(e)}`));
        return;
      }
      if (step === "accept") {
        const accept = parseAccept(event.data);
        if (typeof accept === "string") return fail(`${peer.id} at ${address}: ${accept}`);
        step = "verifying";
        this.#crypto(verifyMac(this.#key!, "acceptor", transcript!, accept.mac)).then((ok) => {
          if (attempt.done) return;
          if (!ok) {
            this.#log.warn("mesh peer failed to prove the cluster secret; closing", {
              self: this.self,
              peer: peer.id,
              remote: address,
            });
            return fail(`${peer.id} at ${address} did not prove the cluster secret`);
          }
          attempt.done = true;
          clearTimeout(attempt.timer);
          peer.dialing = undefined;
          this.#promote(peer, ws, address, held);
        }).catch((e) => fail(`handshake with ${peer.id} failed: ${errorText(e)}`));
        return;
      }
      held.push(event.data);
      heldBytes += event.data instanceof ArrayBuffer ? event.data.byteLength : String(event.data).length;
      if (heldBytes > 2 * this.#maxFrameBytes) {
        fail(`${peer.id} at ${address} sent too much before the handshake ended`);
      }
    };
    ws.onerror = (event) =>
      fail(`cannot connect to ${peer.id} at ${address}: ${(event as ErrorEvent).message}`);
    ws.onclose = (event) =>
      fail(`${peer.id} at ${address} closed the connection during the handshake (${event.code})`);
  }

  #abandonDial(attempt: DialAttempt, peer: PeerState): void {
    attempt.done = true;
    clearTimeout(attempt.timer);
    if (peer.dialing === attempt) peer.dialing = undefined;
    // A peer that failed or stalled the handshake is not owed a closing handshake.
    dropSocket(attempt.ws);
  }

  #dialFailed(peer: PeerState, reason: string): void {
    if (this.#state !== "running") return;
    // The first failure after a good connection is news; the retries while the peer stays away are not.
    if (peer.attempts === 0) {
      this.#log.info("mesh cannot reach peer; retrying with backoff", {
        self: this.self,
        peer: peer.id,
        reason,
      });
    } else {this.#log.debug("mesh dial failed", {
        self: this.self,
        peer: peer.id,
        reason,
        attempts: peer.attempts,
      });}
    this.#scheduleReconnect(peer);
  }

  #scheduleReconnect(peer: PeerState): void {
    if (this.#state !== "running" || !peer.dialer || peer.reconnectTimer !== undefined) return;
    peer.attempts++;
    const ceiling = Math.min(
      this.#reconnectMaxMs,
      this.#reconnectMinMs * 2 ** Math.min(peer.attempts - 1, 20),
    );
    // "Equal jitter": at least half the backoff, so retries never collapse to zero, spread over the other half.
    const delayMs = ceiling / 2 + Math.random() * ceiling / 2;
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = undefined;
      this.#dial(peer);
    }, delayMs);
  }

  // ------------------------------------------------------------------------------------------ accepting (higher id)

  #handleRequest(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    const url = new URL(request.url);
    if (url.pathname !== MESH_PATH) return new Response("not found\n", { status: 404 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("the mesh endpoint expects a WebSocket upgrade\n", { status: 426 });
    }
    const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    if (this.#state !== "running") return new Response("stopping\n", { status: 503 });
    if (this.#pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      this.#refusedHandshakes++;
      this.#log.warn("mesh refused a connection: too many handshakes in progress", {
        self: this.self,
        remote,
      });
      return new Response("busy\n", { status: 503 });
    }
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request);
    } catch (e) {
      return new Response(`bad WebSocket upgrade: ${errorText(e)}\n`, { status: 400 });
    }
    upgraded.socket.binaryType = "arraybuffer";
    this.#track(upgraded.socket);
    this.#acceptHandshake(upgraded.socket, remote);
    return upgraded.response;
  }

  #acceptHandshake(ws: WebSocket, remote: string): void {
    this.#pendingHandshakes++;
    let done = false;
    const nonce = newNonce();
    const finish = () => {
      done = true;
      this.#pendingHandshakes--;
      clearTimeout(timer);
    };
    const refuse = (reason: string, claimedId?: string) => {
      if (done) return;
      finish();
      this.#refusedHandshakes++;
      this.#log.warn("mesh refused a connection", { self: this.self, remote, claimedId, reason });
      // 1008 policy violation; no reason text, so a prober learns nothing about which check failed.
      closeQuietly(ws, 1008);
    };
    const timer = setTimeout(
      () => refuse(`no valid auth within ${this.#handshakeTimeoutMs} ms`),
      this.#handshakeTimeoutMs,
    );
    ws.onopen = () => {
      if (!done) ws.send(JSON.stringify({ t: "challenge", v: PROTOCOL_VERSION, nonce }));
    };
    let received = false;
    ws.onmessage = (event) => {
      if (done) return;
      if (received) return refuse("sent a second message before the handshake completed");
      received = true;
      const auth = parseAuth(event.data);
      if ("error" in auth) return refuse(auth.error, auth.claimedId);
      const peer = this.#peers.get(auth.id);
      if (!peer) {
        return refuse(auth.id === this.self ? "claims this node's own id" : "unknown node id", auth.id);
      }
      if (auth.to !== this.self) return refuse(`addressed to "${auth.to}", this is "${this.self}"`, auth.id);
      if (peer.dialer) {
        return refuse(`"${this.self}" dials "${auth.id}" (lower id dials), not the reverse`, auth.id);
      }
      const transcript: Transcript = {
        cluster: this.clusterName,
        dialer: auth.id,
        acceptor: this.self,
        acceptorNonce: nonce,
        dialerNonce: auth.nonce,
      };
      this.#crypto(verifyMac(this.#key!, "dialer", transcript, auth.mac)).then(async (ok) => {
        if (done) return;
        if (!ok) {
          return refuse(
            "wrong MAC: the peer does not know the cluster secret (or its cluster name)",
            auth.id,
          );
        }
        if (this.#state !== "running") return refuse("mesh is stopping", auth.id);
        const mac = await this.#crypto(computeMac(this.#key!, "acceptor", transcript));
        if (done) return;
        if (this.#state !== "running") return refuse("mesh is stopping", auth.id);
        finish();
        ws.send(JSON.stringify({ t: "accept", mac }));
        this.#promote(peer, ws, remote, []);
      }).catch((e) => refuse(`handshake error: ${errorText(e)}`, auth.id));
    };
    ws.onerror = () => {
      if (!done) {
        finish();
        this.#log.debug("mesh connection failed during the handshake", { self: this.self, remote });
      }
    };
    ws.onclose = ws.onerror;
  }

  // ------------------------------------------------------------------------------------------- live connections

  #promote(peer: PeerState, ws: MeshSocket, remote: string, held: unknown[]): void {
    if (this.#state !== "running") {
      closeQuietly(ws);
      return;
    }
    if (peer.conn) {
      this.#log.warn("mesh peer connected again while its old connection looked alive; replacing it", {
        self: this.self,
        peer: peer.id,
        remote,
      });
      this.#lose(peer.conn, "replaced by a newer connection from the same peer", "close");
    }
    const now = performance.now();
    const conn = new Connection(ws, peer, remote, now);
    peer.conn = conn;
    peer.lastRemote = remote;
    peer.attempts = 0;
    peer.counters.connects++;
    ws.onmessage = (event) => this.#onFrame(conn, event.data);
    ws.onerror = (event) =>
      this.#lose(conn, `connection error: ${(event as ErrorEvent).message ?? "unknown"}`);
    ws.onclose = (event) => this.#lose(conn, `connection closed (code ${event.code})`);
    this.#log.info("mesh peer up", { self: this.self, peer: peer.id, remote });
    this.#ping(conn, now);
    for (const handler of [...this.#upHandlers]) {
      try {
        handler(peer.id);
      } catch (e) {
        this.#log.error("mesh onPeerUp handler threw", {
          self: this.self,
          peer: peer.id,
          error: errorText(e),
        });
      }
    }
    for (const data of held) {
      if (conn.closed) break;
      this.#onFrame(conn, data);
    }
  }

  /**
   * Takes a connection out of service: closes it, drops its queue, reports the peer down, re-dials. `close`
   * starts the closing handshake (the peer is alive); `drop` ends a dialed socket at once, for a peer that is
   * dead, stalled or already gone, which would leave a closing handshake hanging until TCP gives up.
   */
  #lose(conn: Connection, reason: string, ending: "close" | "drop" = "drop"): void {
    if (conn.closed) return;
    conn.closed = true;
    if (ending === "close") closeQuietly(conn.ws);
    else dropSocket(conn.ws);
    const peer = conn.peer;
    if (peer.conn !== conn) return;
    peer.conn = undefined;
    peer.pending = [];
    peer.pendingBytes = 0;
    peer.overLimitSince = undefined;
    peer.counters.disconnects++;
    this.#resolveWaiters(peer, false);
    const level = this.#state === "running" ? "warn" : "info";
    this.#log[level]("mesh peer down", { self: this.self, peer: peer.id, reason });
    for (const handler of [...this.#downHandlers]) {
      try {
        handler(peer.id, reason);
      } catch (e) {
        this.#log.error("mesh onPeerDown handler threw", {
          self: this.self,
          peer: peer.id,
          error: errorText(e),
        });
      }
    }
    if (peer.dialer) this.#scheduleReconnect(peer);
  }

  #onFrame(conn: Connection, data: unknown): void {
    if (conn.closed) return;
    const peer = conn.peer;
    const now = performance.now();
    conn.lastRxAt = now;
    if (!(data instanceof ArrayBuffer)) {
      peer.counters.malformedFrames++;
      this.#complain(peer, "text frame after the handshake");
      return;
    }
    const bytes = new Uint8Array(data);
    peer.counters.framesIn++;
    peer.counters.bytesIn += bytes.byteLength;
    if (bytes.byteLength > this.#maxFrameBytes) {
      peer.counters.oversizeFrames++;
      this.#complain(peer, `frame of ${bytes.byteLength} bytes refused (limit ${this.#maxFrameBytes})`);
      return;
    }
    switch (bytes[0]) {
      case FRAME_DATA:
        this.#onData(conn, bytes);
        return;
      case FRAME_PING: {
        const beat = parseHeartbeat(bytes);
        if (!beat) break;
        this.#sendControl(conn, buildHeartbeat(FRAME_PONG, beat.seq, beat.sentAt));
        return;
      }
      case FRAME_PONG: {
        const beat = parseHeartbeat(bytes);
        if (!beat || beat.sentAt > now) break;
        const rtt = now - beat.sentAt;
        peer.lastRttMs = rtt;
        peer.rttMs = peer.rttMs === undefined ? rtt : peer.rttMs + (rtt - peer.rttMs) / 8;
        return;
      }
    }
    peer.counters.malformedFrames++;
    this.#complain(peer, `malformed frame (type ${bytes[0]}, ${bytes.byteLength} bytes)`);
  }

  #onData(conn: Connection, frame: Uint8Array): void {
    const peer = conn.peer;
    const codec = this.#codecsById.get(frame[1]);
    if (!codec) {
      peer.counters.malformedFrames++;
      this.#complain(peer, `data frame with unknown codec ${frame[1]}`);
      return;
    }
    const { entries, error } = splitEntries(frame);
    if (error) {
      peer.counters.malformedFrames++;
      this.#complain(peer, `malformed data frame: ${error}`);
    }
    for (const { channel, payload } of entries) {
      if (this.#state !== "running") return;
      peer.counters.messagesIn++;
      const handlers = this.#handlers.get(channel);
      if (!handlers || handlers.size === 0) {
        peer.counters.unknownChannelMessages++;
        if (!this.#unknownChannelsLogged.has(channel) && this.#unknownChannelsLogged.size < 64) {
          this.#unknownChannelsLogged.add(channel);
          this.#log.warn("mesh message on a channel nobody handles; counting and dropping", {
            self: this.self,
            peer: peer.id,
            channel,
          });
        }
        continue;
      }
      let message: unknown;
      try {
        message = codec.decode(payload);
      } catch (e) {
        peer.counters.malformedFrames++;
        this.#complain(peer, `undecodable ${codec.name} message on channel "${channel}": ${errorText(e)}`);
        continue;
      }
      for (const handler of handlers) {
        try {
          handler(peer.id, message, channel);
        } catch (e) {
          peer.counters.handlerErrors++;
          this.#log.error("mesh message handler threw", {
            self: this.self,
            peer: peer.id,
            channel,
            error: errorText(e),
          });
        }
      }
    }
  }

  #complain(peer: PeerState, what: string): void {
    const now = performance.now();
    if (now - peer.lastComplaintAt < COMPLAINT_INTERVAL_MS) {
      peer.suppressedComplaints++;
      return;
    }
    this.#log.warn("mesh dropped bad input from a peer", {
      self: this.self,
      peer: peer.id,
      problem: what,
      suppressedSinceLast: peer.suppressedComplaints,
    });
    peer.lastComplaintAt = now;
    peer.suppressedComplaints = 0;
  }

  #ping(conn: Connection, now: number): void {
    conn.lastPingAt = now;
    conn.pingSeq = (conn.pingSeq + 1) >>> 0;
    this.#sendControl(conn, buildHeartbeat(FRAME_PING, conn.pingSeq, now));
  }

  /** Heartbeats bypass the queue bound: they are tiny and must flow even when data is backed up. */
  #sendControl(conn: Connection, frame: Uint8Array): void {
    if (conn.closed) return;
    try {
      conn.ws.send(frame);
    } catch (e) {
      this.#lose(conn, `send failed: ${errorText(e)}`);
      return;
    }
    conn.peer.counters.framesOut++;
    conn.peer.counters.bytesOut += frame.byteLength;
  }

  #tick(): void {
    const now = performance.now();
    const gapMs = now - this.#lastTickAt;
    this.#lastTickAt = now;
    if (gapMs > 3 * this.#tickMs && gapMs > this.#deadAfterMs / 2) {
      // This process was not running (blocked event loop, SIGSTOP, suspended VM): frames may be sitting unread
      // in the sockets, so silence says nothing about the peers yet. Give them a fresh window.
      this.#resumedAt = now;
      this.#log.warn("mesh timers ran late; event loop was blocked", {
        self: this.self,
        gapMs: Math.round(gapMs),
      });
    }
    for (const peer of this.#peerList) {
      const conn = peer.conn;
      if (!conn) continue;
      const silentMs = now - Math.max(conn.lastRxAt, this.#resumedAt);
      if (silentMs > this.#deadAfterMs) {
        this.#lose(conn, `no frame for ${Math.round(silentMs)} ms (dead after ${this.#deadAfterMs} ms)`);
        continue;
      }
      if (now - conn.lastPingAt >= this.#heartbeatMs - this.#tickMs / 2) this.#ping(conn, now);
      if (peer.overLimitSince !== undefined) this.#checkStall(peer, conn, now);
    }
  }

  #checkStall(peer: PeerState, conn: Connection, now: number): void {
    const queued = this.#queuedBytes(peer);
    if (queued < this.#maxQueuedBytes / 2) {
      peer.overLimitSince = undefined;
      return;
    }
    const overMs = now - peer.overLimitSince!;
    if (overMs < this.#stallTimeoutMs) return;
    peer.counters.stalls++;
    this.#lose(
      conn,
      `stalled: ${queued} bytes queued, over the ${this.#maxQueuedBytes}-byte bound for ${
        Math.round(overMs)
      } ms`,
    );
  }

  #crypto<T>(operation: Promise<T>): Promise<T> {
    this.#cryptoOps.add(operation);
    const forget = () => this.#cryptoOps.delete(operation);
    operation.then(forget, forget);
    return operation;
  }

  #track(ws: MeshSocket): void {
    this.#sockets.add(ws);
    ws.addEventListener("close", () => {
      // Deno can fire close twice for a server-side socket; the Set makes that harmless.
      this.#sockets.delete(ws);
      if (this.#sockets.size === 0) this.#socketsClosed?.();
    });
  }
}

// ------------------------------------------------------------------------------------------------------ helpers

function closeQuietly(ws: MeshSocket, code?: number): void {
  try {
    if (ws.readyState === WebSocket.CONNECTING || ws.readyState === WebSocket.OPEN) ws.close(code);
  } catch {
    // Already closing: nothing to do.
  }
}

/** Ends a dialed socket without the closing handshake; other sockets get a normal close. */
function dropSocket(ws: MeshSocket): void {
  if (!ws.terminate) return closeQuietly(ws);
  if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

function checkChannel(channel: string): void {
  if (typeof channel !== "string" || !isChannel(channel)) {
    throw new AetherError(
      "bad_request",
      `mesh channel ${
        JSON.stringify(channel)
      } is invalid (1-32 characters: letters, digits, '.', '_', ':', '-')`,
    );
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function validateAddress(host: string, port: number, where: string): void {
  if (typeof host !== "string" || host.length === 0 || host.length > 255) {
    throw new AetherError("bad_request", `${where}: host must be a non-empty string`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AetherError("bad_request", `${where}: port ${port} is not an integer from 0 to 65535`);
  }
}

type ResolvedConfig = Required<MeshConfig>;

function validateConfig(config: MeshConfig): ResolvedConfig {
  const where = "mesh config";
  if (typeof config !== "object" || config === null) {
    throw new AetherError("bad_request", `${where}: missing`);
  }
  if (typeof config.self !== "string" || !isNodeId(config.self)) {
    throw new AetherError(
      "bad_request",
      `${where}: self ${JSON.stringify(config.self)} is not a valid node id`,
    );
  }
  if (!Array.isArray(config.peers) || config.peers.length === 0) {
    throw new AetherError("bad_request", `${where}: peers must list every member, self included`);
  }
  const seen = new Set<string>();
  for (const [i, p] of config.peers.entries()) {
    if (typeof p?.id !== "string" || !isNodeId(p.id)) {
      throw new AetherError(
        "bad_request",
        `${where}: peers[${i}].id ${JSON.stringify(p?.id)} is not a valid node id`,
      );
    }
    if (seen.has(p.id)) throw new AetherError("bad_request", `${where}: peers lists "${p.id}" twice`);
    seen.add(p.id);
    validateAddress(p.host, p.port, `${where}: peers[${i}] (${p.id})`);
  }
  if (!seen.has(config.self)) {
    throw new AetherError(
      "bad_request",
      `${where}: peers must include self ("${config.self}") with its listen address`,
    );
  }
  if (!(config.secret instanceof Uint8Array) || config.secret.byteLength < MIN_SECRET_BYTES) {
    throw new AetherError("bad_request", `${where}: secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  const clusterName = config.clusterName ?? MESH_DEFAULTS.clusterName;
  if (
    typeof clusterName !== "string" || clusterName.length === 0 || clusterName.length > 128 ||
    /\n/.test(clusterName)
  ) {
    throw new AetherError("bad_request", `${where}: clusterName must be 1-128 characters without newlines`);
  }
  const codec = config.codec ?? DEFAULT_CODEC;
  if (!CODEC_NAMES.includes(codec)) {
    throw new AetherError(
      "bad_request",
      `${where}: codec ${JSON.stringify(codec)} is not one of ${CODEC_NAMES.join(", ")}`,
    );
  }
  const ms = (name: keyof typeof MESH_DEFAULTS, min: number): number => {
    const value = (config as unknown as Record<string, unknown>)[name] ?? MESH_DEFAULTS[name];
    if (typeof value !== "number" || !Number.isFinite(value) || value < min) {
      throw new AetherError("bad_request", `${where}: ${name} must be a number >= ${min}`);
    }
    return value;
  };
  const resolved: ResolvedConfig = {
    self: config.self,
    peers: config.peers.map((p) => ({ id: p.id, host: p.host, port: p.port })),
    secret: config.secret,
    clusterName,
    codec,
    heartbeatMs: ms("heartbeatMs", 5),
    deadAfterMs: ms("deadAfterMs", 20),
    reconnectMinMs: ms("reconnectMinMs", 1),
    reconnectMaxMs: ms("reconnectMaxMs", 1),
    handshakeTimeoutMs: ms("handshakeTimeoutMs", 50),
    maxFrameBytes: ms("maxFrameBytes", 1024),
    maxQueuedBytesPerPeer: ms("maxQueuedBytesPerPeer", 1024),
    stallTimeoutMs: ms("stallTimeoutMs", 1),
    closeTimeoutMs: ms("closeTimeoutMs", 0),
    logger: config.logger ?? createLogger({ name: `mesh ${config.self}` }),
  };
  if (resolved.heartbeatMs * 2 > resolved.deadAfterMs) {
    throw new AetherError("bad_request", `${where}: deadAfterMs must be at least twice heartbeatMs`);
  }
  if (resolved.reconnectMaxMs < resolved.reconnectMinMs) {
    throw new AetherError("bad_request", `${where}: reconnectMaxMs must be >= reconnectMinMs`);
  }
  if (resolved.maxQueuedBytesPerPeer < resolved.maxFrameBytes) {
    throw new AetherError("bad_request", `${where}: maxQueuedBytesPerPeer must be >= maxFrameBytes`);
  }
  return resolved;
}
