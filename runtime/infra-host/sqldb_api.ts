/**
 * The SQL databases' part of the management API (mounted under /api/v1 by the node):
 *
 *   GET /databases                  every database the cluster knows: backend, this node's copy's revision
 *   GET /databases/{group}/{name}   one database (embedded unless the operator set it)
 *   PUT /databases/{group}/{name}   the operator's setting: {"backend":"embedded"} or
 *                                   {"backend":"postgres","url":"postgres://app@127.0.0.1:5432/orders",
 *                                    "passwordSecret":"orders-db-password"}
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import type { SqlDatabases } from "./sqldb_service.ts";

export function databaseRoutes(databases: SqlDatabases): Hono {
  const app = new Hono();
  app.get("/databases", (c) => c.json({ items: databases.list() }));
  app.get(
    "/databases/:group/:name",
    (c) => c.json(databases.show(c.req.param("group"), c.req.param("name"))),
  );
  app.put("/databases/:group/:name", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new AetherError(
        "bad_request",
        'body: expected a JSON object like {"backend":"postgres","url":"postgres://app@127.0.0.1:5432/orders",' +
          '"passwordSecret":"orders-db-password"}',
        { field: "body" },
      );
    }
    return c.json(await databases.set(c.req.param("group"), c.req.param("name"), body));
  });
  return app;
}
