/**
 * The replicated KV state machine: an ordered map with a global revision.
 *
 * Pure and deterministic: every member applies the same decided batches in the same order and reaches the same
 * state, so it is also what the simulator runs. No clock, no randomness, no IO.
 */

import { BTree } from "./_btree.ts";
import { assert } from "../core/mod.ts";
import { decode, encode } from "@msgpack/msgpack";
import type { Batch } from "../consensus/mod.ts";
import {
  DEFAULT_MAX_VALUE_BYTES,
  type KvCommand,
  type KvCompare,
  type KvEntry,
  type KvEvent,
  type KvOp,
  type KvResult,
  MAX_KEY_BYTES,
  utf8Length,
} from "./commands.ts";

export interface KvStateOptions {
  /** Must be the same on every member: it decides which commands fail. */
  maxValueBytes?: number;
}

/** What applying one decided batch produced. */
export interface BatchOutcome {
  /** One result per command, or null when the batch was a duplicate and was skipped. */
  results: KvResult[] | null;
  /** Changes in revision order. */
  events: KvEvent[];
}

/**
 * Which batch sequence numbers of one submitter incarnation were applied: every seq <= low, plus `above`.
 * Batches are normally applied in seq order, so `above` stays tiny.
 */
interface Session {
  low: number;
  above: number[];
}

/** Sessions kept per submitter: older incarnations cannot have batches in flight for long. */
const INCARNATIONS_KEPT = 2;

export class KvState {
  #entries = new BTree<string, KvEntry>();
  #revision = 0;
  #maxValueBytes: number;
  /** submitter -> incarnation -> session, insertion-ordered so the oldest incarnation is pruned first. */
  #sessions = new Map<string, Map<string, Session>>();

