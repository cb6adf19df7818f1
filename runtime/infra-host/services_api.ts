/**
 * The infrastructure services' part of the management API (mounted under /api/v1 by the node):
 *
 *   GET  /infra                   the bundled catalog: name, version, description, methods, running, store
 *   GET  /infra/{name}            one service (404: the catalog in the message)
 *   POST /infra/{name}/install    starts the service (opens its store; the leader places it); 200 once it runs
 *   GET  /caches/{group}/{cache}  a cache's configuration and this node's counters (cache_service.ts)
 *   PUT  /caches/{group}/{cache}  sets its configuration `{"defaultTtlMs":60000,"maxEntries":N,"maxBytes":B}`
 *
 * A service "runs" once its store exists in the cluster (a `stores/{name}/config` record) and, for a service
 * with a bundled slice (infra/), once that slice has an ACTIVE instance; `slice` then shows its artifact,
 * digest, whether the repository holds it, and its instances (node and state).
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import { SERVICES } from "./services.ts";
import type { InfraServices } from "./services.ts";

const NAME = /^[a-z][a-z0-9-]{0,63}$/;

function serviceName(raw: string): string {
  if (!NAME.test(raw)) {
    throw new AetherError(
      "bad_request",
      `service name ${JSON.stringify(raw.slice(0, 80))} must be 1-64 characters: a lower-case letter, then ` +
        `a-z, 0-9 or '-'`,
      {
        field: "name",
      },
    );
  }
  if (!SERVICES.some((s) => s.name === raw)) {
    throw new AetherError("not_found", unknownServiceMessage(raw), { service: raw });
  }
  return raw;
}

/**
 * `aether infra install|status NAME` of a name no bundled service has. Unlike a blueprint's missing service
 * (services.ts `missingMessage`), no "aether infra install NAME" hint: that is the command that just failed.
 */
function unknownServiceMessage(name: string): string {
  return [
    `Infrastructure service '${name}' not found.`,
    "",
    "No bundled service has that name; the bundled services are:",
    ...SERVICES.map((s) => `  - ${s.name} (v${s.version})`),
  ].join("\n");
}

export function infraServicesRoutes(services: InfraServices): Hono {
  const app = new Hono();
  const describe = (name?: string) => {
    const running = new Map(services.status().map((s) => [s.name, s]));
    return services.catalog()
      .filter((s) => name === undefined || s.name === name)
      .map((s) => ({
        ...s,
        running: running.get(s.name)?.running ?? false,
        store: running.get(s.name)?.store,
        // A bundled service slice: its artifact, whether it is published, its instances (absent: node-served).
        ...(running.get(s.name)?.slice ? { slice: running.get(s.name)?.slice } : {}),
      }));
  };
  app.get("/infra", (c) => c.json({ items: describe() }));
  app.get("/infra/:name", (c) => c.json(describe(serviceName(c.req.param("name")))[0]));
  app.post("/infra/:name/install", async (c) => {
    const name = serviceName(c.req.param("name"));
    const before = describe(name)[0].running;
    await services.ensure([name]);
    return c.json({ ...describe(name)[0], installed: !before });
  });
  app.get("/caches/:group/:cache", async (c) => {
    const { group, cache } = cacheParams(c.req.param("group"), c.req.param("cache"));
    await services.ensure(["cache"]);
    const stats = await services.callAs(group, "cache", "stats", { cache });
    return c.json({ group, cache, ...stats as Record<string, unknown> });
  });
  app.put("/caches/:group/:cache", async (c) => {
    const { group, cache } = cacheParams(c.req.param("group"), c.req.param("cache"));
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new AetherError(
        "bad_request",
        'body: expected a JSON object like {"defaultTtlMs":60000,"maxEntries":10000,"maxBytes":67108864}',
      );
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new AetherError("bad_request", `body: expected a JSON object, got ${JSON.stringify(body)}`);
    }
    await services.ensure(["cache"]);
    const config = await services.callAs(group, "cache", "configure", { ...body, cache });
    return c.json({ group, cache, ...config as Record<string, unknown> });
  });
  return app;
}

/** A slice group (as in artifact coordinates) and a cache name (as ctx.infra.cache(name) accepts). */
function cacheParams(group: string, cache: string): { group: string; cache: string } {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,127}$/.test(group)) {
    throw new AetherError(
      "bad_request",
      `path group ${JSON.stringify(group.slice(0, 80))}: expected a slice group like org.example.shop`,
      { parameter: "group" },
    );
  }
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/.test(cache)) {
    throw new AetherError(
      "bad_request",
      `path cache ${JSON.stringify(cache.slice(0, 80))}: expected 1-64 letters, digits, '.', '_' or '-'`,
      { parameter: "cache" },
    );
  }
  return { group, cache };
}
