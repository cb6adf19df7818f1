/**
 * Catch-up snapshots in chunks. A snapshot of the whole KV state can be larger than one mesh frame
 * (runtime/net maxFrameBytes, 8 MiB): sent whole, the send throws and the answering member crashed. So a
 * member that answers a sync request with a snapshot larger than one chunk sends an offer instead (the sync
 * answer without the snapshot, plus the snapshot's phase, size and SHA-256), and the requester pulls the
 * snapshot chunk by chunk from that member, one request per chunk (flow control: at most one chunk in flight).
 * Once every byte arrived and the digest matches, the requester hands its engine the ordinary sync answer with
 * the whole snapshot, so the engine installs it atomically exactly as before (durable first, the watch hub
 * restarting at the snapshot's revision). Anything inconsistent (a chunk of another snapshot, a gap, a digest
 * mismatch, a snapshot the sender no longer holds, a silent sender) abandons the transfer; the engine's sync
 * retry then brings a fresh offer and the transfer starts again.
 *
 * Memory: the sender keeps at most one snapshot (the one it last offered, dropped when idle); the receiver at
 * most one transfer, of at most maxSnapshotBytes (a bigger offer is refused with an error in the log).
 */

import { createHash } from "node:crypto";
import type { NodeId } from "../core/mod.ts";
import type { DecidedPhase, Snapshot, SyncResponseMsg } from "../consensus/mod.ts";

/** Snapshot bytes per chunk: well within the mesh frame limit (8 MiB) with the envelope around it. */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** The largest snapshot a member accepts from a peer: the memory one transfer may hold. */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
/** A chunk not answered within this long is asked for again... */
export const SNAPSHOT_CHUNK_TIMEOUT_MS = 2_000;
/** ...up to this many times before the transfer is abandoned (and starts again from the next offer). */
export const SNAPSHOT_CHUNK_ATTEMPTS = 3;
/** The sender drops the snapshot it holds for transfers after this long without a chunk request. */
export const SNAPSHOT_HOLD_IDLE_MS = 30_000;

/** The sync answer without its snapshot, and what the requester needs to fetch it. */
export interface SnapshotOfferMsg<C = unknown> {
  t: "snapOffer";
  nonce: number;
  lastDecided: number;
  decisions: DecidedPhase<C>[];
  phase: number;
  bytes: number;
  chunkBytes: number;
  sha256: string;
}

/** "Send me the bytes of snapshot `phase` from `offset`." */
export interface SnapshotGetMsg {
  t: "snapGet";
  phase: number;
  offset: number;
}

/** Bytes of snapshot `phase` from `offset`; `gone` when the sender no longer holds that snapshot. */
export interface SnapshotChunkMsg {
  t: "snapChunk";
  phase: number;
  offset: number;
  data?: Uint8Array;
  gone?: boolean;
}

export type SnapshotTransferMsg<C = unknown> = SnapshotOfferMsg<C> | SnapshotGetMsg | SnapshotChunkMsg;

