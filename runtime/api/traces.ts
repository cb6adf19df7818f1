/**
 * GET /api/v1/traces/{requestId}: the spans of one request from every member (each keeps the newest spans it
 * recorded in a bounded ring; the node asked gathers the others' over the mesh), assembled into a tree:
 * the HTTP router's span, the call of the route's slice under it, its attempts, the remote node's side, and
 * the calls that slice made, each with node, slice, method, start (from the trace's start), duration and
 * outcome. The id may also be a W3C trace id (32 hex digits).
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import { assembleTrace, type ClusterSpans, DEFAULT_SPAN_RING_CAPACITY } from "../metrics/mod.ts";
import { badRequest } from "./_problem.ts";

/** The members' spans of a request (runtime/metrics' ClusterTraces). */
export interface TracesView {
  gather(id: string): Promise<ClusterSpans>;
}

/** A request id as the router accepts it (`x-request-id`: 1-128 URL-safe characters), or a trace id. */
const TRACE_KEY = /^[A-Za-z0-9._:@+=-]{1,128}$/;

export function traceRoutes(view: TracesView, ringCapacity = DEFAULT_SPAN_RING_CAPACITY): Hono {
  const app = new Hono();
  app.get("/traces/:requestId", async (c) => {
    const id = c.req.param("requestId");
    if (!TRACE_KEY.test(id)) {
      throw badRequest(
        `path parameter requestId: "${
          id.slice(0, 140)
        }" is not a request id (1-128 of A-Z a-z 0-9 . _ : @ + = -) ` +
          `or a trace id (32 hex digits)`,
        { parameter: "requestId" },
      );
    }
    const gathered = await view.gather(id);
    if (gathered.spans.length === 0) {
      const unreachable = Object.keys(gathered.unreachable);
      throw new AetherError(
        "not_found",
        `no spans of request ${id} on any node that answered` +
          (unreachable.length > 0 ? ` (${unreachable.join(", ")} did not answer)` : "") +
          `; each node keeps its newest ${ringCapacity} spans, so an old or busy request's may be gone`,
        { requestId: id, unreachable: gathered.unreachable },
      );
    }
    return c.json({
      ...assembleTrace(id, gathered.spans),
      unreachable: gathered.unreachable,
      truncated: gathered.truncated,
    });
  });
  return app;
}
