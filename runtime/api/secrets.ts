/**
 * Secrets (runtime/infra-host/secrets.ts) over HTTP. Values go in only (a request body, never a URL) and never
 * come out: no endpoint answers a value, and the audit log records who changed which secret, never the value.
 *
 * - GET /api/v1/secrets: names and versions; GET /api/v1/secrets/:name: one;
 * - PUT /api/v1/secrets/:name `{"value":"..."}`: creates the secret or adds a version;
 * - POST /api/v1/secrets/:name/rotate `{"value":"..."}`: a new version of an existing secret;
 * - DELETE /api/v1/secrets/:name: every version.
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import type { ConfigFeature } from "../infra-host/mod.ts";
import { configBody } from "./config.ts";

export function secretRoutes(feature: ConfigFeature): Hono {
  const app = new Hono();
  const secrets = feature.secrets;
  const value = async (c: Parameters<typeof configBody>[0]) => {
    const body = await configBody(c, `{"value":"..."}`);
    if (typeof body.value !== "string") {
      throw new AetherError("bad_request", `body.value: expected the secret as a string`, { field: "value" });
    }
    return body.value;
  };
  app.get("/secrets", (c) => c.json({ enabled: secrets.enabled, secrets: secrets.list() }));
  app.get("/secrets/:name", (c) => {
    const info = secrets.info(c.req.param("name"));
    if (!info) throw new AetherError("not_found", `no secret "${c.req.param("name")}"`);
    return c.json(info);
  });
  app.put("/secrets/:name", async (c) => {
    const name = c.req.param("name");
    const existed = secrets.info(name) !== undefined;
    return c.json(await secrets.put(name, await value(c), false), existed ? 200 : 201);
  });
  app.post(
    "/secrets/:name/rotate",
    async (c) => c.json(await secrets.put(c.req.param("name"), await value(c), true)),
  );
  app.delete("/secrets/:name", async (c) => {
    const name = c.req.param("name");
    if (!(await secrets.delete(name))) throw new AetherError("not_found", `no secret "${name}"`);
    return c.json({ deleted: name });
  });
  return app;
}
