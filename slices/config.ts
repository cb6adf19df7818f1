/**
 * Slice configuration: checking a schema (at build and upload) and resolving the values an instance runs with
 * (defaults applied, types and bounds checked) when it loads.
 */

import { AetherError } from "../runtime/core/mod.ts";
import type { ConfigField, ConfigFieldType, JsonValue } from "./_types.ts";

const FIELD_TYPES: readonly ConfigFieldType[] = ["string", "number", "integer", "boolean", "string[]"];
const FIELD_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FIELD_KEYS = new Set(["type", "default", "optional", "description", "enum", "minimum", "maximum"]);

export interface Problem {
  /** Where, as a dotted path (`config.schema.maxItems.default`). */
  path: string;
  message: string;
}

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  // JSON reads 1e400 as Infinity, which JSON.stringify would show as null.
  if (typeof value === "number" && !Number.isFinite(value)) return `${value} (not a finite number)`;
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Why `value` does not fit `field`, or undefined when it does. */
export function fieldValueProblem(field: ConfigField, value: unknown): string | undefined {
  switch (field.type) {
    case "string":
      if (typeof value !== "string") return `expected a string, got ${describeValue(value)}`;
      break;
    case "boolean":
      if (typeof value !== "boolean") return `expected true or false, got ${describeValue(value)}`;
      break;
    case "integer":
      if (typeof value !== "number" || !Number.isInteger(value)) {
        return `expected an integer, got ${describeValue(value)}`;
      }
      break;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) {
        return `expected a number, got ${describeValue(value)}`;
      }
      break;
    case "string[]":
      if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
        return `expected a list of strings, got ${describeValue(value)}`;
      }
      break;
  }
  if (field.enum && !field.enum.includes(value as string | number)) {
    return `expected one of ${field.enum.map((v) => JSON.stringify(v)).join(", ")}, got ${
      describeValue(value)
    }`;
  }
  if (typeof value === "number") {
    if (field.minimum !== undefined && value < field.minimum) {
      return `must be at least ${field.minimum}, got ${value}`;
    }
    if (field.maximum !== undefined && value > field.maximum) {
      return `must be at most ${field.maximum}, got ${value}`;
    }
  }
  return undefined;
}

/** Every problem with a configuration schema. */
export function schemaProblems(schema: unknown, path = "config.schema"): Problem[] {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) {
    return [{ path, message: "must be an object of field schemas" }];
  }
  const problems: Problem[] = [];
  for (const [name, raw] of Object.entries(schema)) {
    const at = `${path}.${name}`;
    if (!FIELD_NAME.test(name)) {
      problems.push({ path: at, message: "field names are identifiers (letters, digits, _)" });
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      problems.push({ path: at, message: 'must be an object such as { type: "string", default: "x" }' });
      continue;
    }
    const field = raw as Record<string, unknown>;
    for (const key of Object.keys(field)) {
      if (!FIELD_KEYS.has(key)) {
        problems.push({ path: `${at}.${key}`, message: "is not a known field property" });
      }
    }
    if (!FIELD_TYPES.includes(field.type as ConfigFieldType)) {
      problems.push({ path: `${at}.type`, message: `must be one of ${FIELD_TYPES.join(", ")}` });
      continue;
    }
    if (field.optional !== undefined && typeof field.optional !== "boolean") {
      problems.push({ path: `${at}.optional`, message: "must be true or false" });
    }
    if (field.description !== undefined && typeof field.description !== "string") {
      problems.push({ path: `${at}.description`, message: "must be a string" });
    }
    for (const bound of ["minimum", "maximum"] as const) {
      if (field[bound] === undefined) continue;
      if (field.type !== "number" && field.type !== "integer") {
        problems.push({ path: `${at}.${bound}`, message: `only number and integer fields have a ${bound}` });
      } else if (typeof field[bound] !== "number" || !Number.isFinite(field[bound])) {
        problems.push({ path: `${at}.${bound}`, message: "must be a number" });
      }
    }
    if (field.enum !== undefined) {
      const itemType = field.type === "string" ? "string" : "number";
      if (
        !Array.isArray(field.enum) || field.enum.length === 0 ||
        field.enum.some((v) => typeof v !== itemType) || field.type === "boolean" || field.type === "string[]"
      ) {
        problems.push({ path: `${at}.enum`, message: `must be a non-empty list of ${itemType}s` });
        continue;
      }
    }
    if (field.default !== undefined) {
      const problem = fieldValueProblem(field as unknown as ConfigField, field.default);
      if (problem) problems.push({ path: `${at}.default`, message: problem });
    }
  }
  return problems;
}

/** The schema's defaults, as the manifest records them. */
export function defaultsOf(schema: Record<string, ConfigField>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [name, field] of Object.entries(schema)) {
    if (field.default !== undefined) out[name] = field.default;
  }
  return out;
}

/**
 * The configuration an instance runs with: `values` from the deployment over the schema's defaults. Unknown
 * keys, missing required fields and values of the wrong type are refused, every one named.
 */
export function resolveConfig(
  schema: Record<string, ConfigField>,
  values: Record<string, unknown> = {},
  where = "config",
): Record<string, JsonValue> {
  const problems: Problem[] = [];
  if (values === null || typeof values !== "object" || Array.isArray(values)) {
    throw new AetherError("bad_request", `${where}: must be an object of field values`);
  }
  for (const name of Object.keys(values)) {
    if (!Object.hasOwn(schema, name)) {
      const known = Object.keys(schema);
      problems.push({
        path: `${where}.${name}`,
        message: `is not a configuration field of this slice (${
          known.length ? `known: ${known.join(", ")}` : "it has none"
        })`,
      });
    }
  }
  const out: Record<string, JsonValue> = {};
  for (const [name, field] of Object.entries(schema)) {
    const value = values[name] !== undefined ? values[name] : field.default;
    if (value === undefined) {
      if (!field.optional) {
        problems.push({ path: `${where}.${name}`, message: `is required (${field.type})` });
      }
      continue;
    }
    const problem = fieldValueProblem(field, value);
    if (problem) problems.push({ path: `${where}.${name}`, message: problem });
    else out[name] = value as JsonValue;
  }
  if (problems.length > 0) {
    throw new AetherError(
      "bad_request",
      `invalid configuration: ${problems.map((p) => `${p.path} ${p.message}`).join("; ")}`,
      { problems },
    );
  }
  return out;
}
