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
 * limit, so writers that wait for it (`writable`) leave the other half for traffic that does not (consensus);
 * those waiting writers are bounded per peer too (maxWaitersPerPeer). A peer that stays at or over its limit for stallTimeoutMs is cut off: the connection is closed, its queue
 * discarded, and it reconnects and resynchronises like after any other failure. Nothing queues without bound.
 *
 * Liveness: both sides send a heartbeat every heartbeatMs and answer the other's with a pong (that gives RTT);
 * any frame counts as a sign of life; a connection silent for deadAfterMs is closed and the peer reported down.
 * The dialer re-dials with exponential backoff and jitter; the acceptor waits to be dialed.
 *
 * Sockets: the acceptor's come from a node:http server and `ws` (_accept.ts: frame sizes are checked on
 * the header; unauthenticated connections are bounded and dropped oldest first). The dialer's come from
 * _dialer.ts (the npm `ws` client with TCP_NODELAY), because Deno's client WebSocket leaves Nagle's algorithm
 * on and so delays a message sent shortly after an unanswered one by about 40 ms. A socket can also be
 * dropped at once (`terminate`), which the mesh does when the peer is dead, stalled or failed the handshake,
 * and in stop() for a peer that does not answer the closing handshake within one heartbeat interval.
 *
 * Where the parts live: this file holds the life cycle (start, stop, the state machine of NEXT_STATES), the
 * public API and the live connections (promote, lose, incoming frames); _outbox.ts the queues, batching and
 * backpressure; _liveness.ts heartbeats, dead and stalled peers; _accept.ts and _dial.ts the two sides of the
 * handshake and re-dialing; _config.ts the options; _peer.ts the per-peer state. Invariants (queue byte
 * counts, one connection per peer, legal state changes) are asserted where they change.
 */

import { AetherError, assert, type NodeId } from "../core/mod.ts";
import { CODEC_NAMES, type CodecName, createCodec, type MeshCodec } from "./codec.ts";
import type { MeshSocket } from "./_dialer.ts";
import { buildEntry, FRAME_DATA, FRAME_PING, FRAME_PONG, splitEntries } from "./_frame.ts";
import { importSecret } from "./_handshake.ts";
import {
  checkChannel,
  type MeshConfig,
  type MeshLogger,
  validateAddress,
  validateConfig,
} from "./_config.ts";
import {
  closeQuietly,
  Connection,
  dropSocket,
  errorText,
  newPeerState,
  type PeerState,
  type PeerStats,
  type Timer,
} from "./_peer.ts";
import { Outbox } from "./_outbox.ts";
import { Liveness } from "./_liveness.ts";
import { Acceptor, type AcceptorHost } from "./_accept.ts";
import { DENO_MAX_MESSAGE_BYTES, Dialer, type DialerHost } from "./_dial.ts";

export {
  DEFAULT_CODEC,
  MESH_DEFAULTS,
  type MeshConfig,
  type MeshLogger,
  type MeshPeerAddress,
} from "./_config.ts";
export type { PeerStats } from "./_peer.ts";

/** The URL path of the mesh endpoint on the cluster port. */
export const MESH_PATH = "/aether/mesh/1";

/** Malformed-input warnings per peer are limited to one per this interval (the rest are counted). */
const COMPLAINT_INTERVAL_MS = 1000;

export type MessageHandler = (from: NodeId, message: unknown, channel: string) => void;
export type PeerUpHandler = (id: NodeId) => void;
export type PeerDownHandler = (id: NodeId, reason: string) => void;

export interface MeshStats {
  self: NodeId;
  port: number;
  codec: CodecName;
  /** Incoming connections refused during the handshake (bad secret, unknown id, protocol error, timeout). */
  refusedHandshakes: number;
  /** Incoming connections dropped before authenticating: over their deadline or pushed out by a flood. */
  droppedUnauthenticated: number;
  peers: PeerStats[];
}

type MeshState = "new" | "starting" | "running" | "stopping" | "stopped";

/** The mesh's life: each state may only move to the ones listed (checked on every change). */
const NEXT_STATES: Record<MeshState, readonly MeshState[]> = {
  new: ["starting", "stopping"],
  starting: ["running", "stopping"],
  running: ["stopping"],
  stopping: ["stopped"],
  stopped: [],
};

