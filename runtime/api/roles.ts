/**
 * THE table of the management API: every endpoint and the least role that may call it. The auth middleware
 * reads only this table; `roles_test.ts` fails when the router has a route the table does not list (so every
 * new endpoint is born with a role) or the table lists one the router does not serve.
 *
 * `open`: no token needed (health probes; `--closed-probes` makes them `viewer`).
 * `viewer`: reads and streams. `operator`: changes to what runs (deploy, scale, artifacts, routing, KV `app/`,
 * calls). `admin`: tokens.
 */

import type { Role } from "../model/mod.ts";

export type EndpointRole = Role | "open";

export interface EndpointEntry {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** Hono's pattern, with the /api/v1 prefix. */
  path: string;
  role: EndpointRole;
  /** The path parameter naming what a mutating call acts on (for the audit log). */
  target?: string;
}

export const API_PREFIX = "/api/v1";

export const ENDPOINT_ROLES: readonly EndpointEntry[] = [
  // cluster
  { method: "GET", path: "/api/v1/health", role: "open" },
  { method: "GET", path: "/api/v1/ready", role: "open" },
  // the OpenAPI document (openapi.ts): what an agent reads before it has a token
  { method: "GET", path: "/api/v1/openapi.json", role: "open" },
  { method: "GET", path: "/api/v1/status", role: "viewer" },
  { method: "GET", path: "/api/v1/logs", role: "viewer" },
  { method: "GET", path: "/api/v1/traces/:requestId", role: "viewer" },
  // the cluster event stream and the dashboard's live feed (events.ts)
  { method: "GET", path: "/api/v1/events", role: "viewer" },
  { method: "GET", path: "/api/v1/ws", role: "viewer" },
  // alert rules (thresholds/ in KV) and the alerts pending and firing (alerts.ts)
  { method: "GET", path: "/api/v1/alerts/rules", role: "viewer" },
  { method: "PUT", path: "/api/v1/alerts/rules/:name", role: "operator", target: "name" },
  { method: "DELETE", path: "/api/v1/alerts/rules/:name", role: "operator", target: "name" },
  { method: "GET", path: "/api/v1/alerts", role: "viewer" },
  // KV (writes only under app/, checked by the handler)
  { method: "GET", path: "/api/v1/kv", role: "viewer" },
  { method: "GET", path: "/api/v1/kv/*", role: "viewer" },
  { method: "PUT", path: "/api/v1/kv/*", role: "operator", target: "*" },
  { method: "DELETE", path: "/api/v1/kv/*", role: "operator", target: "*" },
  { method: "GET", path: "/api/v1/kv-watch", role: "viewer" },
  // deployment
  { method: "POST", path: "/api/v1/blueprints", role: "operator" },
  { method: "GET", path: "/api/v1/blueprints", role: "viewer" },
  { method: "GET", path: "/api/v1/blueprints/:id", role: "viewer" },
  { method: "GET", path: "/api/v1/blueprints/:id/status", role: "viewer" },
  { method: "DELETE", path: "/api/v1/blueprints/:id", role: "operator", target: "id" },
  { method: "POST", path: "/api/v1/deploy", role: "operator" },
  { method: "POST", path: "/api/v1/scale", role: "operator" },
  { method: "POST", path: "/api/v1/undeploy", role: "operator" },
  { method: "GET", path: "/api/v1/slices", role: "viewer" },
  // artifacts
  { method: "GET", path: "/api/v1/artifacts", role: "viewer" },
  { method: "POST", path: "/api/v1/artifacts", role: "operator" },
  { method: "PUT", path: "/api/v1/artifacts/:coordinates", role: "operator", target: "coordinates" },
  { method: "GET", path: "/api/v1/artifacts/:base/versions", role: "viewer" },
  { method: "GET", path: "/api/v1/artifacts/:coordinates", role: "viewer" },
  { method: "GET", path: "/api/v1/artifacts/:coordinates/manifest", role: "viewer" },
  { method: "GET", path: "/api/v1/artifacts/:coordinates/bundle", role: "viewer" },
  { method: "DELETE", path: "/api/v1/artifacts/:coordinates", role: "operator", target: "coordinates" },
  // the partitioned store of infrastructure services (runtime/infra-host/api.ts); entries are service data
  // infrastructure services (runtime/infra-host/services_api.ts)
  // outbound HTTP of slices (runtime/infra-host/http_client_api.ts)
  { method: "GET", path: "/api/v1/outbound", role: "viewer" },
  // dynamic aspects (runtime/infra-host/aspects.ts)
  { method: "GET", path: "/api/v1/aspects", role: "viewer" },
  { method: "PUT", path: "/api/v1/aspects", role: "operator" },
  { method: "GET", path: "/api/v1/infra", role: "viewer" },
  { method: "GET", path: "/api/v1/infra/:name", role: "viewer" },
  { method: "POST", path: "/api/v1/infra/:name/install", role: "operator", target: "name" },
  // the scheduler and state machines (runtime/infra-host/scheduler_api.ts)
  { method: "GET", path: "/api/v1/jobs", role: "viewer" },
  { method: "POST", path: "/api/v1/jobs/:group/:name", role: "operator", target: "name" },
  { method: "GET", path: "/api/v1/jobs/:group/:name", role: "viewer" },
  { method: "GET", path: "/api/v1/jobs/:group/:name/history", role: "viewer" },
  { method: "POST", path: "/api/v1/jobs/:group/:name/run", role: "operator", target: "name" },
  { method: "POST", path: "/api/v1/jobs/:group/:name/pause", role: "operator", target: "name" },
  { method: "POST", path: "/api/v1/jobs/:group/:name/resume", role: "operator", target: "name" },
  { method: "DELETE", path: "/api/v1/jobs/:group/:name", role: "operator", target: "name" },
  { method: "GET", path: "/api/v1/machines", role: "viewer" },
  { method: "GET", path: "/api/v1/machines/:group/:machine", role: "viewer" },
  { method: "GET", path: "/api/v1/machines/:group/:machine/:id", role: "viewer" },
  { method: "DELETE", path: "/api/v1/machines/:group/:machine/:id", role: "operator", target: "id" },
  { method: "POST", path: "/api/v1/machines/:group/:machine/:id/events", role: "operator", target: "id" },
  { method: "GET", path: "/api/v1/caches/:group/:cache", role: "viewer" },
  { method: "PUT", path: "/api/v1/caches/:group/:cache", role: "operator", target: "cache" },
  // SQL databases for slices (runtime/infra-host/sqldb_api.ts): the operator picks each one's backend
  { method: "GET", path: "/api/v1/databases", role: "viewer" },
  { method: "GET", path: "/api/v1/databases/:group/:name", role: "viewer" },
  { method: "PUT", path: "/api/v1/databases/:group/:name", role: "operator", target: "name" },
  // pub/sub topics (runtime/infra-host/pubsub_api.ts)
  { method: "GET", path: "/api/v1/topics", role: "viewer" },
  { method: "GET", path: "/api/v1/topics/:group/:topic", role: "viewer" },
  { method: "POST", path: "/api/v1/topics/:group/:topic/publish", role: "operator", target: "topic" },
  { method: "POST", path: "/api/v1/topics/:group/:topic/subscriptions", role: "operator", target: "topic" },
  { method: "POST", path: "/api/v1/topics/:group/:topic/seek", role: "operator", target: "topic" },
  { method: "GET", path: "/api/v1/stores", role: "viewer" },
  { method: "POST", path: "/api/v1/stores", role: "operator" },
  { method: "GET", path: "/api/v1/stores/:store/entries/:key", role: "operator" },
  { method: "PUT", path: "/api/v1/stores/:store/entries/:key", role: "operator", target: "key" },
  { method: "DELETE", path: "/api/v1/stores/:store/entries/:key", role: "operator", target: "key" },
  // dynamic configuration, live node settings, secrets (values in only), rate limits (runtime/api/config.ts,
  // secrets.ts, ratelimit.ts)
  { method: "GET", path: "/api/v1/config", role: "viewer" },
  { method: "GET", path: "/api/v1/config/:slice", role: "viewer" },
  { method: "PUT", path: "/api/v1/config/:slice", role: "operator", target: "slice" },
  { method: "DELETE", path: "/api/v1/config/:slice/:field", role: "operator", target: "slice" },
  { method: "GET", path: "/api/v1/settings", role: "viewer" },
  { method: "PUT", path: "/api/v1/settings/:name", role: "operator", target: "name" },
  { method: "DELETE", path: "/api/v1/settings/:name", role: "operator", target: "name" },
  { method: "GET", path: "/api/v1/secrets", role: "operator" },
  { method: "GET", path: "/api/v1/secrets/:name", role: "operator" },
  { method: "PUT", path: "/api/v1/secrets/:name", role: "admin", target: "name" },
  { method: "POST", path: "/api/v1/secrets/:name/rotate", role: "admin", target: "name" },
  { method: "DELETE", path: "/api/v1/secrets/:name", role: "admin", target: "name" },
  { method: "GET", path: "/api/v1/ratelimits", role: "viewer" },
  { method: "PUT", path: "/api/v1/ratelimits/:name", role: "operator", target: "name" },
  { method: "DELETE", path: "/api/v1/ratelimits/:name", role: "operator", target: "name" },
  // routes, routing, timeouts, calls
  { method: "GET", path: "/api/v1/routes", role: "viewer" },
  { method: "GET", path: "/api/v1/routing", role: "viewer" },
  { method: "GET", path: "/api/v1/routing/:artifact", role: "viewer" },
  { method: "POST", path: "/api/v1/routing", role: "operator" },
  { method: "DELETE", path: "/api/v1/routing/:artifact", role: "operator", target: "artifact" },
  // rollouts (rolling, canary, blue-green: runtime/api/rollouts.ts)
  { method: "GET", path: "/api/v1/rollouts", role: "viewer" },
  { method: "GET", path: "/api/v1/rollouts/:artifact", role: "viewer" },
  { method: "POST", path: "/api/v1/rollouts", role: "operator" },
  { method: "POST", path: "/api/v1/rollouts/:artifact/pause", role: "operator", target: "artifact" },
  { method: "POST", path: "/api/v1/rollouts/:artifact/resume", role: "operator", target: "artifact" },
  { method: "POST", path: "/api/v1/rollouts/:artifact/promote", role: "operator", target: "artifact" },
  { method: "POST", path: "/api/v1/rollouts/:artifact/abort", role: "operator", target: "artifact" },
  // nodes: labels, cordon, drain (runtime/api/nodes.ts)
  { method: "GET", path: "/api/v1/nodes", role: "viewer" },
  { method: "GET", path: "/api/v1/nodes/:id", role: "viewer" },
  { method: "POST", path: "/api/v1/nodes/:id/cordon", role: "operator", target: "id" },
  { method: "POST", path: "/api/v1/nodes/:id/drain", role: "operator", target: "id" },
  { method: "POST", path: "/api/v1/nodes/:id/uncordon", role: "operator", target: "id" },
  // the autoscaling controller (runtime/api/controller.ts)
  { method: "GET", path: "/api/v1/controller", role: "viewer" },
  { method: "GET", path: "/api/v1/controller/rules", role: "viewer" },
  { method: "PUT", path: "/api/v1/controller/rules", role: "operator" },
  { method: "POST", path: "/api/v1/controller/pause", role: "operator" },
  { method: "POST", path: "/api/v1/controller/resume", role: "operator" },
  { method: "PUT", path: "/api/v1/controller/pins/:slice", role: "operator", target: "slice" },
  { method: "DELETE", path: "/api/v1/controller/pins/:slice", role: "operator", target: "slice" },
  { method: "GET", path: "/api/v1/controller/decisions", role: "viewer" },
  { method: "GET", path: "/api/v1/controller/forecast", role: "viewer" },
  { method: "GET", path: "/api/v1/timeouts", role: "viewer" },
  { method: "PUT", path: "/api/v1/timeouts/:artifact", role: "operator", target: "artifact" },
  { method: "DELETE", path: "/api/v1/timeouts/:artifact", role: "operator", target: "artifact" },
  { method: "POST", path: "/api/v1/invoke/:target/:method", role: "operator", target: "target" },
  // access
  { method: "GET", path: "/api/v1/whoami", role: "viewer" },
  { method: "POST", path: "/api/v1/tokens", role: "admin" },
  { method: "GET", path: "/api/v1/tokens", role: "admin" },
  { method: "DELETE", path: "/api/v1/tokens/:id", role: "admin", target: "id" },
  { method: "GET", path: "/api/v1/audit", role: "operator" },
  // metrics (runtime/api/metrics.ts): Prometheus text at the root of the API port, JSON under /api/v1
  { method: "GET", path: "/metrics", role: "viewer" },
  { method: "GET", path: "/api/v1/metrics", role: "viewer" },
  { method: "GET", path: "/api/v1/metrics/history", role: "viewer" },
  { method: "GET", path: "/api/v1/invocations", role: "viewer" },
];

