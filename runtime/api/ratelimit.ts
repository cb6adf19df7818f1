/**
 * Cluster-wide rate limits (runtime/infra-host/ratelimit.ts) over HTTP:
 *
 * - GET /api/v1/ratelimits: every limit with this node's share, bucket and counts;
 * - PUT /api/v1/ratelimits/:name `{"ratePerSec":100,"burst":10}`: define or change a limit (burst defaults to
 *   a tenth of the rate, at least 1);
 * - DELETE /api/v1/ratelimits/:name.
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import type { ConfigFeature } from "../infra-host/mod.ts";
import { configBody } from "./config.ts";

export function rateLimitRoutes(feature: ConfigFeature): Hono {
  const app = new Hono();
  const limits = feature.rateLimits;
  app.get("/ratelimits", (c) => c.json({ ratelimits: limits.list() }));
  app.put("/ratelimits/:name", async (c) => {
    const body = await configBody(c, `{"ratePerSec":100,"burst":10}`);
    for (const field of ["ratePerSec", "burst"]) {
      if (body[field] !== undefined && typeof body[field] !== "number") {
        throw new AetherError(
          "bad_request",
          `body.${field}: expected a number, got ${JSON.stringify(body[field])}`,
          {
            field,
          },
        );
      }
    }
    if (body.ratePerSec === undefined) {
      throw new AetherError("bad_request", `body.ratePerSec: missing (permits per second)`, {
        field: "ratePerSec",
      });
    }
    const name = c.req.param("name");
    const record = await limits.set(name, body.ratePerSec as number, body.burst as number | undefined);
    return c.json({ name, ...record });
  });
  app.delete("/ratelimits/:name", async (c) => {
    const name = c.req.param("name");
    if (!(await limits.delete(name))) throw new AetherError("not_found", `no rate limit "${name}"`);
    return c.json({ deleted: name });
  });
  return app;
}
