/**
 * Parsing requests, field by field: every helper takes the raw JSON value and the `Field` it came from and
 * returns a typed value or throws the slice's own bad-request error (`InvalidOrder`, `InvalidPayment`, ...)
 * with a message that names the field and says what was expected and what arrived:
 * `items[1].quantity must be an integer from 1 to 100, got 0`.
 */

import type { SliceError } from "@aether/slices";

/** A `SliceError` subclass that reports a bad request; the slice maps it to 400 with `*Invalid*`. */
export type InvalidRequestError = new (
  message: string,
  options?: { status?: number; details?: unknown },
) => SliceError;

/** Where a value sits in a request (its path, for messages) and which error reports a problem with it. */
export class Field {
  constructor(readonly path: string, readonly error: InvalidRequestError) {}

  /** `items` → `items[2]`; `shippingAddress` → `shippingAddress.city`; the root → `customerId`. */
  at(key: string | number): Field {
    if (typeof key === "number") return new Field(`${this.path}[${key}]`, this.error);
    return new Field(this.path === "" ? key : `${this.path}.${key}`, this.error);
  }

  /** Throws the field's error: `<path> <reason>`, with `{ field, reason }` as details. */
  fail(reason: string): never {
    const subject = this.path === "" ? "the request body" : this.path;
    throw new this.error(`${subject} ${reason}`, { details: { field: this.path, reason } });
  }
}

/** The root of a request, reported with `error`. */
export function requestOf(error: InvalidRequestError): Field {
  return new Field("", error);
}

/** A short description of a received value for error messages: `"ab@"`, `0`, `an array`, `null`. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") {
    const shown = value.length > 40 ? `${value.slice(0, 37)}...` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "an array";
  return `a${typeof value === "object" ? "n object" : ` ${typeof value}`}`;
}

/** A JSON object with only the `known` keys; a misspelt key is reported instead of silently ignored. */
export function parseObject(value: unknown, field: Field, known: readonly string[]): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    field.fail(`must be a JSON object, got ${describe(value)}`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      const where = field.path === "" ? "the request body" : field.path;
      const message = `has an unknown field "${key}" (known fields: ${known.join(", ")})`;
      throw new field.error(`${where} ${message}`, {
        details: { field: field.at(key).path, reason: "unknown field" },
      });
    }
  }
  return value as Record<string, unknown>;
}

export interface StringRule {
  /** Minimum length after trimming; default 1 (so an empty or blank string is refused). */
  min?: number;
  max: number;
  pattern?: RegExp;
  /** What the pattern means, for the message: `"letters, digits and -"`. */
  expected?: string;
}

/** A string, trimmed, within length bounds and matching `pattern`. */
export function parseString(value: unknown, field: Field, rule: StringRule): string {
  if (value === undefined) field.fail("is missing");
  if (typeof value !== "string") field.fail(`must be a string, got ${describe(value)}`);
  const text = value.trim();
  const min = rule.min ?? 1;
  if (text.length < min) field.fail(min === 1 ? "must not be empty" : `must have at least ${min} characters`);
  if (text.length > rule.max) field.fail(`must have at most ${rule.max} characters, got ${text.length}`);
  if (rule.pattern && !rule.pattern.test(text)) {
    field.fail(`must be ${rule.expected ?? `text matching ${rule.pattern.source}`}, got ${describe(text)}`);
  }
  return text;
}

/** An integer in `[min, max]`. */
export function parseInteger(value: unknown, field: Field, min: number, max: number): number {
  if (value === undefined) field.fail("is missing");
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    field.fail(`must be an integer from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** One of `values`; strings are compared upper-cased, so `"express"` is `"EXPRESS"`. */
export function parseEnum<T extends string>(value: unknown, field: Field, values: readonly T[]): T {
  if (value === undefined) field.fail("is missing");
  const text = typeof value === "string" ? value.trim().toUpperCase() : undefined;
  if (text === undefined || !values.includes(text as T)) {
    field.fail(`must be one of ${values.join(", ")}, got ${describe(value)}`);
  }
  return text as T;
}

/** A JSON array with `min..max` elements. */
export function parseArray(value: unknown, field: Field, min: number, max: number): unknown[] {
  if (value === undefined) field.fail("is missing");
  if (!Array.isArray(value)) field.fail(`must be a JSON array, got ${describe(value)}`);
  if (value.length < min) field.fail(min === 1 ? "must not be empty" : `must have at least ${min} entries`);
  if (value.length > max) field.fail(`must have at most ${max} entries, got ${value.length}`);
  return value;
}

/** `undefined` and `null` are "not given"; anything else goes through `parse`. */
export function optional<T>(value: unknown, parse: (value: unknown) => T): T | undefined {
  return value === undefined || value === null ? undefined : parse(value);
}