/** Role for a request the table does not list (it will be a 404): a token is still needed. */
export const UNLISTED_ROLE: Role = "viewer";

interface CompiledEntry {
  entry: EndpointEntry;
  pattern: RegExp;
  /** Names of the pattern's groups, in order (`*` for a wildcard). */
  params: string[];
}

function compile(entry: EndpointEntry): CompiledEntry {
  const params: string[] = [];
  const source = entry.path.split("/").map((part) => {
    if (part === "*") {
      params.push("*");
      return "(.+)";
    }
    if (part.startsWith(":")) {
      params.push(part.slice(1));
      return "([^/]+)";
    }
    return part.replace(/[.*+?^${}()|[\]\\-]/g, "\\$&");
  }).join("/");
  return { entry, pattern: new RegExp(`^${source}/?$`), params };
}

/** What RoleTable.find answers: the entry, and what its target parameter holds. */
export interface FoundEndpoint {
  entry: EndpointEntry;
  target?: string;
}

/**
 * The table by method, patterns without parameters first so exact paths never lose to a wildcard. An exact
 * path's answer is made once here (the auth middleware asks on every request: no string or object per call).
 */
export class RoleTable {
  readonly #exact = new Map<string, Map<string, FoundEndpoint>>();
  readonly #patterns = new Map<string, CompiledEntry[]>();

