/**
 * The accepting side of the mesh (the member with the higher id): the cluster port's listener, the HTTP
 * upgrade, and the acceptor's half of the handshake (challenge, check the dialer's MAC, prove the secret in
 * return).
 *
 * A connection from a member with a higher id, an unknown id, or a wrong MAC is refused with close code 1008
 * and no reason, so a prober learns nothing about which check failed.
 *
 * Floods before authentication (anyone who reaches the port can open connections):
 * - Every TCP connection counts as unauthenticated from accept until its handshake succeeds, and must get
 *   there within `authTimeoutMs` (default 1 s; a real member needs one round trip) or it is dropped.
 * - Unauthenticated connections are bounded per remote address (MAX_UNAUTHENTICATED_PER_ADDRESS) and in all
 *   (MAX_UNAUTHENTICATED). A new connection over a bound does not get refused: the OLDEST unauthenticated
 *   connection (of that address, or overall) is dropped instead. A real member finishes its handshake within
 *   milliseconds, so a flood would have to open a whole bound's worth of connections in that time to push it
 *   out; refusing the newest instead let a flood of 35 idle sockets a second keep a restarted member out.
 * - Frame sizes are checked on the frame header before anything is buffered: `ws` (npm) reads the header and
 *   closes with 1009 when the announced length is over its `maxPayload`. Before authentication that is
 *   MAX_HANDSHAKE_MESSAGE_BYTES (1 KiB); after it, the connection's limit is raised to the mesh's limit.
 *   (Deno.upgradeWebSocket buffered whole frames up to 64 MiB before the handshake could look at them: 16
 *   frames of 60 MB took a node from 82 to 1,757 MiB.)
 *
 * TLS (MeshConfig.tls): the listener is `node:https` asking every dialer for a certificate the cluster CA
 * signed; one without is refused in the TLS handshake, before the HMAC handshake above is reached. The bounds
 * and deadlines count the TCP socket under the TLS socket, from accept, so a stalled TLS handshake is dropped too.
 *
 * Why `node:http` + `ws` rather than Deno.serve + Deno.upgradeWebSocket: Deno's server WebSocket has no
 * message-size option, so a frame cannot be refused on its header. The dialer already uses `ws` (_dialer.ts).
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import type { Socket } from "node:net";
import { WebSocketServer } from "ws";
import { AetherError, assert, type NodeId } from "../core/mod.ts";
import type { MeshLogger, MeshTls } from "./_config.ts";
import type { MeshSocket } from "./_dialer.ts";
import {
  computeMac,
  MAX_HANDSHAKE_MESSAGE_BYTES,
  newNonce,
  parseAuth,
  PROTOCOL_VERSION,
  type Transcript,
  verifyMac,
} from "./_handshake.ts";
import { closeQuietly, errorText, type PeerState } from "./_peer.ts";

/** Unauthenticated connections (from TCP accept to a completed handshake) in all; beyond, the oldest goes. */
export const MAX_UNAUTHENTICATED = 64;
/** Unauthenticated connections from one remote address; beyond, that address's oldest goes. */
export const MAX_UNAUTHENTICATED_PER_ADDRESS = 8;

/** What either side's handshake needs from the mesh. */
export interface HandshakeHost {
  readonly self: NodeId;
  readonly clusterName: string;
  readonly handshakeTimeoutMs: number;
  readonly log: MeshLogger;
  /** wss:// with certificates the cluster CA signed, on both sides (absent: plain ws://). */
  readonly tls?: MeshTls;
  /** The cluster secret as an HMAC key (imported in start()). */
  key(): CryptoKey;
  running(): boolean;
  /** Starts tracking a socket until it closes, so stop() can wait for it. */
  track(ws: MeshSocket): void;
  /** Runs handshake crypto that stop() waits for. */
  crypto<T>(operation: Promise<T>): Promise<T>;
  /** Puts an authenticated socket into service; `held` are frames that came right after the handshake. */
  promote(peer: PeerState, ws: MeshSocket, remote: string, held: unknown[]): void;
}

export interface AcceptorHost extends HandshakeHost {
  /** A connection that has not authenticated within this long is dropped. */
  readonly authTimeoutMs: number;
  /** The largest message an authenticated peer may send (checked on the frame header). */
  readonly maxMessageBytes: number;
  /** The peer with this id, or undefined when it is not a member (or is this member). */
  peer(id: string): PeerState | undefined;
}

