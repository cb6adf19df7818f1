/**
 * Access to the management API: tokens with roles and the audit log, kept in the replicated KV store under
 * runtime prefixes (never under `app/`, so the KV API cannot write them).
 *
 * | key                         | record                                                          |
 * | --------------------------- | --------------------------------------------------------------- |
 * | `auth/tokens/{id}`          | TokenRecord: name, role, sha-256 of the secret (never the secret) |
 * | `auth/bootstrap`            | the id of the cluster's first admin token (created once, by CAS)  |
 * | `audit/{time}-{node}-{seq}` | AuditRecord: one mutating API call                               |
 *
 * A token as a client sends it: `aether_{id}_{secret}` (`Authorization: Bearer ...`).
 */

import { AetherError } from "../core/mod.ts";

export const AUTH_PREFIXES = { tokens: "auth/tokens/", audit: "audit/" } as const;
/** Written once, together with the first admin token, so only one bootstrap token is ever created. */
export const BOOTSTRAP_KEY = "auth/bootstrap";

/** Each role can do everything the roles before it can. */
export const ROLES = ["viewer", "operator", "admin"] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: unknown): value is Role {
  return typeof value === "string" && (ROLES as readonly string[]).includes(value);
}

/** Whether `held` allows what `needed` allows. */
export function roleAllows(held: Role, needed: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(needed);
}

export interface TokenRecord {
  /** Lower-case letters and digits; the token's public part. */
  id: string;
  /** A name for people: who or what uses it. */
  name: string;
  role: Role;
  /** Hex sha-256 of the secret part. */
  secretSha256: string;
  /** Epoch ms. */
  createdAt: number;
  /** Epoch ms after which the token is refused. */
  expiresAt?: number;
  /** Epoch ms when it was revoked (the record is kept so `token list` shows it). */
  revokedAt?: number;
  /** The id of the token that created it (absent for the bootstrap token). */
  createdBy?: string;
}

export const TOKEN_ID_PATTERN = /^[a-z0-9]{4,32}$/;
export const TOKEN_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9 ._@:-]{0,63}$/;
/** `aether_{id}_{secret}`: the secret is base64url (it may itself contain `_`). */
export const TOKEN_PATTERN = /^aether_([a-z0-9]{4,32})_([A-Za-z0-9_-]{16,128})$/;

export function tokenKey(id: string): string {
  if (!TOKEN_ID_PATTERN.test(id)) throw new AetherError("bad_request", `"${id}" is not a token id`);
  return AUTH_PREFIXES.tokens + id;
}

/** Splits a token into id and secret; null when it does not have the shape of one. */
export function parseToken(text: string): { id: string; secret: string } | null {
  const match = TOKEN_PATTERN.exec(text);
  return match ? { id: match[1], secret: match[2] } : null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** A stored token record, checked field by field (a malformed one is refused, never trusted). */
export function decodeTokenRecord(bytes: Uint8Array, key: string): TokenRecord {
  const problem = (field: string) => new AetherError("internal", `${key}: field ${field} is malformed`);
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch {
    throw problem("(not JSON)");
  }
  if (typeof value !== "object" || value === null) throw problem("(not an object)");
  if (typeof value.id !== "string" || !TOKEN_ID_PATTERN.test(value.id)) throw problem("id");
  if (typeof value.name !== "string") throw problem("name");
  if (!isRole(value.role)) throw problem("role");
  if (typeof value.secretSha256 !== "string" || !/^[0-9a-f]{64}$/.test(value.secretSha256)) {
    throw problem("secretSha256");
  }
  if (typeof value.createdAt !== "number") throw problem("createdAt");
  for (const field of ["expiresAt", "revokedAt"]) {
    if (value[field] !== undefined && typeof value[field] !== "number") throw problem(field);
  }
  return value as unknown as TokenRecord;
}

/** One mutating call of the management API. */
export interface AuditRecord {
  /** Epoch ms when the answer was sent. */
  time: number;
  /** The node that served it. */
  node: string;
  /** The caller's token id and name, and the role it held (absent for an unauthenticated call). */
  tokenId?: string;
  tokenName?: string;
  role?: Role;
  method: string;
  path: string;
  /** What the call acted on when the path names it (blueprint, artifact, key, token, ...). */
  target?: string;
  status: number;
  requestId: string;
}

/** Keys sort by time: a zero-padded epoch ms, then the node and a per-node sequence (unique, ordered). */
export function auditKey(timeMs: number, node: string, seq: number): string {
  return `${AUTH_PREFIXES.audit}${String(timeMs).padStart(15, "0")}-${node}-${String(seq).padStart(9, "0")}`;
}

/** The smallest audit key at or after `timeMs` (for `since`). */
export function auditKeyFrom(timeMs: number): string {
  return `${AUTH_PREFIXES.audit}${String(Math.max(0, timeMs)).padStart(15, "0")}`;
}

export function decodeAuditRecord(bytes: Uint8Array): AuditRecord {
  return JSON.parse(decoder.decode(bytes)) as AuditRecord;
}
