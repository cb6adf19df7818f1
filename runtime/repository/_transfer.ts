/**
 * Moves blobs between nodes over the mesh (protocol in `_protocol.ts`): pushes a blob to a replica and waits
 * for its durable acknowledgement, fetches a blob from a holder, and serves both kinds of request from peers.
 *
 * Flow control: every chunk waits for `mesh.writable(peer)`, which holds back until the peer's queue is below
 * half its bound, so a big transfer never crowds out consensus traffic or makes the mesh cut the peer off.
 * A transfer fails at once when its peer goes down, and on silence longer than `idleTimeoutMs`.
 */

import { AetherError, type Logger, type NodeId, randomHex } from "../core/mod.ts";
import type { Mesh } from "../net/mod.ts";
import { sha256Hex } from "../../slices/host.ts";
import { type BlobStore, CorruptBlobError } from "./blob_store.ts";
import {
  CHUNK_BYTES,
  ChunkAssembler,
  chunksOf,
  parseRepoMessage,
  REPO_CHANNEL,
  type RepoMessage,
} from "./_protocol.ts";

/** The part of the mesh transfers use. */
export type TransferMesh = Pick<Mesh, "send" | "writable" | "onMessage" | "onPeerDown" | "isConnected">;

export interface TransferOptions {
  self: NodeId;
  mesh: TransferMesh;
  store: BlobStore;
  log: Logger;
  /** Largest blob this node accepts from a peer. */
  maxBytes: number;
  /** A transfer with no progress for this long fails. */
  idleTimeoutMs?: number;
  chunkBytes?: number;
  /** At most this many blobs are being received at once (each is held in memory until complete). */
  maxIncoming?: number;
  /** Called when a peer's push was stored here (the repository pins it until its record is committed). */
  onReceived?: (sha256: string, from: NodeId) => void;
  /** Called when this node found its own copy corrupt while serving a peer (the repository refetches it). */
  onCorrupt?: (sha256: string) => void;
}

export interface TransferStats {
  pushesSent: number;
  pushesReceived: number;
  fetchesSent: number;
  fetchesServed: number;
  failures: number;
}

/** Waits for the next message(s) of one outgoing transfer. */
class Pending {
  readonly #queue: RepoMessage[] = [];
  #waiter: ((m: RepoMessage | Error) => void) | null = null;
  #failure: Error | null = null;

  /** A fetch's blob, once complete. */
  bytes: Uint8Array | undefined;

  constructor(readonly peer: NodeId, readonly kind: "put" | "get", readonly sha256: string) {}

  deliver(message: RepoMessage): void {
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter(message);
    } else this.#queue.push(message);
  }

  fail(error: Error): void {
    this.#failure ??= error;
    if (this.#waiter) {
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter(error);
    }
  }

  next(timeoutMs: number, what: string): Promise<RepoMessage> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(new AetherError("timeout", `${this.peer} did not answer within ${timeoutMs} ms (${what})`));
      }, timeoutMs);
      this.#waiter = (m) => {
        clearTimeout(timer);
        if (m instanceof Error) reject(m);
        else resolve(m);
      };
    });
  }
}

/** A blob being received from a peer (a push to this node, or the answer to this node's fetch). */
interface Incoming {
  peer: NodeId;
  sha256: string;
  assembler: ChunkAssembler;
  timer: ReturnType<typeof setTimeout>;
  /** A push: answer with put-done once stored. A fetch: hand the bytes to the waiting Pending. */
  kind: "put" | "get";
  id: string;
}

export class BlobTransfers {
  readonly #o: Required<Omit<TransferOptions, "onReceived" | "onCorrupt">> & TransferOptions;
  readonly #prefix = `${randomHex(4)}`;
  #counter = 0;
  /** Outgoing transfers (this node's pushes and fetches), by id. */
  readonly #pending = new Map<string, Pending>();
  /** Blobs arriving here, by `${peer}/${id}`. */
  readonly #incoming = new Map<string, Incoming>();
  /** Serving a peer's fetch: abort controllers by `${peer}/${id}`. */
  readonly #serving = new Map<string, AbortController>();
  readonly #unsubscribe: (() => void)[] = [];
  readonly stats: TransferStats = {
    pushesSent: 0,
    pushesReceived: 0,
    fetchesSent: 0,
    fetchesServed: 0,
    failures: 0,
  };
  #stopped = false;

