/**
 * The accepting side of the mesh (the member with the higher id): the HTTP upgrade on the cluster port and
 * the acceptor's half of the handshake (challenge, check the dialer's MAC, prove the secret in return).
 *
 * A connection from a member with a higher id, an unknown id, or a wrong MAC is refused with close code 1008
 * and no reason, so a prober learns nothing about which check failed. Connections still in their handshake are
 * bounded (MAX_PENDING_HANDSHAKES); beyond it new ones get 503, a cheap guard against floods.
 */

import { assert, type NodeId } from "../core/mod.ts";
import type { MeshLogger } from "./_config.ts";
import type { MeshSocket } from "./_dialer.ts";
import {
  computeMac,
  newNonce,
  parseAuth,
  PROTOCOL_VERSION,
  type Transcript,
  verifyMac,
} from "./_handshake.ts";
import { closeQuietly, errorText, type PeerState } from "./_peer.ts";

/** Connections still in their handshake; beyond this new ones get 503 (a cheap guard against floods). */
const MAX_PENDING_HANDSHAKES = 64;

/** What either side's handshake needs from the mesh. */
export interface HandshakeHost {
  readonly self: NodeId;
  readonly clusterName: string;
  readonly handshakeTimeoutMs: number;
  readonly log: MeshLogger;
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
  /** The peer with this id, or undefined when it is not a member (or is this member). */
  peer(id: string): PeerState | undefined;
}

export class Acceptor {
  readonly #host: AcceptorHost;
  readonly #path: string;
  #pendingHandshakes = 0;
  #refusedHandshakes = 0;

  constructor(host: AcceptorHost, path: string) {
    this.#host = host;
    this.#path = path;
  }

  /** Incoming connections refused during the handshake (bad secret, unknown id, protocol error, timeout). */
  get refusedHandshakes(): number {
    return this.#refusedHandshakes;
  }

  handleRequest(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    const url = new URL(request.url);
    if (url.pathname !== this.#path) return new Response("not found\n", { status: 404 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("the mesh endpoint expects a WebSocket upgrade\n", { status: 426 });
    }
    const remote = `${info.remoteAddr.hostname}:${info.remoteAddr.port}`;
    if (!this.#host.running()) return new Response("stopping\n", { status: 503 });
    if (this.#pendingHandshakes >= MAX_PENDING_HANDSHAKES) {
      this.#refusedHandshakes++;
      this.#host.log.warn("mesh refused a connection: too many handshakes in progress", {
        self: this.#host.self,
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
    this.#host.track(upgraded.socket);
    this.#handshake(upgraded.socket, remote);
    return upgraded.response;
  }

  #handshake(ws: WebSocket, remote: string): void {
    const host = this.#host;
    this.#pendingHandshakes++;
    assert(this.#pendingHandshakes <= MAX_PENDING_HANDSHAKES, "mesh: more handshakes than the bound");
    let done = false;
    const nonce = newNonce();
    const finish = () => {
      done = true;
      this.#pendingHandshakes--;
      assert(this.#pendingHandshakes >= 0, "mesh: a handshake finished twice");
      clearTimeout(timer);
    };
    const refuse = (reason: string, claimedId?: string) => {
      if (done) return;
      finish();
      this.#refusedHandshakes++;
      host.log.warn("mesh refused a connection", { self: host.self, remote, claimedId, reason });
      // 1008 policy violation; no reason text, so a prober learns nothing about which check failed.
      closeQuietly(ws, 1008);
    };
    const timer = setTimeout(
      () => refuse(`no valid auth within ${host.handshakeTimeoutMs} ms`),
      host.handshakeTimeoutMs,
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
        finish();
        ws.send(JSON.stringify({ t: "accept", mac }));
        host.promote(peer, ws, remote, []);
      }).catch((e) => refuse(`handshake error: ${errorText(e)}`, auth.id));
    };
    ws.onerror = () => {
      if (!done) {
        finish();
        host.log.debug("mesh connection failed during the handshake", { self: host.self, remote });
      }
    };
    ws.onclose = ws.onerror;
  }
}
