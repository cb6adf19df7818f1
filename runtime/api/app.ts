import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import { clusterRoutes } from "./cluster.ts";
import type { ApiDeps } from "./deps.ts";
import { kvRoutes } from "./kv.ts";
import { logRoutes } from "./logs.ts";
import { problemResponse } from "./_problem.ts";

/** The management API served on the node's api port under /api/v1. */
export function createApiApp(deps: ApiDeps, featureRoutes: Hono[] = []): Hono {
  const app = new Hono();
  app.onError((error, c) => {
    if (!(error instanceof AetherError)) deps.log.error("api handler failed", { path: c.req.path, error });
    return problemResponse(c, error);
  });
  app.notFound((c) =>
    problemResponse(c, new AetherError("not_found", `no API endpoint ${c.req.method} ${c.req.path}`))
  );
  app.route("/api/v1", clusterRoutes(deps));
  app.route("/api/v1", kvRoutes(deps));
  app.route("/api/v1", logRoutes(deps));
  for (const routes of featureRoutes) app.route("/api/v1", routes);
  return app;
}
