/**
 * Pub/sub in the management API (mounted under /api/v1 by the node; roles in runtime/api/roles.ts):
 *
 *   GET  /topics[?group=G]                          topics with partitions, messages, bytes, consumer groups, lag
 *   GET  /topics/{group}/{topic}                    one topic (404 when absent)
 *   POST /topics/{group}/{topic}/publish            {"value":..., "key":"k", "idempotencyKey":"id"}
 *   POST /topics/{group}/{topic}/subscriptions      {"group":"billing","slice":"G:billing","method":"onOrder",
 *                                                    "maxAttempts":5,"from":"earliest"|"latest"|offset}
 *   POST /topics/{group}/{topic}/seek               {"group":"billing","offset":1234,"partition":0} (replay)
 *
 * `{group}` is the slice group owning the topic (the publishing slices' artifact group); every call goes
 * through the same checks as a slice's call of that group.
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import type { PubsubService } from "./pubsub_service.ts";
import { checkGroup, checkName } from "./pubsub_records.ts";

export function pubsubRoutes(pubsub: PubsubService): Hono {
  const app = new Hono();
  app.get("/topics", (c) => {
    const group = c.req.query("group");
    return c.json({ items: pubsub.topics(group === undefined ? undefined : checkGroup("query", group)) });
  });
  app.get("/topics/:group/:topic", (c) => {
    const { group, topic } = params(c.req.param("group"), c.req.param("topic"));
    const view = pubsub.topic(group, topic);
    if (!view) throw new AetherError("not_found", `no topic ${topic} in group ${group}`);
    return c.json(view);
  });
  app.post("/topics/:group/:topic/publish", async (c) => {
    const { group, topic } = params(c.req.param("group"), c.req.param("topic"));
    const body = await jsonBody(
      c.req.raw,
      '{"value":{"id":1},"key":"customer-7","idempotencyKey":"order-1"}',
    );
    return c.json(await pubsub.callAs(group, "publish", { ...body, topic }));
  });
  app.post("/topics/:group/:topic/subscriptions", async (c) => {
    const { group, topic } = params(c.req.param("group"), c.req.param("topic"));
    const body = await jsonBody(
      c.req.raw,
      `{"group":"billing","slice":"${group}:billing","method":"onOrder","maxAttempts":5,"from":"earliest"}`,
    );
    return c.json(await pubsub.callAs(group, "subscribe", { ...body, topic }));
  });
  app.post("/topics/:group/:topic/seek", async (c) => {
    const { group, topic } = params(c.req.param("group"), c.req.param("topic"));
    const body = await jsonBody(c.req.raw, '{"group":"billing","offset":1234}');
    return c.json(await pubsub.callAs(group, "seek", { ...body, topic }));
  });
  return app;
}

function params(group: string, topic: string): { group: string; topic: string } {
  return { group: checkGroup("path", group), topic: checkName("path", "topic", topic) };
}

async function jsonBody(request: Request, example: string): Promise<Record<string, unknown>> {
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    throw new AetherError("bad_request", `body: expected a JSON object like ${example}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError(
      "bad_request",
      `body: expected a JSON object like ${example}, got ${JSON.stringify(body)}`,
    );
  }
  return body as Record<string, unknown>;
}
