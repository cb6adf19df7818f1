/**
 * Client writes go into the leader's batches.
 *
 * Each phase of consensus decides one batch, and every member batches its own writes. With clients spread over
 * three members, their batches take turns: each phase carries a third of the waiting writes and costs as much
 * as a full one (an fsync, a message exchange, a storage commit on every member). A member that forwards its
 * API writes to the leader lets one batch per phase carry all of them: measured on 3 members with 32 clients
 * spread over them, puts/s rose by about 1.7x (tests/bench/kv_bench.ts).
 *
 * What a forwarded write guarantees is what a local one does: it is acknowledged once decided and applied on
 * the member the client talks to (the forwarder waits for the revision the leader reports), so a client reads
 * its own writes there. When the leader is unknown, is this member, or is not connected, the write stays
 * local.
 *
 * A leader that dies keeps its sockets open for a moment (a killed process is torn down before its sockets are
 * closed), and writes forwarded meanwhile are never read. So the leader acknowledges each forwarded write the
 * moment it reads it ("received"), before it can put it into a batch, and the mesh delivers in order on each
 * link: when the leader disconnects, a write it never acknowledged was never in any of its batches, and goes
 * into this member's own batch instead (`keptLocal`). Only a write the leader did receive fails with
 * "unavailable" and may still be applied, as any write that times out (README, Guarantees); it is never sent a
 * second time, so nothing is applied twice. The one gap: a receipt the leader sent that never arrives while a
 * proposal of the batch holding the write reaches another member (the leader killed between its writes to two
 * sockets within one flush, or a receipt lost in flight on a link that is reset right after); the write may
 * then be applied twice. The window is a few microseconds per flush; a refusal covered the whole time the
 * members took to notice the death (tens of milliseconds, in which 68% of writes were refused in a test).
 */

import {
  AetherError,
  assert,
  type ErrorCode,
  isErrorCode,
  type Logger,
  type NodeId,
  type TimerHandle,
  type Timers,
  toAetherError,
} from "../core/mod.ts";
import type { ForwardStats } from "./access.ts";
import { commandSize, type KvCommand, type KvResult } from "../kv/mod.ts";

/** Channel of forwarded writes on the mesh. */
export const WRITE_CHANNEL = "w";

/** Forwarded writes waiting for their leader's answer, at most (beyond it writes stay local). */
export const DEFAULT_MAX_FORWARDS_IN_FLIGHT = 10_000;

type ForwardMsg =
  | { t: "write"; id: number; command: KvCommand; timeoutMs: number }
  | { t: "received"; id: number }
  | { t: "result"; id: number; result: KvResult }
  | { t: "error"; id: number; code: ErrorCode; message: string; extra?: Record<string, unknown> };

export interface ForwardTransport {
  send(to: NodeId, channel: string, message: unknown): boolean;
  isConnected(id: NodeId): boolean;
}

/** A path into consensus: the replica, or the forwarder in front of it. */
export interface Writer {
  write(command: KvCommand, timeoutMs: number): Promise<KvResult>;
}

/** The member's own write path (the replica). */
export interface LocalWriter extends Writer {
  waitForRevision(revision: number, timeoutMs: number): Promise<boolean>;
}

export interface WriteForwarderOptions {
  self: NodeId;
  transport: ForwardTransport;
  local: LocalWriter;
  /** Where writes should go now: the leader when this member knows one and is caught up; else undefined. */
  target(): NodeId | undefined;
  /** Deadlines of forwarded writes. */
  timers: Timers;
  log: Logger;
  /** Default DEFAULT_MAX_FORWARDS_IN_FLIGHT. */
  maxInFlight?: number;
}

interface Pending {
  to: NodeId;
  command: KvCommand;
  deadlineMs: number;
  timeoutMs: number;
  /** The leader acknowledged reading it: from now on its outcome is the leader's. */
  received: boolean;
  resolve(result: KvResult): void;
  reject(error: AetherError): void;
  timer: TimerHandle;
}

