import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import { clusterRoutes } from "./cluster.ts";
import type { ApiDeps } from "./deps.ts";
import { kvRoutes } from "./kv.ts";
import { logRoutes } from "./logs.ts";
import { problemResponse } from "./_problem.ts";
import { authMiddleware, type AuthOptions, type TokenIndex } from "./auth.ts";
import { tokenRoutes } from "./tokens.ts";
import { auditRoutes } from "./audit.ts";
import { openApiRoutes } from "./openapi.ts";
import { rolloutRoutes } from "./rollouts.ts";
import { nodeRoutes } from "./nodes.ts";
import { eventRoutes } from "./events.ts";
import { alertRoutes } from "./alerts.ts";
import { metricsRoutes, prometheusRoutes } from "./metrics.ts";
import { configRoutes } from "./config.ts";
import { secretRoutes } from "./secrets.ts";
import { rateLimitRoutes } from "./ratelimit.ts";

/** How the API checks its callers: the node's token index and its options. */
export interface ApiAccess {
  tokens: TokenIndex;
  options?: AuthOptions;
}

/**
 * The management API served on the node's api port under /api/v1. Every request passes the auth middleware
 * first (roles.ts holds the role of every endpoint).
 */
export function createApiApp(deps: ApiDeps, featureRoutes: Hono[], access: ApiAccess): Hono {
  const app = new Hono();
  app.use("*", authMiddleware(access.tokens, access.options));
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
  app.route("/api/v1", tokenRoutes(deps, access.tokens));
  app.route("/api/v1", auditRoutes(deps.kv));
  app.route("/api/v1", openApiRoutes());
  app.route("/api/v1", rolloutRoutes(deps.kv, { metrics: deps.metrics }));
  app.route("/api/v1", nodeRoutes(deps));
  app.route("/api/v1", eventRoutes(deps));
  app.route("/api/v1", alertRoutes(deps));
  if (deps.metrics) {
    app.route("/", prometheusRoutes(deps.metrics));
    app.route("/api/v1", metricsRoutes(deps.metrics));
  }
  if (deps.config) {
    app.route("/api/v1", configRoutes(deps.config));
    app.route("/api/v1", secretRoutes(deps.config));
    app.route("/api/v1", rateLimitRoutes(deps.config));
  }
  for (const routes of featureRoutes) app.route("/api/v1", routes);
  return app;
}
