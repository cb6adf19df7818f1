/**
 * Simulated clients: each one issues KV commands one at a time through a member (puts, compare-and-sets,
 * deletes and linearizable reads), every write with a value never used before, and records the history the
 * linearizability checker reads. An operation that times out, or whose batch was interrupted or dropped, has
 * an unknown outcome (return time +infinity); one refused before it was queued never happened.
 */

import { AetherError } from "../../core/errors.ts";
import type { Rng } from "../../core/rng.ts";
import { commandSize, type KvCommand, type KvResult } from "../../kv/commands.ts";
import type { Outcome } from "../mod.ts";
import type { KvInput, KvOperation, KvOutput } from "./linearizability.ts";
import type { SimMember } from "./member.ts";

export interface WorkloadSettings {
  clients: number;
  keys: number;
  opDeadlineMs: number;
  thinkMaxMs: number;
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
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What a client last knew of a key: its value at a revision (0 and null when absent). */
interface Seen {
  revision: number;
  value: string | null;
}

export class Workload {
  readonly history: HistoryEntry[] = [];
  readonly #host: WorkloadHost;
  readonly #rng: Rng;
  readonly #settings: WorkloadSettings;
  readonly #keys: string[];
  #outstanding = 0;

  constructor(host: WorkloadHost, rng: Rng, settings: WorkloadSettings) {
    this.#host = host;
    this.#rng = rng;
    this.#settings = settings;
    this.#keys = Array.from({ length: settings.keys }, (_, i) => `app/k${i}`);
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

  /** A linearizable read of `key` through `member`, outside the random workload (the final reads). */
  finalRead(member: SimMember, key: string, done: (ok: boolean) => void): void {
    const entry = this.#begin(`final-${member.id}`, member, key, { kind: "get" });
    this.#submit(entry, member, { type: "barrier" }, () => {}, done);
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

  #begin(client: string, member: SimMember, key: string, input: KvInput): HistoryEntry {
    return {
      client,
      member: member.id,
      key,
      input,
      callMs: this.#host.now(),
      returnMs: Infinity,
      settled: false,
    };
  }

  /**
   * Sends one operation. `onSeen` learns what the client may assume afterwards; `done` runs once when the
   * operation settles (true: completed with a known outcome). Returns false when the member refused it.
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
    const entry = this.#begin(client, member, key, input);
    if (command.type === "put" && command.ifRevision !== undefined) entry.ifRevision = command.ifRevision;
    return this.#submit(entry, member, command, onSeen, done);
  }

  #submit(
    entry: HistoryEntry,
    member: SimMember,
    command: KvCommand,
    onSeen: (seen: Seen | undefined) => void,
    done: (ok: boolean) => void,
  ): boolean {
    const finish = (ok: boolean) => {
      entry.settled = true;
      this.#outstanding--;
      done(ok);
    };
    // In the history before submitting: the outcome may arrive synchronously (a crash while batching).
    this.history.push(entry);
    this.#outstanding++;
    try {
      member.submit(command, commandSize(command), (outcome) => {
        if (entry.settled) return;
        if (this.#record(entry, member, outcome, onSeen)) finish(true);
        else if (isUnknown(outcome)) finish(false);
        else {
          // Refused before it was batched: it never ran, so it is not part of the history.
          this.#forget(entry);
          finish(false);
        }
      });
    } catch (e) {
      if (!(e instanceof AetherError)) throw e;
      this.#forget(entry);
      this.#outstanding--;
      return false;
    }
    if (!entry.settled) {
      this.#host.schedule(this.#settings.opDeadlineMs, () => {
        if (!entry.settled) finish(false);
      });
    }
    return true;
  }

  #forget(entry: HistoryEntry): void {
    const at = this.history.lastIndexOf(entry);
    if (at >= 0) this.history.splice(at, 1);
  }

  /** Fills in a completed operation's outcome; false when the outcome is not known. */
  #record(
    entry: HistoryEntry,
    member: SimMember,
    outcome: Outcome<KvResult>,
    onSeen: (seen: Seen | undefined) => void,
  ): boolean {
    if (!outcome.ok) return false;
    const result = outcome.result;
    entry.returnMs = this.#host.now();
    const input = entry.input;
    if (input.kind === "get") {
      // Runs inside the decision of the barrier's batch: the state right after it.
      const found = member.kv!.get(entry.key);
      const value = found ? decoder.decode(found.value) : null;
      entry.output = { ok: true, value };
      entry.readRevision = found?.modRevision ?? 0;
      onSeen({ revision: entry.readRevision, value });
      return true;
    }
    entry.output = outputOf(input, result, entry);
    if (input.kind === "put" || (input.kind === "cas" && entry.output.ok)) {
      onSeen({ revision: result.revision, value: input.value });
    } else if (input.kind === "delete") onSeen({ revision: 0, value: null });
    else onSeen(undefined);
    return true;
  }
}

function isUnknown(outcome: Outcome<KvResult>): boolean {
  return !outcome.ok && outcome.error.extra.outcome === "unknown";
}

function outputOf(input: KvInput, result: KvResult, entry: HistoryEntry): KvOutput {
  if (input.kind === "cas") {
    if (!result.ok && result.code !== "compare_failed") {
      throw new Error(`unexpected cas result ${result.message}`);
    }
    if (result.ok) entry.revision = result.revision;
    return { ok: result.ok };
  }
  if (!result.ok) throw new Error(`unexpected ${input.kind} failure: ${result.message}`);
  if (input.kind === "put" || (input.kind === "delete" && result.deleted === 1)) {
    entry.revision = result.revision;
  }
  return { ok: true };
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
    const value = `${this.#name}-${++this.#seq}`;
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
