/**
 * The mesh's configuration: its options, their defaults and their validation (a bad value is refused with a
 * sentence that names it).
 */

import { AetherError, createLogger, isNodeId, type Logger, type NodeId } from "../core/mod.ts";
import { CODEC_NAMES, type CodecName } from "./codec.ts";
import { isChannel } from "./_frame.ts";

/** Chosen by measurement: see runtime/net/README.md and tests/bench/mesh_bench.ts. */
export const DEFAULT_CODEC: CodecName = "msgpack";

export const MESH_DEFAULTS = {
  clusterName: "aether",
  heartbeatMs: 200,
  deadAfterMs: 1000,
  reconnectMinMs: 100,
  reconnectMaxMs: 2000,
  handshakeTimeoutMs: 2000,
  authTimeoutMs: 1000,
  maxFrameBytes: 8 * 1024 * 1024,
  maxQueuedBytesPerPeer: 16 * 1024 * 1024,
  stallTimeoutMs: 2000,
  closeTimeoutMs: 2000,
  maxWaitersPerPeer: 10_000,
} as const;

const MIN_SECRET_BYTES = 16;

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
  /**
   * An incoming connection must complete its handshake this long after TCP accept, or it is dropped (a real
   * member needs one round trip; a flood of idle sockets must not hold the handshake slots).
   */
  authTimeoutMs?: number;
  /** Largest frame sent or accepted; a single message must fit in one frame. */
  maxFrameBytes?: number;
  /** Bound of a peer's outbound queue (unflushed messages plus the socket's bufferedAmount). */
  maxQueuedBytesPerPeer?: number;
  /** A peer whose queue stays at or over its bound this long is disconnected. */
  stallTimeoutMs?: number;
  /** stop() waits this long for sockets to finish closing, then gives up on the stragglers. */
  closeTimeoutMs?: number;
  /** Writers waiting in `writable()` for one peer; beyond it `writable()` answers false at once. */
  maxWaitersPerPeer?: number;
  logger?: MeshLogger;
  /**
   * TLS for the cluster port: the mesh runs over wss://, the acceptor asks every dialer for a certificate and
   * both sides accept only certificates the cluster CA signed (a dialer also checks the acceptor's names its
   * id). The HMAC handshake still runs inside; TLS adds encryption and a second, CA-based check.
   */
  tls?: MeshTls;
}

/** PEM texts: this member's certificate and key and the cluster CA (one or more certificates). */
export interface MeshTls {
  cert: string;
  key: string;
  ca: string;
}

export function validateAddress(host: string, port: number, where: string): void {
  if (typeof host !== "string" || host.length === 0 || host.length > 255) {
    throw new AetherError("bad_request", `${where}: host must be a non-empty string`);
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AetherError("bad_request", `${where}: port ${port} is not an integer from 0 to 65535`);
  }
}

export function checkChannel(channel: string): void {
  if (typeof channel !== "string" || !isChannel(channel)) {
    throw new AetherError(
      "bad_request",
      `mesh channel ${
        JSON.stringify(channel)
      } is invalid (1-32 characters: letters, digits, '.', '_', ':', '-')`,
    );
  }
}

function checkTls(tls: MeshTls, where: string): MeshTls {
  const pem = (name: keyof MeshTls, marker: RegExp) => {
    const text = tls?.[name];
    if (typeof text !== "string" || !marker.test(text)) {
      throw new AetherError("bad_request", `${where}: tls.${name} must be PEM text (${marker.source})`);
    }
    return text;
  };
  const certificate = /-----BEGIN CERTIFICATE-----/;
  return {
    cert: pem("cert", certificate),
    key: pem("key", /-----BEGIN [A-Z ]*PRIVATE KEY-----/),
    ca: pem("ca", certificate),
  };
}

export type ResolvedConfig = Required<Omit<MeshConfig, "tls">> & { tls?: MeshTls };

export function validateConfig(config: MeshConfig): ResolvedConfig {
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
    authTimeoutMs: ms("authTimeoutMs", 50),
    maxFrameBytes: ms("maxFrameBytes", 1024),
    maxQueuedBytesPerPeer: ms("maxQueuedBytesPerPeer", 1024),
    stallTimeoutMs: ms("stallTimeoutMs", 1),
    closeTimeoutMs: ms("closeTimeoutMs", 0),
    maxWaitersPerPeer: ms("maxWaitersPerPeer", 1),
    logger: config.logger ?? createLogger({ name: `mesh ${config.self}` }),
    ...(config.tls === undefined ? {} : { tls: checkTls(config.tls, where) }),
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
