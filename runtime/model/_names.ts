/**
 * The parts keys are made of (node ids, coordinates, instance numbers, method names, route paths, dotted
 * names, app names): each check returns the part as it appears in a key, or throws AetherError("bad_request")
 * saying where and what is wrong. Shared by the key builders and parsers (keys.ts), the operator namespace
 * (app.ts) and the record fields (_fields.ts).
 */

import {
  AetherError,
  type ArtifactBase,
  type ArtifactCoordinates,
  formatBase,
  formatCoordinates,
  isNodeId,
  type NodeId,
  parseArtifactBase,
  parseCoordinates,
} from "../core/mod.ts";
import { MAX_KEY_BYTES, utf8Length } from "../kv/mod.ts";

export const SLICE_METHOD = /^[A-Za-z_$][A-Za-z0-9_$]{0,127}$/;
export const INSTANCE_NUMBER = /^(0|[1-9]\d{0,8})$/;
const PATH_SEGMENT = /^(?:[A-Za-z0-9._~!$&'()*+,;=:@%-]+|\{[A-Za-z_][A-Za-z0-9_]*\})$/;
const DOTTED_PATH = /^[A-Za-z0-9_.:-]+(?:\/[A-Za-z0-9_.:-]+)*$/;
// deno-lint-ignore no-control-regex -- control characters are exactly what app keys must not contain
const CONTROL = /[\u0000-\u001f\u007f]/;

export const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] as const;
export type HttpMethod = typeof HTTP_METHODS[number];

export function baseText(base: ArtifactBase | string, where: string): string {
  return formatBase(parseArtifactBase(typeof base === "string" ? base : formatBase(base), where));
}

export function coordsText(coords: ArtifactCoordinates | string, where: string): string {
  return formatCoordinates(
    parseCoordinates(typeof coords === "string" ? coords : formatCoordinates(coords), where),
  );
}

export function nodeText(node: NodeId, where: string): NodeId {
  if (typeof node !== "string" || !isNodeId(node)) {
    throw new AetherError("bad_request", `${where}: "${node}" is not a valid node id`);
  }
  return node;
}

export function instanceText(n: number, where: string): string {
  if (!Number.isSafeInteger(n) || n < 0 || n > 999_999_999) {
    throw new AetherError(
      "bad_request",
      `${where}: instance number ${n} is not an integer from 0 to 999999999`,
    );
  }
  return String(n);
}

export function methodText(method: string, where: string): string {
  if (typeof method !== "string" || !SLICE_METHOD.test(method)) {
    throw new AetherError("bad_request", `${where}: "${method}" is not a valid slice method name`);
  }
  return method;
}

export function httpMethodText(method: string, where: string): HttpMethod {
  if (!(HTTP_METHODS as readonly string[]).includes(method)) {
    throw new AetherError("bad_request", `${where}: "${method}" is not one of ${HTTP_METHODS.join(", ")}`);
  }
  return method as HttpMethod;
}

/**
 * A route path as a slice declares it: `/`, or `/`-separated segments that are literal text or `{param}`; a
 * trailing `/` marks a prefix.
 */
export function isRoutePath(path: string): boolean {
  if (typeof path !== "string" || !path.startsWith("/") || path.length > 512) return false;
  if (path === "/") return true;
  const body = path.endsWith("/") ? path.slice(1, -1) : path.slice(1);
  return body.split("/").every((segment) => PATH_SEGMENT.test(segment));
}

export function routePathText(path: string, where: string): string {
  if (!isRoutePath(path)) {
    throw new AetherError(
      "bad_request",
      `${where}: "${path}" is not a route path ("/" then segments of URL characters or {param})`,
    );
  }
  return path;
}

export function dottedText(name: string, what: string, where: string): string {
  if (typeof name !== "string" || name.length > 256 || !DOTTED_PATH.test(name)) {
    throw new AetherError(
      "bad_request",
      `${where}: ${what} "${name}" must be "/"-separated parts of letters, digits and "_.:-"`,
    );
  }
  return name;
}

export function appText(name: string, where: string): string {
  if (typeof name !== "string" || name.length === 0 || CONTROL.test(name)) {
    throw new AetherError("bad_request", `${where}: an app/ key needs a name without control characters`);
  }
  return name;
}

/** A whole key: no longer than the store accepts. */
export function checkedKey(key: string): string {
  if (utf8Length(key) > MAX_KEY_BYTES) {
    throw new AetherError(
      "bad_request",
      `key "${key.slice(0, 64)}..." is longer than ${MAX_KEY_BYTES} bytes`,
    );
  }
  return key;
}