export class WriteForwarder {
  readonly #o: WriteForwarderOptions;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  readonly #maxInFlight: number;
  #stats = { forwarded: 0, served: 0, lostLeader: 0, keptLocal: 0, keptLocalFull: 0 };

  constructor(options: WriteForwarderOptions) {
    this.#o = options;
    this.#maxInFlight = options.maxInFlight ?? DEFAULT_MAX_FORWARDS_IN_FLIGHT;
    assert(Number.isSafeInteger(this.#maxInFlight) && this.#maxInFlight > 0, "maxInFlight must be positive");
  }

  get stats(): ForwardStats {
    return { ...this.#stats, inFlight: this.#pending.size };
  }

  /** Replicates one command through the leader's batch when there is one to use, else locally. */
  write(command: KvCommand, timeoutMs: number): Promise<KvResult> {
    const to = this.#o.target();
    if (to === undefined || to === this.#o.self || !this.#o.transport.isConnected(to)) {
      return this.#o.local.write(command, timeoutMs);
    }
    if (this.#pending.size >= this.#maxInFlight) {
      // The local batch has limits of its own (overloaded with retry-after when full): no need to refuse here.
      this.#stats.keptLocalFull++;
      return this.#o.local.write(command, timeoutMs);
    }
    const id = this.#nextId++;
    const message: ForwardMsg = { t: "write", id, command, timeoutMs };
    if (!this.#o.transport.send(to, WRITE_CHANNEL, message)) return this.#o.local.write(command, timeoutMs);
    this.#stats.forwarded++;
    const { promise, resolve, reject } = Promise.withResolvers<KvResult>();
    const timer = this.#o.timers.schedule(timeoutMs, () => {
      this.#settle(id)?.reject(
        new AetherError("timeout", `not applied within ${timeoutMs} ms; it may still be applied later`),
      );
    });
    const deadlineMs = this.#o.timers.now() + timeoutMs;
    this.#pending.set(id, { to, command, deadlineMs, timeoutMs, received: false, resolve, reject, timer });
    this.#checkInvariants();
    return promise;
  }

  /** A message on WRITE_CHANNEL from a peer. Malformed ones are logged and dropped. */
  receive(from: NodeId, message: unknown): void {
    const problem = checkForwardMsg(message);
    if (problem) {
      this.#o.log.warn("dropped a malformed forwarded write", { from, problem });
      return;
    }
    const msg = message as ForwardMsg;
    if (msg.t === "write") this.#serve(from, msg);
    else if (msg.t === "received") this.#received(from, msg.id);
    else if (msg.t === "result") this.#answered(from, msg.id, msg.result);
    else this.#failed(from, msg);
  }

  /**
   * The peer is gone: what was forwarded to it will not be answered. What it acknowledged may still be decided
   * (unknown outcome); what it never read goes into this member's own batch, with the time it has left.
   */
  peerDown(id: NodeId): void {
    for (const [requestId, pending] of this.#pending) {
      if (pending.to !== id) continue;
      this.#settle(requestId);
      if (pending.received) {
        this.#stats.lostLeader++;
        pending.reject(
          new AetherError(
            "unavailable",
            `the leader ${id} disconnected before answering; the write may still be applied`,
          ),
        );
        continue;
      }
      this.#stats.keptLocal++;
      const leftMs = Math.max(1, Math.ceil(pending.deadlineMs - this.#o.timers.now()));
      this.#o.local.write(pending.command, leftMs).then(pending.resolve, pending.reject);
    }
    this.#checkInvariants();
  }

  async #serve(from: NodeId, msg: { id: number; command: KvCommand; timeoutMs: number }): Promise<void> {
    this.#stats.served++;
    // Before anything else: the sender may count on this write never being in a batch of ours until it has
    // this receipt (it precedes any proposal of ours on the link).
    this.#o.transport.send(from, WRITE_CHANNEL, { t: "received", id: msg.id } satisfies ForwardMsg);
    let answer: ForwardMsg;
    try {
      answer = { t: "result", id: msg.id, result: await this.#o.local.write(msg.command, msg.timeoutMs) };
    } catch (e) {
      const error = toAetherError(e);
      answer = { t: "error", id: msg.id, code: error.code, message: error.message, extra: error.extra };
    }
    this.#o.transport.send(from, WRITE_CHANNEL, answer);
  }

  #received(from: NodeId, id: number): void {
    const pending = this.#pending.get(id);
    if (pending?.to === from) pending.received = true;
  }

  /** Decided on the leader: acknowledge once applied here too, so the client reads its write on this member. */
  async #answered(from: NodeId, id: number, result: KvResult): Promise<void> {
    if (this.#pending.get(id)?.to !== from) return;
    const pending = this.#settle(id)!;
    let applied: boolean;
    try {
      applied = await this.#o.local.waitForRevision(result.revision, pending.timeoutMs);
    } catch (e) {
      // Too many already waiting here (overloaded): decided on the leader, but not acknowledged as applied.
      pending.reject(toAetherError(e));
      return;
    }
    if (applied) pending.resolve(result);
    else {
      pending.reject(
        new AetherError(
          "timeout",
          `decided at revision ${result.revision} but not applied on ${this.#o.self} within ${pending.timeoutMs} ms`,
        ),
      );
    }
  }

  #failed(
    from: NodeId,
    msg: { id: number; code: ErrorCode; message: string; extra?: Record<string, unknown> },
  ) {
    const pending = this.#pending.get(msg.id);
    if (!pending || pending.to !== from) return;
    this.#settle(msg.id)!.reject(new AetherError(msg.code, msg.message, msg.extra ?? {}));
  }

  #settle(id: number): Pending | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    pending.timer.cancel();
    return pending;
  }

