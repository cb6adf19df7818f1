/**
 * The application HTTP server on the node's http port. Routes come from deployed slices (the HTTP router);
 * until a route matches, every request gets a 404 problem document.
 */

import { AetherError, type Logger, problemResponse } from "../core/mod.ts";

export interface AppServerOptions {
  hostname: string;
  port: number;
  log: Logger;
  handler?: (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => Response | Promise<Response>;
}

function noRoute(request: Request): Response {
  const path = new URL(request.url).pathname;
  const error = new AetherError("not_found", `no route for ${request.method} ${path}`);
  return problemResponse(error, { fields: { instance: path } });
}

export function createAppServer(options: AppServerOptions): Deno.HttpServer<Deno.NetAddr> {
  const handler = options.handler ?? noRoute;
  return Deno.serve({ hostname: options.hostname, port: options.port, onListen: () => {} }, handler);
}
