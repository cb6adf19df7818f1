/**
 * What every bundled infrastructure service slice does with a call (infra/README.md): it learns the calling
 * slice from the runtime (`ctx.caller`, set by the caller's sandbox host from the caller's manifest, never
 * from the request), refuses calls that do not come from a slice, checks the request's shape field by field,
 * and hands the request with the caller (whose group scopes every key) to its own node-side engine through `ctx.serviceHost`
 * (a capability the node grants only to the bundled artifact of the service: group `aether.infra` and the
 * bundled digest).
 *
 * Bundled into each service's bundle by `infra/build.ts`: imports only the SDK.
 */

import type { Context, JsonValue } from "@aether/slices";

/** A request refused for its shape: the message names the service, the method and the field. */
export class BadRequest extends Error {
  // The name is the problem's title and the error name callers match (an Error subclass's is "Error").
  override name = "BadRequest";
  status = 400;
}

/** A call that did not come from a slice (HTTP, the API) or a caller without a group. */
export class Forbidden extends Error {
  override name = "Forbidden";
  status = 403;
}

/** The names `ctx.infra.<service>(name)` accepts (slices/_infra.ts). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/;
/** Keys: non-empty strings of at most this many UTF-8 bytes (the engine checks again). */
const MAX_KEY_BYTES = 512;

/** The calling slice's group: the scope of every key the call touches. */
export function callerGroup(ctx: Context<unknown, unknown>, what: string): string {
  const caller = ctx.caller;
  const group = typeof caller === "string" ? caller.split(":")[0] : "";
  if (!group) {
    throw new Forbidden(
      `${what}: infrastructure services answer slices only (ctx.infra in a slice whose manifest requires it)`,
    );
  }
  return group;
}

/** The request as a JSON object, or a BadRequest naming the method. */
export function requestObject(request: unknown, what: string): Record<string, JsonValue> {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new BadRequest(`${what}: the request must be a JSON object`);
  }
  return request as Record<string, JsonValue>;
}

/** Checks the name field (`cache`, `map`, `lock`) like the SDK does. */
export function nameField(request: Record<string, JsonValue>, field: string, what: string): string {
  const value = request[field];
  if (typeof value !== "string" || !NAME.test(value)) {
    throw new BadRequest(
      `${what}: ${field} must be 1-64 letters, digits, '.', '_' or '-', got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Checks a key field: a non-empty string of at most 512 UTF-8 bytes. */
export function keyField(request: Record<string, JsonValue>, field: string, what: string): string {
  const value = request[field];
  if (typeof value !== "string" || value === "") {
    throw new BadRequest(`${what}: ${field} must be a non-empty string`);
  }
  if (new TextEncoder().encode(value).byteLength > MAX_KEY_BYTES) {
    throw new BadRequest(`${what}: ${field} is over ${MAX_KEY_BYTES} bytes`);
  }
  return value;
}

export interface MethodSpec {
  /** The field naming the cache, map, lock, topic, job, machine or database; none for `http.request`. */
  name?: string;
  /** Key fields the method needs. */
  keys?: readonly string[];
}

/**
 * A service method: checks the caller and the request, then asks the node-side engine, scoped to the
 * caller's group. The engine answers with the value or the error (its name and status reach the caller).
 */
export function forward(service: string, method: string, spec: MethodSpec) {
  const what = `${service}.${method}`;
  return (request: unknown, ctx: Context<unknown, unknown>): Promise<unknown> => {
    callerGroup(ctx, what);
    const body = requestObject(request, what);
    if (spec.name !== undefined) nameField(body, spec.name, what);
    for (const key of spec.keys ?? []) keyField(body, key, what);
    // The engine scopes every key to the caller's group (and pub/sub names the caller as the subscriber).
    return ctx.serviceHost(method, { caller: ctx.caller as string, request: body });
  };
}
