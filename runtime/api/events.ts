/**
 * The cluster event stream and the dashboard's live feed.
 *
 * GET /api/v1/events: Server-Sent Events from this node's event bus (runtime/metrics/events.ts). Each event is
 * sent with `id` (the bus's id) and `event` (its type); a client that reconnects with `Last-Event-ID` (or
 * `?since=`) gets everything after that id first, then live events, nothing lost and nothing twice; when the
 * bus's ring no longer holds what followed that id, the answer is 410 naming the oldest id held. Without a
 * resume point the stream starts with the newest `recent` matching events (default none). `?type=` filters
 * (a type or a family, repeated or comma-separated). `?follow=false` answers JSON instead: the newest `limit`
 * matching events (or those after `since`). A client that reads too slowly (more than MAX_SSE_QUEUED_BYTES
 * waiting for it) gets an `overflow` event and the stream ends: it resumes with its last id.
 *
 * GET /api/v1/ws: a WebSocket that sends `{"kind":"snapshot",...}` every SNAPSHOT_EVERY_MS (the cluster metrics
 * snapshot, or this node's status until the node has metrics) and `{"kind":"event","event":...}` as events
 * happen. The client may send `{"types":[...]}` to filter events. Slow clients are cut off like SSE ones.
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { AetherError } from "../core/mod.ts";
import {
  type ClusterEvent,
  type EventBus,
  type EventSubscription,
  type EventTypeFilter,
  parseEventTypeFilter,
} from "../metrics/mod.ts";
import { badRequest, boolParam } from "./_problem.ts";
import { intInRange, intParam, MAX_REVISION } from "./_input.ts";
import type { ApiDeps } from "./deps.ts";
import { offersWebSocketProtocol, WEBSOCKET_PROTOCOL } from "./auth.ts";

/** Events `?follow=false` answers unless it asks for another number (`limit`). */
export const DEFAULT_EVENTS_LIMIT = 100;
/** The most `limit` or `recent` may ask for. */
export const MAX_EVENTS_LIMIT = 10_000;
/** Bytes queued for one slow SSE or WebSocket client; beyond, it is cut off (it resumes by id). */
export const MAX_SSE_QUEUED_BYTES = 4 * 1024 * 1024;
/** An SSE comment this often keeps idle proxies from closing a quiet stream and finds a gone client. */
export const SSE_KEEPALIVE_MS = 15_000;
/** How often the WebSocket feed sends the cluster snapshot. */
export const SNAPSHOT_EVERY_MS = 1_000;
/** Open WebSocket feeds per node, at most. */
export const MAX_WS_FEEDS = 64;

const QUERY_PARAMETERS = ["type", "since", "recent", "limit", "follow"];
const ID_RANGE = { min: 0, max: MAX_REVISION };
const LIMIT_RANGE = { min: 1, max: MAX_EVENTS_LIMIT };
const encoder = new TextEncoder();

/** What the stream endpoints need from the node. */
export interface EventsDeps {
  events: EventBus;
  /** The cluster metrics snapshot (undefined until the node has one). */
  clusterSnapshot?: () => unknown;
  status: ApiDeps["status"];
}

interface EventsRequest {
  filter: EventTypeFilter;
  /** Resume after this id (Last-Event-ID or `since`). */
  after?: number;
  recent: number;
  limit: number;
  follow: boolean;
}

function parseEventsRequest(c: Context): EventsRequest {
  const url = new URL(c.req.url);
  for (const name of url.searchParams.keys()) {
    if (!QUERY_PARAMETERS.includes(name)) {
      throw badRequest(
        `query parameter ${name}: unknown; the parameters are ${QUERY_PARAMETERS.join(", ")}`,
        {
          parameter: name,
        },
      );
    }
  }
  const filter = parseEventTypeFilter(url.searchParams.getAll("type"), "query parameter type");
  const header = c.req.header("last-event-id");
  const after = header !== undefined && header !== ""
    ? intInRange(header.trim(), "header last-event-id", ID_RANGE)
    : intParam(c, "since", ID_RANGE);
  return {
    filter,
    after,
    recent: intParam(c, "recent", { min: 0, max: MAX_EVENTS_LIMIT }) ?? 0,
    limit: intParam(c, "limit", LIMIT_RANGE) ?? DEFAULT_EVENTS_LIMIT,
    follow: c.req.query("follow") === undefined ? true : boolParam(c, "follow"),
  };
}

/** The events before the live ones: those after the resume point, or the newest `count`. */
function backlog(bus: EventBus, after: number | undefined, filter: EventTypeFilter, count: number) {
  if (after === undefined) return bus.recent(count, filter);
  const answer = bus.since(after, filter);
  if (answer.gone) {
    const oldest = answer.oldestId === undefined ? "none (the ring is empty)" : String(answer.oldestId);
    throw new AetherError(
      "gone",
      `events after id ${after} are no longer held by ${bus.node} (the oldest held is ${oldest}); ` +
        `read again without Last-Event-ID to start from now`,
      { lastEventId: after, oldestId: answer.oldestId ?? null, node: bus.node },
    );
  }
  return answer.events;
}

