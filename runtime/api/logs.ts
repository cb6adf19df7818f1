/**
 * GET /api/v1/logs: the recent log records of every member, gathered by the node that serves the request
 * (each node keeps a bounded ring of its own records), filtered and merged by time.
 *
 * `follow=true` streams Server-Sent Events: first the newest `limit` matching records, then new ones as the
 * nodes write them (asked for every FOLLOW_POLL_MS). Each follower has a bounded buffer; a follower that reads
 * slower than the cluster logs loses the oldest unsent records and gets a `dropped` event saying how many.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { streamSSE } from "hono/streaming";
import { AetherError, isLogLevel, LOG_LEVELS, type LogFilter, type SequencedLogRecord } from "../core/mod.ts";
import { badRequest, boolParam } from "./_problem.ts";
import type { ApiDeps, LogCursor, LogsView } from "./deps.ts";

/** Records a query returns unless it asks for another number. */
export const DEFAULT_LOG_LIMIT = 200;
/** The most a query may ask for: a node's whole ring (DEFAULT_LOG_RING_LIMITS.maxRecords). */
export const MAX_LOG_LIMIT = 10_000;
/** How often a follower asks the nodes for what they wrote since its cursors. */
export const FOLLOW_POLL_MS = 250;
/** Records asked from each node per poll of a follower (more wait for the next poll). */
const FOLLOW_PAGE_RECORDS = 1_000;
/** Records held for one follower that has not read them yet; beyond, the oldest are dropped. */
export const MAX_FOLLOW_BUFFER_RECORDS = 2_000;
/** Followers one node serves at once (each polls every node four times a second). */
export const MAX_FOLLOWERS = 32;
/** An SSE comment this often keeps idle proxies from closing a quiet stream and finds a gone client. */
const FOLLOW_HEARTBEAT_MS = 15_000;

const QUERY_PARAMETERS = ["node", "slice", "requestId", "level", "since", "limit", "follow"];

const DURATION_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

function parameterProblem(name: string, message: string): AetherError {
  return badRequest(`query parameter ${name}: ${message}`, { parameter: name });
}

/** `5m`, `90s`, `2h`, `1d`, `500ms` before `nowMs`, or an ISO 8601 time; epoch milliseconds. */
export function parseSince(text: string, nowMs: number): number {
  const duration = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text);
  if (duration) return nowMs - Number(duration[1]) * DURATION_MS[duration[2]];
  const time = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(time)) {
    throw parameterProblem(
      "since",
      `"${text}" is neither a duration (500ms, 30s, 5m, 2h, 1d) nor an ISO 8601 time (2026-01-02T03:04:05Z)`,
    );
  }
  return time;
}

export interface LogRequest {
  filter: LogFilter;
  limit: number;
  follow: boolean;
}

/** Every query parameter checked; a problem names the parameter (and an unknown one is refused by name). */
export function parseLogRequest(c: Context, members: readonly string[], nowMs: number): LogRequest {
  for (const name of Object.keys(c.req.queries())) {
    if (!QUERY_PARAMETERS.includes(name)) {
      throw parameterProblem(name, `unknown; the parameters are ${QUERY_PARAMETERS.join(", ")}`);
    }
  }
  const filter: LogFilter = {};
  const node = c.req.query("node");
  if (node !== undefined) {
    if (!members.includes(node)) {
      throw parameterProblem("node", `"${node}" is not a member of the cluster (${members.join(", ")})`);
    }
    filter.node = node;
  }
  const slice = c.req.query("slice");
  if (slice !== undefined) {
    if (!/^[A-Za-z0-9._-]+:[A-Za-z0-9._-]+(:[A-Za-z0-9.+_-]+)?$/.test(slice)) {
      throw parameterProblem("slice", `"${slice}" is not group:artifact or group:artifact:version`);
    }
    filter.slice = slice;
  }
  const requestId = c.req.query("requestId");
  if (requestId !== undefined) {
    if (requestId.length === 0 || requestId.length > 200) {
      throw parameterProblem("requestId", "must be 1 to 200 characters");
    }
    filter.requestId = requestId;
  }
  const level = c.req.query("level");
  if (level !== undefined) {
    if (!isLogLevel(level)) throw parameterProblem("level", `"${level}" is not ${LOG_LEVELS.join(", ")}`);
    filter.level = level;
  }
  const since = c.req.query("since");
  if (since !== undefined) filter.sinceMs = parseSince(since, nowMs);
  return { filter, limit: parseLimit(c.req.query("limit")), follow: parseFollow(c) };
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LOG_LIMIT;
  if (!/^\d{1,9}$/.test(text) || Number(text) < 1 || Number(text) > MAX_LOG_LIMIT) {
    throw parameterProblem("limit", `"${text}" is not an integer from 1 to ${MAX_LOG_LIMIT}`);
  }
  return Number(text);
}

function parseFollow(c: Context): boolean {
  try {
    return boolParam(c, "follow");
  } catch (e) {
    throw parameterProblem("follow", (e as Error).message.replace(/^query parameter follow: /, ""));
  }
}

/** A record as the API shows it: ISO time, the writer's node, its fields apart. */
export function recordView(record: SequencedLogRecord) {
  return {
    time: new Date(record.time).toISOString(),
    level: record.level,
    node: record.node,
    msg: record.msg,
    fields: record.fields,
  };
}