  constructor(options: KvStateOptions = {}) {
    this.#maxValueBytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  }

  get revision(): number {
    return this.#revision;
  }

  get size(): number {
    return this.#entries.size;
  }

  get maxValueBytes(): number {
    return this.#maxValueBytes;
  }

  get(key: string): KvEntry | undefined {
    return this.#entries.get(key);
  }

  /** Entries whose key starts with `prefix`, in key order, after `startAfter` when given. */
  range(prefix: string, limit = Infinity, startAfter?: string): KvEntry[] {
    const out: KvEntry[] = [];
    const from = startAfter !== undefined && startAfter >= prefix ? startAfter : prefix;
    for (const [key, entry] of this.#entries.entries(from)) {
      if (!key.startsWith(prefix)) break;
      if (key === startAfter) continue;
      out.push(entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Applies one decided batch; a batch already applied (same id) is skipped so retries never apply twice. */
  applyBatch(batch: Batch<KvCommand>): BatchOutcome {
    if (!this.#markApplied(batch.id)) return { results: null, events: [] };
    const events: KvEvent[] = [];
    const results = batch.commands.map((command) => this.apply(command, events));
    return { results, events };
  }

  /** Applies one command, appending its changes to `events`. */
  apply(command: KvCommand, events: KvEvent[] = []): KvResult {
    const revisionBefore = this.#revision;
    const eventsBefore = events.length;
    const result = this.#applyOne(command, events);
    this.#checkApplied(revisionBefore, events, eventsBefore, result);
    return result;
  }

  #applyOne(command: KvCommand, events: KvEvent[]): KvResult {
    switch (command.type) {
      case "barrier":
        return { ok: true, revision: this.#revision };
      case "put":
        return this.#put(command.key, command.value, command.ifRevision, events);
      case "delete":
        return this.#delete(command.key, command.ifRevision, events);
      case "txn":
        return this.#txn(command.compare, command.success, command.failure, events);
      default:
        return this.#invalid(`unknown command type "${(command as { type: unknown }).type}"`);
    }
  }

  /**
   * Invariants of one applied command: the revision moves by one exactly when the command changed something,
   * every change it reported carries that revision, and its result names the state's revision.
   */
  #checkApplied(revisionBefore: number, events: KvEvent[], eventsBefore: number, result: KvResult): void {
    // Constant messages: a template string would be built on every command, passing or not.
    const advanced = this.#revision - revisionBefore;
    assert(advanced === 0 || advanced === 1, "kv: one command moved the revision by more than one");
    assert(
      (advanced === 1) === (events.length > eventsBefore),
      "kv: the revision moved without changes, or not with",
    );
    for (let i = eventsBefore; i < events.length; i++) {
      assert(
        events[i].revision === this.#revision,
        "kv: a change carries another revision than its command's",
      );
    }
    assert(result.revision === this.#revision, "kv: a result names another revision than the state's");
  }

  #put(key: string, value: Uint8Array, ifRevision: number | undefined, events: KvEvent[]): KvResult {
    const problem = this.#checkKey(key) ?? this.#checkValue(key, value);
    if (problem) return problem;
    if (ifRevision !== undefined) {
      const current = this.#entries.get(key)?.modRevision ?? 0;
      if (current !== ifRevision) return this.#compareFailed(key, ifRevision, current);
    }
    const revision = ++this.#revision;
    this.#write(key, value, revision, events);
    return { ok: true, revision };
  }

  #delete(key: string, ifRevision: number | undefined, events: KvEvent[]): KvResult {
    const problem = this.#checkKey(key);
    if (problem) return problem;
    const current = this.#entries.get(key)?.modRevision ?? 0;
    if (ifRevision !== undefined && current !== ifRevision) {
      return this.#compareFailed(key, ifRevision, current);
    }
    if (current === 0) return { ok: true, revision: this.#revision, deleted: 0 };
    const revision = ++this.#revision;
    this.#remove(key, revision, events);
    return { ok: true, revision, deleted: 1 };
  }

  #txn(compare: KvCompare[], success: KvOp[], failure: KvOp[], events: KvEvent[]): KvResult {
    for (const c of compare) {
      const problem = this.#checkKey(c.key);
      if (problem) return problem;
    }
    const succeeded = compare.every((c) => (this.#entries.get(c.key)?.modRevision ?? 0) === c.modRevision);
    const ops = succeeded ? success : failure;
    // Validate every operation first so that a transaction applies entirely or not at all.
    for (const op of ops) {
      const problem = op.op === "deletePrefix"
        ? null
        : this.#checkKey(op.key) ?? (op.op === "put" ? this.#checkValue(op.key, op.value) : null);
      if (problem) return problem;
    }
    if (!this.#changesAnything(ops)) return { ok: true, revision: this.#revision, succeeded, deleted: 0 };
    const revision = ++this.#revision;
    let deleted = 0;
    for (const op of ops) {
      if (op.op === "put") this.#write(op.key, op.value, revision, events);
      else if (op.op === "delete") {
        if (this.#entries.has(op.key)) {
          this.#remove(op.key, revision, events);
          deleted++;
        }
      } else {
        for (const entry of this.range(op.prefix)) {
          this.#remove(entry.key, revision, events);
          deleted++;
        }
      }
    }
    return { ok: true, revision, succeeded, deleted };
  }

  #changesAnything(ops: KvOp[]): boolean {
    return ops.some((op) =>
      op.op === "put" ||
      (op.op === "delete" && this.#entries.has(op.key)) ||
      (op.op === "deletePrefix" && this.range(op.prefix, 1).length > 0)
    );
  }

  #write(key: string, value: Uint8Array, revision: number, events: KvEvent[]): void {
    const previous = this.#entries.get(key);
    assert(
      previous === undefined || previous.modRevision <= revision,
      "kv: a key written at an older revision",
    );
    this.#entries.set(key, {
      key,
      value,
      createRevision: previous?.createRevision ?? revision,
      modRevision: revision,
      version: (previous?.version ?? 0) + 1,
    });
    events.push({ type: "put", key, value, revision });
  }

  #remove(key: string, revision: number, events: KvEvent[]): void {
    this.#entries.delete(key);
    events.push({ type: "delete", key, revision });
  }

  #checkKey(key: string): KvResult | null {
    if (typeof key !== "string" || key.length === 0) return this.#invalid("key must be a non-empty string");
    if (utf8Length(key) > MAX_KEY_BYTES) {
      return this.#invalid(`key "${key.slice(0, 64)}..." is longer than ${MAX_KEY_BYTES} bytes`);
    }
    return null;
  }

  #checkValue(key: string, value: Uint8Array): KvResult | null {
    if (!(value instanceof Uint8Array)) return this.#invalid(`value of "${key}" must be bytes`);
    if (value.byteLength > this.#maxValueBytes) {
      return {
        ok: false,
        code: "too_large",
        message: `value of "${key}" is ${value.byteLength} bytes; the limit is ${this.#maxValueBytes}`,
        revision: this.#revision,
      };
    }
    return null;
  }

