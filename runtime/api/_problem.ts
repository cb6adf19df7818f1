import type { Context } from "hono";
import { AetherError, problemResponse as problemAnswer, toAetherError } from "../core/mod.ts";

/** Sends an RFC 7807 problem document for any error. */
export function problemResponse(c: Context, error: unknown, extra: Record<string, unknown> = {}): Response {
  return problemAnswer(toAetherError(error), { fields: { instance: c.req.path, ...extra } });
}

export function badRequest(message: string, extra: Record<string, unknown> = {}): AetherError {
  return new AetherError("bad_request", message, extra);
}

export function boolParam(c: Context, name: string): boolean {
  const text = c.req.query(name);
  if (text === undefined || text === "" || text === "false") return false;
  if (text === "true") return true;
  throw badRequest(`query parameter ${name}: "${text}" is not true or false`);
}
