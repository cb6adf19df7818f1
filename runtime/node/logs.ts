/**
 * The node's log records: its logger (text or JSON on standard error) writes every record into a bounded ring
 * too, and `ClusterLogs` answers the management API's GET /api/v1/logs for the whole cluster by asking every
 * other member for the matching records of its ring over the mesh (channel "logs"), the way the cluster
 * already reaches its members: nodes do not know each other's API ports, only their mesh addresses.
 */

import {
  AetherError,
  createLogger,
  isLogLevel,
  type LogFilter,
  type Logger,
  LogRing,
  type LogRingAnswer,
  type NodeId,
  type SequencedLogRecord,
} from "../core/mod.ts";
import { type Mesh, PeerQueries } from "../net/mod.ts";
import type { ClusterLogAnswer, ClusterLogQuery, LogCursor, LogsView } from "../api/mod.ts";
import type { NodeFlags } from "./flags.ts";

export const LOGS_CHANNEL = "logs";
/** A member that has not answered a log query within this long is reported unreachable for it. */
export const PEER_LOG_QUERY_TIMEOUT_MS = 2_000;
/** Log queries this node waits on at once (followers poll four times a second); beyond, refused. */
export const MAX_PENDING_LOG_QUERIES = 256;
/** An answer to a peer larger than this is cut to its newest records (the mesh frame limit is 8 MiB). */
export const MAX_LOG_ANSWER_BYTES = 2 * 1024 * 1024;
/** Records one answer to a peer holds at most (a peer asks for up to a ring's worth). */
const MAX_LOG_ANSWER_RECORDS = 10_000;

/** The node's logger with its ring: every record written also lands in the ring. */
export function nodeLogger(
  flags: Pick<NodeFlags, "id" | "logLevel" | "logFormat">,
): { log: Logger; ring: LogRing } {
  const ring = new LogRing();
  const log = createLogger({
    level: flags.logLevel,
    name: flags.id,
    format: flags.logFormat,
    onRecord: (record, lineLength) => ring.append(record, lineLength),
  });
  return { log, ring };
}

/** A page of a peer's ring; `truncated`: cut to fit MAX_LOG_ANSWER_BYTES (ask for the next page). */
interface PeerPage {
  answer: LogRingAnswer;
  truncated: boolean;
}

/** A query of a peer's ring: the newest `limit` records, or those after/before a sequence number. */
interface PeerLogQuery {
  filter: LogFilter;
  limit: number;
  afterSeq?: number;
  beforeSeq?: number;
}

export interface ClusterLogsOptions {
  self: NodeId;
  members: readonly NodeId[];
  mesh: Pick<Mesh, "send" | "onMessage" | "onPeerDown" | "isConnected">;
  ring: LogRing;
  log: Logger;
  timeoutMs?: number;
}

/** Gathers log records from every member's ring; serves this member's ring to the others. */
export class ClusterLogs implements LogsView {
  readonly #o: ClusterLogsOptions;
  readonly #queries: PeerQueries<PeerPage>;

  constructor(options: ClusterLogsOptions) {
    this.#o = options;
    this.#queries = new PeerQueries<PeerPage>({
      mesh: options.mesh,
      channel: LOGS_CHANNEL,
      noun: "log",
      timeoutMs: options.timeoutMs ?? PEER_LOG_QUERY_TIMEOUT_MS,
      maxPending: MAX_PENDING_LOG_QUERIES,
      serve: (_from, query) => ({ ...this.#serve(query) }),
      checkAnswer: (page) =>
        isRingAnswer(page.answer) ? { answer: page.answer, truncated: page.truncated === true } : undefined,
      warn: (message, fields) => options.log.warn(message, fields),
    });
  }

  stop(): void {
    this.#queries.stop();
  }

