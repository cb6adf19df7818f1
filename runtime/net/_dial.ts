/**
 * The dialing side of the mesh (the member with the lower id): the dialer's half of the handshake (answer the
 * challenge with a MAC, check the acceptor's), and re-dialing with exponential backoff and "equal jitter".
 *
 * Sockets come from _dialer.ts (the npm `ws` client with TCP_NODELAY). A peer that fails or stalls the
 * handshake is not owed a closing handshake: its socket is dropped at once.
 */

import { assert } from "../core/mod.ts";
import type { HandshakeHost } from "./_accept.ts";
import { dialWebSocket, type MeshSocket } from "./_dialer.ts";
import {
  computeMac,
  newNonce,
  parseAccept,
  parseChallenge,
  PROTOCOL_VERSION,
  type Transcript,
  verifyMac,
} from "./_handshake.ts";
import { type DialAttempt, dropSocket, errorText, type PeerState, urlHost } from "./_peer.ts";

/** Deno's WebSocket message size limit, kept as the floor of both sides' limit once authenticated. */
export const DENO_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** What dialing needs from the mesh, besides the handshake's needs. */
export interface DialerHost extends HandshakeHost {
  readonly maxFrameBytes: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
}

export class Dialer {
  readonly #host: DialerHost;
  readonly #path: string;

  constructor(host: DialerHost, path: string) {
    this.#host = host;
    this.#path = path;
  }

  /** Dials the peer unless it is connected, being dialed, or has no known address yet. */
  dial(peer: PeerState): void {
    const host = this.#host;
    if (!host.running() || peer.conn || peer.dialing || peer.port === 0) return;
    assert(peer.dialer, `mesh: ${host.self} dials ${peer.id}, which dials it`);
    peer.reconnectTimer = undefined;
    const address = `${peer.host}:${peer.port}`;
    let ws: MeshSocket;
    try {
      const tls = host.tls;
      ws = dialWebSocket(`${tls ? "wss" : "ws"}://${urlHost(peer.host)}:${peer.port}${this.#path}`, {
        ...(tls ? { tls: { ca: tls.ca, cert: tls.cert, key: tls.key, servername: peer.id } } : {}),
        // Oversized frames up to Deno's own 64 MiB limit are counted and dropped (see Mesh's frame handling),
        // as on the accepting side; only beyond that does the client close the connection.
        maxMessageBytes: Math.max(DENO_MAX_MESSAGE_BYTES, 2 * host.maxFrameBytes),
      });
    } catch (e) {
      this.#dialFailed(peer, `cannot dial ${address}: ${errorText(e)}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    host.track(ws);
    const attempt: DialAttempt = { ws, done: false, timer: undefined };
    peer.dialing = attempt;
    const fail = (reason: string) => {
      if (attempt.done) return;
      this.abandon(attempt, peer);
      this.#dialFailed(peer, reason);
    };
    attempt.timer = setTimeout(
      () => fail(`handshake with ${peer.id} at ${address} took longer than ${host.handshakeTimeoutMs} ms`),
      host.handshakeTimeoutMs,
    );
    this.#handshake(peer, attempt, address, fail);
    ws.onerror = (event) =>
      fail(`cannot connect to ${peer.id} at ${address}: ${(event as ErrorEvent).message}`);
    ws.onclose = (event) =>
      fail(`${peer.id} at ${address} closed the connection during the handshake (${event.code})`);
  }

  /** Gives up a dial attempt (failed, timed out, replaced, or the mesh stops). */
  abandon(attempt: DialAttempt, peer: PeerState): void {
    attempt.done = true;
    clearTimeout(attempt.timer);
    if (peer.dialing === attempt) peer.dialing = undefined;
    // A peer that failed or stalled the handshake is not owed a closing handshake.
    dropSocket(attempt.ws);
  }

  /** Dials again after a backoff that doubles per failed attempt, up to reconnectMaxMs. */
  scheduleReconnect(peer: PeerState): void {
    const host = this.#host;
    if (!host.running() || !peer.dialer || peer.reconnectTimer !== undefined) return;
    peer.attempts++;
    const ceiling = Math.min(host.reconnectMaxMs, host.reconnectMinMs * 2 ** Math.min(peer.attempts - 1, 20));
    // "Equal jitter": at least half the backoff, so retries never collapse to zero, spread over the other half.
    const delayMs = ceiling / 2 + Math.random() * ceiling / 2;
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = undefined;
      this.dial(peer);
    }, delayMs);
  }

  /** The dialer's steps: challenge -> auth, accept -> verify; frames after `accept` wait for the check. */
  #handshake(peer: PeerState, attempt: DialAttempt, address: string, fail: (reason: string) => void): void {
    const host = this.#host;
    const ws = attempt.ws;
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
          cluster: host.clusterName,
          dialer: host.self,
          acceptor: peer.id,
          acceptorNonce: challenge.nonce,
          dialerNonce: newNonce(),
        };
        transcript = t;
        host.crypto(computeMac(host.key(), "dialer", t)).then((mac) => {
          if (attempt.done) return;
          ws.send(
            JSON.stringify({
              t: "auth",
              v: PROTOCOL_VERSION,
              id: host.self,
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
        host.crypto(verifyMac(host.key(), "acceptor", transcript!, accept.mac)).then((ok) => {
          if (attempt.done) return;
          if (!ok) {
            host.log.warn("mesh peer failed to prove the cluster secret; closing", {
              self: host.self,
              peer: peer.id,
              remote: address,
            });
            return fail(`${peer.id} at ${address} did not prove the cluster secret`);
          }
          attempt.done = true;
          clearTimeout(attempt.timer);
          peer.dialing = undefined;
          host.promote(peer, ws, address, held);
        }).catch((e) => fail(`handshake with ${peer.id} failed: ${errorText(e)}`));
        return;
      }
      held.push(event.data);
      heldBytes += event.data instanceof ArrayBuffer ? event.data.byteLength : String(event.data).length;
      if (heldBytes > 2 * host.maxFrameBytes) {
        fail(`${peer.id} at ${address} sent too much before the handshake ended`);
      }
    };
  }

  #dialFailed(peer: PeerState, reason: string): void {
    const host = this.#host;
    if (!host.running()) return;
    // The first failure after a good connection is news; the retries while the peer stays away are not.
    if (peer.attempts === 0) {
      host.log.info("mesh cannot reach peer; retrying with backoff", {
        self: host.self,
        peer: peer.id,
        reason,
      });
    } else {
      host.log.debug("mesh dial failed", { self: host.self, peer: peer.id, reason, attempts: peer.attempts });
    }
    this.scheduleReconnect(peer);
  }
}