function sseFrame(event: ClusterEvent): Uint8Array {
  return encoder.encode(`id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
}

/**
 * The SSE body: the backlog, then live events. The backlog is read and the subscription made in one
 * synchronous step (the bus publishes synchronously), so no event falls between them.
 */
function eventStream(bus: EventBus, request: EventsRequest): ReadableStream<Uint8Array> {
  const events = backlog(bus, request.after, request.filter, request.recent);
  let subscription: EventSubscription | undefined;
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const end = () => {
    subscription?.close();
    clearInterval(keepAlive);
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      // The retry hint and a comment first, so the client sees the stream open at once.
      controller.enqueue(encoder.encode(`retry: 1000\n: events of ${bus.node}\n\n`));
      for (const event of events) controller.enqueue(sseFrame(event));
      subscription = bus.subscribe((event) => {
        if ((controller.desiredSize ?? 0) < 0) {
          controller.enqueue(
            encoder.encode(`event: overflow\ndata: ${JSON.stringify({ lastSentId: event.id - 1 })}\n\n`),
          );
          controller.close();
          end();
          return;
        }
        controller.enqueue(sseFrame(event));
      }, request.filter);
      keepAlive = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          end();
        }
      }, SSE_KEEPALIVE_MS);
    },
    cancel: end,
  }, new ByteLengthQueuingStrategy({ highWaterMark: MAX_SSE_QUEUED_BYTES }));
}

/** GET /api/v1/events and GET /api/v1/ws. */
export function eventRoutes(deps: EventsDeps): Hono {
  const app = new Hono();
  let feeds = 0;

  app.get("/events", (c) => {
    const request = parseEventsRequest(c);
    if (!request.follow) {
      const events = request.after === undefined
        ? deps.events.recent(request.limit, request.filter)
        : backlog(deps.events, request.after, request.filter, 0).slice(0, request.limit);
      return c.json({
        node: deps.events.node,
        events,
        oldestId: deps.events.oldestId ?? null,
        latestId: deps.events.latestId ?? null,
      });
    }
    return new Response(eventStream(deps.events, request), {
      headers: {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        "x-accel-buffering": "no",
      },
    });
  });

  app.get("/ws", (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
      throw badRequest("GET /api/v1/ws is a WebSocket: send Upgrade: websocket (e.g. new WebSocket(url))");
    }
    if (feeds >= MAX_WS_FEEDS) {
      throw new AetherError("overloaded", `this node serves at most ${MAX_WS_FEEDS} WebSocket feeds at once`);
    }
    // A browser's socket offers WEBSOCKET_PROTOCOL with its token (auth.ts); the answer must pick it.
    const offered = offersWebSocketProtocol(c.req.raw);
    // Deno's upgrade reads the offered list split at ", " (as browsers send it); a list joined by a bare ","
    // (the npm ws client) would make it throw, so that is a 400 saying how to send it instead of a 500.
    const header = c.req.header("sec-websocket-protocol") ?? "";
    if (offered && !header.split(", ").includes(WEBSOCKET_PROTOCOL)) {
      throw badRequest(
        `Sec-WebSocket-Protocol "${header.replace(/bearer\.[^,\s]*/g, "bearer.***")}": separate the ` +
          `protocols with ", " (e.g. "${WEBSOCKET_PROTOCOL}, bearer.<token>"), or send the token as ` +
          "Authorization: Bearer",
        { header: "sec-websocket-protocol" },
      );
    }
    const { socket, response } = Deno.upgradeWebSocket(
      c.req.raw,
      offered ? { protocol: WEBSOCKET_PROTOCOL } : {},
    );
    feeds++;
    startFeed(socket, deps, () => feeds--);
    return response;
  });

  return app;
}

/** One WebSocket client: the snapshot every second, events as they happen. */
function startFeed(socket: WebSocket, deps: EventsDeps, onClose: () => void): void {
  let filter: EventTypeFilter = [];
  let subscription: EventSubscription | undefined;
  let timer: ReturnType<typeof setInterval> | undefined;
  let closed = false;
  const send = (message: unknown) => {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (socket.bufferedAmount > MAX_SSE_QUEUED_BYTES) {
      socket.close(1013, "too slow: reconnect");
      return;
    }
    socket.send(JSON.stringify(message));
  };
  const sendSnapshot = () => {
    const snapshot = deps.clusterSnapshot?.();
    send(
      snapshot === undefined
        ? { kind: "snapshot", time: Date.now(), source: "status", snapshot: deps.status() }
        : { kind: "snapshot", time: Date.now(), source: "metrics", snapshot },
    );
  };
  socket.onopen = () => {
    try {
      subscription = deps.events.subscribe((event) => send({ kind: "event", event }), undefined);
    } catch (e) {
      socket.close(1013, (e as Error).message.slice(0, 120));
      return;
    }
    sendSnapshot();
    timer = setInterval(sendSnapshot, SNAPSHOT_EVERY_MS);
  };
  socket.onmessage = (message) => {
    try {
      const types = (JSON.parse(String(message.data)) as { types?: unknown }).types;
      if (!Array.isArray(types) || types.some((t) => typeof t !== "string")) {
        throw new Error('send {"types": ["node", "alert.firing", ...]}');
      }
      filter = parseEventTypeFilter(types, "types");
      subscription?.close();
      subscription = deps.events.subscribe((event) => send({ kind: "event", event }), filter);
    } catch (e) {
      send({ kind: "error", detail: (e as Error).message });
    }
  };
  socket.onclose = () => {
    if (closed) return;
    closed = true;
    subscription?.close();
    clearInterval(timer);
    onClose();
  };
  socket.onerror = () => {};
}
