import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { AetherError } from "../core/mod.ts";
import type { KvEntry } from "../kv/mod.ts";
import { operatorWriteProblem } from "./_operator.ts";
import { badRequest, problemResponse } from "./_problem.ts";
import {
  decodeStrict,
  hasControl,
  intInRange,
  intParam,
  MAX_REVISION,
  printable,
  queryParam,
  rawPath,
} from "./_input.ts";
import type { ApiDeps } from "./deps.ts";
import { kvReadable, kvReadRole } from "./auth.ts";

/** The longest a KV request may ask to wait (`timeoutMs`); longer would overflow no timer but hold a request. */
export const MAX_KV_TIMEOUT_MS = 10 * 60_000;
/** The most keys one `GET /kv` page returns (`limit`); more are read page by page with `startAfter`. */
export const MAX_KV_LIST_LIMIT = 100_000;
const TIMEOUT_RANGE = { min: 1, max: MAX_KV_TIMEOUT_MS };
const REVISION_RANGE = { min: 0, max: MAX_REVISION };

const decoder = new TextDecoder();

function itemOf(entry: KvEntry) {
  return { key: entry.key, value: decoder.decode(entry.value), revision: entry.modRevision };
}

/**
 * The key of a `/api/v1/kv/{key}` request, decoded once from the path as sent: a 400 naming the key for bad
 * percent-encoding (`%ZZ`, a lone surrogate's bytes, cut UTF-8), control characters (NUL, CR, LF, ...) or an
 * empty key.
 */
export function kvKeyOf(path: string): string {
  const encoded = path.replace(/^(?:\/api\/v1)?\/kv\//, "");
  const key = decodeStrict(encoded, "the key in the path /api/v1/kv/{key}");
  if (key.length === 0) throw badRequest("the key is empty: use /api/v1/kv/{key}");
  if (hasControl(key)) {
    throw badRequest(
      `key "${printable(key)}": keys may not contain control characters (NUL, CR, LF, tab, DEL, ...)`,
      { key: printable(key) },
    );
  }
  return key;
}

function optionalBool(c: Parameters<typeof queryParam>[0], name: string): boolean {
  const text = queryParam(c, name);
  if (text === undefined || text === "" || text === "false") return false;
  if (text === "true") return true;
  throw badRequest(`query parameter ${name}: "${printable(text.slice(0, 40))}" is not true or false`);
}

/** Operator access to the replicated KV store: reads anywhere, writes only under `app/`. */
export function kvRoutes(deps: ApiDeps): Hono {
  const { kv } = deps;
  const app = new Hono();

  app.get("/kv", (c) => {
    const prefix = queryParam(c, "prefix") ?? "";
    const limit = intParam(c, "limit", { min: 1, max: MAX_KV_LIST_LIMIT });
    const startAfter = queryParam(c, "startAfter") || undefined;
    const { revision, items } = kv.range(prefix, { limit: limit ?? 1000, startAfter });
    // Token records and the audit log are left out for a caller whose role may not read them (auth.ts).
    return c.json({ revision, items: items.filter((e) => kvReadable(c, e.key)).map(itemOf) });
  });

  app.get("/kv/*", async (c) => {
    const key = kvKeyOf(rawPath(c));
    if (!kvReadable(c, key)) {
      throw new AetherError(
        "forbidden",
        `key "${key}" can be read only with role ${kvReadRole(key)} or above`,
        {
          key,
          roleNeeded: kvReadRole(key),
        },
      );
    }
    const entry = await kv.get(key, {
      consistent: optionalBool(c, "consistent"),
      timeoutMs: intParam(c, "timeoutMs", TIMEOUT_RANGE),
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
    const key = kvKeyOf(rawPath(c));
    operatorWriteProblem(key);
    const ifRevision = intParam(c, "ifRevision", REVISION_RANGE);
    const timeoutMs = intParam(c, "timeoutMs", TIMEOUT_RANGE);
    const value = new Uint8Array(await c.req.arrayBuffer());
    const outcome = await kv.write({ type: "put", key, value, ifRevision }, { timeoutMs });
    return c.json({ revision: outcome.revision });
  });

  app.delete("/kv/*", async (c) => {
    const key = kvKeyOf(rawPath(c));
    operatorWriteProblem(key);
    const ifRevision = intParam(c, "ifRevision", REVISION_RANGE);
    const timeoutMs = intParam(c, "timeoutMs", TIMEOUT_RANGE);
    const outcome = await kv.write({ type: "delete", key, ifRevision }, { timeoutMs });
    return c.json({ revision: outcome.revision, deleted: outcome.deleted ?? 0 });
  });

  app.get("/kv-watch", (c) => {
    const prefix = queryParam(c, "prefix") ?? "";
    // A reconnecting EventSource sends the last id it saw; resume right after it.
    const lastEventId = c.req.header("last-event-id");
    const fromRevision = lastEventId
      ? intInRange(lastEventId, "header last-event-id", { min: 0, max: MAX_REVISION - 1 }) + 1
      : intParam(c, "fromRevision", REVISION_RANGE);
    const stream = kv.watch(prefix, fromRevision);
    return streamSSE(c, async (sse) => {
      sse.onAbort(() => stream.cancel());
      for await (const event of stream) {
        if (!kvReadable(c, event.key)) continue;
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