/** The part of `ws`'s server the acceptor uses (the package ships no types). */
interface WsServer {
  handleUpgrade(
    request: IncomingMessage,
    socket: Socket,
    head: Uint8Array,
    done: (ws: MeshSocket & { on(event: "error", listener: () => void): void }) => void,
  ): void;
  close(): void;
}
type WsServerConstructor = new (options: Record<string, unknown>) => WsServer;

/** One connection not yet authenticated: where it came from and its deadline. */
interface Unauthenticated {
  address: string;
  timer: ReturnType<typeof setTimeout>;
}

export class Acceptor {
  readonly #host: AcceptorHost;
  readonly #path: string;
  readonly #wss: WsServer;
  /** Insertion order is age order: the first entry is the oldest. */
  readonly #unauthenticated = new Map<Socket, Unauthenticated>();
  readonly #unauthenticatedByAddress = new Map<string, number>();
  /** Every TCP connection the server holds, so close() can end them. */
  readonly #connections = new Set<Socket>();
  #server?: Server;
  #refusedHandshakes = 0;
  #droppedUnauthenticated = 0;

  constructor(host: AcceptorHost, path: string) {
    this.#host = host;
    this.#path = path;
    this.#wss = new (WebSocketServer as unknown as WsServerConstructor)({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: MAX_HANDSHAKE_MESSAGE_BYTES,
    });
  }

  /** Incoming connections refused during the handshake (bad secret, unknown id, protocol error, timeout). */
  get refusedHandshakes(): number {
    return this.#refusedHandshakes;
  }

  /** Unauthenticated connections dropped: over their deadline, or pushed out by newer ones over a bound. */
  get droppedUnauthenticated(): number {
    return this.#droppedUnauthenticated;
  }

  /** Unauthenticated connections held right now. */
  get unauthenticated(): number {
    return this.#unauthenticated.size;
  }

  /** Binds the cluster port; resolves with the bound port. */
  listen(hostname: string, port: number): Promise<number> {
    const tls = this.#host.tls;
    const onRequest = (request: IncomingMessage, response: ServerResponse) =>
      this.#plainRequest(request, response);
    // With TLS every dialer must present a certificate the cluster CA signed, or the TLS handshake fails
    // before any byte of HTTP: a member with another CA's certificate never reaches the HMAC handshake.
    const server: Server = tls
      ? createTlsServer(
        { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true },
        onRequest,
      ) as unknown as Server
      : createServer(onRequest);
    if (tls) {
      server.on("tlsClientError", (error: Error, socket: Socket) => {
        this.#refusedHandshakes++;
        this.#host.log.warn("mesh refused a connection", {
          self: this.#host.self,
          remote: `${socket?.remoteAddress}:${socket?.remotePort}`,
          reason: `TLS: ${error.message}`,
        });
      });
    }
    this.#server = server;
    server.on("connection", (socket: Socket) => this.#connected(socket));
    server.on("upgrade", (request: IncomingMessage, socket: Socket, head: Uint8Array) => {
      this.#upgrade(request, socket, head);
    });
    return new Promise((resolve, reject) => {
      server.once("error", (e: Error) => reject(e));
      server.listen(port, hostname, () => {
        const address = server.address();
        if (address === null || typeof address === "string") {
          return reject(new AetherError("internal", "mesh listener has no TCP address"));
        }
        resolve(address.port);
      });
    });
  }

  /** Stops accepting and ends every connection still held (authenticated sockets are closed by the mesh). */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of this.#connections) socket.destroy();
    this.#wss.close();
    await closed;
  }

  #connected(socket: Socket): void {
    this.#connections.add(socket);
    socket.once("close", () => {
      this.#connections.delete(socket);
      this.#authenticated(socket);
    });
    // Deno's node:http emits the error on the socket; without a listener it would throw.
    socket.on("error", () => {});
    const address = socket.remoteAddress ?? "unknown";
    const fromAddress = this.#unauthenticatedByAddress.get(address) ?? 0;
    if (fromAddress >= MAX_UNAUTHENTICATED_PER_ADDRESS) this.#dropOldest(address);
    if (this.#unauthenticated.size >= MAX_UNAUTHENTICATED) this.#dropOldest();
    const timer = setTimeout(
      () => this.#drop(socket, `not authenticated within ${this.#host.authTimeoutMs} ms`),
      this.#host.authTimeoutMs,
    );
    this.#unauthenticated.set(socket, { address, timer });
    this.#unauthenticatedByAddress.set(address, (this.#unauthenticatedByAddress.get(address) ?? 0) + 1);
    assert(
      this.#unauthenticated.size <= MAX_UNAUTHENTICATED,
      "mesh: more unauthenticated connections than the bound",
    );
  }

  /** Drops the oldest unauthenticated connection (from `address`, or from anywhere). */
  #dropOldest(address?: string): void {
    for (const [socket, entry] of this.#unauthenticated) {
      if (address === undefined || entry.address === address) {
        const bound = address === undefined
          ? `${MAX_UNAUTHENTICATED} in all`
          : `${MAX_UNAUTHENTICATED_PER_ADDRESS} from ${address}`;
        return this.#drop(socket, `oldest unauthenticated connection over the bound (${bound})`);
      }
    }
  }

  #drop(socket: Socket, reason: string): void {
    if (!this.#unauthenticated.has(socket)) return;
    this.#authenticated(socket);
    this.#droppedUnauthenticated++;
    this.#host.log.debug("mesh dropped an unauthenticated connection", {
      self: this.#host.self,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      reason,
    });
    socket.destroy();
  }

  /** Forgets a connection as unauthenticated (it authenticated, closed, or was dropped). */
  #authenticated(socket: Socket): void {
    const entry = this.#unauthenticated.get(socket);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.#unauthenticated.delete(socket);
    const left = (this.#unauthenticatedByAddress.get(entry.address) ?? 1) - 1;
    if (left > 0) this.#unauthenticatedByAddress.set(entry.address, left);
    else this.#unauthenticatedByAddress.delete(entry.address);
  }

  #plainRequest(request: IncomingMessage, response: ServerResponse): void {
    const path = new URL(request.url ?? "/", "http://mesh").pathname;
    const [status, text] = path === this.#path
      ? [426, "the mesh endpoint expects a WebSocket upgrade\n"]
      : [404, "not found\n"];
    response.writeHead(status, { "content-type": "text/plain", connection: "close" });
    response.end(text);
  }

  #upgrade(request: IncomingMessage, tlsOrTcp: Socket, head: Uint8Array): void {
    // Over TLS the upgrade comes on the TLS socket; the bounds and deadlines track the TCP socket under it.
    const socket = this.#host.tls ? tcpSocketOf(tlsOrTcp, this.#connections) : tlsOrTcp;
    const path = new URL(request.url ?? "/", "http://mesh").pathname;
    if (path !== this.#path) return refuseUpgrade(tlsOrTcp, 404, "not found");
    if (!this.#host.running()) return refuseUpgrade(tlsOrTcp, 503, "stopping");
    if (!this.#unauthenticated.has(socket)) return refuseUpgrade(tlsOrTcp, 503, "busy");
    tlsOrTcp.setNoDelay(true);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    try {
      this.#wss.handleUpgrade(request, tlsOrTcp, head, (ws) => {
        // `ws` is an EventEmitter: an "error" with no listener would throw out of the event loop (an
        // oversized frame is one). The handshake's and the connection's onerror come and go; this one stays.
        ws.on("error", () => {});
        ws.binaryType = "arraybuffer";
        this.#host.track(ws);
        this.#handshake(ws, socket, remote);
      });
    } catch (e) {
      refuseUpgrade(tlsOrTcp, 400, `bad WebSocket upgrade: ${errorText(e)}`);
    }
  }

  #handshake(ws: MeshSocket, socket: Socket, remote: string): void {
    const host = this.#host;
    let done = false;
    const nonce = newNonce();
    const refuse = (reason: string, claimedId?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      this.#refusedHandshakes++;
      host.log.warn("mesh refused a connection", { self: host.self, remote, claimedId, reason });
      // 1008 policy violation; no reason text, so a prober learns nothing about which check failed. The
      // connection stays counted as unauthenticated until it closes (its deadline drops it at the latest).
      closeQuietly(ws, 1008);
    };
    const timer = setTimeout(
      () => refuse(`no valid auth within ${host.handshakeTimeoutMs} ms`),
      host.handshakeTimeoutMs,
    );
    ws.send(JSON.stringify({ t: "challenge", v: PROTOCOL_VERSION, nonce }));
    let received = false;
    ws.onmessage = (event) => {
      if (done) return;
      if (received) return refuse("sent a second message before the handshake completed");
      received = true;
      const auth = parseAuth(event.data);
      if ("error" in auth) return refuse(auth.error, auth.claimedId);
      const peer = host.peer(auth.id);
      if (!peer) {
        return refuse(auth.id === host.self ? "claims this node's own id" : "unknown node id", auth.id);
      }
      if (auth.to !== host.self) return refuse(`addressed to "${auth.to}", this is "${host.self}"`, auth.id);
      if (peer.dialer) {
        return refuse(`"${host.self}" dials "${auth.id}" (lower id dials), not the reverse`, auth.id);
      }
      const transcript: Transcript = {
        cluster: host.clusterName,
        dialer: auth.id,
        acceptor: host.self,
        acceptorNonce: nonce,
        dialerNonce: auth.nonce,
      };
      host.crypto(verifyMac(host.key(), "dialer", transcript, auth.mac)).then(async (ok) => {
        if (done) return;
        if (!ok) {
          return refuse(
            "wrong MAC: the peer does not know the cluster secret (or its cluster name)",
            auth.id,
          );
        }
        if (!host.running()) return refuse("mesh is stopping", auth.id);
        const mac = await host.crypto(computeMac(host.key(), "acceptor", transcript));
        if (done) return;
        if (!host.running()) return refuse("mesh is stopping", auth.id);
        if (!this.#unauthenticated.has(socket)) {
          return refuse("dropped before the handshake completed", auth.id);
        }
        done = true;
        clearTimeout(timer);
        this.#authenticated(socket);
        raiseMessageLimit(ws, host.maxMessageBytes);
        ws.send(JSON.stringify({ t: "accept", mac }));
        host.promote(peer, ws, remote, []);
      }).catch((e) => refuse(`handshake error: ${errorText(e)}`, auth.id));
    };
    ws.onerror = () => {
      if (!done) {
        done = true;
        clearTimeout(timer);
        host.log.debug("mesh connection failed during the handshake", { self: host.self, remote });
      }
    };
    ws.onclose = ws.onerror;
  }
}

