/**
 * Remote calls over the mesh: the caller's side (correlation ids, deadlines, flow control, failing calls in
 * flight the moment their node departs) and the callee's side (running the call through the local executor
 * and answering).
 *
 * Flow control, so a slow or stuck node cannot exhaust its callers' memory:
 * - per peer, at most `maxInFlightPerPeer` calls and `maxInFlightBytesPerPeer` request bytes (as encoded on
 *   the wire) may be awaiting an answer; a call beyond that waits for a slot until its deadline, and when
 *   `maxWaitingPerPeer` calls are already waiting it is refused at once with 503 "overloaded" (the invoker
 *   then tries another instance);
 * - a call is written only while the mesh's queue to the peer is below half its bound (`mesh.writable`), so
 *   invocation never takes the half of the queue that consensus relies on;
 * - on the callee, at most `maxServing` remote calls run at once; beyond that the request is refused with
 *   "overloaded" before anything runs (a safe retry elsewhere).
 * Each call holds its request only while it is waiting or in flight, so a caller's memory for remote calls is
 * bounded by these limits.
 */

import { AetherError, type Deadline, deadlineTimers, type Logger, type NodeId } from "../core/mod.ts";
import type { InvokeOutcome } from "../sandbox/mod.ts";
import { asInvokeFailure, InvokeFailure } from "./failure.ts";
import { INVOKE_CHANNEL, parseWire, type WireFailure, type WireRequest } from "./_wire.ts";

/** The part of the mesh remote calls use (runtime/net's Mesh has it). */
export interface InvokeMesh {
  send(to: NodeId, channel: string, message: unknown): boolean;
  onMessage(channel: string, handler: (from: NodeId, message: unknown) => void): () => void;
  onPeerDown(handler: (id: NodeId, reason: string) => void): () => void;
  canSend(id: NodeId): boolean;
  writable(id: NodeId, signal?: AbortSignal): Promise<boolean>;
  isConnected(id: NodeId): boolean;
  /** Bytes queued for the peer (measures an encoded request's size for flow control). */
  queuedBytes(id: NodeId): number;
}

export interface FlowLimits {
  maxInFlightPerPeer: number;
  maxInFlightBytesPerPeer: number;
  maxWaitingPerPeer: number;
  maxServing: number;
}

export const DEFAULT_FLOW_LIMITS: Readonly<FlowLimits> = Object.freeze({
  maxInFlightPerPeer: 1024,
  maxInFlightBytesPerPeer: 32 * 1024 * 1024,
  maxWaitingPerPeer: 4096,
  maxServing: 4096,
});

export interface RemoteCall {
  instanceId: string;
  method: string;
  payload: unknown;
  requestId: string;
  traceparent: string;
  /** Epoch milliseconds. */
  deadlineMs: number;
  fireAndForget?: boolean;
  /** The calling slice's coordinates (absent for calls from HTTP or the API). */
  caller?: string;
}

/** A call a peer asked this node to run. */
export interface ServedCall extends RemoteCall {
  from: NodeId;
}

export interface RemoteCallsOptions {
  self: NodeId;
  mesh: InvokeMesh;
  /** Runs a call a peer sent (through the local executor); throws AetherError/InvokeFailure when it cannot. */
  serve(call: ServedCall): Promise<InvokeOutcome>;
  log: Logger;
  limits?: Partial<FlowLimits>;
  now?: () => number;
}

export interface RemoteStats {
  inFlight: Record<NodeId, { calls: number; bytes: number; waiting: number }>;
  serving: number;
  sent: number;
  served: number;
  refusedOverloaded: number;
  failedDeparted: number;
  malformed: number;
}

interface Pending {
  node: NodeId;
  bytes: number;
  requestId: string;
  resolve(outcome: InvokeOutcome): void;
  reject(error: InvokeFailure): void;
  deadline: Deadline;
}

interface Waiter {
  wake(): void;
  fail(error: InvokeFailure): void;
}

class Gate {
  calls = 0;
  bytes = 0;
  readonly waiting: Waiter[] = [];
  constructor(readonly limits: FlowLimits) {}
  get full(): boolean {
    return this.calls >= this.limits.maxInFlightPerPeer || this.bytes >= this.limits.maxInFlightBytesPerPeer;
  }
}

export class RemoteCalls {
  readonly #self: NodeId;
  readonly #mesh: InvokeMesh;
  readonly #serve: (call: ServedCall) => Promise<InvokeOutcome>;
  readonly #log: Logger;
  readonly #limits: FlowLimits;
  readonly #now: () => number;
  readonly #pending = new Map<number, Pending>();
  readonly #gates = new Map<NodeId, Gate>();
  readonly #unsubscribe: Array<() => void> = [];
  #nextCorrelation = 1;
  #serving = 0;
  #closed = false;
  #lastComplaintAt = 0;
  readonly #counters = { sent: 0, served: 0, refusedOverloaded: 0, failedDeparted: 0, malformed: 0 };

