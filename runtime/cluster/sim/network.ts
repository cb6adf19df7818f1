/**
 * The simulated mesh. Like the WebSocket mesh, messages travel on connections between two running processes:
 * a connection comes up after a handshake, and each end learns that it went down on its own (at once when the
 * other process dies and its socket closes; after the liveness deadline when the link just goes silent). A
 * message in flight is lost when its connection is replaced, and a send with no connection is refused.
 *
 * On top of that, the fault menu: per-message delay, loss, duplication and reordering, and cut links (a
 * partition cuts every link between two groups; a one-link cut only the link between two members, each still
 * seeing the others). Every message is deep-copied, so no member can see another's objects, as over a wire.
 */

import { AetherError, type NodeId, type Rng, type VirtualTime } from "../../core/mod.ts";
import { copyOf } from "./_copy.ts";

export interface NetworkSettings {
  lossRate: number;
  duplicateRate: number;
  /** Chance that a message takes a long detour, arriving after later ones. */
  reorderRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  maxDetourMs: number;
  /** How long each end takes to notice a silent (cut) link, [min, max] ms: the mesh's deadAfterMs. */
  silenceDetectMs: [number, number];
  /** How long the ends of a dead process's connections take to notice (the socket closes), [min, max] ms. */
  closeDetectMs: [number, number];
  /** From "both ends could talk" to a connection: re-dial backoff plus handshake, [min, max] ms. */
  connectMs: [number, number];
  /** A send of a bigger message throws, as the mesh's does (size estimated as encoded); absent: no limit. */
  maxFrameBytes?: number;
}

/** What the network needs from a member. */
export interface Endpoint {
  readonly id: NodeId;
  /** Bumped at every start: a connection belongs to one process of each end. */
  readonly incarnation: number;
  readonly alive: boolean;
  deliver(from: NodeId, channel: string, message: unknown): void;
  peerUp(peer: NodeId): void;
  peerDown(peer: NodeId): void;
}

interface Link {
  /** How many faults cut this link now (a partition and a one-link cut may overlap); cut while above 0. */
  cuts: number;
  /** Bumped whenever the current connection dies; a message or handshake of an older one is void. */
  epoch: number;
  /** The connection is established (both ends were told). */
  up: boolean;
  incarnations?: [number, number];
}

export class SimNetwork {
  readonly #rng: Rng;
  readonly #settings: NetworkSettings;
  readonly #time: VirtualTime;
  readonly #endpoints = new Map<NodeId, Endpoint>();
  readonly #links = new Map<string, Link>();
  /** views[a][b]: the epoch of the connection to b that a believes is up. */
  readonly #views = new Map<NodeId, Map<NodeId, number>>();
  #lossRate: number;
  sent = 0;
  delivered = 0;
  /** Snapshot chunks delivered (runtime/cluster/_snapshot_transfer.ts). */
  snapshotChunks = 0;
  /** Offers of snapshots larger than maxFrameBytes delivered (they could never travel in one message). */
  snapshotOffersOverFrame = 0;

  constructor(rng: Rng, settings: NetworkSettings, time: VirtualTime, endpoints: Endpoint[]) {
    this.#rng = rng;
    this.#settings = settings;
    this.#lossRate = settings.lossRate;
    this.#time = time;
    for (const e of endpoints) {
      this.#endpoints.set(e.id, e);
      this.#views.set(e.id, new Map());
    }
  }

  /** `from` has a connection to `to` that it believes is up (what the mesh's isConnected says). */
  isConnected(from: NodeId, to: NodeId): boolean {
    return this.#views.get(from)!.has(to);
  }

  /** The link between the two is not cut (they could talk if both run). */
  linked(a: NodeId, b: NodeId): boolean {
    return this.#link(a, b).cuts === 0;
  }

  get cutLinks(): number {
    let n = 0;
    for (const link of this.#links.values()) if (link.cuts > 0) n++;
    return n;
  }

  /** Sends on `from`'s connection to `to`; false when it has none (the mesh refuses the send). */
  send(from: Endpoint, to: NodeId, channel: string, message: unknown): boolean {
    const epoch = this.#views.get(from.id)!.get(to);
    if (epoch === undefined) return false;
    const maxFrameBytes = this.#settings.maxFrameBytes;
    if (maxFrameBytes !== undefined) {
      const bytes = encodedSize(message) + channel.length + 8;
      if (bytes > maxFrameBytes) {
        throw new AetherError(
          "too_large",
          `mesh message on channel "${channel}" needs a ${bytes}-byte frame; the limit is ${maxFrameBytes}`,
        );
      }
    }
    this.sent++;
    const link = this.#link(from.id, to);
    if (link.epoch !== epoch || this.#rng.chance(this.#lossRate)) return true;
    const copies = this.#rng.chance(this.#settings.duplicateRate) ? 2 : 1;
    const receiver = this.#endpoints.get(to)!;
    for (let i = 0; i < copies; i++) {
      const copy = copyOf(message);
      this.#time.after(this.#delay(), () => {
        if (link.epoch !== epoch || !receiver.alive) return;
        this.delivered++;
        this.#count(copy);
        receiver.deliver(from.id, channel, copy);
      });
    }
    return true;
  }

