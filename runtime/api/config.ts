/**
 * Dynamic configuration (runtime/infra-host/config.ts) over HTTP:
 *
 * - GET /api/v1/config: the live node settings and every slice with values set;
 * - GET /api/v1/config/:slice: a slice's values, and what its instances run with (schema defaults applied);
 * - PUT /api/v1/config/:slice `{"values":{"field":value,...}}`: set fields, checked against the slice's schema;
 * - DELETE /api/v1/config/:slice/:field: unset one field (its default applies again);
 * - GET /api/v1/settings, PUT /api/v1/settings/:name `{"value":...}`, DELETE /api/v1/settings/:name: the node
 *   settings changed live (flag < cluster: unset returns every node to its flag).
 */

import { type Context, Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import type { ConfigFeature } from "../infra-host/mod.ts";

/** Largest request body of these endpoints (a secret's value is at most 64 KiB, base64 is not used). */
export const MAX_CONFIG_BODY_BYTES = 256 * 1024;

/** The request's JSON object body; errors name the body and what was expected. */
export async function configBody(c: Context, expected: string): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.length > MAX_CONFIG_BODY_BYTES) {
    throw new AetherError("too_large", `body: over ${MAX_CONFIG_BODY_BYTES} bytes`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw new AetherError("bad_request", `body: not JSON (${(e as Error).message}); expected ${expected}`);
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new AetherError("bad_request", `body: expected ${expected}`);
  }
  return body as Record<string, unknown>;
}

export function configRoutes(feature: ConfigFeature): Hono {
  const app = new Hono();
  const config = feature.config;
  app.get(
    "/config",
    (c) => c.json({ settings: config.settings(), slices: config.slices().map((s) => config.view(s)) }),
  );
  app.get("/config/:slice", (c) => {
    const view = config.view(c.req.param("slice"));
    // A mistyped name would otherwise read as a slice with no configuration fields.
    if (view.version === undefined && Object.keys(view.values).length === 0) {
      throw new AetherError(
        "not_found",
        `no published artifact of ${view.slice}: nothing to configure ` +
          `(aether artifact list shows what is published)`,
      );
    }
    return c.json(view);
  });
  app.put("/config/:slice", async (c) => {
    const body = await configBody(c, `{"values":{"field":value,...}}`);
    const values = body.values;
    if (values === null || typeof values !== "object" || Array.isArray(values)) {
      throw new AetherError("bad_request", `body.values: expected an object of field values`, {
        field: "values",
      });
    }
    return c.json(await config.set(c.req.param("slice"), values as Record<string, unknown>));
  });
  app.delete(
    "/config/:slice/:field",
    async (c) => c.json(await config.unset(c.req.param("slice"), [c.req.param("field")])),
  );
  app.get("/settings", (c) => c.json({ settings: config.settings() }));
  app.put("/settings/:name", async (c) => {
    const body = await configBody(c, `{"value":...}`);
    if (!("value" in body)) throw new AetherError("bad_request", `body.value: missing`, { field: "value" });
    return c.json(await config.setSetting(c.req.param("name"), body.value));
  });
  app.delete("/settings/:name", async (c) => c.json(await config.unsetSetting(c.req.param("name"))));
  return app;
}
