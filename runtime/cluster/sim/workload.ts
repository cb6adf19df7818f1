/**
 * Simulated clients: each one issues KV commands one at a time through a member (puts, compare-and-sets,
 * deletes and linearizable reads), every write with a value never used before, and records the history the
 * linearizability checker reads. They use what the API uses: `kvAccess` over the member's replica (a
 * linearizable read is a consensus barrier, then the local state). An operation that times out, whose batch
 * was interrupted or dropped, or whose member crashed has an unknown outcome (return time +infinity); one
 * refused before it was queued never happened.
 */

import { AetherError, type Rng } from "../../core/mod.ts";
import type { KvCommand } from "../../kv/mod.ts";
import type { KvInput, KvOperation, KvOutput } from "./linearizability.ts";
import type { SimMember } from "./member.ts";

export interface WorkloadSettings {
  clients: number;
  keys: number;
  opDeadlineMs: number;
  thinkMaxMs: number;
  /** Values are padded to this many bytes (a bigger state: snapshots beyond the mesh frame limit). */
  valueBytes?: number;
}

export interface HistoryEntry extends KvOperation {
  client: string;
  /** The revision this client believed the key had when it sent a compare-and-set. */
  ifRevision?: number;
  /** For reads: the key's modRevision seen (0 when absent). */
  readRevision?: number;
  member: string;
  settled: boolean;
}

export interface WorkloadHost {
  now(): number;
  schedule(delayMs: number, run: () => void): void;
  members: SimMember[];
  /** False once the run is over: clients stop starting operations. */
  issuing(): boolean;
  /** An outcome no correct cluster gives (the run fails). */
  fail(message: string): void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a client last knew of a key: its value at a revision (0 and null when absent). */
interface Seen {
  revision: number;
  value: string | null;
}

/** Refused before it was queued: the command never ran. (Quorum is checked before a command is sent.) */
const NEVER_RAN = new Set(["overloaded", "too_large"]);

interface Pending {
  entry: HistoryEntry;
  finish(ok: boolean): void;
}

export class Workload {
  readonly history: HistoryEntry[] = [];
  readonly #host: WorkloadHost;
  readonly #rng: Rng;
  readonly #settings: WorkloadSettings;
  readonly #keys: string[];
  /** Operations not settled yet, by the member they went through. */
  readonly #pending = new Map<string, Set<Pending>>();
  #outstanding = 0;

  constructor(host: WorkloadHost, rng: Rng, settings: WorkloadSettings) {
    this.#host = host;
    this.#rng = rng;
    this.#settings = settings;
    this.#keys = Array.from({ length: settings.keys }, (_, i) => `app/k${i}`);
    for (const member of host.members) this.#pending.set(member.id, new Set());
  }

  get keys(): readonly string[] {
    return this.#keys;
  }

  /** Operations started and not settled yet. */
  get outstanding(): number {
    return this.#outstanding;
  }

