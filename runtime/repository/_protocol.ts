/**
 * The repository's node-to-node protocol on the mesh channel "repo", and its pure parts: message shapes and
 * their validation, cutting a blob into chunks and putting it back together, and which nodes a push goes to or
 * a fetch asks first. No IO here: `_transfer.ts` drives these over the mesh.
 *
 * Push (the node that received the upload, to each replica):
 *
 *   put {id, sha256, sizeBytes}  ->            the replica already holds a verified copy: put-ready {have: true}
 *                                <- put-ready  otherwise {have: false}, then:
 *   chunk {id, i, data} * n      ->
 *                                <- put-done   {ok: true} once the blob is verified and durably stored
 *
 * Fetch (a node that lacks a blob, to a holder):
 *
 *   get {id, sha256}             ->
 *                                <- get-begin {sizeBytes}, then chunk {id, i, data} * n   (the holder verified
 *                                   its copy first), or get-missing {reason}
 *
 * Either side may send abort {id, reason}. The mesh delivers in order while a connection lives and drops
 * everything when it dies, so a chunk out of sequence means a broken transfer; timeouts catch silence.
 */

import type { NodeId } from "../core/mod.ts";

export const REPO_CHANNEL = "repo";

/**
 * Bytes of blob per chunk message. Well under the mesh's 8 MiB frame limit, and small enough that a push does
 * not hold the connection for long between consensus messages (the mesh queues per peer in send order).
 */
export const CHUNK_BYTES = 256 * 1024;

export type RepoMessage =
  | { t: "put"; id: string; sha256: string; sizeBytes: number }
  | { t: "put-ready"; id: string; have: boolean }
  | { t: "put-done"; id: string; ok: boolean; reason?: string }
  | { t: "get"; id: string; sha256: string }
  | { t: "get-begin"; id: string; sizeBytes: number }
  | { t: "get-missing"; id: string; reason: string }
  | { t: "chunk"; id: string; i: number; data: Uint8Array }
  | { t: "abort"; id: string; reason: string };

const SHA256 = /^[0-9a-f]{64}$/;
const TRANSFER_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_REASON_CHARS = 1024;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isSize = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isReason = (v: unknown): v is string => typeof v === "string" && v.length <= MAX_REASON_CHARS;

/** Checks a message received from a peer; returns it typed, or a sentence saying what is wrong with it. */
export function parseRepoMessage(value: unknown): RepoMessage | string {
  if (!isObject(value)) return "not an object";
  const { t, id } = value;
  if (typeof id !== "string" || !TRANSFER_ID.test(id)) return `message ${String(t)}: bad transfer id`;
  switch (t) {
    case "put":
      if (typeof value.sha256 !== "string" || !SHA256.test(value.sha256)) return "put: bad sha256";
      if (!isSize(value.sizeBytes)) return "put: bad sizeBytes";
      return { t, id, sha256: value.sha256, sizeBytes: value.sizeBytes };
    case "put-ready":
      if (typeof value.have !== "boolean") return "put-ready: bad have";
      return { t, id, have: value.have };
    case "put-done":
      if (typeof value.ok !== "boolean") return "put-done: bad ok";
      if (value.reason !== undefined && !isReason(value.reason)) return "put-done: bad reason";
      return { t, id, ok: value.ok, ...(value.reason === undefined ? {} : { reason: value.reason }) };
    case "get":
      if (typeof value.sha256 !== "string" || !SHA256.test(value.sha256)) return "get: bad sha256";
      return { t, id, sha256: value.sha256 };
    case "get-begin":
      if (!isSize(value.sizeBytes)) return "get-begin: bad sizeBytes";
      return { t, id, sizeBytes: value.sizeBytes };
    case "get-missing":
    case "abort":
      if (!isReason(value.reason)) return `${t}: bad reason`;
      return { t, id, reason: value.reason };
    case "chunk":
      if (!isSize(value.i)) return "chunk: bad index";
      if (!(value.data instanceof Uint8Array)) return "chunk: data is not bytes";
      return { t, id, i: value.i, data: value.data };
    default:
      return `unknown message type ${JSON.stringify(t)}`;
  }
}