type FollowItem =
  | { kind: "record"; record: SequencedLogRecord }
  | { kind: "dropped"; count: number; node?: string; why: string }
  | { kind: "unreachable"; node: string; reason: string };

/**
 * What one follower has not been sent yet, at most `maxRecords`: beyond, the oldest go and are counted, and
 * the follower is told how many before its next record.
 */
export class FollowBuffer {
  readonly #items: FollowItem[] = [];
  #dropped = 0;
  #waiter?: () => void;

  constructor(readonly maxRecords: number = MAX_FOLLOW_BUFFER_RECORDS) {}

  push(item: FollowItem): void {
    this.#items.push(item);
    while (this.#items.length > this.maxRecords) {
      this.#items.shift();
      this.#dropped++;
    }
    this.#wake();
  }

  /** The next item to send (a `dropped` marker first when records were lost), waiting for one. */
  async next(signal: AbortSignal): Promise<FollowItem | undefined> {
    while (this.#items.length === 0 && this.#dropped === 0) {
      if (signal.aborted) return undefined;
      await new Promise<void>((resolve) => {
        // The listener goes with the wait: a long follow waits many times on the same signal.
        const onAbort = () => resolve();
        signal.addEventListener("abort", onAbort, { once: true });
        this.#waiter = () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        };
      });
    }
    if (this.#dropped > 0) {
      const count = this.#dropped;
      this.#dropped = 0;
      return { kind: "dropped", count, why: "this client read slower than the cluster logged" };
    }
    return this.#items.shift();
  }

  get size(): number {
    return this.#items.length;
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }
}

/** Polls every node for records after the follower's cursors and feeds them into its buffer until `signal`. */
async function pollNodes(
  logs: LogsView,
  request: LogRequest,
  start: { cursors: Record<string, LogCursor>; unreachable: Record<string, string> },
  buffer: FollowBuffer,
  signal: AbortSignal,
): Promise<void> {
  const cursors = start.cursors;
  let unreachable = start.unreachable;
  while (!signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_POLL_MS));
    if (signal.aborted) return;
    const answer = await logs.gather({ filter: request.filter, limit: FOLLOW_PAGE_RECORDS, cursors });
    for (const [node, count] of Object.entries(answer.missed)) {
      if (count > 0) {
        buffer.push({
          kind: "dropped",
          count,
          node,
          why: "the node's log ring overwrote them before they were read",
        });
      }
    }
    for (const [node, reason] of Object.entries(answer.unreachable)) {
      if (!(node in unreachable)) buffer.push({ kind: "unreachable", node, reason });
    }
    unreachable = answer.unreachable;
    for (const record of answer.records) buffer.push({ kind: "record", record });
    Object.assign(cursors, answer.cursors);
  }
}

/** Log records of the whole cluster, read once or followed. */
export function logRoutes(deps: ApiDeps): Hono {
  const app = new Hono();
  let followers = 0;

  app.get("/logs", async (c) => {
    const members = deps.status().members.map((m) => m.id);
    const request = parseLogRequest(c, members, Date.now());
    if (!request.follow) {
      const answer = await deps.logs.gather({ filter: request.filter, limit: request.limit });
      return c.json({ records: answer.records.map(recordView), unreachable: answer.unreachable });
    }
    if (followers >= MAX_FOLLOWERS) {
      throw new AetherError("overloaded", `this node serves ${MAX_FOLLOWERS} log followers already`, {
        retryAfterSeconds: 5,
      });
    }
    followers++;
    const first = await deps.logs.gather({ filter: request.filter, limit: request.limit }).catch((e) => {
      followers--;
      throw e;
    });
    return streamSSE(c, async (sse) => {
      const stop = new AbortController();
      sse.onAbort(() => stop.abort());
      const buffer = new FollowBuffer();
      for (const [node, reason] of Object.entries(first.unreachable)) {
        buffer.push({ kind: "unreachable", node, reason });
      }
      for (const record of first.records) buffer.push({ kind: "record", record });
      const polling = pollNodes(deps.logs, request, first, buffer, stop.signal).catch((e) => {
        deps.log.warn("log follower stopped polling", { error: e });
        stop.abort();
      });
      const heartbeat = setInterval(
        () => sse.write(": keep-alive\n\n").catch(() => stop.abort()),
        FOLLOW_HEARTBEAT_MS,
      );
      try {
        while (!stop.signal.aborted) {
          const item = await buffer.next(stop.signal);
          if (!item) break;
          await sse.writeSSE(sseEventOf(item));
        }
      } finally {
        stop.abort();
        clearInterval(heartbeat);
        followers--;
        await polling;
      }
    });
  });

  return app;
}

function sseEventOf(item: FollowItem): { event: string; data: string; id?: string } {
  switch (item.kind) {
    case "record":
      return { event: "record", data: JSON.stringify(recordView(item.record)) };
    case "dropped":
      return {
        event: "dropped",
        data: JSON.stringify({ count: item.count, node: item.node, why: item.why }),
      };
    case "unreachable":
      return { event: "unreachable", data: JSON.stringify({ node: item.node, reason: item.reason }) };
  }
}
