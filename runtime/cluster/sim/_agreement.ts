/**
 * The simulator's agreement checks over what members make durable: every decision of a phase, on every member,
 * across restarts and snapshots, is the first one seen for the phase, and so are the state's revision after it
 * and every snapshot taken at it; a member installs only a snapshot some member wrote, and its watch hub then
 * restarts at that snapshot's own revision.
 *
 * A decision counts once its write is durable. A member decides with its own vote before that vote is fsynced;
 * until then nobody has heard of the decision (messages and acknowledgements wait for the fsync), and a power
 * loss may take both back, after which the phase may be decided differently.
 */

import type { NodeId } from "../../core/mod.ts";
import { hashBytes, hashHex } from "./_hash.ts";
import type { CommitStep } from "./storage.ts";

interface KnownDecision {
  id: string | null;
  /** The state's revision after the phase, once some member reported it. */
  revision?: number;
  by: NodeId;
}

export class Agreement {
  readonly #fail: (message: string) => void;
  /** By phase: the first decision of the phase that became durable on some member. */
  readonly #decisions = new Map<number, KnownDecision>();
  #lastDecided = 0;
  /** Durable snapshots by phase: all members' snapshots of one phase must be the same bytes. */
  readonly #snapshots = new Map<number, { hash: string; revision: number; by: NodeId }>();
  /** Every snapshot written, durable or not ("phase:hash" to revision): what a peer may be sent. */
  readonly #written = new Map<string, number>();
  /** The snapshot a member is installing (committed, not yet reported to the hub). */
  readonly #installing = new Map<NodeId, { phase: number; revision: number }>();
  /** Snapshot installs followed by decisions in the same step (the path of the crash fixed in 9665bf2). */
  installsWithTail = 0;

  constructor(fail: (message: string) => void) {
    this.#fail = fail;
  }

  /** The highest phase some member decided durably. */
  get lastDecided(): number {
    return this.#lastDecided;
  }

  /**
   * A member wrote a commit; `revision` is its state's revision now (after the step's last decision: all of them
   * are applied before the step commits). Returns the checks to run once the write is durable.
   */
  committed(member: NodeId, step: CommitStep, revision: number): () => void {
    const install = step.installSnapshot;
    const installed = install ? this.#checkInstall(member, install.phase, install.data) : undefined;
    const decisions = step.decisions ?? [];
    return () => {
      if (install && installed !== undefined) {
        this.#snapshotDurable(member, install.phase, hashBytes(install.data), installed);
      }
      decisions.forEach((d, i) => {
        this.#decided(
          member,
          d.phase,
          d.batch?.id ?? null,
          i === decisions.length - 1 ? revision : undefined,
        );
      });
    };
  }

  /** A member wrote a snapshot of `phase` at `revision`; returns the check to run once it is durable. */
  snapshotSaved(member: NodeId, phase: number, data: Uint8Array, revision: number): () => void {
    const hash = hashBytes(data);
    this.#written.set(`${phase}:${hash}`, revision);
    return () => this.#snapshotDurable(member, phase, hash, revision);
  }

  /** The member's watch hub restarts at `revision`; `stateRevision` is where its state is now. */
  snapshotInstalled(member: NodeId, revision: number, stateRevision: number): void {
    const installing = this.#installing.get(member);
    this.#installing.delete(member);
    if (!installing) return this.#fail(`${member} reported a snapshot install it never committed`);
    if (revision !== installing.revision) {
      this.#fail(
        `${member}: after installing the snapshot of phase ${installing.phase} (revision ${installing.revision}) ` +
          `the watch hub restarts at revision ${revision}`,
      );
    }
    if (stateRevision > revision) this.installsWithTail++;
  }

  crashed(member: NodeId): void {
    this.#installing.delete(member);
  }

  /** A hash chain over every phase's decided batch id and revision: equal for equal runs. */
  hash(): string {
    let chain = "";
    for (let phase = 1; phase <= this.#lastDecided; phase++) {
      const d = this.#decisions.get(phase);
      chain = hashHex(`${chain}|${phase}:${d ? `${d.id}:${d.revision ?? "-"}` : "?"}`);
    }
    return chain;
  }

  #decided(member: NodeId, phase: number, id: string | null, revision: number | undefined): void {
    this.#lastDecided = Math.max(this.#lastDecided, phase);
    const known = this.#decisions.get(phase);
    if (!known) {
      this.#decisions.set(phase, { id, revision, by: member });
      return;
    }
    if (known.id !== id) {
      this.#fail(
        `agreement violated at phase ${phase}: ${member} decided ${id}, ${known.by} decided ${known.id}`,
      );
    }
    this.#checkRevision(member, phase, revision);
  }

  /** The state's revision after `phase` is the same on every member. */
  #checkRevision(member: NodeId, phase: number, revision: number | undefined): void {
    const known = this.#decisions.get(phase);
    if (revision === undefined || !known) return;
    if (known.revision === undefined) known.revision = revision;
    else if (known.revision !== revision) {
      this.#fail(
        `state diverged at phase ${phase}: ${member} has revision ${revision}, another had ${known.revision}`,
      );
    }
  }

  /** Every durable snapshot of one phase, taken or installed, is the same bytes at the same revision. */
  #snapshotDurable(member: NodeId, phase: number, hash: string, revision: number): void {
    const known = this.#snapshots.get(phase);
    if (!known) this.#snapshots.set(phase, { hash, revision, by: member });
    else if (known.hash !== hash || known.revision !== revision) {
      this.#fail(
        `${member}'s snapshot of phase ${phase} (revision ${revision}, ${hash}) differs from ${known.by}'s ` +
          `(revision ${known.revision}, ${known.hash})`,
      );
    }
    this.#checkRevision(member, phase, revision);
  }

  /** The snapshot's revision, when some member wrote exactly this snapshot (else the run fails). */
  #checkInstall(member: NodeId, phase: number, data: Uint8Array): number | undefined {
    const revision = this.#written.get(`${phase}:${hashBytes(data)}`);
    if (revision === undefined) {
      this.#fail(`${member} installed a snapshot of phase ${phase} that no member wrote`);
      return undefined;
    }
    this.#installing.set(member, { phase, revision });
    return revision;
  }
}