  #count(message: unknown): void {
    const m = message as { t?: unknown; bytes?: unknown } | null;
    if (m?.t === "snapChunk") this.snapshotChunks++;
    const limit = this.#settings.maxFrameBytes;
    if (m?.t === "snapOffer" && limit !== undefined && Number(m.bytes) > limit) {
      this.snapshotOffersOverFrame++;
    }
  }

  /** A member started: it connects to every running member it has a link to. */
  started(member: Endpoint): void {
    for (const peer of this.#endpoints.values()) {
      if (peer !== member && peer.alive) this.#connectLater(member, peer);
    }
  }

  /** A member's process died: its connections close, and the other ends notice shortly. */
  stopped(member: Endpoint): void {
    this.#views.get(member.id)!.clear();
    for (const peer of this.#endpoints.values()) {
      if (peer === member) continue;
      const link = this.#link(member.id, peer.id);
      this.#breakConnection(link);
      this.#noticeLater(peer, member.id, this.#settings.closeDetectMs);
    }
  }

  /** Cuts every link between the two groups. */
  partition(groupA: NodeId[], groupB: NodeId[]): void {
    for (const a of groupA) for (const b of groupB) this.cut(a, b);
  }

  /** Cuts the link between a and b: it goes silent, and each end notices after the liveness deadline. */
  cut(a: NodeId, b: NodeId): void {
    const link = this.#link(a, b);
    if (link.cuts++ > 0) return;
    this.#breakConnection(link);
    this.#noticeLater(this.#endpoints.get(a)!, b, this.#settings.silenceDetectMs);
    this.#noticeLater(this.#endpoints.get(b)!, a, this.#settings.silenceDetectMs);
  }

  /** Undoes one cut of the link between a and b; when none is left, the ends connect again. */
  restore(a: NodeId, b: NodeId): void {
    const link = this.#link(a, b);
    if (link.cuts === 0 || --link.cuts > 0) return;
    const ea = this.#endpoints.get(a)!;
    const eb = this.#endpoints.get(b)!;
    if (ea.alive && eb.alive) this.#connectLater(ea, eb);
  }

  /** Restores every cut link. */
  healAll(): void {
    for (const [key, link] of this.#links) {
      if (link.cuts === 0) continue;
      const [a, b] = key.split("|") as [NodeId, NodeId];
      link.cuts = 1;
      this.restore(a, b);
    }
  }

  /** The end of the faulty period: messages are no longer lost (they may still be late or duplicated). */
  calm(): void {
    this.#lossRate = 0;
  }

  /** Every member alive believes it is connected to every other one, and no link is cut. */
  get whole(): boolean {
    for (const a of this.#endpoints.values()) {
      if (!a.alive) return false;
      for (const b of this.#endpoints.values()) {
        if (a !== b && (!this.isConnected(a.id, b.id) || !this.linked(a.id, b.id))) return false;
      }
    }
    return true;
  }

  #breakConnection(link: Link): void {
    link.epoch++;
    link.up = false;
    link.incarnations = undefined;
  }

  /** After `range` ms, `at` learns that its connection to `peer` is gone (if it still believes in it). */
  #noticeLater(at: Endpoint, peer: NodeId, range: [number, number]): void {
    const believed = this.#views.get(at.id)!.get(peer);
    if (believed === undefined || !at.alive) return;
    const incarnation = at.incarnation;
    this.#time.after(this.#rng.int(range[0], range[1]), () => {
      const view = this.#views.get(at.id)!;
      if (at.incarnation !== incarnation || view.get(peer) !== believed) return;
      view.delete(peer);
      at.peerDown(peer);
    });
  }

  /** Both ends get a new connection after the connect delay, if nothing changed meanwhile. */
  #connectLater(a: Endpoint, b: Endpoint): void {
    const link = this.#link(a.id, b.id);
    if (link.cuts > 0) return;
    const [ia, ib] = [a.incarnation, b.incarnation];
    const epoch = link.epoch;
    this.#time.after(this.#rng.int(this.#settings.connectMs[0], this.#settings.connectMs[1]), () => {
      if (link.cuts > 0 || link.epoch !== epoch || link.up) return;
      if (!a.alive || !b.alive || a.incarnation !== ia || b.incarnation !== ib) return;
      link.epoch++;
      link.up = true;
      link.incarnations = [ia, ib];
      this.#open(a, b.id, link.epoch);
      this.#open(b, a.id, link.epoch);
    });
  }

  /** `at` learns of a new connection; one it still believed in is replaced silently (no down, then up). */
  #open(at: Endpoint, peer: NodeId, epoch: number): void {
    this.#views.get(at.id)!.set(peer, epoch);
    at.peerUp(peer);
  }

  #delay(): number {
    const s = this.#settings;
    const base = this.#rng.int(s.minDelayMs, s.maxDelayMs);
    return this.#rng.chance(s.reorderRate) ? base + this.#rng.int(1, s.maxDetourMs) : base;
  }

  #link(a: NodeId, b: NodeId): Link {
    const key = a < b ? `${a}|${b}` : `${b}|${a}`;
    let link = this.#links.get(key);
    if (!link) {
      link = { cuts: 0, epoch: 0, up: false };
      this.#links.set(key, link);
    }
    return link;
  }
}

/** About the size of `value` encoded on the mesh (msgpack-like: bytes and strings plus small headers). */
export function encodedSize(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength + 5;
  if (typeof value === "string") return value.length + 5;
  if (typeof value !== "object" || value === null) return 9;
  if (Array.isArray(value)) return value.reduce((sum: number, v) => sum + encodedSize(v), 5);
  let size = 5;
  for (const [key, v] of Object.entries(value)) size += key.length + 1 + encodedSize(v);
  return size;
}