  #checkInvariants(): void {
    assert(this.#pending.size <= this.#maxInFlight, "forwarded writes in flight exceed their limit");
    assert(this.#nextId > this.#pending.size, "forwarded write ids are unique and increasing");
  }
}

const COMMAND_TYPES = new Set(["put", "delete", "txn", "barrier"]);

/** What is wrong with a message on WRITE_CHANNEL, or undefined when it is well formed. */
export function checkForwardMsg(message: unknown): string | undefined {
  if (typeof message !== "object" || message === null) return "not an object";
  const m = message as Record<string, unknown>;
  if (!Number.isSafeInteger(m.id) || (m.id as number) < 1) return "id must be a positive integer";
  switch (m.t) {
    case "write": {
      if (!Number.isSafeInteger(m.timeoutMs) || (m.timeoutMs as number) < 1) {
        return "timeoutMs must be a positive integer";
      }
      const command = m.command as Record<string, unknown> | null;
      if (typeof command !== "object" || command === null || !COMMAND_TYPES.has(command.type as string)) {
        return "command must be an object whose type is put, delete, txn or barrier";
      }
      // The state machine checks keys and values when it applies the command; here only what batching needs.
      let size = NaN;
      try {
        size = commandSize(command as unknown as KvCommand);
      } catch { /* reported below */ }
      return Number.isFinite(size) ? undefined : `command: a ${command.type} with malformed fields`;
    }
    case "received":
      return undefined;
    case "result": {
      const result = m.result as Record<string, unknown> | null;
      if (typeof result !== "object" || result === null || typeof result.ok !== "boolean") {
        return "result must be an object with a boolean ok";
      }
      if (!Number.isSafeInteger(result.revision) || (result.revision as number) < 0) {
        return "result.revision must be a non-negative integer";
      }
      return undefined;
    }
    case "error":
      if (!isErrorCode(m.code)) return `unknown error code ${String(m.code)}`;
      if (typeof m.message !== "string") return "message must be a string";
      return undefined;
    default:
      return `unknown message type ${String(m.t)}`;
  }
}