  start(): void {
    for (let c = 0; c < this.#settings.clients; c++) {
      const client = new SimClient(`c${c}`, c % this.#host.members.length, this);
      this.#host.schedule(this.#rng.int(0, 20), () => client.next());
    }
  }

  /** The member's process died: its clients' connections close, and what they waited for is unknown. */
  memberCrashed(member: SimMember): void {
    for (const pending of [...this.#pending.get(member.id)!]) pending.finish(false);
  }

  /**
   * A linearizable read of `key` through `member`, outside the random workload (the final reads); false when
   * the member refused it.
   */
  finalRead(member: SimMember, key: string, done: (ok: boolean) => void): boolean {
    return this.issue(
      `final-${member.id}`,
      member,
      key,
      { kind: "get" },
      { type: "barrier" },
      () => {},
      done,
    );
  }

  // ---------------------------------------------------------------- used by clients

  get rng(): Rng {
    return this.#rng;
  }

  get host(): WorkloadHost {
    return this.#host;
  }

  get settings(): WorkloadSettings {
    return this.#settings;
  }

  pickKey(): string {
    return this.#rng.pick(this.#keys);
  }

  /**
   * Sends one operation through `member`'s KV access. `onSeen` learns what the client may assume afterwards;
   * `done` runs once when the operation settles (true: completed with a known outcome). Returns false when the
   * member refused it at once (down, or without quorum: the command never ran, as the API would answer 503).
   */
  issue(
    client: string,
    member: SimMember,
    key: string,
    input: KvInput,
    command: KvCommand,
    onSeen: (seen: Seen | undefined) => void,
    done: (ok: boolean) => void,
  ): boolean {
    const kv = member.kv;
    if (!kv || !member.replica!.quorum) return false;
    const entry: HistoryEntry = {
      client,
      member: member.id,
      key,
      input,
      callMs: this.#host.now(),
      returnMs: Infinity,
      settled: false,
    };
    if (command.type === "put" && command.ifRevision !== undefined) entry.ifRevision = command.ifRevision;
    this.history.push(entry);
    this.#outstanding++;
    const byMember = this.#pending.get(member.id)!;
    const pending: Pending = {
      entry,
      finish: (ok) => {
        if (entry.settled) return;
        entry.settled = true;
        byMember.delete(pending);
        this.#outstanding--;
        done(ok);
      },
    };
    byMember.add(pending);
    this.#host.schedule(this.#settings.opDeadlineMs, () => pending.finish(false));
    const timeoutMs = this.#settings.opDeadlineMs;
    const operation = input.kind === "get"
      ? kv.get(key, { consistent: true, timeoutMs }).then((found) => this.#read(entry, found, onSeen))
      : kv.write(command, { timeoutMs }).then((outcome) => this.#wrote(entry, outcome, onSeen));
    operation.then(
      () => {
        if (!entry.settled) pending.finish(true);
      },
      (error) => {
        if (entry.settled) return;
        if (error instanceof AetherError && error.code === "compare_failed" && input.kind === "cas") {
          entry.returnMs = this.#host.now();
          entry.output = { ok: false };
          onSeen(undefined);
          return pending.finish(true);
        }
        if (!(error instanceof AetherError)) {
          this.#host.fail(
            `${client}: ${input.kind} of ${key} through ${member.id} failed: ${error?.stack ?? error}`,
          );
        } else if (NEVER_RAN.has(error.code)) this.#forget(entry);
        pending.finish(false);
      },
    );
    return true;
  }

  #forget(entry: HistoryEntry): void {
    const at = this.history.lastIndexOf(entry);
    if (at >= 0) this.history.splice(at, 1);
  }

  #read(
    entry: HistoryEntry,
    found: { value: Uint8Array; modRevision: number } | undefined,
    onSeen: (seen: Seen | undefined) => void,
  ): void {
    if (entry.settled) return;
    entry.returnMs = this.#host.now();
    const value = found ? decoder.decode(found.value) : null;
    entry.output = { ok: true, value };
    entry.readRevision = found?.modRevision ?? 0;
    onSeen({ revision: entry.readRevision, value });
  }

  #wrote(
    entry: HistoryEntry,
    outcome: { revision: number; deleted?: number },
    onSeen: (seen: Seen | undefined) => void,
  ): void {
    if (entry.settled) return;
    entry.returnMs = this.#host.now();
    const input = entry.input;
    entry.output = { ok: true } satisfies KvOutput;
    if (input.kind === "put" || input.kind === "cas") {
      entry.revision = outcome.revision;
      onSeen({ revision: outcome.revision, value: input.value });
    } else if (input.kind === "delete") {
      if (outcome.deleted === 1) entry.revision = outcome.revision;
      onSeen({ revision: 0, value: null });
    }
  }
}

/** One client: a loop of operations through its member, switching members when that one is unavailable. */
class SimClient {
  readonly #name: string;
  #memberIndex: number;
  readonly #workload: Workload;
  #seq = 0;
  readonly #seen = new Map<string, Seen>();

  constructor(name: string, memberIndex: number, workload: Workload) {
    this.#name = name;
    this.#memberIndex = memberIndex;
    this.#workload = workload;
  }

  next(): void {
    const w = this.#workload;
    if (!w.host.issuing()) return;
    const member = w.host.members[this.#memberIndex];
    const key = w.pickKey();
    const [input, command] = this.#choose(key);
    const sent = w.issue(
      this.#name,
      member,
      key,
      input,
      command,
      (seen) => seen ? this.#seen.set(key, seen) : this.#seen.delete(key),
      () => w.host.schedule(w.rng.int(0, w.settings.thinkMaxMs), () => this.next()),
    );
    if (!sent) {
      // Unavailable or overloaded: try another member a little later.
      this.#memberIndex = w.rng.int(0, w.host.members.length - 1);
      w.host.schedule(w.rng.int(10, 40), () => this.next());
    }
  }

  #choose(key: string): [KvInput, KvCommand] {
    const rng = this.#workload.rng;
    const roll = rng.next();
    const value = `${this.#name}-${++this.#seq}`.padEnd(this.#workload.settings.valueBytes ?? 0, ".");
    const seen = this.#seen.get(key);
    if (roll < 0.35) return [{ kind: "put", value }, { type: "put", key, value: encoder.encode(value) }];
    if (roll < 0.55 && seen) {
      return [
        { kind: "cas", expected: seen.value, value },
        { type: "put", key, value: encoder.encode(value), ifRevision: seen.revision },
      ];
    }
    if (roll < 0.65) return [{ kind: "delete" }, { type: "delete", key }];
    return [{ kind: "get" }, { type: "barrier" }];
  }
}
