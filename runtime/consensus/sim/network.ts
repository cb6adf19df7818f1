/**
 * The simulated mesh: per-message delay, loss, duplication and reordering, and partitions (links that carry
 * nothing until healed). Messages travel on connections, like the WebSocket mesh: a message is lost when
 * either end restarted or the link was cut before it arrived. Every message is deep-copied so no member can
 * see another's objects, as over a real wire.
 */

import type { NodeId } from "../../core/ids.ts";
import type { Rng } from "../../core/rng.ts";
import type { KvCommand } from "../../kv/commands.ts";
import type { ConsensusMsg } from "../mod.ts";
import type { SimMember } from "./member.ts";
import { copyOf } from "./_copy.ts";

export interface NetworkSettings {
  lossRate: number;
  duplicateRate: number;
  /** Chance that a message takes a long detour, arriving after later ones. */
  reorderRate: number;
  minDelayMs: number;
  maxDelayMs: number;
  maxDetourMs: number;
}

export interface NetworkHost {
  schedule(delayMs: number, run: () => void): void;
  member(id: NodeId): SimMember;
}

export class SimNetwork {
  readonly #rng: Rng;
  readonly #settings: NetworkSettings;
  readonly #host: NetworkHost;
  readonly #cut = new Set<string>();
  /** Bumped whenever a link is cut, so messages in flight on the old connection are lost. */
  readonly #linkEpoch = new Map<string, number>();
  sent = 0;
  delivered = 0;

  constructor(rng: Rng, settings: NetworkSettings, host: NetworkHost) {
    this.#rng = rng;
    this.#settings = settings;
    this.#host = host;
  }

  connected(a: NodeId, b: NodeId): boolean {
    return !this.#cut.has(linkOf(a, b));
  }

  get partitioned(): boolean {
    return this.#cut.size > 0;
  }

  send(from: SimMember, to: NodeId, msg: ConsensusMsg<KvCommand>): void {
    this.sent++;
    const link = linkOf(from.id, to);
    if (this.#cut.has(link) || this.#rng.chance(this.#settings.lossRate)) return;
    const copies = this.#rng.chance(this.#settings.duplicateRate) ? 2 : 1;
    const receiver = this.#host.member(to);
    const connection = {
      epoch: this.#linkEpoch.get(link) ?? 0,
      fromIncarnation: from.incarnation,
      toIncarnation: receiver.incarnation,
    };
    for (let i = 0; i < copies; i++) {
      const copy = copyOf(msg);
      this.#host.schedule(this.#delay(), () => {
        if ((this.#linkEpoch.get(link) ?? 0) !== connection.epoch) return;
        // A message may still arrive after its sender died, but not after the sender restarted.
        if (from.incarnation !== connection.fromIncarnation) return;
        if (receiver.incarnation !== connection.toIncarnation) return;
        this.delivered++;
        receiver.receive(from.id, copy);
      });
    }
  }

  #delay(): number {
    const s = this.#settings;
    const base = this.#rng.int(s.minDelayMs, s.maxDelayMs);
    return this.#rng.chance(s.reorderRate) ? base + this.#rng.int(1, s.maxDetourMs) : base;
  }

  /** Cuts every link between the two groups. */
  partition(groupA: NodeId[], groupB: NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        const link = linkOf(a, b);
        this.#cut.add(link);
        this.#linkEpoch.set(link, (this.#linkEpoch.get(link) ?? 0) + 1);
      }
    }
  }

  /** Restores every link; returns the pairs that were cut. */
  heal(): [NodeId, NodeId][] {
    const healed = [...this.#cut].map((link) => link.split("|") as [NodeId, NodeId]);
    this.#cut.clear();
    return healed;
  }
}

function linkOf(a: NodeId, b: NodeId): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}
