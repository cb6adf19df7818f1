/**
 * The dynamic aspect family (runtime/infra-host/aspects.ts applies it on every node): which slice methods an
 * operator switched to logging or extra metrics, cluster-wide, at run time.
 *
 * | key                                   | record        | written by                                   |
 * | ------------------------------------- | ------------- | -------------------------------------------- |
 * | `aspects/{group}:{artifact}/{method}` | AspectRecord  | PUT /api/v1/aspects (`aether aspect set`);   |
 * |                                       |               | mode `none` deletes the record               |
 *
 * A method without a record runs with mode `none` (only the per-method metrics every call records anyway).
 */

import { AetherError, parseArtifactBase } from "../core/mod.ts";
import { type Check, literal, object, optional, string, timestamp, validate } from "./_validate.ts";

export const ASPECTS_PREFIX = "aspects/";
export const ASPECT_MODES = ["none", "log", "metrics", "log+metrics"] as const;
export type AspectMode = (typeof ASPECT_MODES)[number];
/** The most methods switched at once across the cluster (each is one consensus record). */
export const MAX_ASPECTS = 1_000;

const METHOD = /^[a-z][a-zA-Z0-9]{1,63}$/;

export interface AspectRecord {
  mode: Exclude<AspectMode, "none">;
  /** Wall-clock time of the change by the writing node's clock (display only). */
  updatedAt: number;
  /** Who switched it (the token's name), when known. */
  by?: string;
}

export const aspectRecordCheck: Check<AspectRecord> = object({
  mode: literal(["log", "metrics", "log+metrics"] as const),
  updatedAt: timestamp(),
  by: optional(string({ maxLength: 128 })),
});

export function isAspectMode(value: unknown): value is AspectMode {
  return typeof value === "string" && (ASPECT_MODES as readonly string[]).includes(value);
}

/** `group:artifact/method` (what `aether aspect set` and the API take); a bad one names `where`. */
export function parseAspectTarget(text: unknown, where = "target"): { slice: string; method: string } {
  if (typeof text !== "string") {
    throw new AetherError(
      "bad_request",
      `${where}: expected "group:artifact/method", got ${JSON.stringify(text)}`,
      {
        field: where,
      },
    );
  }
  const slash = text.lastIndexOf("/");
  if (slash < 0) {
    throw new AetherError(
      "bad_request",
      `${where}: ${JSON.stringify(text)} is not "group:artifact/method" (e.g. org.example:orders/placeOrder)`,
      { field: where },
    );
  }
  const method = text.slice(slash + 1);
  let slice: string;
  try {
    const base = parseArtifactBase(text.slice(0, slash), where);
    slice = `${base.group}:${base.artifact}`;
  } catch (e) {
    throw new AetherError("bad_request", (e as Error).message, { field: where });
  }
  if (!METHOD.test(method)) {
    throw new AetherError(
      "bad_request",
      `${where}: method ${JSON.stringify(method)} must match ${METHOD.source} (a slice method name)`,
      { field: where },
    );
  }
  return { slice, method };
}

export function aspectKey(slice: string, method: string): string {
  const parsed = parseAspectTarget(`${slice}/${method}`);
  return `${ASPECTS_PREFIX}${parsed.slice}/${parsed.method}`;
}

/** The slice and method of an `aspects/` key; undefined for another key or a malformed one. */
export function parseAspectKey(key: string): { slice: string; method: string } | undefined {
  if (!key.startsWith(ASPECTS_PREFIX)) return undefined;
  try {
    return parseAspectTarget(key.slice(ASPECTS_PREFIX.length));
  } catch {
    return undefined;
  }
}

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function encodeAspectRecord(record: AspectRecord): Uint8Array {
  return utf8.encode(JSON.stringify(validate(aspectRecordCheck, record, "aspect record")));
}

export function decodeAspectRecord(bytes: Uint8Array, where = "aspect record"): AspectRecord {
  let parsed: unknown;
  try {
    parsed = JSON.parse(utf8Strict.decode(bytes));
  } catch (e) {
    throw new AetherError("bad_request", `${where}: not UTF-8 JSON (${(e as Error).message})`);
  }
  return validate(aspectRecordCheck, parsed, where);
}
