/**
 * The application HTTP server on the node's http port. Routes come from deployed slices (the HTTP router);
 * until a route matches, every request gets a 404 problem document.
 */

import { AetherError, type Logger, problemResponse } from "../core/mod.ts";
import {
  type GuardedServer,
  serveGuarded,
  type ServerLimits,
  serveUnguarded,
  type TlsCertificate,
} from "./server_guard.ts";

export interface AppServerOptions {
  hostname: string;
  port: number;
  /** Header, body and idle timeouts and the connection limit (server_guard.ts). */
  limits: ServerLimits;
  /**
   * false: plain Deno.serve, without the limits (for a port behind a reverse proxy that enforces its own):
   * the guard's relay costs about half the throughput of a trivial slice route.
   */
  guard: boolean;
  log: Logger;
  /** Serve HTTPS with this certificate. */
  tls?: TlsCertificate;
  handler?: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;
}

function noRoute(request: Request): Response {
  const path = new URL(request.url).pathname;
  const error = new AetherError("not_found", `no route for ${request.method} ${path}`);
  return problemResponse(error, { fields: { instance: path } });
}

export function createAppServer(options: AppServerOptions): GuardedServer {
  const { hostname, port, limits, log, tls } = options;
  const handler = options.handler ?? noRoute;
  if (options.guard) return serveGuarded({ name: "app", hostname, port, limits, log, tls }, handler);
  return serveUnguarded(hostname, port, handler, tls);
}