/** The chunks of a blob, as views (no copies); an empty blob is one empty chunk so a transfer always ends. */
export function* chunksOf(bytes: Uint8Array, chunkBytes = CHUNK_BYTES): Generator<Uint8Array> {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) throw new RangeError(`chunk size ${chunkBytes}`);
  if (bytes.length === 0) {
    yield bytes;
    return;
  }
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
    yield bytes.subarray(offset, Math.min(offset + chunkBytes, bytes.length));
  }
}

/**
 * Puts a blob back together from chunks that must arrive in order (0, 1, 2, ...) and add up to exactly the
 * announced size. Anything else is a broken transfer: `add` throws and the caller drops it.
 */
export class ChunkAssembler {
  readonly #buffer: Uint8Array;
  #received = 0;
  #next = 0;

  constructor(readonly sizeBytes: number) {
    if (!isSize(sizeBytes)) throw new RangeError(`blob size ${sizeBytes}`);
    this.#buffer = new Uint8Array(sizeBytes);
  }

  get receivedBytes(): number {
    return this.#received;
  }

  get complete(): boolean {
    return this.#received === this.sizeBytes && this.#next > 0;
  }

  /** Adds the next chunk; true when the blob is complete. */
  add(index: number, data: Uint8Array): boolean {
    if (this.complete) throw new Error(`chunk ${index} after the blob was complete`);
    if (index !== this.#next) throw new Error(`chunk ${index} arrived where chunk ${this.#next} was due`);
    if (this.#received + data.length > this.sizeBytes) {
      throw new Error(
        `chunk ${index} overruns the announced size (${
          this.#received + data.length
        } > ${this.sizeBytes} bytes)`,
      );
    }
    if (data.length === 0 && this.sizeBytes !== 0) throw new Error(`chunk ${index} is empty`);
    this.#buffer.set(data, this.#received);
    this.#received += data.length;
    this.#next++;
    return this.complete;
  }

  /** The whole blob; only once complete. */
  bytes(): Uint8Array {
    if (!this.complete) throw new Error(`blob incomplete: ${this.#received} of ${this.sizeBytes} bytes`);
    return this.#buffer;
  }
}

/** FNV-1a over a string: a cheap, stable rank for rendezvous hashing (not a security property). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * The peers a push should go to, best first: every connected member except this one, ordered by rendezvous
 * hashing on the blob's hash, so that with fewer replicas than members different artifacts land on different
 * nodes, and the same blob always prefers the same nodes.
 */
export function replicaCandidates(
  self: NodeId,
  members: readonly NodeId[],
  isConnected: (id: NodeId) => boolean,
  sha256: string,
): NodeId[] {
  return members
    .filter((id) => id !== self && isConnected(id))
    .map((id) => ({ id, rank: fnv1a(`${sha256}/${id}`) }))
    .sort((a, b) => b.rank - a.rank || (a.id < b.id ? -1 : 1))
    .map((c) => c.id);
}

/**
 * The peers to ask for a blob, in order: the recorded holders that are connected (in record order: the node
 * that received the push first), then the other connected members, which may hold a copy the record does not
 * list (a fetch that did not get to record itself).
 */
export function fetchCandidates(
  self: NodeId,
  members: readonly NodeId[],
  holders: readonly NodeId[],
  isConnected: (id: NodeId) => boolean,
): NodeId[] {
  const connectedHolders = holders.filter((id) => id !== self && isConnected(id));
  const others = members.filter((id) => id !== self && !holders.includes(id) && isConnected(id));
  return [...connectedHolders, ...others];
}

/** How many nodes must store a push: the request's number, else the node's flag, else min(3, members). */
export function replicaCount(
  members: number,
  requested: number | undefined,
  configured: number | undefined,
): number | string {
  const count = requested ?? configured ?? Math.min(3, members);
  if (!Number.isSafeInteger(count) || count < 1) return `replicas must be a positive integer, got ${count}`;
  if (count > members) return `replicas is ${count} but the cluster has ${members} member(s)`;
  return count;
}
