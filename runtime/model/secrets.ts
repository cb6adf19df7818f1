/**
 * The secrets and rate-limit families (runtime/infra-host serves them). Secret values are never stored in
 * clear: a record holds AES-GCM ciphertexts made under the cluster master key, which is kept outside the KV.
 *
 * | key                  | record          | written by                                    |
 * | -------------------- | --------------- | --------------------------------------------- |
 * | `secrets/{name}`     | SecretRecord    | the management API (set, rotate, delete)      |
 * | `ratelimits/{name}`  | RateLimitRecord | the management API (`aether ratelimit set`)   |
 */

import { AetherError } from "../core/mod.ts";
import { array, type Check, integer, object, string, timestamp, validate } from "./_validate.ts";

export const SECRETS_PREFIX = "secrets/";
export const RATELIMITS_PREFIX = "ratelimits/";

/** Secret and rate-limit names: 1-64 characters of [a-z0-9._-], starting with a letter or digit. */
export const SECRET_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const RATELIMIT_NAME = SECRET_NAME;
/** Versions a secret keeps (the current one and those before it); older ones are dropped on rotation. */
export const MAX_SECRET_VERSIONS = 5;
/** The largest secret value, in bytes of UTF-8. */
export const MAX_SECRET_BYTES = 64 * 1024;
/** The most named secrets and rate limits a cluster holds (each is one consensus record). */
export const MAX_SECRETS = 1_000;
export const MAX_RATELIMITS = 1_000;
/** The largest rate a limit may have, in permits per second. */
export const MAX_RATE_PER_SEC = 1_000_000;

/** One version of a secret: AES-GCM ciphertext (with its tag) and the 96-bit IV, both base64. */
export interface SecretVersion {
  version: number;
  iv: string;
  ciphertext: string;
  createdAt: number;
}

export interface SecretRecord {
  /** The version `ctx.secrets.get` returns. */
  current: number;
  /** Newest last; at most MAX_SECRET_VERSIONS. */
  versions: SecretVersion[];
  updatedAt: number;
}

export interface RateLimitRecord {
  /** Permits per second across the cluster. */
  ratePerSec: number;
  /** Permits that may be taken at once after an idle period (the bucket's size), across the cluster. */
  burst: number;
  updatedAt: number;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export const secretRecordCheck: Check<SecretRecord> = object({
  current: integer(1),
  versions: array(
    object({
      version: integer(1),
      iv: string({ pattern: BASE64, expectation: "base64", maxLength: 64 }),
      ciphertext: string({ pattern: BASE64, expectation: "base64", maxLength: MAX_SECRET_BYTES * 2 }),
      createdAt: timestamp(),
    }),
    { min: 1, max: MAX_SECRET_VERSIONS },
  ),
  updatedAt: timestamp(),
});

export const rateLimitRecordCheck: Check<RateLimitRecord> = object({
  ratePerSec: integer(1, MAX_RATE_PER_SEC),
  burst: integer(1, MAX_RATE_PER_SEC),
  updatedAt: timestamp(),
});

function nameText(kind: string, name: string, where: string): string {
  if (typeof name !== "string" || !SECRET_NAME.test(name)) {
    throw new AetherError(
      "bad_request",
      `${where}: ${kind} name ${
        JSON.stringify(name)
      } must be 1-64 characters of [a-z0-9._-] starting with a ` +
        `letter or digit`,
      { field: "name" },
    );
  }
  return name;
}

export const secretKeys = {
  secret: (name: string): string => `${SECRETS_PREFIX}${nameText("secret", name, "secret key")}`,
  rateLimit: (name: string): string =>
    `${RATELIMITS_PREFIX}${nameText("rate limit", name, "rate limit key")}`,
} as const;

export function secretNameText(name: string, where: string): string {
  return nameText("secret", name, where);
}

export function rateLimitNameText(name: string, where: string): string {
  return nameText("rate limit", name, where);
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

function decodeJson<T>(check: Check<T>, bytes: Uint8Array, where: string): T {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${(e as Error).message})`);
  }
  return validate(check, parsed, where);
}

export function encodeSecretRecord(record: SecretRecord): Uint8Array {
  return utf8.encode(JSON.stringify(validate(secretRecordCheck, record, "secret record")));
}
export function decodeSecretRecord(bytes: Uint8Array, where = "secret record"): SecretRecord {
  return decodeJson(secretRecordCheck, bytes, where);
}
export function encodeRateLimitRecord(record: RateLimitRecord): Uint8Array {
  return utf8.encode(JSON.stringify(validate(rateLimitRecordCheck, record, "rate limit record")));
}
export function decodeRateLimitRecord(bytes: Uint8Array, where = "rate limit record"): RateLimitRecord {
  return decodeJson(rateLimitRecordCheck, bytes, where);
}
