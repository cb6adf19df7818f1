/** Helpers for the mesh's own tests: in-process meshes on loopback, raw protocol clients, recording logger. */

import { Mesh, MESH_PATH, type MeshConfig, type MeshLogger } from "./mesh.ts";
import type { NodeId } from "../core/mod.ts";

export const SECRET = new TextEncoder().encode("test-cluster-secret-0123456789");
export const WRONG_SECRET = new TextEncoder().encode("not-the-cluster-secret-987654321");

export interface LogRecord {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  fields: Record<string, unknown>;
}

export function recordingLogger(): { logger: MeshLogger; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const at = (level: LogRecord["level"]) => (message: string, fields: Record<string, unknown> = {}) =>
    records.push({ level, message, fields });
  return { logger: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, records };
}

/** Polls `condition` every few milliseconds; fails with `what` after timeoutMs. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export type MeshOptions = Omit<MeshConfig, "self" | "peers" | "secret"> & { secret?: Uint8Array };

/** Starts one mesh per id on loopback port 0 and tells each the others' ports. */
export async function startMeshes(ids: NodeId[], options: MeshOptions = {}): Promise<Mesh[]> {
  const meshes = ids.map((self) =>
    new Mesh({
      self,
      peers: ids.map((id) => ({ id, host: "127.0.0.1", port: 0 })),
      secret: SECRET,
      ...options,
    })
  );
  for (const mesh of meshes) await mesh.start();
  for (const mesh of meshes) {
    for (const other of meshes) if (other !== mesh) mesh.setPeerAddress(other.self, "127.0.0.1", other.port);
  }
  return meshes;
}

export async function allConnected(meshes: Mesh[], timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () => meshes.every((m) => m.connectedPeers().length === meshes.length - 1),
    "every mesh to connect to every other",
    timeoutMs,
  );
}

// ------------------------------------------------------------------------------------------ raw protocol client

/**
 * A WebSocket client that speaks the handshake by hand (the MAC computed here, independently of
 * _handshake.ts, from the documented transcript) and records every frame it receives.
 */
export class RawClient {
  readonly received: (string | Uint8Array)[] = [];
  closeCode?: number;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;
  #waiters = new Set<() => void>();

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}${MESH_PATH}`);
    this.ws.binaryType = "arraybuffer";
    this.opened = new Promise((resolve, reject) => {
      this.ws.addEventListener("open", () => resolve(), { once: true });
      this.ws.addEventListener("error", () => reject(new Error("raw client could not connect")), {
        once: true,
      });
    });
    this.closed = new Promise((resolve) => {
      this.ws.addEventListener("close", (event) => {
        this.closeCode = event.code;
        resolve();
        this.#notify();
      });
    });
    this.ws.addEventListener("message", (event) => {
      this.received.push(typeof event.data === "string" ? event.data : new Uint8Array(event.data));
      this.#notify();
    });
  }

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }

  /** Waits until `count` frames have arrived (or the socket closed). */
  async receivedAtLeast(count: number, timeoutMs = 5000): Promise<void> {
    await waitFor(
      () => this.received.length >= count || this.closeCode !== undefined,
      `${count} frames`,
      timeoutMs,
    );
  }

  challengeNonce(): string {
    const challenge = JSON.parse(this.received[0] as string);
    return challenge.nonce;
  }

  send(data: string | Uint8Array): void {
    this.ws.send(data);
  }

  async close(): Promise<void> {
    if (this.ws.readyState !== WebSocket.CLOSED) {
      this.ws.close();
      await this.closed;
    }
  }
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** HMAC-SHA256 over the documented transcript: "aether-mesh/1", role, cluster, dialer, acceptor, nA, nD. */
export async function transcriptMac(
  secret: Uint8Array,
  role: "dialer" | "acceptor",
  parts: { cluster: string; dialer: string; acceptor: string; acceptorNonce: string; dialerNonce: string },
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    secret as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const text = [
    "aether-mesh/1",
    role,
    parts.cluster,
    parts.dialer,
    parts.acceptor,
    parts.acceptorNonce,
    parts.dialerNonce,
  ]
    .join("\n");
  return hex(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(text))));
}

/** The auth message a dialer `id` would send in reply to the challenge the client received. */
export async function authMessage(
  client: RawClient,
  options: { id: string; to: string; secret: Uint8Array; cluster?: string },
): Promise<string> {
  const dialerNonce = hex(crypto.getRandomValues(new Uint8Array(32)));
  const mac = await transcriptMac(options.secret, "dialer", {
    cluster: options.cluster ?? "aether",
    dialer: options.id,
    acceptor: options.to,
    acceptorNonce: client.challengeNonce(),
    dialerNonce,
  });
  return JSON.stringify({ t: "auth", v: 1, id: options.id, to: options.to, nonce: dialerNonce, mac });
}

// ------------------------------------------------------------------------------------------- socket accounting

/**
 * How many sockets this process has open, from Linux's /proc/self/fd; undefined where that cannot be read.
 * The dialer's sockets (npm `ws` over node:net, see _dialer.ts) are invisible to Deno's resource sanitizer,
 * so tests that must prove a mesh released everything count file descriptors instead.
 */
export function openSocketCount(): number | undefined {
  let count = 0;
  try {
    for (const entry of Deno.readDirSync("/proc/self/fd")) {
      try {
        if (Deno.readLinkSync(`/proc/self/fd/${entry.name}`).startsWith("socket:")) count++;
      } catch {
        // The descriptor closed while we looked (the directory handle itself, for one).
      }
    }
  } catch {
    return undefined;
  }
  return count;
}
