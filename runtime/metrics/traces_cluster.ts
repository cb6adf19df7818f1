/**
 * A request's spans from every member: the node asked reads its own ring and asks each other member for the
 * matching spans of its ring over the mesh (channel "traces"), the way `GET /api/v1/logs` gathers log records
 * (nodes know each other's mesh addresses, not their API ports). A member that does not answer within
 * PEER_TRACE_QUERY_TIMEOUT_MS is reported unreachable; the spans of the others are still assembled.
 */

import type { Span } from "../invoke/mod.ts";
import { PeerQueries, type QueryMesh } from "../net/mod.ts";
import { cleanSpan, isSpan, MAX_TRACE_SPANS, type SpanQueryAnswer, type SpanRing } from "./traces.ts";

export const TRACES_CHANNEL = "traces";
/** A member that has not answered a trace query within this long is reported unreachable for it. */
export const PEER_TRACE_QUERY_TIMEOUT_MS = 2_000;
/** Trace queries this node waits on at once; beyond, a query is refused (`overloaded`). */
export const MAX_PENDING_TRACE_QUERIES = 256;
/** The longest id a query may carry (a request id is at most 128 characters, a trace id 32). */
const MAX_QUERY_ID_CHARS = 200;

/** The part of the mesh this uses (runtime/net's Mesh has it). */
export type TraceMesh = QueryMesh;

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

/** Gathers a request's spans from every member's ring; serves this member's ring to the others. */
export class ClusterTraces {
  readonly #o: ClusterTracesOptions;
  readonly #queries: PeerQueries<SpanQueryAnswer>;

  constructor(options: ClusterTracesOptions) {
    this.#o = options;
    this.#queries = new PeerQueries<SpanQueryAnswer>({
      mesh: options.mesh,
      channel: TRACES_CHANNEL,
      noun: "trace",
      timeoutMs: options.timeoutMs ?? PEER_TRACE_QUERY_TIMEOUT_MS,
      maxPending: MAX_PENDING_TRACE_QUERIES,
      serve: (_from, query) => {
        const key = query.key;
        if (typeof key !== "string" || key.length === 0 || key.length > MAX_QUERY_ID_CHARS) {
          throw new Error("the query's key is not a request id or trace id");
        }
        const found = options.ring.find(key, MAX_TRACE_SPANS);
        return { spans: found.spans, truncated: found.truncated };
      },
      // A malformed span is dropped, not the answer: the others still make the tree.
      checkAnswer: (answer) =>
        Array.isArray(answer.spans)
          ? { spans: answer.spans.filter(isSpan).map(cleanSpan), truncated: answer.truncated === true }
          : undefined,
      warn: (message, fields) => options.log.warn(message, fields),
    });
  }

  stop(): void {
    this.#queries.stop();
  }

  /** The spans of request id (or trace id) `key` on every member. */
  async gather(key: string): Promise<ClusterSpans> {
    const answers = await Promise.all(this.#o.members.map(async (node) => {
      try {
        const answer = node === this.#o.self
          ? this.#o.ring.find(key)
          : await this.#queries.ask(node, { key });
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
}