  constructor(options: RemoteCallsOptions) {
    this.#self = options.self;
    this.#mesh = options.mesh;
    this.#serve = options.serve;
    this.#log = options.log;
    this.#limits = { ...DEFAULT_FLOW_LIMITS, ...options.limits };
    this.#now = options.now ?? Date.now;
    this.#unsubscribe.push(
      this.#mesh.onMessage(INVOKE_CHANNEL, (from, message) => this.#receive(from, message)),
      this.#mesh.onPeerDown((id, reason) => this.nodeDeparted(id, reason)),
    );
  }
  /** Changes the limits live (gates share the object, so waiting and in-flight checks see it at once). */
  setLimits(limits: Partial<FlowLimits>): void {
    Object.assign(this.#limits, limits);
  }

  limits(): FlowLimits {
    return { ...this.#limits };
  }

  /**
   * Calls `instanceId` on `node`. Resolves with the callee's outcome; rejects with an InvokeFailure whose kind
   * says whether the method may have run (see retry.ts).
   */
  async call(node: NodeId, call: RemoteCall): Promise<InvokeOutcome> {
    if (this.#closed) {
      throw new InvokeFailure("not_sent", "unavailable", "remote calls are closed (node stopping)");
    }
    if (node === this.#self) throw new AetherError("internal", "a remote call to this node itself");
    if (!this.#mesh.isConnected(node)) {
      throw new InvokeFailure("not_sent", "unavailable", `node ${node} is not connected`);
    }
    const gate = this.#gate(node);
    // The free-slot path stays synchronous up to the send, so the next call already sees these bytes.
    if (!this.#tryAcquire(gate)) await this.#acquire(node, gate, call.deadlineMs);
    let bytes = 0;
    let c = 0;
    try {
      if (!this.#mesh.canSend(node)) await this.#drained(node, call.deadlineMs);
      const budgetMs = Math.floor(call.deadlineMs - this.#now());
      if (budgetMs <= 0) throw this.#deadline(node, call);
      c = this.#nextCorrelation++;
      const request: WireRequest = {
        t: "q",
        c,
        i: call.instanceId,
        m: call.method,
        p: call.payload,
        r: call.requestId,
        tp: call.traceparent,
        b: budgetMs,
      };
      if (call.fireAndForget) request.f = 1;
      if (call.caller !== undefined) request.cl = call.caller;
      const before = this.#mesh.queuedBytes(node);
      bytes = this.#send(node, request) - before;
    } catch (e) {
      this.#release(gate, 0);
      throw e;
    }
    this.#counters.sent++;
    gate.bytes += bytes;
    this.#wakeNext(gate);
    return new Promise<InvokeOutcome>((resolve, reject) => {
      // The shared deadline timer runs on Date.now; `now` may be another clock (tests): convert.
      const deadline = deadlineTimers.schedule(Date.now() + (call.deadlineMs - this.#now()), () => {
        if (this.#settle(c)) reject(this.#deadline(node, call));
      });
      this.#pending.set(c, { node, bytes, requestId: call.requestId, resolve, reject, deadline });
    });
  }

  /** Queues the request on the mesh; returns the peer's queued bytes after it (to measure its size). */
  #send(node: NodeId, request: WireRequest): number {
    let sent: boolean;
    try {
      sent = this.#mesh.send(node, INVOKE_CHANNEL, request);
    } catch (e) {
      // The codec cannot encode the request, or it is larger than a frame: the same on every node.
      const error = e instanceof AetherError ? e : new AetherError("bad_request", String(e));
      throw new InvokeFailure("rejected", error.code, `request to ${node} cannot be sent: ${error.message}`);
    }
    if (!sent) {
      const connected = this.#mesh.isConnected(node);
      throw new InvokeFailure(
        connected ? "overloaded" : "not_sent",
        connected ? "overloaded" : "unavailable",
        connected ? `the queue to node ${node} is full` : `node ${node} went down before the call was sent`,
      );
    }
    return this.#mesh.queuedBytes(node);
  }

  /** Fails every call in flight to `node` at once (the invoker retries them elsewhere). */
  nodeDeparted(node: NodeId, reason: string): void {
    const gate = this.#gates.get(node);
    for (const waiter of gate?.waiting.splice(0) ?? []) {
      waiter.fail(new InvokeFailure("not_sent", "unavailable", `node ${node} departed (${reason})`));
    }
    let failed = 0;
    for (const [c, pending] of this.#pending) {
      if (pending.node !== node) continue;
      this.#settle(c);
      failed++;
      pending.reject(
        new InvokeFailure(
          "node_departed",
          "unavailable",
          `node ${node} departed with the call in flight (${reason})`,
        ),
      );
    }
    if (failed > 0) {
      this.#counters.failedDeparted += failed;
      this.#log.warn("node departed with calls in flight; retrying them elsewhere", {
        node,
        calls: failed,
        reason,
      });
    }
  }

  stats(): RemoteStats {
    const inFlight: RemoteStats["inFlight"] = {};
    for (const [node, gate] of this.#gates) {
      inFlight[node] = { calls: gate.calls, bytes: gate.bytes, waiting: gate.waiting.length };
    }
    return { inFlight, serving: this.#serving, ...this.#counters };
  }

  /** Stops taking calls; calls in flight fail as if their nodes had departed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const off of this.#unsubscribe.splice(0)) off();
    for (const node of this.#gates.keys()) this.nodeDeparted(node, "this node is stopping");
    deadlineTimers.settle();
  }

  // ------------------------------------------------------------------------------------------- caller side

  #gate(node: NodeId): Gate {
    let gate = this.#gates.get(node);
    if (!gate) this.#gates.set(node, gate = new Gate(this.#limits));
    return gate;
  }

  /**
   * Takes an in-flight slot to `node`, waiting (FIFO) until one is free or the deadline passes; refuses at once
   * when too many calls wait already.
   */
  #acquire(node: NodeId, gate: Gate, deadlineMs: number): Promise<void> {
    if (this.#tryAcquire(gate)) return Promise.resolve();
    if (gate.waiting.length >= this.#limits.maxWaitingPerPeer) {
      this.#counters.refusedOverloaded++;
      return Promise.reject(
        new InvokeFailure(
          "overloaded",
          "overloaded",
          `node ${node} has ${gate.calls} calls in flight (${gate.bytes} bytes) and ${gate.waiting.length} waiting`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = gate.waiting.indexOf(waiter);
        if (i >= 0) gate.waiting.splice(i, 1);
        reject(
          new InvokeFailure(
            "deadline",
            "timeout",
            `the deadline passed while waiting for a slot to node ${node} (${gate.calls} calls in flight)`,
          ),
        );
      }, Math.max(0, deadlineMs - this.#now()));
      const waiter: Waiter = {
        wake: () => {
          clearTimeout(timer);
          gate.calls++;
          resolve();
        },
        fail: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      gate.waiting.push(waiter);
    });
  }

  /** Takes a slot when one is free and nobody waits before us. */
  #tryAcquire(gate: Gate): boolean {
    if (gate.full || gate.waiting.length > 0) return false;
    gate.calls++;
    return true;
  }

  /** Gives back a slot and lets the next waiter in if there is room. */
  #release(gate: Gate, bytes: number): void {
    gate.calls--;
    gate.bytes -= bytes;
    this.#wakeNext(gate);
  }

  /**
   * Lets the next waiter in when there is room. One at a time: a woken call's size is known only once it is
   * sent, and it wakes the next one then.
   */
  #wakeNext(gate: Gate): void {
    if (gate.waiting.length > 0 && !gate.full) gate.waiting.shift()!.wake();
  }

  /** Waits until the mesh queue to `node` has room, until the deadline. */
  async #drained(node: NodeId, deadlineMs: number): Promise<void> {
    const remainingMs = deadlineMs - this.#now();
    if (remainingMs <= 0) {
      throw new InvokeFailure(
        "deadline",
        "timeout",
        `the deadline passed before the call to ${node} was sent`,
      );
    }
    const writable = await this.#mesh.writable(node, AbortSignal.timeout(remainingMs));
    if (writable) return;
    if (!this.#mesh.isConnected(node)) {
      throw new InvokeFailure("not_sent", "unavailable", `node ${node} went down before the call was sent`);
    }
    throw new InvokeFailure(
      "deadline",
      "timeout",
      `the deadline passed while the queue to node ${node} was full (the node reads too slowly)`,
    );
  }

  #deadline(node: NodeId, call: RemoteCall): InvokeFailure {
    return new InvokeFailure(
      "deadline",
      "timeout",
      `${call.instanceId} ${call.method} on node ${node} did not answer within its deadline`,
    );
  }

  /** Removes a pending call and releases its slot; false when it was already settled. */
  #settle(c: number): Pending | undefined {
    const pending = this.#pending.get(c);
    if (!pending) return undefined;
    this.#pending.delete(c);
    pending.deadline.cancel();
    const gate = this.#gates.get(pending.node);
    if (gate) this.#release(gate, pending.bytes);
    return pending;
  }

  // ------------------------------------------------------------------------------------------- both sides

  #receive(from: NodeId, message: unknown): void {
    const parsed = parseWire(message);
    if ("problem" in parsed) {
      this.#counters.malformed++;
      this.#complain(from, parsed.problem);
      if (parsed.c !== undefined && (message as { t?: unknown }).t === "q") {
        this.#answer(from, { t: "e", c: parsed.c, k: "rejected", code: "bad_request", msg: parsed.problem });
      }
      return;
    }
    switch (parsed.t) {
      case "q":
        this.#run(from, parsed);
        return;
      case "a": {
        const pending = this.#settle(parsed.c);
        pending?.resolve(parsed.o);
        return;
      }
      case "e": {
        const pending = this.#settle(parsed.c);
        pending?.reject(
          new InvokeFailure(
            parsed.k,
            parsed.code,
            `node ${from}: ${parsed.msg}`,
            parsed.ra !== undefined ? { retryAfterSeconds: parsed.ra } : {},
          ),
        );
        return;
      }
    }
  }

  #complain(from: NodeId, problem: string): void {
    const now = this.#now();
    if (now - this.#lastComplaintAt < 1_000) return;
    this.#lastComplaintAt = now;
    this.#log.warn("malformed invocation message dropped", { peer: from, problem });
  }

  // ------------------------------------------------------------------------------------------- callee side

  #run(from: NodeId, request: WireRequest): void {
    if (this.#closed || this.#serving >= this.#limits.maxServing) {
      this.#counters.refusedOverloaded++;
      this.#answer(from, {
        t: "e",
        c: request.c,
        k: this.#closed ? "not_active" : "overloaded",
        code: this.#closed ? "unavailable" : "overloaded",
        msg: this.#closed
          ? `node ${this.#self} is stopping`
          : `node ${this.#self} runs ${this.#serving} remote calls`,
        ...(this.#closed ? {} : { ra: 1 }),
      });
      return;
    }
    this.#serving++;
    this.#counters.served++;
    const call: ServedCall = {
      from,
      instanceId: request.i,
      method: request.m,
      payload: request.p,
      requestId: request.r,
      traceparent: request.tp,
      deadlineMs: this.#now() + request.b,
      fireAndForget: request.f === 1,
      ...(request.cl === undefined ? {} : { caller: request.cl }),
    };
    let served: Promise<InvokeOutcome>;
    try {
      served = this.#serve(call);
    } catch (e) {
      served = Promise.reject(e);
    }
    served.then(
      (outcome) => {
        // A fire-and-forget caller only learns that it ran; the value stays here.
        const o: InvokeOutcome = request.f === 1 && outcome.ok ? { ok: true, value: null } : outcome;
        this.#answer(from, { t: "a", c: request.c, o }, call.deadlineMs);
      },
      (e) => {
        const failure = asInvokeFailure(e);
        const retryAfterSeconds = failure.extra.retryAfterSeconds;
        this.#answer(from, {
          t: "e",
          c: request.c,
          k: failure.kind,
          code: failure.code,
          msg: failure.message,
          ...(typeof retryAfterSeconds === "number" ? { ra: retryAfterSeconds } : {}),
        });
      },
    ).finally(() => this.#serving--);
  }

  /** Sends an answer; waits (until shortly after the call's deadline) while the queue to the caller is full. */
  #answer(
    to: NodeId,
    message: WireFailure | { t: "a"; c: number; o: InvokeOutcome },
    deadlineMs?: number,
  ): void {
    const send = () => {
      try {
        return this.#mesh.send(to, INVOKE_CHANNEL, message);
      } catch (e) {
        // The result cannot be encoded or is too large for a frame: the caller still gets an answer.
        const error = e instanceof AetherError ? e : new AetherError("bad_request", String(e));
        return this.#mesh.send(
          to,
          INVOKE_CHANNEL,
          {
            t: "e",
            c: message.c,
            k: "rejected",
            code: error.code === "too_large" ? "too_large" : "bad_request",
            msg: `the answer cannot be sent: ${error.message}`,
          } satisfies WireFailure,
        );
      }
    };
    if (this.#mesh.canSend(to)) {
      send();
      return;
    }
    const waitMs = Math.max(100, (deadlineMs ?? this.#now()) - this.#now() + 1_000);
    this.#mesh.writable(to, AbortSignal.timeout(waitMs)).then((ok) => {
      if (ok) send();
      else this.#log.debug("answer dropped: the caller is down or reads too slowly", { peer: to });
    });
  }
}
