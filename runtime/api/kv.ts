import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { AetherError } from "../core/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import { operatorWriteProblem } from "./_operator.ts";
import { badRequest, boolParam, intParam, problemResponse } from "./_problem.ts";
import type { ApiDeps } from "./deps.ts";

const decoder = new TextDecoder();

function itemOf(entry: KvEntry) {
  return { key: entry.key, value: decoder.decode(entry.value), revision: entry.modRevision };
}

function keyOf(path: string): string {
  const key = decodeURIComponent(path.replace(/^\/kv\//, ""));
  if (key.length === 0) throw badRequest("the key is empty: use /api/v1/kv/{key}");
  return key;
}

/** Operator access to the replicated KV store: reads anywhere, writes only under `app/`. */
export function kvRoutes(deps: ApiDeps): Hono {
  const { kv } = deps;
  const app = new Hono();

  app.get("/kv", (c) => {
    const prefix = c.req.query("prefix") ?? "";
    const limit = intParam(c, "limit");
    if (limit === 0) throw badRequest("query parameter limit: must be at least 1");
    const startAfter = c.req.query("startAfter") || undefined;
    const { revision, items } = kv.range(prefix, { limit: limit ?? 1000, startAfter });
    return c.json({ revision, items: items.map(itemOf) });
  });

  app.get("/kv/*", async (c) => {
    const key = keyOf(c.req.path.slice("/api/v1".length));
    const entry = await kv.get(key, {
      consistent: boolParam(c, "consistent"),
      timeoutMs: intParam(c, "timeoutMs"),
    });
    if (!entry) throw new AetherError("not_found", `key "${key}" does not exist`, { key });
    return new Response(entry.value as Uint8Array<ArrayBuffer>, {
      headers: {
        "content-type": "application/octet-stream",
        "x-aether-revision": String(entry.modRevision),
        "x-aether-create-revision": String(entry.createRevision),
        "x-aether-version": String(entry.version),
      },
    });
  });

  const limitBody = bodyLimit({
    maxSize: kv.maxValueBytes,
    onError: (c) =>
      problemResponse(
        c,
        new AetherError("too_large", `the value is larger than the limit of ${kv.maxValueBytes} bytes`),
      ),
  });

  app.put("/kv/*", limitBody, async (c) => {
    const key = keyOf(c.req.path.slice("/api/v1".length));
    operatorWriteProblem(key);
    const value = new Uint8Array(await c.req.arrayBuffer());
    const outcome = await kv.write(
      { type: "put", key, value, ifRevision: intParam(c, "ifRevision") },
      { timeoutMs: intParam(c, "timeoutMs") },
    );
    return c.json({ revision: outcome.revision });
  });

  app.delete("/kv/*", async (c) => {
    const key = keyOf(c.req.path.slice("/api/v1".length));
    operatorWriteProblem(key);
    const outcome = await kv.write(
      { type: "delete", key, ifRevision: intParam(c, "ifRevision") },
      { timeoutMs: intParam(c, "timeoutMs") },
    );
    return c.json({ revision: outcome.revision, deleted: outcome.deleted ?? 0 });
  });

  app.get("/kv-watch", (c) => {
    const prefix = c.req.query("prefix") ?? "";
    // A reconnecting EventSource sends the last id it saw; resume right after it.
    const lastEventId = c.req.header("last-event-id");
    const fromRevision = lastEventId && /^\d+$/.test(lastEventId)
      ? Number(lastEventId) + 1
      : intParam(c, "fromRevision");
    const stream = kv.watch(prefix, fromRevision);
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => stream.cancel());
      for await (const event of stream) {
        await sse.writeSSE({
          id: String(event.revision),
          event: event.type,
          data: JSON.stringify({
            type: event.type,
            key: event.key,
            value: event.value ? decoder.decode(event.value) : undefined,
            revision: event.revision,
          }),
        });
      }
    }, async (error, sse) => {
      await sse.writeSSE({ event: "error", data: JSON.stringify({ detail: error.message }) });
    });
  });

  return app;
}
