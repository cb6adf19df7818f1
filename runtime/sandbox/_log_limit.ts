/**
 * What a slice may write to the node's log: a token bucket of lines per instance (a slice logging 20,000
 * lines in one call must not flood the node's log, its ring or its disk), and a bound on the size of each
 * line. What is dropped is counted, reported in a log line of the node and in the instance's status.
 */

import type { JsonValue } from "../../slices/mod.ts";

export interface SliceLogLimits {
  /** Lines an instance may log per second, sustained (the bucket's refill rate). */
  linesPerSecond: number;
  /** Lines it may log at once beyond that rate (the bucket's size). */
  burstLines: number;
  /** Characters of a message kept; the rest is cut, and the line says how much was cut. */
  maxMessageChars: number;
  /** Characters of the fields (as JSON) kept; larger fields are replaced by a note of their size. */
  maxFieldsChars: number;
}

/**
 * 1,000 lines a second is five lines per request at 200 requests a second on one instance, far more than a
 * slice logging at INFO writes; the burst of 2,000 lets a start hook or a rare error dump through whole. A
 * line of 8 KiB holds a stack trace. At these bounds one instance writes at most about 16 MiB/s; a flood
 * beyond them costs the node a token check per line and nothing else.
 */
export const DEFAULT_SLICE_LOG_LIMITS: SliceLogLimits = Object.freeze({
  linesPerSecond: 1_000,
  burstLines: 2_000,
  maxMessageChars: 8 * 1024,
  maxFieldsChars: 8 * 1024,
});

/** Checks limits from configuration: each must be a positive number (the rate may be fractional). */
export function checkSliceLogLimits(limits: SliceLogLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    const ok = name === "linesPerSecond"
      ? value > 0 && Number.isFinite(value)
      : Number.isInteger(value) && value > 0;
    if (!ok) throw new RangeError(`limits.log.${name} must be a positive number, got ${value}`);
  }
}

/** One instance's token bucket, and the count of lines it refused. */
export class SliceLogLimiter {
  readonly limits: SliceLogLimits;
  #tokens: number;
  #refilledAtMs: number;
  #dropped = 0;
  #unreported = 0;

  constructor(limits: SliceLogLimits, nowMs: number) {
    checkSliceLogLimits(limits);
    this.limits = limits;
    this.#tokens = limits.burstLines;
    this.#refilledAtMs = nowMs;
  }

  /** Whether one more line may be written now; a refused line is counted. */
  admit(nowMs: number): boolean {
    const elapsedMs = Math.max(0, nowMs - this.#refilledAtMs);
    this.#refilledAtMs = nowMs;
    this.#tokens = Math.min(
      this.limits.burstLines,
      this.#tokens + elapsedMs * this.limits.linesPerSecond / 1000,
    );
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#dropped++;
    this.#unreported++;
    return false;
  }

  /** Lines refused since the instance started. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Lines refused since the last call (for the node's report of them). */
  takeUnreported(): number {
    const count = this.#unreported;
    this.#unreported = 0;
    return count;
  }

  /** The message cut to `maxMessageChars`, saying how much was cut. */
  message(text: string): string {
    const max = this.limits.maxMessageChars;
    return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters cut]`;
  }

  /** The fields, or a note of their size when their JSON is longer than `maxFieldsChars`. */
  fields(fields: Record<string, JsonValue> | undefined): Record<string, JsonValue> | undefined {
    if (fields === undefined) return undefined;
    let size: number;
    try {
      size = JSON.stringify(fields)?.length ?? 0;
    } catch {
      return { fieldsDropped: "not serializable" };
    }
    return size <= this.limits.maxFieldsChars
      ? fields
      : { fieldsDropped: `${size} characters of fields, over the ${this.limits.maxFieldsChars} kept` };
  }
}
