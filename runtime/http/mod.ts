/**
 * The application HTTP server: the route table (route_table.ts), built from KV route records
 * (directory.ts); the handler that turns requests into slice calls and outcomes into responses or RFC 7807
 * problem documents (app.ts); the management API for routes, version weights and call timeouts (api.ts);
 * and the node feature `startInvoke` that wires it all together with the invoker (feature.ts).
 */

export {
  type AppHandler,
  type AppHandlerOptions,
  type AppInvoker,
  buildRequest,
  createAppHandler,
  DEFAULT_MAX_BODY_BYTES,
  outcomeResponse,
  REQUEST_ID_HEADER,
  splitUrl,
  TIMEOUT_HEADER,
} from "./app.ts";
export { type RouteDefinition, type RouteMatch, RouteTable, splitPath } from "./route_table.ts";
export { type DirectoryReader, RouteDirectory } from "./directory.ts";
export { type InvokeApiDeps, invokeRoutes, weightsRecord } from "./api.ts";
export { type InvokeFeature, type InvokeFeatureOptions, type InvokeStatus, startInvoke } from "./feature.ts";