  constructor(options: TransferOptions) {
    this.#o = {
      ...options,
      idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
      chunkBytes: options.chunkBytes ?? CHUNK_BYTES,
      maxIncoming: options.maxIncoming ?? 8,
    };
    this.#unsubscribe.push(
      options.mesh.onMessage(REPO_CHANNEL, (from, message) => this.#receive(from, message)),
      options.mesh.onPeerDown((peer, reason) => this.#peerDown(peer, reason)),
    );
  }

  stop(): void {
    this.#stopped = true;
    for (const off of this.#unsubscribe) off();
    const error = new AetherError("unavailable", "the node is stopping");
    for (const pending of this.#pending.values()) pending.fail(error);
    for (const incoming of this.#incoming.values()) clearTimeout(incoming.timer);
    for (const serving of this.#serving.values()) serving.abort();
    this.#pending.clear();
    this.#incoming.clear();
    this.#serving.clear();
  }

  // ---------------------------------------------------------------------------------------------- outgoing

  /** Stores `bytes` on `peer`; resolves once the peer reports it verified and durably stored. */
  async push(peer: NodeId, sha256: string, bytes: Uint8Array): Promise<void> {
    const id = this.#newId();
    const pending = this.#open(id, peer, "put", sha256);
    this.stats.pushesSent++;
    try {
      this.#send(peer, { t: "put", id, sha256, sizeBytes: bytes.length });
      const ready = await pending.next(this.#o.idleTimeoutMs, "put offer");
      if (ready.t === "put-done" && !ready.ok) throw this.#refused(peer, ready.reason);
      if (ready.t !== "put-ready") throw this.#unexpected(peer, ready);
      if (ready.have) return;
      await this.#sendChunks(peer, id, bytes);
      const done = await pending.next(this.#o.idleTimeoutMs, "durable store");
      if (done.t !== "put-done") throw this.#unexpected(peer, done);
      if (!done.ok) throw this.#refused(peer, done.reason);
    } catch (e) {
      this.stats.failures++;
      this.#sendQuietly(peer, { t: "abort", id, reason: (e as Error).message });
      throw e;
    } finally {
      this.#pending.delete(id);
    }
  }

  /** Fetches a blob from `peer`, verified against `sha256` (not stored: the caller decides). */
  async fetch(peer: NodeId, sha256: string): Promise<Uint8Array> {
    const id = this.#newId();
    const pending = this.#open(id, peer, "get", sha256);
    this.stats.fetchesSent++;
    try {
      this.#send(peer, { t: "get", id, sha256 });
      const begin = await pending.next(this.#o.idleTimeoutMs, "fetch");
      if (begin.t === "get-missing") {
        throw new AetherError("not_found", `${peer} cannot serve blob ${sha256}: ${begin.reason}`);
      }
      if (begin.t !== "get-begin") throw this.#unexpected(peer, begin);
      // #receive started assembling at get-begin (chunks may follow in the same frame); the idle timer of the
      // incoming transfer fails this wait if the holder goes silent, so this bound is only a backstop.
      const done = await pending.next(this.#o.idleTimeoutMs * 10, "fetch data");
      if (done.t !== "put-done" || !done.ok || !pending.bytes) {
        throw new AetherError("unavailable", `fetch of ${sha256} from ${peer} failed: ${describe(done)}`);
      }
      const actual = await sha256Hex(pending.bytes);
      if (actual !== sha256) {
        throw new AetherError("unavailable", `${peer} sent bytes hashing to ${actual}, not ${sha256}`);
      }
      return pending.bytes;
    } catch (e) {
      this.stats.failures++;
      this.#dropIncoming(`${peer}/${id}`);
      this.#sendQuietly(peer, { t: "abort", id, reason: (e as Error).message });
      throw e;
    } finally {
      this.#pending.delete(id);
    }
  }

  #newId(): string {
    return `${this.#o.self}.${this.#prefix}.${++this.#counter}`;
  }

  #open(id: string, peer: NodeId, kind: "put" | "get", sha256: string): Pending {
    if (this.#stopped) throw new AetherError("unavailable", "the node is stopping");
    const pending = new Pending(peer, kind, sha256);
    this.#pending.set(id, pending);
    return pending;
  }

  async #sendChunks(peer: NodeId, id: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    let i = 0;
    for (const data of chunksOf(bytes, this.#o.chunkBytes)) {
      if (signal?.aborted) throw new AetherError("unavailable", `transfer ${id} to ${peer} was aborted`);
      if (!(await this.#writable(peer, signal))) {
        throw new AetherError("unavailable", `${peer} went away during the transfer`);
      }
      this.#send(peer, { t: "chunk", id, i: i++, data });
    }
  }

  /** mesh.writable, bounded by the idle timeout (a peer that never drains is as good as gone). */
  async #writable(peer: NodeId, signal?: AbortSignal): Promise<boolean> {
    const timeout = AbortSignal.timeout(this.#o.idleTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    return await this.#o.mesh.writable(peer, combined);
  }

  #send(peer: NodeId, message: RepoMessage): void {
    if (!this.#o.mesh.send(peer, REPO_CHANNEL, message)) {
      throw new AetherError("unavailable", `${peer} is not reachable (mesh refused a ${message.t} message)`);
    }
  }

  #sendQuietly(peer: NodeId, message: RepoMessage): void {
    try {
      this.#o.mesh.send(peer, REPO_CHANNEL, message);
    } catch {
      // Best effort: the peer times the transfer out anyway.
    }
  }

  #refused(peer: NodeId, reason: string | undefined): AetherError {
    return new AetherError("unavailable", `${peer} did not store the blob: ${reason ?? "no reason given"}`);
  }

  #unexpected(peer: NodeId, message: RepoMessage): AetherError {
    return new AetherError("unavailable", `${peer} answered out of protocol: ${describe(message)}`);
  }

  // ---------------------------------------------------------------------------------------------- incoming

  #receive(from: NodeId, raw: unknown): void {
    if (this.#stopped) return;
    const message = parseRepoMessage(raw);
    if (typeof message === "string") {
      this.#o.log.warn("malformed repository message", { from, problem: message });
      return;
    }
    switch (message.t) {
      case "put":
        void this.#acceptPut(from, message).catch((e) =>
          this.#o.log.error("receiving a blob failed", { from, error: (e as Error).message })
        );
        return;
      case "get":
        void this.#serve(from, message).catch((e) =>
          this.#o.log.error("serving a blob failed", { from, error: (e as Error).message })
        );
        return;
      case "chunk":
        return this.#chunk(from, message);
      case "abort": {
        const key = `${from}/${message.id}`;
        this.#serving.get(key)?.abort();
        if (this.#incoming.has(key)) this.#dropIncoming(key);
        const pending = this.#pending.get(message.id);
        if (pending?.peer === from) {
          pending.fail(new AetherError("unavailable", `${from} aborted the transfer: ${message.reason}`));
        }
        return;
      }
      case "get-begin":
        return this.#beginFetched(from, message);
      default: {
        const pending = this.#pending.get(message.id);
        if (pending?.peer === from) pending.deliver(message);
      }
    }
  }

  /** Starts assembling a fetched blob right here: its first chunk may be handled before the fetch resumes. */
  #beginFetched(from: NodeId, m: Extract<RepoMessage, { t: "get-begin" }>): void {
    const pending = this.#pending.get(m.id);
    if (!pending || pending.peer !== from || pending.kind !== "get") return;
    if (m.sizeBytes > this.#o.maxBytes) {
      pending.fail(
        new AetherError("too_large", `${from} offers ${m.sizeBytes} bytes, over this node's limit`),
      );
      return;
    }
    this.#track({ peer: from, sha256: pending.sha256, kind: "get", id: m.id }, m.sizeBytes);
    pending.deliver(m);
  }

  async #acceptPut(from: NodeId, m: Extract<RepoMessage, { t: "put" }>): Promise<void> {
    const refuse = (reason: string) =>
      this.#sendQuietly(from, { t: "put-done", id: m.id, ok: false, reason });
    if (m.sizeBytes > this.#o.maxBytes) {
      return refuse(`${m.sizeBytes} bytes is over this node's limit of ${this.#o.maxBytes}`);
    }
    if (this.#incoming.size >= this.#o.maxIncoming) return refuse("too many transfers in progress; retry");
    let have = false;
    try {
      have = (await this.#o.store.read(m.sha256)) !== undefined;
    } catch (e) {
      if (!(e instanceof CorruptBlobError)) throw e; // Quarantined: receive a good copy below.
    }
    this.stats.pushesReceived++;
    if (have) {
      this.#o.onReceived?.(m.sha256, from);
      this.#sendQuietly(from, { t: "put-ready", id: m.id, have: true });
      return;
    }
    this.#track({ peer: from, sha256: m.sha256, kind: "put", id: m.id }, m.sizeBytes);
    this.#sendQuietly(from, { t: "put-ready", id: m.id, have: false });
  }

  #track(what: Pick<Incoming, "peer" | "sha256" | "kind" | "id">, sizeBytes: number): void {
    const key = `${what.peer}/${what.id}`;
    const incoming: Incoming = {
      ...what,
      assembler: new ChunkAssembler(sizeBytes),
      timer: this.#idleTimer(key),
    };
    this.#incoming.set(key, incoming);
  }

  #idleTimer(key: string): ReturnType<typeof setTimeout> {
    return setTimeout(() => {
      const incoming = this.#incoming.get(key);
      if (!incoming) return;
      this.#o.log.warn("blob transfer went silent", { peer: incoming.peer, sha256: incoming.sha256 });
      this.#dropIncoming(key);
      if (incoming.kind === "get") {
        this.#pending.get(incoming.id)?.fail(
          new AetherError("timeout", `${incoming.peer} sent nothing for ${this.#o.idleTimeoutMs} ms`),
        );
      }
    }, this.#o.idleTimeoutMs);
  }

  #dropIncoming(key: string): void {
    const incoming = this.#incoming.get(key);
    if (!incoming) return;
    clearTimeout(incoming.timer);
    this.#incoming.delete(key);
  }

