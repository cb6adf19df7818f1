/**
 * The infrastructure services' part of the management API (mounted under /api/v1 by the node):
 *
 *   GET  /infra                   the bundled catalog: name, version, description, methods, running, store
 *   GET  /infra/{name}            one service (404: the catalog in the message)
 *   POST /infra/{name}/install    starts the service (opens its store; the leader places it); 200 once it runs
 *
 * A service "runs" once its store exists in the cluster (a `stores/{name}/config` record): every node then
 * serves its methods.
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import { missingMessage, SERVICES } from "./services.ts";
import type { InfraServices } from "./services.ts";

const NAME = /^[a-z][a-z0-9-]{0,63}$/;

function serviceName(raw: string): string {
  if (!NAME.test(raw)) {
    throw new AetherError(
      "bad_request",
      `service name ${JSON.stringify(raw.slice(0, 80))} is not a-z, 0-9, '-'`,
      {
        field: "name",
      },
    );
  }
  if (!SERVICES.some((s) => s.name === raw)) {
    throw new AetherError("not_found", missingMessage(raw).replace(/^Blueprint deployment failed:\n\n/, ""), {
      service: raw,
    });
  }
  return raw;
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
  return app;
}
