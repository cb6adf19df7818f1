/**
 * The store's management API, mounted under /api/v1 (operators and tests reach the store through it):
 *
 * | method and path                          | what                                                          |
 * | ---------------------------------------- | ------------------------------------------------------------- |
 * | `GET    /stores`                         | every store: config, this node's view (partitions, entries)   |
 * | `POST   /stores`                         | create (or open) `{name, replicas?, writeQuorum?, engine?}`    |
 * | `GET    /stores/{store}/entries/{key}`   | `{key, value, version, expiresAtMs?}`; 404 when absent         |
 * | `PUT    /stores/{store}/entries/{key}`   | `{value, ttlMs?, ifVersion?}` → `{version}`; 409 on a failed compare |
 * | `DELETE /stores/{store}/entries/{key}[?ifVersion=N]` | `{deleted}`                                       |
 */

import { Hono } from "hono";
import type { Context } from "hono";
import { AetherError, type Logger, problemResponse, toAetherError } from "../core/mod.ts";
import { storeNameText } from "../model/mod.ts";
import type { InfraStores } from "./feature.ts";

const MAX_BODY_CHARS = 2 * 1024 * 1024;

function problem(c: Context, error: unknown): Response {
  return problemResponse(toAetherError(error), { fields: { instance: c.req.path } });
}

async function jsonBody(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.length > MAX_BODY_CHARS) {
    throw new AetherError("too_large", `body: over ${MAX_BODY_CHARS} characters`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `body: not JSON (${(e as Error).message})`, { field: "body" });
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new AetherError("bad_request", "body: must be a JSON object", { field: "body" });
  }
  return body as Record<string, unknown>;
}

function allowedFields(body: Record<string, unknown>, allowed: string[]): void {
  for (const name of Object.keys(body)) {
    if (!allowed.includes(name)) {
      throw new AetherError(
        "bad_request",
        `body.${name} is not a known field (known: ${allowed.join(", ")})`,
        {
          field: name,
        },
      );
    }
  }
}

function optionalInteger(value: unknown, field: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new AetherError(
      "bad_request",
      `body.${field} must be an integer >= 0, got ${JSON.stringify(value)}`,
      {
        field,
      },
    );
  }
  return value;
}

export function storeRoutes(stores: InfraStores, log: Logger): Hono {
  const app = new Hono();
  app.onError((error, c) => {
    if (!(error instanceof AetherError)) log.error("store API handler failed", { path: c.req.path, error });
    return problem(c, error);
  });

  const existing = (c: Context) => {
    const name = storeNameText(c.req.param("store")!, "path parameter store");
    const store = stores.get(name);
    if (!store) {
      throw new AetherError("not_found", `store ${name} does not exist; create it with POST /api/v1/stores`, {
        store: name,
      });
    }
    return store;
  };

  app.get("/stores", (c) => {
    const status = stores.status() as { stores: Record<string, unknown> };
    return c.json({
      items: stores.list().map((name) => ({ name, ...(status.stores[name] ?? {}) as object })),
    });
  });

  app.post("/stores", async (c) => {
    const body = await jsonBody(c);
    allowedFields(body, ["name", "replicas", "writeQuorum", "engine"]);
    if (typeof body.name !== "string") {
      throw new AetherError("bad_request", "body.name must be a store name (string)", { field: "name" });
    }
    const existed = stores.list().includes(body.name);
    const store = await stores.open(body.name, {
      replicas: body.replicas as number | undefined,
      writeQuorum: body.writeQuorum as number | undefined,
      engine: body.engine as "sqlite" | "memory" | undefined,
    });
    return c.json({ name: store.name, ...store.config }, existed ? 200 : 201);
  });

  app.get("/stores/:store/entries/:key", async (c) => {
    const store = existing(c);
    const key = c.req.param("key");
    const entry = await store.get(key);
    if (!entry) throw new AetherError("not_found", `store ${store.name} has no entry "${key}"`, { key });
    return c.json(entry);
  });

  app.put("/stores/:store/entries/:key", async (c) => {
    const store = existing(c);
    const body = await jsonBody(c);
    allowedFields(body, ["value", "ttlMs", "ifVersion"]);
    if (typeof body.value !== "string") {
      throw new AetherError("bad_request", `body.value must be a string, got ${JSON.stringify(body.value)}`, {
        field: "value",
      });
    }
    const result = await store.put(c.req.param("key"), body.value, {
      ttlMs: optionalInteger(body.ttlMs, "ttlMs"),
      ifVersion: optionalInteger(body.ifVersion, "ifVersion"),
    });
    return c.json(result);
  });

  app.delete("/stores/:store/entries/:key", async (c) => {
    const store = existing(c);
    const text = c.req.query("ifVersion");
    if (text !== undefined && !/^\d{1,16}$/.test(text)) {
      throw new AetherError(
        "bad_request",
        `query parameter ifVersion: "${text.slice(0, 40)}" is not a version`,
        {
          field: "ifVersion",
        },
      );
    }
    const deleted = await store.delete(c.req.param("key"), {
      ifVersion: text === undefined ? undefined : Number(text),
    });
    return c.json({ deleted });
  });

  return app;
}
