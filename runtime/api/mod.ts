/** The Hono management API. */
export { type ApiAccess, createApiApp } from "./app.ts";
export type * from "./deps.ts";
export {
  DASHBOARD_CSP,
  type DashboardAssets,
  type DashboardFile,
  dashboardResponse,
  isDashboardPath,
  readDashboardAssets,
} from "./dashboard.ts";
export { DEFAULT_LOG_LIMIT, MAX_LOG_LIMIT, parseSince } from "./logs.ts";
export {
  authMiddleware,
  type AuthOptions,
  type Bootstrap,
  bootstrapAdminToken,
  type Caller,
  constantTimeEqual,
  newTokenId,
  newTokenSecret,
  readBootstrapTokenFile,
  sha256Hex,
  TokenIndex,
} from "./auth.ts";
export { API_PREFIX, ENDPOINT_ROLES, type EndpointEntry, type EndpointRole, RoleTable } from "./roles.ts";
export { parseTtl } from "./tokens.ts";
export { traceRoutes, type TracesView } from "./traces.ts";
export { AuditLog, type AuditStats, MAX_AUDIT_ENTRIES, MAX_PENDING_AUDIT } from "./audit.ts";
export {
  ENDPOINT_DOCS,
  type JsonSchema,
  openApiDocument,
  openApiPath,
  type OperationDoc,
  PROBLEM_STATUSES,
} from "./openapi.ts";
export { controllerRoutes } from "./controller.ts";