  async gather(query: ClusterLogQuery): Promise<ClusterLogAnswer> {
    const nodes = query.filter.node !== undefined ? [query.filter.node] : this.#o.members;
    const answers = await Promise.all(nodes.map(async (node) => {
      const cursor = query.cursors?.[node];
      try {
        return { node, answer: await this.#ask(node, query.filter, query.limit, cursor) };
      } catch (e) {
        return { node, error: (e as Error).message };
      }
    }));
    const result: ClusterLogAnswer = { records: [], cursors: {}, missed: {}, unreachable: {} };
    for (const { node, answer, error } of answers) {
      if (!answer) {
        result.unreachable[node] = error!;
        continue;
      }
      result.records.push(...answer.records);
      result.cursors[node] = { epoch: answer.epoch, seq: answer.cursor };
      if (answer.missed > 0) result.missed[node] = answer.missed;
    }
    result.records.sort(byTime);
    // Without cursors each node gave its newest `limit`: the newest `limit` of them all are the answer.
    if (!query.cursors && result.records.length > query.limit) {
      result.records = result.records.slice(-query.limit);
    }
    return result;
  }

  async #ask(node: NodeId, filter: LogFilter, limit: number, cursor?: LogCursor): Promise<LogRingAnswer> {
    if (node === this.#o.self) {
      const ring = this.#o.ring;
      // A cursor from another epoch belongs to a ring that restarted since: read the new one from its start.
      const afterSeq = cursor === undefined ? undefined : cursor.epoch === ring.epoch ? cursor.seq : 0;
      return ring.query({ filter, limit, afterSeq });
    }
    if (cursor !== undefined) {
      // The peer knows only its own epoch: a page for a cursor of another epoch is read again from the start.
      const page = await this.#askPeer(node, { filter, limit, afterSeq: cursor.seq });
      if (page.answer.epoch === cursor.epoch) return page.answer;
      return (await this.#askPeer(node, { filter, limit, afterSeq: 0 })).answer;
    }
    // Newest first, in pages that each fit one mesh message (MAX_LOG_ANSWER_BYTES), until `limit` or the end.
    let page = await this.#askPeer(node, { filter, limit });
    const records = [...page.answer.records];
    while (page.truncated && records.length > 0 && records.length < limit) {
      page = await this.#askPeer(node, { filter, limit: limit - records.length, beforeSeq: records[0].seq });
      records.unshift(...page.answer.records);
    }
    return { ...page.answer, records };
  }

  /** One query to a peer's ring over the mesh; fails when the peer is down or silent for the timeout. */
  #askPeer(node: NodeId, query: PeerLogQuery): Promise<PeerPage> {
    return this.#queries.ask(node, { ...query });
  }

  #serve(query: Record<string, unknown>): PeerPage {
    const filter = checkFilter(query.filter);
    const limit = Number.isInteger(query.limit) && (query.limit as number) > 0
      ? Math.min(query.limit as number, MAX_LOG_ANSWER_RECORDS)
      : 1;
    const afterSeq = Number.isInteger(query.afterSeq) ? query.afterSeq as number : undefined;
    const beforeSeq = Number.isInteger(query.beforeSeq) ? query.beforeSeq as number : undefined;
    const page = this.#o.ring.query({ filter, limit, afterSeq, beforeSeq });
    const fitted = fitAnswer(page, afterSeq !== undefined);
    return { answer: fitted, truncated: fitted !== page };
  }
}

function byTime(a: SequencedLogRecord, b: SequencedLogRecord): number {
  return a.time - b.time || (a.node ?? "").localeCompare(b.node ?? "") || a.seq - b.seq;
}

/** A peer's filter, checked field by field (peers are authenticated, but a bad query must not throw later). */
function checkFilter(raw: unknown): LogFilter {
  if (raw === null || typeof raw !== "object") {
    throw new AetherError("bad_request", "the filter is not an object");
  }
  const f = raw as Record<string, unknown>;
  const filter: LogFilter = {};
  for (const key of ["node", "slice", "requestId"] as const) {
    if (f[key] !== undefined) {
      if (typeof f[key] !== "string") throw new AetherError("bad_request", `filter.${key} is not a string`);
      filter[key] = f[key];
    }
  }
  if (f.level !== undefined) {
    if (!isLogLevel(f.level)) throw new AetherError("bad_request", `filter.level is not a log level`);
    filter.level = f.level;
  }
  if (f.sinceMs !== undefined) {
    if (typeof f.sinceMs !== "number") throw new AetherError("bad_request", "filter.sinceMs is not a number");
    filter.sinceMs = f.sinceMs;
  }
  return filter;
}

function isRingAnswer(value: unknown): value is LogRingAnswer {
  const a = value as LogRingAnswer;
  return a !== null && typeof a === "object" && Array.isArray(a.records) && typeof a.epoch === "string" &&
    Number.isInteger(a.cursor) && Number.isInteger(a.missed);
}

/**
 * Keeps an answer within MAX_LOG_ANSWER_BYTES: halves its records until it fits. A page of a follower keeps
 * its oldest records (the cursor then points at the last one kept); a newest-first answer keeps its newest.
 */
function fitAnswer(answer: LogRingAnswer, followerPage: boolean): LogRingAnswer {
  let records = answer.records;
  while (records.length > 1 && JSON.stringify(records).length > MAX_LOG_ANSWER_BYTES) {
    const half = Math.ceil(records.length / 2);
    records = followerPage ? records.slice(0, half) : records.slice(-half);
  }
  if (records === answer.records) return answer;
  return followerPage ? { ...answer, records, cursor: records.at(-1)!.seq } : { ...answer, records };
}
