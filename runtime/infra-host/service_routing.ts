/**
 * How a call to a service whose bundled slice is deployed travels (services.ts `serve`): most go through the
 * invoker to an instance of the service slice (infra/<service>/slice.ts); a few must not.
 *
 * - **Node-local methods** are answered by the node that takes the call (the calling instance's node), as
 *   before the services became slices: a database transaction (`begin`, `queryIn`, `commit`, `rollback`)
 *   lives on the node that began it (its buffered writes, or its PostgreSQL connection), so every call of it
 *   must reach that node. Through the invoker, a call goes to a local service instance first but to another
 *   node's when the local one is not ACTIVE (being replaced, scaled away, a member that joined later): a
 *   transaction begun there would be "not found" on the next call. The bundled db slice therefore has no such
 *   methods (infra/db/slice.ts).
 * - **Not idempotent calls** are sent with the invoker's retries of unknown outcomes off (an instance that
 *   was cut off or whose node departed during the call may have done the work): an outbound POST or PATCH,
 *   a SQL query (it may write), a pub/sub publish without an idempotency key, a scheduler's run-now, a state machine's event. Refusals
 *   before anything ran (not sent, not ACTIVE, overloaded, no instance) are still retried.
 */

/** Methods answered by the node that takes the call, by service. */
export const NODE_LOCAL_METHODS: Readonly<Record<string, readonly string[]>> = {
  db: ["begin", "queryIn", "commit", "rollback"],
};

/** Service methods whose repetition would repeat an effect, by service (http: by the request's method). */
const NOT_IDEMPOTENT: Readonly<Record<string, readonly string[]>> = {
  db: ["query"],
  pubsub: ["publish"],
  scheduler: ["run"],
  statemachine: ["send"],
};

/** The HTTP methods the outbound client itself retries (http_client.ts IDEMPOTENT): the same rule here. */
const IDEMPOTENT_HTTP = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);

/** True when `service.method` must be answered by the node that took the call (not through the slice). */
export function isNodeLocal(service: string, method: string): boolean {
  return NODE_LOCAL_METHODS[service]?.includes(method) ?? false;
}

/** False when the invoker must not retry the call after an unknown outcome. */
export function isIdempotentCall(service: string, method: string, payload: unknown): boolean {
  if (service === "http") {
    const requested = fieldOf(payload, "method");
    const httpMethod = typeof requested === "string" ? requested.toUpperCase() : "GET";
    return IDEMPOTENT_HTTP.has(httpMethod);
  }
  // A publish with an idempotency key is deduplicated by the topic: a retry cannot publish it twice.
  if (
    service === "pubsub" && method === "publish" && typeof fieldOf(payload, "idempotencyKey") === "string"
  ) {
    return true;
  }
  return !(NOT_IDEMPOTENT[service]?.includes(method) ?? false);
}

function fieldOf(payload: unknown, field: string): unknown {
  return payload !== null && typeof payload === "object" && !Array.isArray(payload)
    ? (payload as Record<string, unknown>)[field]
    : undefined;
}