  #invalid(message: string): KvResult {
    return { ok: false, code: "invalid", message, revision: this.#revision };
  }

  #compareFailed(key: string, expected: number, current: number): KvResult {
    return {
      ok: false,
      code: "compare_failed",
      message: `"${key}" is at revision ${current}, not ${expected}`,
      revision: this.#revision,
      currentRevision: current,
    };
  }

  /** Records a batch id as applied; false when it already was. Ids look like `submitter:incarnation:seq`. */
  #markApplied(batchId: string): boolean {
    const last = batchId.lastIndexOf(":");
    const middle = batchId.lastIndexOf(":", last - 1);
    const seq = Number(batchId.slice(last + 1));
    if (middle <= 0 || !Number.isSafeInteger(seq) || seq < 1) return true; // not a session id: no dedup
    const submitter = batchId.slice(0, middle);
    const incarnation = batchId.slice(middle + 1, last);
    let incarnations = this.#sessions.get(submitter);
    if (!incarnations) this.#sessions.set(submitter, incarnations = new Map());
    let session = incarnations.get(incarnation);
    if (!session) {
      incarnations.set(incarnation, session = { low: 0, above: [] });
      if (incarnations.size > INCARNATIONS_KEPT) incarnations.delete(incarnations.keys().next().value!);
    }
    if (seq <= session.low || session.above.includes(seq)) return false;
    session.above.push(seq);
    session.above.sort((a, b) => a - b);
    while (session.above.length > 0 && session.above[0] === session.low + 1) {
      session.low++;
      session.above.shift();
    }
    return true;
  }

  /** Serializes the whole replicated state. */
  snapshot(): Uint8Array {
    const entries: [string, Uint8Array, number, number, number][] = [];
    this.#entries.forEachPair((key, e) => {
      entries.push([key, e.value, e.createRevision, e.modRevision, e.version]);
    });
    const sessions: [string, [string, number, number[]][]][] = [];
    for (const [submitter, incarnations] of this.#sessions) {
      sessions.push([submitter, [...incarnations].map(([inc, s]) => [inc, s.low, s.above])]);
    }
    return encode({ v: 1, revision: this.#revision, entries, sessions });
  }

  static fromSnapshot(data: Uint8Array, options: KvStateOptions = {}): KvState {
    const raw = decode(data) as {
      v: number;
      revision: number;
      entries: [string, Uint8Array, number, number, number][];
      sessions: [string, [string, number, number[]][]][];
    };
    if (raw?.v !== 1) throw new Error("KV snapshot: unknown format version");
    const state = new KvState(options);
    assert(Number.isSafeInteger(raw.revision) && raw.revision >= 0, "KV snapshot: bad revision");
    state.#revision = raw.revision;
    state.#entries = new BTree(
      raw.entries.map(([key, value, createRevision, modRevision, version]) => [
        key,
        { key, value, createRevision, modRevision, version },
      ]),
    );
    // A snapshot is the state of some member: no entry can be newer than its revision.
    for (const [key, , createRevision, modRevision] of raw.entries) {
      assert(
        createRevision <= modRevision && modRevision <= raw.revision,
        `KV snapshot: "${key}" has revisions ${createRevision}/${modRevision} beyond ${raw.revision}`,
      );
    }
    for (const [submitter, incarnations] of raw.sessions) {
      state.#sessions.set(
        submitter,
        new Map(incarnations.map(([inc, low, above]) => [inc, { low, above }])),
      );
    }
    return state;
  }
}
