/**
 * Mutual challenge–response that every mesh connection completes before it carries a single application byte.
 *
 * The member with the lower id (the dialer, D) connects to the higher one (the acceptor, A):
 *
 *   A -> D  {"t":"challenge","v":1,"nonce":nA}                       (the only thing an unauthenticated client sees)
 *   D -> A  {"t":"auth","v":1,"id":D,"to":A,"nonce":nD,"mac":macD}   macD = HMAC(secret, transcript("dialer"))
 *   A -> D  {"t":"accept","mac":macA}                                 macA = HMAC(secret, transcript("acceptor"))
 *
 *   transcript(role) = "aether-mesh/1" | role | cluster | D | A | nA | nD   (newline-separated, UTF-8)
 *
 * nA and nD are 32 fresh random bytes per connection. A checks that D is a configured member with a lower id,
 * that the message is addressed to A, and macD; D checks macA before it sends or accepts application data.
 * A replayed `auth` fails because nA is new on every connection; a replayed `accept` fails because nD is; the
 * role label stops one side's MAC from being reflected as the other's; the ids and cluster name bind the MAC to
 * this pair in this cluster. MACs are checked with WebCrypto's verify (constant time).
 *
 * What this does not give: confidentiality or integrity of later frames against an attacker on the network
 * path (the connection is plain ws://). It proves knowledge of the secret at connection time; run the mesh on
 * a private network, or put it behind TLS, when the path is not trusted.
 */

import { isNodeId, type NodeId } from "../core/mod.ts";

export const PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
/** A handshake message is small; anything bigger is refused before parsing. */
export const MAX_HANDSHAKE_MESSAGE_BYTES = 1024;

const HEX = /^[0-9a-f]+$/;
const encoder = new TextEncoder();

export type Role = "dialer" | "acceptor";

export interface Challenge {
  t: "challenge";
  v: number;
  nonce: string;
}

export interface Auth {
  t: "auth";
  v: number;
  id: NodeId;
  to: NodeId;
  nonce: string;
  mac: string;
}

export interface Accept {
  t: "accept";
  mac: string;
}

export function newNonce(): string {
  return toHex(crypto.getRandomValues(new Uint8Array(NONCE_BYTES)));
}

export function importSecret(secret: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    [
      "sign",
      "verify",
    ],
  );
}

export interface Transcript {
  cluster: string;
  dialer: NodeId;
  acceptor: NodeId;
  acceptorNonce: string;
  dialerNonce: string;
}

function transcriptBytes(role: Role, t: Transcript): Uint8Array<ArrayBuffer> {
  return encoder.encode(
    ["aether-mesh/1", role, t.cluster, t.dialer, t.acceptor, t.acceptorNonce, t.dialerNonce].join("\n"),
  );
}

export async function computeMac(key: CryptoKey, role: Role, t: Transcript): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.sign("HMAC", key, transcriptBytes(role, t))));
}

export async function verifyMac(key: CryptoKey, role: Role, t: Transcript, macHex: string): Promise<boolean> {
  if (macHex.length !== 64 || !HEX.test(macHex)) return false;
  return await crypto.subtle.verify("HMAC", key, fromHex(macHex), transcriptBytes(role, t));
}

/** Parses a handshake text frame into an object, or returns a reason why it is not one. */
function parseObject(data: unknown): Record<string, unknown> | string {
  if (typeof data !== "string") return "expected a text frame during the handshake";
  if (data.length > MAX_HANDSHAKE_MESSAGE_BYTES) {
    return `handshake message longer than ${MAX_HANDSHAKE_MESSAGE_BYTES}`;
  }
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return "handshake message is not JSON";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "handshake message is not an object";
  }
  return value as Record<string, unknown>;
}

function isNonce(value: unknown): value is string {
  return typeof value === "string" && value.length === NONCE_BYTES * 2 && HEX.test(value);
}

export function parseChallenge(data: unknown): Challenge | string {
  const o = parseObject(data);
  if (typeof o === "string") return o;
  if (o.t !== "challenge") return `expected a challenge, got ${JSON.stringify(o.t)}`;
  if (o.v !== PROTOCOL_VERSION) return `unsupported mesh protocol version ${JSON.stringify(o.v)}`;
  if (!isNonce(o.nonce)) return "challenge nonce is not 32 hex-encoded bytes";
  return o as unknown as Challenge;
}

/** Parses an auth message; on failure the reason and whatever id it claimed (for the log). */
export function parseAuth(data: unknown): Auth | { error: string; claimedId?: string } {
  const o = parseObject(data);
  if (typeof o === "string") return { error: o };
  const claimedId = typeof o.id === "string" ? o.id.slice(0, 64) : undefined;
  if (o.t !== "auth") return { error: `expected auth, got ${JSON.stringify(o.t)}`, claimedId };
  if (o.v !== PROTOCOL_VERSION) {
    return { error: `unsupported mesh protocol version ${JSON.stringify(o.v)}`, claimedId };
  }
  if (typeof o.id !== "string" || !isNodeId(o.id)) return { error: "auth id is not a node id", claimedId };
  if (typeof o.to !== "string" || !isNodeId(o.to)) {
    return { error: "auth target is not a node id", claimedId };
  }
  if (!isNonce(o.nonce)) return { error: "auth nonce is not 32 hex-encoded bytes", claimedId };
  if (typeof o.mac !== "string") return { error: "auth mac missing", claimedId };
  return o as unknown as Auth;
}

export function parseAccept(data: unknown): Accept | string {
  const o = parseObject(data);
  if (typeof o === "string") return o;
  if (o.t !== "accept") return `expected accept, got ${JSON.stringify(o.t)}`;
  if (typeof o.mac !== "string") return "accept mac missing";
  return o as unknown as Accept;
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += bytes[i].toString(16).padStart(2, "0");
  return out;
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}
