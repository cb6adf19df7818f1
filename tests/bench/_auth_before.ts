/**
 * The management API's auth middleware as it was before it was made cheaper (commit 134584f of
 * runtime/api/auth.ts and roles.ts), kept only so auth_bench.ts can load it next to the current one in the
 * same run, alternating rounds. Same checks, same answers; what differs is the work per request: headers read
 * through Hono one lookup at a time (Host twice with an Origin, Upgrade on every request), Host parsed by
 * regular expressions each time, the role table keyed by a string built per request, a token parsed by a
 * regular expression and a Caller allocated per request.
 */

import type { MiddlewareHandler } from "hono";
import { AetherError } from "../../runtime/core/mod.ts";
import { parseToken, roleAllows, type TokenRecord } from "../../runtime/model/mod.ts";
import {
  type Caller,
  constantTimeEqual,
  ENDPOINT_ROLES,
  type EndpointEntry,
  type EndpointRole,
  sha256Hex,
  type TokenIndex,
} from "../../runtime/api/mod.ts";

function unauthorized(why: string, needed?: EndpointRole): AetherError {
  return new AetherError(
    "unauthorized",
    `${why}; send "Authorization: Bearer <token>"${
      needed ? ` of a token with role ${needed} or above` : ""
    } ` +
      `(the CLI: --token, AETHER_TOKEN or "aether login")`,
    needed ? { roleNeeded: needed } : {},
  );
}

/** The old TokenIndex.verify: parse, per-id remembered secret, a new Caller each time. */
function verifier(index: TokenIndex): (token: string) => Caller | AetherError {
  const verified = new Map<string, { record: TokenRecord; secret: string }>();
  return (token) => {
    const parsed = parseToken(token);
    if (!parsed) return unauthorized("the bearer token is not an Aether token (aether_<id>_<secret>)");
    const record = index.get(parsed.id);
    if (!record) return unauthorized("the token is not known to this cluster");
    const known = verified.get(record.id);
    if (known === undefined || known.record !== record || !constantTimeEqual(parsed.secret, known.secret)) {
      if (!constantTimeEqual(sha256Hex(parsed.secret), record.secretSha256)) {
        return unauthorized("the token is not known to this cluster");
      }
      verified.set(record.id, { record, secret: parsed.secret });
    }
    if (record.revokedAt !== undefined) return unauthorized(`token ${record.id} was revoked`);
    if (record.expiresAt !== undefined && index.now() >= record.expiresAt) {
      return unauthorized(`token ${record.id} expired`);
    }
    return { tokenId: record.id, tokenName: record.name, role: record.role };
  };
}

/** The old RoleTable.find's exact path: a `${method} ${path}` key per request, a new answer object. */
function exactFinder(): (method: string, path: string) => { entry: EndpointEntry } | undefined {
  const exact = new Map<string, EndpointEntry>();
  for (const entry of ENDPOINT_ROLES) {
    if (!/[:*]/.test(entry.path)) exact.set(`${entry.method} ${entry.path}`, entry);
  }
  return (method, path) => {
    const m = method === "HEAD" ? "GET" : method;
    const found = exact.get(`${m} ${path}`) ?? exact.get(`${m} ${path.replace(/\/$/, "")}`);
    return found ? { entry: found } : undefined;
  };
}

function hostName(hostHeader: string): string {
  const bracketed = /^\[([^\]]+)\](:\d+)?$/.exec(hostHeader);
  if (bracketed) return bracketed[1].toLowerCase();
  return hostHeader.replace(/:\d+$/, "").toLowerCase();
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");
}

function webSocketToken(request: Request): string | undefined {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") return undefined;
  const offered = request.headers.get("sec-websocket-protocol")?.split(",").map((p) => p.trim()) ?? [];
  return offered.find((p) => p.startsWith("bearer."))?.slice("bearer.".length);
}

const callers = new WeakMap<Request, Caller>();

/** The old middleware's success path and refusals (no CORS preflight or audit: the bench sends neither). */
export function authMiddlewareBefore(
  index: TokenIndex,
  options: { hostNames?: string[] },
): MiddlewareHandler {
  const names = new Set(["localhost", ...(options.hostNames ?? [])]);
  const verify = verifier(index);
  const find = exactFinder();
  return async (c, next) => {
    if (options.hostNames) {
      const header = c.req.header("host");
      if (header !== undefined) {
        const host = hostName(header);
        if (!isIpLiteral(host) && !names.has(host)) {
          return c.json({ title: `Host "${header}" is not a name of this API` }, 403);
        }
      }
    }
    const origin = c.req.header("origin");
    if (origin !== undefined) {
      let allowed = false;
      try {
        allowed = new URL(origin).host === c.req.header("host");
      } catch { /* refused */ }
      if (!allowed) return c.json({ title: `Origin "${origin}" may not call this API` }, 403);
      c.header("access-control-allow-origin", origin);
      c.header("vary", "Origin");
    }
    const found = find(c.req.method, c.req.path);
    let needed: EndpointRole = found?.entry.role ?? "viewer";
    if (needed === "open") needed = "viewer";
    const protocolToken = webSocketToken(c.req.raw);
    const header = c.req.header("authorization") ??
      (protocolToken === undefined ? undefined : `Bearer ${protocolToken}`);
    if (header === undefined) return c.json(unauthorized("needs a token", needed).message, 401);
    if (!header.startsWith("Bearer ")) return c.json("not Bearer", 401);
    const caller = verify(header.slice(7).trim());
    if (caller instanceof AetherError) return c.json(caller.message, 401);
    if (!roleAllows(caller.role, needed)) return c.json("forbidden", 403);
    callers.set(c.req.raw, caller);
    await next();
  };
}
