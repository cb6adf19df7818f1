/** Field checks that several families' records share (node ids, coordinates, versions, instance bounds). */

import { isVersion, parseArtifactBase, parseCoordinates } from "../core/mod.ts";
import { SLICE_METHOD } from "./_names.ts";
import { array, type Check, FieldError, join, string } from "./_validate.ts";

const SERVICE = /^[a-z][a-z0-9-]{0,62}$/;

export const nodeId = string({ pattern: /^[a-z0-9][a-z0-9-]{0,62}$/, expectation: "a node id" });
const coords = string({ pattern: /^[^:]+:[^:]+:[^:]+$/, expectation: '"group:artifact:version"' });
export const coordsField: Check<string> = (value, path) => {
  const text = coords(value, path);
  try {
    parseCoordinates(text);
  } catch {
    throw new FieldError(
      path,
      `${path} must be "group:artifact:version" with a semantic version, got "${text}"`,
    );
  }
  return text;
};
export const baseField: Check<string> = (value, path) => {
  const text = string({ expectation: '"group:artifact"' })(value, path);
  try {
    parseArtifactBase(text);
  } catch {
    throw new FieldError(path, `${path} must be "group:artifact", got "${text}"`);
  }
  return text;
};
export const version: Check<string> = (value, path) => {
  if (typeof value !== "string" || value.includes("+") || !isVersion(value)) {
    throw new FieldError(
      path,
      `${path} must be a semantic version such as 1.2.0, got ${JSON.stringify(value)}`,
    );
  }
  return value;
};
export const sliceMethod = string({ pattern: SLICE_METHOD, expectation: "a method name" });
export const services = array(string({ pattern: SERVICE, expectation: "a service name" }), { unique: true });
export const nodes = array(nodeId, { unique: true });

/** An instance count within its optional autoscaling bounds (blueprint slices and targets). */
export function bounds(value: { instances: number; min?: number; max?: number }, path: string): void {
  const at = (field: string) => join(path, field);
  if (value.min !== undefined && value.max !== undefined && value.min > value.max) {
    throw new FieldError(
      at("min"),
      `${at("min")} (${value.min}) must not exceed ${at("max")} (${value.max})`,
    );
  }
  if (value.min !== undefined && value.instances < value.min) {
    throw new FieldError(
      at("instances"),
      `${at("instances")} (${value.instances}) is below min (${value.min})`,
    );
  }
  if (value.max !== undefined && value.instances > value.max) {
    throw new FieldError(
      at("instances"),
      `${at("instances")} (${value.instances}) is above max (${value.max})`,
    );
  }
}
