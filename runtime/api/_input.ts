/**
 * Reading what a request says, strictly: a path part or query parameter with bad percent-encoding, a number
 * outside its range, a key with control characters is a 400 problem that names the part and what is wrong,
 * never a silent fallback (Hono leaves undecodable `%XX` as it is) or a 500 (`decodeURIComponent` throws).
 */

import type { Context } from "hono";
import { AetherError } from "../core/mod.ts";

// deno-lint-ignore no-control-regex -- control characters are what a key shown to a person must not carry raw
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/** `text` with control characters as `\u{..}` escapes, so a message or a terminal line shows them safely. */
export function printable(text: string): string {
  return text.replace(CONTROL, (c) => `\\u{${c.charCodeAt(0).toString(16).padStart(2, "0")}}`);
}

/** Whether `text` holds a control character (C0, DEL or C1). */
export function hasControl(text: string): boolean {
  CONTROL.lastIndex = 0;
  return CONTROL.test(text);
}

/** Percent-decodes `text`, or throws a 400 naming `where` when the encoding is bad (`%ZZ`, broken UTF-8). */
export function decodeStrict(text: string, where: string, decodePlus = false): string {
  const plain = decodePlus ? text.replaceAll("+", " ") : text;
  if (!plain.includes("%")) return plain;
  try {
    return decodeURIComponent(plain);
  } catch {
    const bad = /%(?![0-9A-Fa-f]{2})..?|(?:%[0-9A-Fa-f]{2})+/.exec(plain)?.[0] ?? "%";
    throw new AetherError(
      "bad_request",
      `${where}: bad percent-encoding in "${printable(text.slice(0, 200))}" (near "${bad.slice(0, 24)}"): ` +
        `each % must start %XX bytes of UTF-8`,
      { where },
    );
  }
}

/** The request's path as sent, still percent-encoded (Hono's `c.req.path` is partly decoded already). */
export function rawPath(c: Context): string {
  const url = c.req.url;
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  const end = url.search(/[?#]/);
  return url.slice(start, end < start ? url.length : end);
}

/**
 * A query parameter, strictly decoded: undefined when absent, a 400 naming it for bad percent-encoding.
 * (Hono's `c.req.query` keeps undecodable text as it is: `prefix=%ZZ` would silently mean "%ZZ".)
 */
export function queryParam(c: Context, name: string): string | undefined {
  const url = c.req.url;
  const q = url.indexOf("?");
  if (q < 0) return undefined;
  const hash = url.indexOf("#", q);
  for (const pair of url.slice(q + 1, hash < 0 ? url.length : hash).split("&")) {
    const eq = pair.indexOf("=");
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    if (decodeStrict(rawName, "query parameter name", true) !== name) continue;
    return decodeStrict(eq < 0 ? "" : pair.slice(eq + 1), `query parameter ${name}`, true);
  }
  return undefined;
}

export interface IntRange {
  min: number;
  max: number;
}

/** The largest revision or count the API takes: beyond it a JavaScript number stops being exact. */
export const MAX_REVISION = Number.MAX_SAFE_INTEGER;

/**
 * An optional whole-number query parameter within `range`; a 400 naming the parameter and the range when it
 * is not one (a sign, a fraction, an exponent, too many digits, out of range).
 */
export function intParam(c: Context, name: string, range: IntRange): number | undefined {
  const text = queryParam(c, name);
  if (text === undefined || text === "") return undefined;
  return intInRange(text, `query parameter ${name}`, range);
}

/** `text` as a whole number within `range`, or a 400 naming `where`. */
export function intInRange(text: string, where: string, range: IntRange): number {
  const value = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < range.min || value > range.max) {
    throw new AetherError(
      "bad_request",
      `${where}: "${printable(text.slice(0, 40))}" is not a whole number from ${range.min} to ${range.max}`,
      { where, min: range.min, max: range.max },
    );
  }
  return value;
}
