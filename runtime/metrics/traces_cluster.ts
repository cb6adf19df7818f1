/**
 * A request's spans from every member: the node asked reads its own ring and asks each other member for the
 * matching spans of its ring over the mesh (channel "traces"), the way `GET /api/v1/logs` gathers log records
 * (nodes know each other's mesh addresses, not their API ports). A member that does not answer within
 * PEER_TRACE_QUERY_TIMEOUT_MS is reported unreachable; the spans of the others are still assembled.
 */

import type { Span } from "../invoke/mod.ts";
import { cleanSpan, isSpan, MAX_TRACE_SPANS, type SpanQueryAnswer, type SpanRing } from "./traces.ts";

export const TRACES_CHANNEL = "traces";
/** A member that has not answered a trace query within this long is reported unreachable for it. */
export const PEER_TRACE_QUERY_TIMEOUT_MS = 2_000;
/** Trace queries this node waits on at once; beyond, a query is refused (`overloaded`). */
export const MAX_PENDING_TRACE_QUERIES = 256;
/** The longest id a query may carry (a request id is at most 128 characters, a trace id 32). */
const MAX_QUERY_ID_CHARS = 200;

/** The part of the mesh this uses (runtime/net's Mesh has it). */
export interface TraceMesh {
  send(to: string, channel: string, message: unknown): boolean;
  onMessage(channel: string, handler: (from: string, message: unknown) => void): () => void;
  onPeerDown(handler: (id: string, reason: string) => void): () => void;
  isConnected(id: string): boolean;
}

/** Minimal logger shape (core's Logger has it). */
interface WarnLog {
  warn(message: string, fields?: Record<string, unknown>): void;
}

export interface ClusterTracesOptions {
  self: string;
  members: readonly string[];
  mesh: TraceMesh;
  ring: SpanRing;
  log: WarnLog;
  timeoutMs?: number;
}

export interface ClusterSpans {
  /** Every answering node's spans of the request (unordered). */
  spans: Span[];
  /** Nodes that could not answer, with the reason. */
  unreachable: Record<string, string>;
  /** Nodes that had more than MAX_TRACE_SPANS spans of it (their newest were sent). */
  truncated: string[];
}

type TracesMessage =
  | { t: "query"; id: number; key: string }
  | { t: "answer"; id: number; spans: unknown[]; truncated: boolean }
  | { t: "refused"; id: number; reason: string };

interface PendingQuery {
  from: string;
  resolve(answer: SpanQueryAnswer): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Gathers a request's spans from every member's ring; serves this member's ring to the others. */
export class ClusterTraces {
  readonly #o: ClusterTracesOptions;
  readonly #pending = new Map<number, PendingQuery>();
  readonly #unsubscribe: (() => void)[];
  #nextId = 1;

  constructor(options: ClusterTracesOptions) {
    this.#o = options;
    this.#unsubscribe = [
      options.mesh.onMessage(TRACES_CHANNEL, (from, message) => this.#receive(from, message)),
      options.mesh.onPeerDown((id, reason) => this.#failPeer(id, `${id} went down: ${reason}`)),
    ];
  }

  stop(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    for (const id of [...this.#pending.keys()]) this.#settle(id)?.reject(new Error("the node is stopping"));
  }

  /** The spans of request id (or trace id) `key` on every member. */
  async gather(key: string): Promise<ClusterSpans> {
    const answers = await Promise.all(this.#o.members.map(async (node) => {
      try {
        const answer = node === this.#o.self ? this.#o.ring.find(key) : await this.#askPeer(node, key);
        return { node, answer };
      } catch (e) {
        return { node, error: (e as Error).message };
      }
    }));
    const result: ClusterSpans = { spans: [], unreachable: {}, truncated: [] };
    for (const { node, answer, error } of answers) {
      if (!answer) {
        result.unreachable[node] = error!;
        continue;
      }
      result.spans.push(...answer.spans);
      if (answer.truncated) result.truncated.push(node);
    }
    return result;
  }

  #askPeer(node: string, key: string): Promise<SpanQueryAnswer> {
    if (!this.#o.mesh.isConnected(node)) return Promise.reject(new Error(`${node} is not connected`));
    if (this.#pending.size >= MAX_PENDING_TRACE_QUERIES) {
      return Promise.reject(
        new Error(`${MAX_PENDING_TRACE_QUERIES} trace queries are waiting on peers already`),
      );
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timeoutMs = this.#o.timeoutMs ?? PEER_TRACE_QUERY_TIMEOUT_MS;
      const timer = setTimeout(
        () => this.#settle(id)?.reject(new Error(`${node} did not answer within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#pending.set(id, { from: node, resolve, reject, timer });
      const query: TracesMessage = { t: "query", id, key };
      if (!this.#o.mesh.send(node, TRACES_CHANNEL, query)) {
        this.#settle(id)?.reject(new Error(`${node} is not connected`));
      }
    });
  }

  #receive(from: string, raw: unknown): void {
    const message = raw as TracesMessage;
    if (message === null || typeof message !== "object" || !Number.isInteger(message.id)) {
      this.#o.log.warn("malformed traces message", { from });
      return;
    }
    if (message.t === "query") return this.#serve(from, message);
    const pending = this.#pending.get(message.id);
    if (!pending || pending.from !== from) return; // Answered after its timeout.
    this.#settle(message.id);
    if (message.t === "answer" && Array.isArray(message.spans)) {
      // A malformed span is dropped, not the answer: the others still make the tree.
      const spans = message.spans.filter(isSpan).map(cleanSpan);
      pending.resolve({ spans, truncated: message.truncated === true });
    } else {
      pending.reject(
        new Error(message.t === "refused" ? String(message.reason) : `${from} sent a malformed answer`),
      );
    }
  }

  #serve(from: string, query: { id: number; key: unknown }): void {
    let answer: TracesMessage;
    if (typeof query.key !== "string" || query.key.length === 0 || query.key.length > MAX_QUERY_ID_CHARS) {
      answer = { t: "refused", id: query.id, reason: "the query's key is not a request id or trace id" };
    } else {
      const found = this.#o.ring.find(query.key, MAX_TRACE_SPANS);
      answer = { t: "answer", id: query.id, spans: found.spans, truncated: found.truncated };
    }
    this.#o.mesh.send(from, TRACES_CHANNEL, answer);
  }

  #settle(id: number): PendingQuery | undefined {
    const pending = this.#pending.get(id);
    if (!pending) return undefined;
    this.#pending.delete(id);
    clearTimeout(pending.timer);
    return pending;
  }

  #failPeer(node: string, reason: string): void {
    for (const [id, pending] of [...this.#pending]) {
      if (pending.from === node) this.#settle(id)?.reject(new Error(reason));
    }
  }
}
