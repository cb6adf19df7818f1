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
  by: NodeId;
}

export class Agreement {
  readonly #fail: (message: string) => void;
  /** By phase: the first decision of the phase that became durable on some member. */
  readonly #decisions = new Map<number, KnownDecision>();
  /** The state's revision after each phase, as the first member to apply it reported. */
  readonly #revisions = new Map<number, number>();
  #lastDecided = 0;
  /** Durable snapshots by phase: all members' snapshots of one phase must be the same bytes. */
  readonly #snapshots = new Map<number, { hash: string; revision: number; by: NodeId }>();
  /** Every snapshot written, durable or not ("phase:hash" to revision): what a peer may be sent. */
  readonly #written = new Map<string, number>();
  /** The snapshot a member is installing (committed, not yet reported to the hub). */
  readonly #installing = new Map<NodeId, { phase: number; revision: number; tail?: boolean }>();
  /** Snapshot installs followed by decisions before the member reported the install (the path of the crash
   * fixed in 9665bf2). */
  installsWithTail = 0;

  constructor(fail: (message: string) => void) {
    this.#fail = fail;
  }

  /** The highest phase some member decided durably. */
  get lastDecided(): number {
    return this.#lastDecided;
  }

  /** A member wrote a commit. Returns the checks to run once the write is durable. */
  committed(member: NodeId, step: CommitStep): () => void {
    const install = step.installSnapshot;
    const installed = install ? this.#checkInstall(member, install.phase, install.data) : undefined;
    const decisions = step.decisions ?? [];
    // Decisions written after an install the member has not yet reported to its watch hub: the path of the
    // crash fixed in 9665bf2 (the hub must restart at the snapshot's revision, not at a later one).
    const installing = this.#installing.get(member);
    if (!install && installing && decisions.length > 0 && !installing.tail) {
      installing.tail = true;
      this.installsWithTail++;
    }
    return () => {
      if (install && installed !== undefined) {
        this.#snapshotDurable(member, install.phase, hashBytes(install.data), installed);
      }
      for (const d of decisions) this.#decided(member, d.phase, d.batch?.id ?? null);
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
    if (stateRevision !== revision) {
      this.#fail(`${member}: its state is at revision ${stateRevision} when its hub restarts at ${revision}`);
    }
  }

  crashed(member: NodeId): void {
    this.#installing.delete(member);
  }

  /** A hash chain over every phase's decided batch id and revision: equal for equal runs. */
  hash(): string {
    let chain = "";
    for (let phase = 1; phase <= this.#lastDecided; phase++) {
      const d = this.#decisions.get(phase);
      chain = hashHex(`${chain}|${phase}:${d ? `${d.id}:${this.#revisions.get(phase) ?? "-"}` : "?"}`);
    }
    return chain;
  }

  #decided(member: NodeId, phase: number, id: string | null): void {
    this.#lastDecided = Math.max(this.#lastDecided, phase);
    const known = this.#decisions.get(phase);
    if (!known) {
      this.#decisions.set(phase, { id, by: member });
      return;
    }
    if (known.id !== id) {
      this.#fail(
        `agreement violated at phase ${phase}: ${member} decided ${id}, ${known.by} decided ${known.id}`,
      );
    }
  }

  /** A member applied `phase` to its readable state (decisions are applied once durable), reaching `revision`. */
  applied(member: NodeId, phase: number, revision: number): void {
    this.#checkRevision(member, phase, revision);
  }

  /** The state's revision after `phase` is the same on every member. */
  #checkRevision(member: NodeId, phase: number, revision: number | undefined): void {
    if (revision === undefined) return;
    const known = this.#revisions.get(phase);
    if (known === undefined) this.#revisions.set(phase, revision);
    else if (known !== revision) {
      this.#fail(
        `state diverged at phase ${phase}: ${member} has revision ${revision}, another had ${known}`,
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
