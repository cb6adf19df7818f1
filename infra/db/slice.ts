/**
 * The SQL database service (`ctx.infra.db(name)`): SQLite replicated through consensus, or an operator's
 * PostgreSQL, one database per caller's group and name (runtime/infra-host/sqldb_service.ts, the node-side
 * engine).
 *
 * Only `query` and `migrate` are methods of this slice. A transaction (`begin`, `queryIn`, `commit`,
 * `rollback`) lives on the node that began it (its buffered writes, or its PostgreSQL connection, are held
 * there), so those calls are answered by the node that takes them, the calling instance's node, and never
 * travel to a service instance that another node may host (runtime/infra-host/service_routing.ts). A `query`
 * is never retried by the invoker after an unknown outcome (a write would run twice).
 */

import { defineSlice } from "@aether/slices";
import { forward } from "../_service.ts";

export default defineSlice({
  coordinates: "aether.infra:db:1.0.0",
  methods: {
    query: forward("db", "query", { name: "db" }),
    migrate: forward("db", "migrate", { name: "db" }),
  },
});
