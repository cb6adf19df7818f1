/**
 * Tokens (admin): POST /tokens {name, role, ttl?} answers the new token once; GET /tokens lists the records
 * (never a secret or its hash); DELETE /tokens/{id} revokes (the record stays, marked, so the list shows it).
 * GET /whoami (any token) says which token and role a request carries.
 */

import { Hono } from "hono";
import { AetherError } from "../core/mod.ts";
import {
  encodeJson,
  isRole,
  ROLES,
  TOKEN_ID_PATTERN,
  TOKEN_NAME_PATTERN,
  tokenKey,
  type TokenRecord,
} from "../model/mod.ts";
import { callerOf, MAX_TOKENS, newTokenId, newTokenSecret, sha256Hex, type TokenIndex } from "./auth.ts";
import { badRequest } from "./_problem.ts";
import type { ApiDeps } from "./deps.ts";

/** The longest a token may live when created with a ttl (a token without ttl never expires). */
export const MAX_TOKEN_TTL_MS = 10 * 365 * 86_400_000;
const TTL_UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `30m`, `12h`, `90d` in milliseconds; the problem names the field. */
export function parseTtl(text: unknown): number {
  const match = typeof text === "string" ? /^(\d{1,6})(m|h|d)$/.exec(text) : null;
  const ms = match ? Number(match[1]) * TTL_UNIT_MS[match[2]] : NaN;
  if (!match || ms <= 0 || ms > MAX_TOKEN_TTL_MS) {
    throw badRequest(`field ttl: "${text}" is not a duration like 30m, 12h or 90d (at most 3650d)`, {
      field: "ttl",
    });
  }
  return ms;
}

export function tokenView(record: TokenRecord, nowMs: number) {
  const state = record.revokedAt !== undefined
    ? "revoked"
    : record.expiresAt !== undefined && nowMs >= record.expiresAt
    ? "expired"
    : "active";
  return {
    id: record.id,
    name: record.name,
    role: record.role,
    state,
    createdAt: new Date(record.createdAt).toISOString(),
    expiresAt: record.expiresAt === undefined ? null : new Date(record.expiresAt).toISOString(),
    revokedAt: record.revokedAt === undefined ? null : new Date(record.revokedAt).toISOString(),
    createdBy: record.createdBy ?? null,
  };
}

export function tokenRoutes(deps: ApiDeps, index: TokenIndex, now: () => number = Date.now): Hono {
  const app = new Hono();

  app.get("/whoami", (c) => {
    const caller = callerOf(c);
    return c.json(caller ?? null);
  });

  app.post("/tokens", async (c) => {
    let body: Record<string, unknown>;
    try {
      body = await c.req.json();
    } catch {
      throw badRequest('the body is not JSON: send {"name": "...", "role": "viewer|operator|admin"}');
    }
    if (typeof body !== "object" || body === null) throw badRequest("the body must be a JSON object");
    const name = body.name;
    if (typeof name !== "string" || !TOKEN_NAME_PATTERN.test(name)) {
      throw badRequest(
        `field name: ${JSON.stringify(name)} is not 1-64 letters, digits, spaces or . _ @ : -`,
        { field: "name" },
      );
    }
    if (!isRole(body.role)) {
      throw badRequest(`field role: ${JSON.stringify(body.role)} is not ${ROLES.join(", ")}`, {
        field: "role",
      });
    }
    if (index.size >= MAX_TOKENS) {
      throw new AetherError(
        "conflict",
        `the cluster holds ${index.size} tokens, the limit (${MAX_TOKENS}); delete revoked ones first`,
      );
    }
    const createdAt = now();
    const secret = newTokenSecret();
    const record: TokenRecord = {
      id: newTokenId(),
      name,
      role: body.role,
      secretSha256: sha256Hex(secret),
      createdAt,
      ...(body.ttl === undefined ? {} : { expiresAt: createdAt + parseTtl(body.ttl) }),
      createdBy: callerOf(c)?.tokenId,
    };
    await deps.kv.write({ type: "put", key: tokenKey(record.id), value: encodeJson(record), ifRevision: 0 });
    return c.json({ ...tokenView(record, createdAt), token: `aether_${record.id}_${secret}` }, 201);
  });

  app.get("/tokens", (c) => {
    const items = index.records().sort((a, b) => a.createdAt - b.createdAt).map((r) => tokenView(r, now()));
    return c.json({ items });
  });

  app.delete("/tokens/:id", async (c) => {
    const id = c.req.param("id");
    if (!TOKEN_ID_PATTERN.test(id)) throw badRequest(`"${id}" is not a token id (4-32 letters or digits)`);
    const key = tokenKey(id);
    const entry = await deps.kv.get(key);
    const record = index.get(id);
    if (!entry || !record) throw new AetherError("not_found", `no token ${id}`, { tokenId: id });
    if (record.revokedAt !== undefined) return c.json(tokenView(record, now()));
    const revoked: TokenRecord = { ...record, revokedAt: now() };
    await deps.kv.write({ type: "put", key, value: encodeJson(revoked), ifRevision: entry.modRevision });
    return c.json(tokenView(revoked, now()));
  });

  return app;
}