  constructor(entries: readonly EndpointEntry[] = ENDPOINT_ROLES) {
    for (const entry of entries) {
      if (!/[:*]/.test(entry.path)) {
        const paths = this.#exact.get(entry.method) ?? new Map<string, FoundEndpoint>();
        paths.set(entry.path, Object.freeze({ entry }));
        this.#exact.set(entry.method, paths);
      } else {
        const list = this.#patterns.get(entry.method) ?? [];
        list.push(compile(entry));
        this.#patterns.set(entry.method, list);
      }
    }
  }

  /** The entry serving `method path` (HEAD is GET), and what its target parameter holds. */
  find(method: string, path: string): FoundEndpoint | undefined {
    const m = method === "HEAD" ? "GET" : method;
    const paths = this.#exact.get(m);
    const exact = paths?.get(path) ?? (path.endsWith("/") ? paths?.get(path.slice(0, -1)) : undefined);
    if (exact) return exact;
    for (const compiled of this.#patterns.get(m) ?? []) {
      const match = compiled.pattern.exec(path);
      if (!match) continue;
      const index = compiled.entry.target ? compiled.params.indexOf(compiled.entry.target) : -1;
      return { entry: compiled.entry, target: index >= 0 ? safeDecode(match[index + 1]) : undefined };
    }
    return undefined;
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
