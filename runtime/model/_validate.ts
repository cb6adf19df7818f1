/**
 * A small validation kit for the model's records: each check takes an unknown value and the path of the field
 * being checked, returns the value typed (objects rebuilt with only their declared fields, in declared order),
 * or throws an AetherError naming the field.
 */

import { AetherError } from "../core/mod.ts";

export type Check<T> = (value: unknown, path: string) => T;
/** A field that may be absent (undefined is treated as absent; null is not). */
export type OptionalCheck<T> = Check<T | undefined> & { readonly optional: true };

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The value failed its check; `where` is filled in by the caller (see `validate`). */
export class FieldError extends Error {
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

export function fail(path: string, expectation: string, value: unknown): never {
  throw new FieldError(path, `${path || "value"} must be ${expectation}, got ${describe(value)}`);
}

/** Runs a check and turns a FieldError into an AetherError("bad_request") that says where. */
export function validate<T>(check: Check<T>, value: unknown, where: string): T {
  try {
    return check(value, "");
  } catch (e) {
    if (e instanceof FieldError) {
      throw new AetherError("bad_request", `${where}: ${e.message}`, e.field ? { field: e.field } : {});
    }
    throw e;
  }
}

export function optional<T>(check: Check<T>): OptionalCheck<T> {
  const wrapped = (value: unknown, path: string) => value === undefined ? undefined : check(value, path);
  return Object.assign(wrapped, { optional: true as const });
}

export function string(
  options: { pattern?: RegExp; expectation?: string; maxLength?: number } = {},
): Check<string> {
  const { pattern, maxLength = 4096 } = options;
  const expectation = options.expectation ?? (pattern ? `a string matching ${pattern}` : "a string");
  return (value, path) => {
    if (typeof value !== "string" || value.length > maxLength || (pattern && !pattern.test(value))) {
      fail(path, expectation, value);
    }
    return value;
  };
}

export function literal<const T extends string>(values: readonly T[]): Check<T> {
  return (value, path) => {
    if (typeof value !== "string" || !(values as readonly string[]).includes(value)) {
      fail(path, `one of ${values.join(", ")}`, value);
    }
    return value as T;
  };
}

export function integer(min = 0, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return (value, path) => {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > max) {
      fail(
        path,
        max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`,
        value,
      );
    }
    return value;
  };
}

export function finite(): Check<number> {
  return (value, path) => {
    if (typeof value !== "number" || !Number.isFinite(value)) fail(path, "a finite number", value);
    return value;
  };
}

/** Milliseconds since the epoch. */
export function timestamp(): Check<number> {
  return (value, path) => {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      fail(path, "a time in ms (>= 0)", value);
    }
    return value;
  };
}

export function boolean(): Check<boolean> {
  return (value, path) => {
    if (typeof value !== "boolean") fail(path, "true or false", value);
    return value;
  };
}

export function array<T>(
  item: Check<T>,
  options: { min?: number; max?: number; unique?: boolean } = {},
): Check<T[]> {
  const { min = 0, max = 100_000, unique = false } = options;
  return (value, path) => {
    if (!Array.isArray(value)) fail(path, "an array", value);
    if (value.length < min || value.length > max) {
      fail(path, `an array of ${min} to ${max} items`, `${value.length} items`);
    }
    const out = value.map((v, i) => item(v, `${path}[${i}]`));
    if (unique) {
      const seen = new Set<string>();
      out.forEach((v, i) => {
        const key = JSON.stringify(v);
        if (seen.has(key)) throw new FieldError(`${path}[${i}]`, `${path}[${i}] repeats ${key}`);
        seen.add(key);
      });
    }
    return out;
  };
}

/** A JSON object used as a map from checked keys to checked values. */
export function record<T>(key: Check<string>, item: Check<T>): Check<Record<string, T>> {
  return (value, path) => {
    if (!isPlainObject(value)) fail(path, "an object", value);
    const out: Record<string, T> = {};
    for (const [k, v] of Object.entries(value)) {
      const at = `${path}.${k}`;
      key(k, at);
      out[k] = item(v, at);
    }
    return out;
  };
}

export function json(): Check<JsonValue> {
  const check = (value: unknown, path: string, depth: number): JsonValue => {
    if (depth > 64) fail(path, "JSON nested at most 64 levels deep", "deeper nesting");
    if (value === null || typeof value === "boolean" || typeof value === "string") return value;
    if (typeof value === "number") {
      if (!Number.isFinite(value)) fail(path, "a JSON value", value);
      return value;
    }
    if (Array.isArray(value)) return value.map((v, i) => check(v, `${path}[${i}]`, depth + 1));
    if (isPlainObject(value)) {
      const out: Record<string, JsonValue> = {};
      for (const [k, v] of Object.entries(value)) out[k] = check(v, `${path}.${k}`, depth + 1);
      return out;
    }
    return fail(path, "a JSON value", value);
  };
  return (value, path) => check(value, path, 0);
}

type Shape = Record<string, Check<unknown>>;
type Required<S extends Shape> = {
  [K in keyof S as S[K] extends { optional: true } ? never : K]: ReturnType<S[K]>;
};
type Optional<S extends Shape> = {
  [K in keyof S as S[K] extends { optional: true } ? K : never]?: Exclude<ReturnType<S[K]>, undefined>;
};
export type ObjectOf<S extends Shape> = Required<S> & Optional<S>;

/** An object with exactly the declared fields: unknown fields are refused (they are usually typos). */
export function object<S extends Shape>(shape: S): Check<ObjectOf<S>> {
  return (value, path) => {
    if (!isPlainObject(value)) fail(path, "an object", value);
    for (const name of Object.keys(value)) {
      if (!(name in shape)) {
        throw new FieldError(join(path, name), `${join(path, name)} is not a known field`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [name, check] of Object.entries(shape)) {
      const at = join(path, name);
      if (value[name] === undefined && !("optional" in check)) throw new FieldError(at, `${at} is missing`);
      const checked = check(value[name], at);
      if (checked !== undefined) out[name] = checked;
    }
    return out as ObjectOf<S>;
  };
}

/** Adds a check of relations between fields, run after each field passed its own check. */
export function refine<T>(check: Check<T>, relation: (value: T, path: string) => void): Check<T> {
  return (value, path) => {
    const out = check(value, path);
    relation(out, path);
    return out;
  };
}

/** The path of field `name` inside the value at `path`. */
export function join(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value);
  }
  if (Array.isArray(value)) return "an array";
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return String(value);
}