export class Mesh {
  readonly self: NodeId;
  readonly clusterName: string;
  readonly codecName: CodecName;

  readonly #secret: Uint8Array;
  readonly #log: MeshLogger;
  readonly #listenHost: string;
  readonly #listenPort: number;
  readonly #heartbeatMs: number;
  readonly #maxFrameBytes: number;
  readonly #closeTimeoutMs: number;

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
  readonly #outbox: Outbox;
  readonly #liveness: Liveness;
  readonly #acceptor: Acceptor;
  readonly #dialer: Dialer;

  #state: MeshState = "new";
  #key?: CryptoKey;
  #port = 0;
  #tickTimer?: ReturnType<typeof setInterval>;
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
    this.#maxFrameBytes = c.maxFrameBytes;
    this.#closeTimeoutMs = c.closeTimeoutMs;

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
      const state = newPeerState(p.id, p.host, p.port, c.self < p.id);
      this.#peers.set(p.id, state);
      this.#peerList.push(state);
    }

    // The parts see the mesh through this one object: what they need, and nothing public.
    const parts: AcceptorHost & DialerHost = {
      self: c.self,
      clusterName: c.clusterName,
      handshakeTimeoutMs: c.handshakeTimeoutMs,
      authTimeoutMs: c.authTimeoutMs,
      // As the dialer's: oversized frames up to this are counted and dropped, larger ones close the connection.
      maxMessageBytes: Math.max(DENO_MAX_MESSAGE_BYTES, 2 * c.maxFrameBytes),
      maxFrameBytes: c.maxFrameBytes,
      reconnectMinMs: c.reconnectMinMs,
      reconnectMaxMs: c.reconnectMaxMs,
      log: c.logger,
      tls: c.tls,
      key: () => this.#key!,
      running: () => this.#state === "running",
      peer: (id) => this.#peers.get(id),
      track: (ws) => this.#track(ws),
      crypto: (operation) => this.#crypto(operation),
      promote: (peer, ws, remote, held) => this.#promote(peer, ws, remote, held),
    };
    const lose = (conn: Connection, reason: string) => this.#lose(conn, reason);
    this.#outbox = new Outbox({
      codecId: this.#codec.id,
      maxFrameBytes: c.maxFrameBytes,
      maxQueuedBytes: c.maxQueuedBytesPerPeer,
      maxWaitersPerPeer: c.maxWaitersPerPeer,
      running: parts.running,
      lose,
    }, this.#peerList);
    this.#liveness = new Liveness({
      self: c.self,
      heartbeatMs: c.heartbeatMs,
      deadAfterMs: c.deadAfterMs,
      stallTimeoutMs: c.stallTimeoutMs,
      maxQueuedBytes: c.maxQueuedBytesPerPeer,
      log: c.logger,
      queuedBytes: (peer) => this.#outbox.queuedBytes(peer),
      lose,
    });
    this.#acceptor = new Acceptor(parts, MESH_PATH);
    this.#dialer = new Dialer(parts, MESH_PATH);
  }

  // ----------------------------------------------------------------------------------------------------- life

  /** Binds the cluster port and starts dialing the members with higher ids. */
  async start(): Promise<void> {
    if (this.#state !== "new" || this.#stopped) {
      throw new AetherError("conflict", `mesh ${this.self}: start() is allowed once, before stop()`);
    }
    this.#moveTo("starting");
    this.#key = await importSecret(this.#secret);
    if (this.#stopped) return; // stop() was called while the key was imported
    try {
      this.#port = await this.#acceptor.listen(this.#listenHost, this.#listenPort);
    } catch (e) {
      throw new AetherError(
        "unavailable",
        `mesh ${this.self}: cannot listen on ${this.#listenHost}:${this.#listenPort}: ${errorText(e)}`,
      );
    }
    if (this.#stopped) return; // stop() was called while the port was bound
    this.#moveTo("running");
    this.#liveness.begin(performance.now());
    this.#tickTimer = setInterval(() => this.#liveness.tick(this.#peerList), this.#liveness.tickMs);
    this.#log.info("mesh listening", { self: this.self, host: this.#listenHost, port: this.#port });
    for (const peer of this.#peerList) if (peer.dialer) this.#dialer.dial(peer);
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
    this.#moveTo("stopping");
    clearInterval(this.#tickTimer);
    this.#outbox.stop();
    for (const peer of this.#peerList) {
      clearTimeout(peer.reconnectTimer);
      peer.reconnectTimer = undefined;
      if (peer.dialing) this.#dialer.abandon(peer.dialing, peer);
      if (peer.conn) this.#lose(peer.conn, "mesh stopping", "close");
      this.#outbox.resolveWaiters(peer, false);
    }
    await this.#acceptor.close();
    await Promise.allSettled([...this.#cryptoOps]);
    const deadline = performance.now() + this.#closeTimeoutMs;
    // A live peer answers the closing handshake within milliseconds. One that has not within a heartbeat
    // interval is frozen or cut off: drop its socket rather than wait for TCP to give up. (The acceptor's
    // close() already ended every TCP connection it held.)
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
    this.#moveTo("stopped");
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

  #moveTo(next: MeshState): void {
    assert(
      NEXT_STATES[this.#state].includes(next),
      `mesh ${this.self}: ${this.#state} cannot become ${next}`,
    );
    this.#state = next;
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
      if (peer.dialing) this.#dialer.abandon(peer.dialing, peer);
      this.#dialer.dial(peer);
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
    return this.#outbox.enqueue(peer, entry);
  }

  /** Queues one message for every connected peer; returns the ids it was queued for. */
  broadcast(channel: string, message: unknown): NodeId[] {
    const entry = this.#encode(channel, message);
    const reached: NodeId[] = [];
    if (this.#state !== "running") return reached;
    for (const peer of this.#peerList) if (this.#outbox.enqueue(peer, entry)) reached.push(peer.id);
    return reached;
  }

  /** True when the peer is connected and its queue is below half its bound. */
  canSend(id: NodeId): boolean {
    return this.#outbox.canSend(this.#peerFor(id));
  }

  /**
   * Resolves true as soon as `canSend(id)` holds, false when the peer is (or goes) down, the mesh stops, or
   * the signal aborts. For writers that do flow control (remote invocation). Writers waiting for one peer are
   * bounded (maxWaitersPerPeer): beyond it the answer is false at once, counted in `waitersRefused`.
   */
  writable(id: NodeId, signal?: AbortSignal): Promise<boolean> {
    const peer = this.#peerFor(id);
    if (this.#state !== "running" || !peer.conn || signal?.aborted) return Promise.resolve(false);
    return this.#outbox.writable(peer, signal);
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
    return this.#outbox.queuedBytes(this.#peerFor(id));
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
      queuedBytes: this.#outbox.queuedBytes(peer),
      ...peer.counters,
    };
  }

  stats(): MeshStats {
    return {
      self: this.self,
      port: this.#port,
      codec: this.codecName,
      refusedHandshakes: this.#acceptor.refusedHandshakes,
      droppedUnauthenticated: this.#acceptor.droppedUnauthenticated,
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

  // ------------------------------------------------------------------------------------------- live connections

  #promote(peer: PeerState, ws: MeshSocket, remote: string, held: unknown[]): void {
    if (this.#state !== "running") {
      closeQuietly(ws);
      return;
    }
    assert(peer.dialing === undefined, `mesh ${this.self}: ${peer.id} connected while a dial is open`);
    if (peer.conn) {
      this.#log.warn("mesh peer connected again while its old connection looked alive; replacing it", {
        self: this.self,
        peer: peer.id,
        remote,
      });
      this.#lose(peer.conn, "replaced by a newer connection from the same peer", "close");
    }
    assert(
      peer.conn === undefined && peer.pendingBytes === 0,
      `mesh ${this.self}: ${peer.id} kept a queue from its last connection`,
    );
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
    this.#liveness.ping(conn, now);
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
    this.#outbox.discard(peer);
    peer.counters.disconnects++;
    assert(
      peer.counters.disconnects <= peer.counters.connects,
      `mesh ${this.self}: ${peer.id} lost more than it had`,
    );
    this.#outbox.resolveWaiters(peer, false);
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
    if (peer.dialer) this.#dialer.scheduleReconnect(peer);
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
      case FRAME_PING:
        if (this.#liveness.onPing(conn, bytes)) return;
        break;
      case FRAME_PONG:
        if (this.#liveness.onPong(peer, bytes, now)) return;
        break;
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