/** True for the messages of this file (the replica handles them; everything else goes to the engine). */
export function isSnapshotTransferMsg(message: unknown): message is SnapshotTransferMsg {
  if (typeof message !== "object" || message === null) return false;
  const t = (message as { t?: unknown }).t;
  return t === "snapOffer" || t === "snapGet" || t === "snapChunk";
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** The sending side: holds the one snapshot it offers and serves its chunks. */
export class SnapshotSender {
  readonly #chunkBytes: number;
  #held?: { phase: number; data: Uint8Array; sha256: string; usedAtMs: number };

  constructor(chunkBytes: number) {
    this.#chunkBytes = chunkBytes;
  }

  /** Whether `snapshot` must travel in chunks (it does not fit one). */
  needsChunks(snapshot: Snapshot): boolean {
    return snapshot.data.byteLength > this.#chunkBytes;
  }

  /** The offer for `snapshot`, which is held from now on for chunk requests. */
  offer<C>(
    snapshot: Snapshot,
    answer: { nonce: number; lastDecided: number; decisions: DecidedPhase<C>[] },
    nowMs: number,
  ): SnapshotOfferMsg<C> {
    if (this.#held?.phase !== snapshot.phase || this.#held.data.byteLength !== snapshot.data.byteLength) {
      this.#held = {
        phase: snapshot.phase,
        data: snapshot.data,
        sha256: sha256Hex(snapshot.data),
        usedAtMs: nowMs,
      };
    }
    this.#held.usedAtMs = nowMs;
    return {
      t: "snapOffer",
      ...answer,
      phase: snapshot.phase,
      bytes: snapshot.data.byteLength,
      chunkBytes: this.#chunkBytes,
      sha256: this.#held.sha256,
    };
  }

  /** The answer to a chunk request (`gone` when the snapshot asked for is no longer held). */
  chunk(request: SnapshotGetMsg, nowMs: number): SnapshotChunkMsg {
    const held = this.#held;
    const { phase, offset } = request;
    if (!held || held.phase !== phase || !isNonNegativeInt(offset) || offset >= held.data.byteLength) {
      return { t: "snapChunk", phase, offset, gone: true };
    }
    held.usedAtMs = nowMs;
    // A copy: a view would carry (and some codecs encode) the whole buffer behind it.
    return { t: "snapChunk", phase, offset, data: held.data.slice(offset, offset + this.#chunkBytes) };
  }

  /** Drops the held snapshot once nobody fetched from it for a while. */
  expire(nowMs: number): void {
    if (this.#held && nowMs - this.#held.usedAtMs > SNAPSHOT_HOLD_IDLE_MS) this.#held = undefined;
  }
}

interface Transfer<C> {
  from: NodeId;
  offer: SnapshotOfferMsg<C>;
  chunks: Uint8Array[];
  received: number;
  askedAtMs: number;
  attempts: number;
  startedAtMs: number;
}

/** What the receiving side asks of the replica: a request to send, or a complete sync answer for the engine. */
export type ReceiverAction<C> =
  | { type: "send"; to: NodeId; msg: SnapshotGetMsg }
  | { type: "complete"; from: NodeId; msg: SyncResponseMsg<C>; fetched?: { chunks: number; ms: number } }
  | { type: "abandoned"; reason: string }
  | { type: "refused"; reason: string }
  | { type: "none" };

/** The receiving side: at most one transfer at a time, of at most maxSnapshotBytes. */
export class SnapshotReceiver<C> {
  readonly #maxSnapshotBytes: number;
  #transfer?: Transfer<C>;
  /** The phase of the last offer refused for its size (logged once, not at every retry). */
  #refusedPhase = -1;

  constructor(maxSnapshotBytes: number) {
    this.#maxSnapshotBytes = maxSnapshotBytes;
  }

  get inProgress(): { from: NodeId; phase: number; received: number; bytes: number } | undefined {
    const t = this.#transfer;
    return t && { from: t.from, phase: t.offer.phase, received: t.received, bytes: t.offer.bytes };
  }

  /**
   * An offer: starts a transfer, or joins the one under way for the same snapshot (keeping the newest answer
   * around it). `lastDecided` is the engine's: a snapshot it is already past is not fetched, and the answer
   * is handed on without it.
   */
  onOffer(from: NodeId, offer: SnapshotOfferMsg<C>, lastDecided: number, nowMs: number): ReceiverAction<C> {
    const bad = offerProblem(offer);
    if (bad) return { type: "abandoned", reason: `malformed snapshot offer from ${from}: ${bad}` };
    if (offer.phase <= lastDecided) return { type: "complete", from, msg: answerOf(offer) };
    if (offer.bytes > this.#maxSnapshotBytes) {
      if (this.#refusedPhase === offer.phase) return { type: "none" };
      this.#refusedPhase = offer.phase;
      return {
        type: "refused",
        reason: `snapshot of phase ${offer.phase} from ${from} has ${offer.bytes} bytes, more than the ` +
          `${this.#maxSnapshotBytes} bytes this member accepts (maxSnapshotBytes); it cannot catch up from it`,
      };
    }
    const current = this.#transfer;
    if (current && current.offer.phase === offer.phase && current.offer.sha256 === offer.sha256) {
      // The same snapshot: keep fetching from where we are, with the freshest answer around it.
      if (current.from === from) current.offer = offer;
      return { type: "none" };
    }
    if (current && current.offer.phase > offer.phase) return { type: "none" };
    this.#transfer = {
      from,
      offer,
      chunks: [],
      received: 0,
      askedAtMs: nowMs,
      attempts: 1,
      startedAtMs: nowMs,
    };
    return this.#ask(this.#transfer);
  }

  onChunk(from: NodeId, chunk: SnapshotChunkMsg, nowMs: number): ReceiverAction<C> {
    const t = this.#transfer;
    if (!t || t.from !== from || t.offer.phase !== chunk.phase) return { type: "none" };
    if (chunk.gone) return this.#abandon(`${from} no longer holds snapshot ${chunk.phase}`);
    if (chunk.offset !== t.received) return { type: "none" }; // a duplicate or late answer to a retry
    const expected = Math.min(t.offer.chunkBytes, t.offer.bytes - t.received);
    if (!(chunk.data instanceof Uint8Array) || chunk.data.byteLength !== expected) {
      return this.#abandon(
        `chunk at ${chunk.offset} of snapshot ${chunk.phase} from ${from} has the wrong size`,
      );
    }
    t.chunks.push(chunk.data);
    t.received += chunk.data.byteLength;
    t.attempts = 1;
    t.askedAtMs = nowMs;
    if (t.received < t.offer.bytes) return this.#ask(t);
    this.#transfer = undefined;
    const data = concat(t.chunks, t.offer.bytes);
    if (sha256Hex(data) !== t.offer.sha256) {
      return {
        type: "abandoned",
        reason: `snapshot ${t.offer.phase} from ${from} does not match its digest`,
      };
    }
    return {
      type: "complete",
      from,
      msg: { ...answerOf(t.offer), snapshot: { phase: t.offer.phase, data } },
      fetched: { chunks: t.chunks.length, ms: Math.round(nowMs - t.startedAtMs) },
    };
  }

  /** Timer input: asks again for a chunk not answered in time, and gives up after a few attempts. */
  tick(nowMs: number, lastDecided: number, connected: (id: NodeId) => boolean): ReceiverAction<C> {
    const t = this.#transfer;
    if (!t) return { type: "none" };
    if (t.offer.phase <= lastDecided) {
      this.#transfer = undefined;
      return { type: "none" };
    }
    if (!connected(t.from)) return this.#abandon(`lost the connection to ${t.from}`);
    if (nowMs - t.askedAtMs < SNAPSHOT_CHUNK_TIMEOUT_MS) return { type: "none" };
    if (t.attempts >= SNAPSHOT_CHUNK_ATTEMPTS) {
      return this.#abandon(`${t.from} did not send the chunk at ${t.received} in ${t.attempts} attempts`);
    }
    t.attempts++;
    t.askedAtMs = nowMs;
    return this.#ask(t);
  }

  #ask(t: Transfer<C>): ReceiverAction<C> {
    return { type: "send", to: t.from, msg: { t: "snapGet", phase: t.offer.phase, offset: t.received } };
  }

  #abandon(reason: string): ReceiverAction<C> {
    const t = this.#transfer!;
    this.#transfer = undefined;
    return { type: "abandoned", reason: `snapshot transfer of phase ${t.offer.phase} abandoned: ${reason}` };
  }
}