/**
 * Raises the largest message `ws` accepts on one connection (its server-wide `maxPayload` is the handshake's
 * 1 KiB). `ws` 8 keeps the limit in its receiver's `_maxPayload`, which it reads on every frame header;
 * accept_test.ts fails if an upgrade of `ws` moves it.
 */
export function raiseMessageLimit(ws: MeshSocket, bytes: number): void {
  const receiver = (ws as unknown as { _receiver?: { _maxPayload?: unknown } })._receiver;
  assert(
    receiver !== undefined && typeof receiver._maxPayload === "number",
    "mesh: ws no longer keeps the message limit in _receiver._maxPayload (see _accept.ts)",
  );
  receiver._maxPayload = bytes;
}

/**
 * The TCP socket under a server-side TLS socket (the one the "connection" event counted). `_parent` is how
 * node:tls links them (Deno's node:https too); failing that, the counted socket with the same remote port.
 */
function tcpSocketOf(tlsSocket: Socket, connections: Set<Socket>): Socket {
  const parent = (tlsSocket as Socket & { _parent?: Socket })._parent;
  if (parent && connections.has(parent)) return parent;
  for (const socket of connections) {
    if (socket.remotePort === tlsSocket.remotePort && socket.remoteAddress === tlsSocket.remoteAddress) {
      return socket;
    }
  }
  return tlsSocket;
}

/** Answers an upgrade that will not happen with a plain HTTP status and closes the connection. */
function refuseUpgrade(socket: Socket, status: number, text: string): void {
  const reason = { 400: "Bad Request", 404: "Not Found", 503: "Service Unavailable" }[status] ?? "Error";
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain\r\n` +
      `content-length: ${new TextEncoder().encode(body).byteLength}\r\n\r\n${body}`,
  );
}