  #chunk(from: NodeId, m: Extract<RepoMessage, { t: "chunk" }>): void {
    const key = `${from}/${m.id}`;
    const incoming = this.#incoming.get(key);
    if (!incoming) return; // Aborted or timed out: late chunks are dropped.
    clearTimeout(incoming.timer);
    let complete: boolean;
    try {
      complete = incoming.assembler.add(m.i, m.data);
    } catch (e) {
      this.#dropIncoming(key);
      const reason = `broken transfer: ${(e as Error).message}`;
      if (incoming.kind === "put") this.#sendQuietly(from, { t: "put-done", id: m.id, ok: false, reason });
      else this.#pending.get(m.id)?.fail(new AetherError("unavailable", `${from}: ${reason}`));
      return;
    }
    if (!complete) {
      incoming.timer = this.#idleTimer(key);
      return;
    }
    this.#dropIncoming(key);
    if (incoming.kind === "get") {
      const pending = this.#pending.get(m.id);
      if (pending) {
        pending.bytes = incoming.assembler.bytes();
        pending.deliver({ t: "put-done", id: m.id, ok: true });
      }
      return;
    }
    void this.#storeReceived(from, m.id, incoming);
  }

  async #storeReceived(from: NodeId, id: string, incoming: Incoming): Promise<void> {
    try {
      await this.#o.store.put(incoming.sha256, incoming.assembler.bytes());
      this.#o.onReceived?.(incoming.sha256, from);
      this.#sendQuietly(from, { t: "put-done", id, ok: true });
    } catch (e) {
      this.stats.failures++;
      this.#o.log.warn("could not store a pushed blob", { from, sha256: incoming.sha256, error: e });
      this.#sendQuietly(from, { t: "put-done", id, ok: false, reason: (e as Error).message });
    }
  }

  async #serve(from: NodeId, m: Extract<RepoMessage, { t: "get" }>): Promise<void> {
    const key = `${from}/${m.id}`;
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.#o.store.read(m.sha256);
    } catch (e) {
      if (!(e instanceof CorruptBlobError)) throw e;
      this.#o.onCorrupt?.(m.sha256);
      return this.#sendQuietly(from, { t: "get-missing", id: m.id, reason: "this node's copy is corrupt" });
    }
    if (!bytes) return this.#sendQuietly(from, { t: "get-missing", id: m.id, reason: "not held here" });
    const controller = new AbortController();
    this.#serving.set(key, controller);
    try {
      this.#send(from, { t: "get-begin", id: m.id, sizeBytes: bytes.length });
      await this.#sendChunks(from, m.id, bytes, controller.signal);
      this.stats.fetchesServed++;
    } catch (e) {
      this.stats.failures++;
      this.#o.log.debug("serving a blob stopped", {
        to: from,
        sha256: m.sha256,
        error: (e as Error).message,
      });
    } finally {
      this.#serving.delete(key);
    }
  }

  #peerDown(peer: NodeId, reason: string): void {
    const error = new AetherError("unavailable", `${peer} went down during the transfer (${reason})`);
    for (const pending of this.#pending.values()) if (pending.peer === peer) pending.fail(error);
    for (const [key, incoming] of this.#incoming) if (incoming.peer === peer) this.#dropIncoming(key);
    for (const [key, serving] of this.#serving) if (key.startsWith(`${peer}/`)) serving.abort();
  }
}

function describe(message: RepoMessage): string {
  switch (message.t) {
    case "put-done":
      return message.ok ? "done" : `refused: ${message.reason ?? "no reason"}`;
    case "get-missing":
    case "abort":
      return `${message.t}: ${message.reason}`;
    default:
      return message.t;
  }
}