function answerOf<C>(offer: SnapshotOfferMsg<C>): SyncResponseMsg<C> {
  return { t: "syncRes", nonce: offer.nonce, lastDecided: offer.lastDecided, decisions: offer.decisions };
}

function offerProblem(o: SnapshotOfferMsg<unknown>): string | undefined {
  if (!isNonNegativeInt(o.phase) || o.phase === 0) return "phase must be a positive integer";
  if (!isNonNegativeInt(o.bytes) || o.bytes === 0) return "bytes must be a positive integer";
  if (!isNonNegativeInt(o.chunkBytes) || o.chunkBytes === 0) return "chunkBytes must be a positive integer";
  if (typeof o.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(o.sha256)) return "sha256 must be 64 hex digits";
  if (!isNonNegativeInt(o.nonce) || !isNonNegativeInt(o.lastDecided)) return "nonce and lastDecided";
  if (!Array.isArray(o.decisions)) return "decisions must be an array";
  return undefined;
}

function concat(chunks: Uint8Array[], bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.byteLength;
  }
  return data;
}

/** Bytes a decided batch takes in a message besides its commands (ids, phase, envelope). */
const DECISION_OVERHEAD_BYTES = 128;

/**
 * A sync answer whose decisions exceed `maxBytes` (the engine answers from memory with up to 64 decisions,
 * whatever their size: 64 batches of 1 MiB do not fit one mesh frame) as several answers in phase order, each
 * within `maxBytes` (a single decision may exceed it alone). The requester applies them as they come.
 */
export function splitSyncResponse<C>(
  msg: SyncResponseMsg<C>,
  maxBytes: number,
  commandBytes: (command: C) => number,
): SyncResponseMsg<C>[] {
  const parts: SyncResponseMsg<C>[] = [];
  let decisions: DecidedPhase<C>[] = [];
  let bytes = 0;
  for (const d of msg.decisions) {
    let size = DECISION_OVERHEAD_BYTES;
    for (const command of d.batch?.commands ?? []) size += commandBytes(command);
    if (decisions.length > 0 && bytes + size > maxBytes) {
      parts.push({ ...msg, decisions });
      decisions = [];
      bytes = 0;
    }
    decisions.push(d);
    bytes += size;
  }
  if (parts.length === 0) return [msg];
  parts.push({ ...msg, decisions });
  return parts;
}
